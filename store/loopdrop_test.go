package store_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// loopback is held by a test of this binary that filters lo (dropLoopbackConn): there is one
// clsact on lo at a time, and a second test's dropLoopbackConn would skip. Those tests run in
// parallel with the others, one after another (lockLoopback), and not with
// TestDropLoopbackConnIsUndoneWhenTheTestBinaryDies, whose filter is its child process's: it is
// not parallel, and so runs before all of them.
var loopback sync.Mutex

// lockLoopback holds loopback until the end of t: a test calls it before it sets up what the
// filter is to find (an idle connection, all its data acknowledged).
func lockLoopback(t *testing.T) {
	loopback.Lock()
	t.Cleanup(loopback.Unlock)
}

// dropLoopbackConn drops every packet, either way, of the IPv4 loopback TCP connection between
// the ports server and client (sent to a network device of its own that is down), until the
// returned restore is called. It changes the host, not only the test: it needs tc and ip
// (iproute2) and the privilege to filter loopback traffic (root, or CAP_NET_ADMIN), and skips
// the test without them or while another filter is on lo.
//
// Its filter matches that one connection: Linux gives connections to different addresses the
// same local port, and a filter on the port alone dropped the packets of any other test's
// connection (a NATS server's, an HTTP server's, running in parallel) that got it. And it is
// removed by a child process that outlives the test binary, when restore closes the child's
// stdin or the binary ends however it ends (go test -timeout's panic, a kill): a filter left on
// lo dropped every later connection on those ports, and made this test skip on that host ever
// after.
func dropLoopbackConn(t *testing.T, server, client int) (restore func()) {
	t.Helper()
	tc, err := exec.LookPath("tc")
	if err != nil {
		t.Skip("needs tc (iproute2) to drop a loopback connection's packets")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs ip (iproute2) to make a device to drop a loopback connection's packets")
	}
	run := func(name string, args ...string) error {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %s", name, strings.Join(args, " "), strings.TrimSpace(string(out)))
		}
		return nil
	}
	sink := "ppsink" + strconv.Itoa(client)
	if err := run(ip, "link", "add", sink, "type", "ifb"); err != nil {
		t.Skipf("cannot make a network device (%v): needs root or CAP_NET_ADMIN", err)
	}
	if err := run(tc, "qdisc", "add", "dev", "lo", "clsact"); err != nil {
		if derr := run(ip, "link", "del", sink); derr != nil {
			t.Error(derr)
		}
		t.Skipf("cannot filter loopback traffic (%v): another clsact on lo?", err)
	}

	// The child that undoes it all: it ignores the signals a terminal sends its process group
	// and waits until its stdin, a pipe only this process writes to, is closed.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.CreateTemp(t.TempDir(), "undo-*.log")
	if err != nil {
		t.Fatal(err)
	}
	undo := exec.Command("sh", "-c", `trap '' HUP INT QUIT TERM; read -r _; `+
		`"$0" qdisc del dev lo clsact || err=1; "$1" link del "$2" || err=1; exit ${err:-0}`, tc, ip, sink)
	undo.Stdin, undo.Stdout, undo.Stderr = r, log, log
	if err := undo.Start(); err != nil {
		run(tc, "qdisc", "del", "dev", "lo", "clsact")
		run(ip, "link", "del", sink)
		t.Fatalf("start the process that removes the loopback filter: %v", err)
	}
	r.Close()
	log.Close()
	restore = func() {
		t.Helper()
		w.Close()
		if err := undo.Wait(); err != nil {
			out, _ := os.ReadFile(log.Name())
			t.Errorf("remove the loopback filter: %v: %s", err, strings.TrimSpace(string(out)))
		}
	}

	// On ingress: a packet dropped on its way out would tell its sender, whose kernel takes it
	// for congestion and does not count an unanswered keepalive probe.
	for _, ports := range [][2]int{{server, client}, {client, server}} {
		if err := run(tc, "filter", "add", "dev", "lo", "ingress", "protocol", "ip", "prio", "1", "u32",
			"match", "ip", "protocol", "6", "0xff",
			"match", "ip", "sport", strconv.Itoa(ports[0]), "0xffff", "match", "ip", "dport", strconv.Itoa(ports[1]), "0xffff",
			"action", "mirred", "egress", "redirect", "dev", sink); err != nil {
			restore()
			t.Skipf("cannot filter loopback traffic: %v", err)
		}
	}
	return restore
}

