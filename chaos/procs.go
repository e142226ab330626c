package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// Binaries are the programs a run starts.
type Binaries struct {
	Paperpipe string // cmd/paperpipe
	Fake      string // cmd/openai-fake
	NATS      string // nats-server, built from the module's nats-server/v2 requirement
}

// Build compiles the three binaries of a run into dir. root is the module's root directory.
func Build(ctx context.Context, root, dir string) (Binaries, error) {
	b := Binaries{
		Paperpipe: filepath.Join(dir, "paperpipe"),
		Fake:      filepath.Join(dir, "openai-fake"),
		NATS:      filepath.Join(dir, "nats-server"),
	}
	for _, t := range []struct{ out, pkg string }{
		{b.Paperpipe, "./cmd/paperpipe"},
		{b.Fake, "./cmd/openai-fake"},
		{b.NATS, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("build %s: %w\n%s", t.pkg, err, out)
		}
	}
	return b, nil
}

// Proc is a started child process whose output goes to a log file.
type Proc struct {
	Name    string
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// live is what the harness started and has not stopped yet: its processes run in process
// groups of their own, which a terminal's Ctrl-C does not reach, and its private PostgreSQL is a
// daemon; StopAll ends them when the harness itself is interrupted.
var live = struct {
	sync.Mutex
	procs map[*Proc]bool
	pgs   map[*Postgres]bool
}{procs: map[*Proc]bool{}, pgs: map[*Postgres]bool{}}

// StopAll kills every process the harness started that still runs (with its process group) and
// stops its private PostgreSQL clusters: for a harness interrupted before its cleanups run.
func StopAll() {
	live.Lock()
	procs, pgs := live.procs, live.pgs
	live.procs, live.pgs = map[*Proc]bool{}, map[*Postgres]bool{}
	live.Unlock()
	for p := range procs {
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	}
	for pg := range pgs {
		pg.Close()
	}
}

// startProc starts bin with args and env, its stdout and stderr appended to logPath. If stdout
// is not nil it receives stdout instead.
func startProc(name, logPath string, env []string, stdout io.Writer, bin string, args ...string) (*Proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if stdout != nil {
		cmd.Stdout = stdout
	}
	// Its own process group, so a terminal's Ctrl-C reaches only the harness.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	live.Lock()
	live.procs[p] = true
	live.Unlock()
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		live.Lock()
		delete(live.procs, p)
		live.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// Wait waits up to timeout for the process to exit and returns its exit code (128 + the signal
// when a signal ended it, as a shell reports it).
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s (pid %d) still running after %s", p.Name, p.Pid(), timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		// A process a signal ended (paperpipe ends by the signal that stopped it with work
		// left, and by a second one) has the status a shell gives it: 128 + the signal.
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if p.err != nil {
		return 0, p.err
	}
	return 0, nil
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process: SIGTERM, then SIGKILL after grace. It is safe on an exited process.
func (p *Proc) Stop(grace time.Duration) {
	if p == nil || p.Exited() {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	if _, err := p.Wait(grace); err != nil {
		_ = p.Signal(syscall.SIGKILL)
		_, _ = p.Wait(10 * time.Second)
	}
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	raw, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Fake is a running cmd/openai-fake.
type Fake struct {
	*Proc
	URL string // base URL, ending in /v1
}

// FakeConfig are the fake's flags.
type FakeConfig struct {
	ChatLatency, EmbedLatency time.Duration
	Faults                    openaitest.Faults
	Seed                      int64
}

// StartFake starts the fake on a free loopback port and waits for its URL.
func StartFake(bin, logPath string, cfg FakeConfig) (*Fake, error) {
	f := cfg.Faults
	args := []string{"-listen", "127.0.0.1:0",
		"-chat-latency", cfg.ChatLatency.String(), "-embed-latency", cfg.EmbedLatency.String(),
		"-rate-limit", ftoa(f.RateLimit), "-server-error", ftoa(f.ServerError), "-timeout", ftoa(f.Timeout),
		"-truncated", ftoa(f.Truncated), "-malformed", ftoa(f.Malformed), "-junk", ftoa(f.Junk),
		"-seed", strconv.FormatInt(max(cfg.Seed, 1), 10),
	}
	if f.RetryAfter > 0 {
		args = append(args, "-retry-after", f.RetryAfter.String())
	}
	if f.TimeoutHold > 0 {
		args = append(args, "-timeout-hold", f.TimeoutHold.String())
	}
	pr, pw := io.Pipe()
	p, err := startProc("openai-fake", logPath, []string{"PATH=" + os.Getenv("PATH")}, pw, bin, args...)
	if err != nil {
		return nil, err
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		first := true
		for sc.Scan() {
			if first {
				urls <- strings.TrimSpace(sc.Text())
				first = false
			}
		}
	}()
	go func() { <-p.done; pw.Close() }()
	select {
	case u := <-urls:
		return &Fake{Proc: p, URL: u}, nil
	case <-p.done:
		return nil, fmt.Errorf("openai-fake exited at start: %s", p.Tail(20))
	case <-time.After(30 * time.Second):
		p.Stop(time.Second)
		return nil, errors.New("openai-fake printed no URL in 30s")
	}
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// control is the fake's address without /v1.
func (f *Fake) control() string { return strings.TrimSuffix(f.URL, "/v1") }

// Stats fetches the fake's counters.
func (f *Fake) Stats(ctx context.Context) (openaitest.Stats, error) {
	var st openaitest.Stats
	return st, getJSON(ctx, f.control()+"/_stats", &st)
}

// Deliveries fetches the fake's ledger of delivered results.
func (f *Fake) Deliveries(ctx context.Context) ([]openaitest.Delivery, error) {
	var d []openaitest.Delivery
	return d, getJSON(ctx, f.control()+"/_deliveries", &d)
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// NATS is a nats-server process with JetStream file storage; Restart keeps its port and data.
type NATS struct {
	mu      sync.Mutex
	proc    *Proc
	bin     string
	Dir     string
	Port    int
	logPath string
	args    []string // beyond JetStream, storage and client port: a cluster member's
}

// StartNATS starts a nats-server with JetStream storing in dir, on a free loopback port.
func StartNATS(bin, dir, logPath string) (*NATS, error) {
	port, err := nettest.PickPort()
	if err != nil {
		return nil, err
	}
	n := &NATS{bin: bin, Dir: dir, Port: port, logPath: logPath}
	return n, n.start()
}

// URL is the client URL.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.Port) }

func (n *NATS) start() error {
	p, err := startProc("nats-server", n.logPath, []string{"PATH=" + os.Getenv("PATH")}, nil, n.bin,
		append([]string{"-js", "-sd", n.Dir, "-a", "127.0.0.1", "-p", strconv.Itoa(n.Port)}, n.args...)...)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
	return waitTCP(p, n.Port, 30*time.Second)
}

// StartNATSCluster starts a JetStream cluster of three nats-server processes, n1 to n3, on free
// loopback ports, storing in dir/n1… and logging to dir/n1.log…; it returns once each accepts
// clients (the cluster may not have elected its leaders yet).
func StartNATSCluster(bin, dir string) ([]*NATS, error) {
	var ports, routes []int
	for range 6 {
		p, err := nettest.PickPort()
		if err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	ports, routes = ports[:3], ports[3:]
	var urls []string
	for _, r := range routes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", r))
	}
	var servers []*NATS
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		n := &NATS{bin: bin, Dir: filepath.Join(dir, name), Port: ports[i], logPath: filepath.Join(dir, name+".log"),
			args: []string{"-n", name, "--cluster_name", "paperpipe-chaos", "--cluster", urls[i], "--routes", strings.Join(urls, ",")}}
		if err := n.start(); err != nil {
			for _, s := range servers {
				s.Stop()
			}
			return nil, err
		}
		servers = append(servers, n)
	}
	return servers, nil
}

// Kill ends the server with SIGKILL, as a crash or the OOM killer would: it hands nothing over.
func (n *NATS) Kill() error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	_, err := p.Wait(10 * time.Second)
	return err
}

// Restart stops the server (SIGTERM: a clean shutdown), waits pause, and starts it again on the
// same port and storage directory.
func (n *NATS) Restart(pause time.Duration) error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	p.Stop(30 * time.Second)
	time.Sleep(pause)
	return n.start()
}

// Stop stops the server.
func (n *NATS) Stop() {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	p.Stop(10 * time.Second)
}

// waitTCP waits until something accepts connections on the loopback port, or p exits.
func waitTCP(p *Proc, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited at start: %s", p.Name, p.Tail(20))
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on 127.0.0.1:%d after %s", port, timeout)
}

// httpPost posts a JSON body and returns the status code.
func httpPost(url, body string) (int, error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