// TestDropLoopbackConnDropsOnlyItsConnection: another connection that has the same local port
// (to another address) still goes through while dropLoopbackConn drops one.
func TestDropLoopbackConnDropsOnlyItsConnection(t *testing.T) {
	t.Parallel()
	lockLoopback(t)
	a, b := echoServer(t), echoServer(t)
	// Connections to a and to b until one of each has the same local port.
	byPort := map[int]net.Conn{}
	var dropped, other net.Conn
	for i := 0; i < 5000 && dropped == nil; i++ {
		ca := dial(t, a)
		byPort[localPort(ca)] = ca
		cb := dial(t, b)
		if c, ok := byPort[localPort(cb)]; ok {
			dropped, other = c, cb
		}
	}
	if dropped == nil {
		t.Skip("no two connections to different loopback servers got the same local port")
	}
	defer dropLoopbackConn(t, a.Addr().(*net.TCPAddr).Port, localPort(dropped))()

	if err := echo(other); err != nil {
		t.Errorf("a connection with the same local port to another server, while the first is dropped: %v", err)
	}
	if err := echo(dropped); err == nil {
		t.Error("the dropped connection still answers")
	}
}

// TestDropLoopbackConnIsUndoneWhenTheTestBinaryDies: a test binary killed while it drops a
// connection (as go test -timeout, or a kill -9, ends it) leaves no filter on lo.
func TestDropLoopbackConnIsUndoneWhenTheTestBinaryDies(t *testing.T) {
	// Not parallel: its child process filters lo, which loopback does not hold off (see there).
	if os.Getenv("PAPERPIPE_TEST_DROP_AND_WAIT") != "" {
		l := echoServer(t)
		c := dial(t, l)
		dropLoopbackConn(t, l.Addr().(*net.TCPAddr).Port, localPort(c))
		fmt.Println("dropping ppsink" + strconv.Itoa(localPort(c)))
		time.Sleep(time.Hour) // until killed
	}
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("needs tc (iproute2)")
	}
	child := exec.Command(os.Args[0], "-test.run=^TestDropLoopbackConnIsUndoneWhenTheTestBinaryDies$", "-test.count=1")
	// The child is killed, so its own t.TempDir is never removed: it makes it under this test's,
	// which is.
	child.Env = append(os.Environ(), "PAPERPIPE_TEST_DROP_AND_WAIT=1", "TMPDIR="+t.TempDir())
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer child.Process.Kill()
	var sink string
	for sc := bufio.NewScanner(out); sc.Scan(); {
		if s, ok := strings.CutPrefix(sc.Text(), "dropping "); ok {
			sink = s
			break
		}
		t.Log(sc.Text())
	}
	if sink == "" {
		t.Skip("the test binary could not drop a loopback connection (see above)")
	}
	child.Process.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("ip", "link", "show", sink).Run() == nil {
		if time.Now().After(deadline) {
			// Not left for the tests after this one.
			exec.Command("tc", "qdisc", "del", "dev", "lo", "clsact").Run()
			exec.Command("ip", "link", "del", sink).Run()
			t.Fatalf("the loopback filter (to %s) is still there 30 s after the test binary was killed", sink)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := exec.Command("tc", "qdisc", "show", "dev", "lo").CombinedOutput(); err != nil || strings.Contains(string(out), "clsact") {
		t.Errorf("after the test binary was killed, lo has %s (%v)", out, err)
	}
}

// echoServer is a loopback TCP server that writes back what it reads.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func localPort(c net.Conn) int { return c.LocalAddr().(*net.TCPAddr).Port }

// echo sends a line on c and reads it back within 3 s.
func echo(c net.Conn) error {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	_, err := io.ReadFull(c, buf)
	return err
}
