package pipeline

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/paper"
)

// mountTmpfs mounts a tmpfs of size bytes on a new temporary directory for the test, or skips
// the test where it cannot (not root, no mount).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (a full disk needs one): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until its file system is full, and returns the file.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			return name
		}
	}
}

// queueOn connects to e, sets the queue up, and returns the connection, its JetStream and a
// function that publishes the next of a numbered series of papers (each its own message id).
func queueOn(t *testing.T, e *Embedded) (*nats.Conn, jetstream.JetStream, func() error) {
	t.Helper()
	nc, err := nats.Connect(e.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := Setup(t.Context(), js, TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	n := 0
	return nc, js, func() error {
		n++
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.Publish(ctx, SubjectNew, fmt.Appendf(nil, `{"id":"p%d","title":"t","abstract":"a"}`, n), jetstream.WithMsgID(fmt.Sprint("m", n)))
		return err
	}
}

// embeddedOnSmallDisk starts an embedded server storing on a 16 MiB tmpfs and checking its
// writes every 100 ms, and returns it with the tmpfs's directory.
func embeddedOnSmallDisk(t *testing.T) (*Embedded, string) {
	t.Helper()
	dir := mountTmpfs(t, 16<<20)
	old := writeCheckInterval
	t.Cleanup(func() { writeCheckInterval = old })
	writeCheckInterval = 100 * time.Millisecond
	e, err := StartEmbedded(EmbeddedConfig{Dir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	return e, dir
}

// fillUntilRefused fills dir's disk and publishes until the queue refuses a paper; it returns
// the file that fills the disk and the refusal.
func fillUntilRefused(t *testing.T, dir string, publish func() error) (filler string, full error) {
	t.Helper()
	filler = fillDisk(t, dir)
	for i := 0; i < 1000 && full == nil; i++ {
		full = publish()
	}
	if full == nil {
		t.Fatal("the queue took every message on a full disk")
	}
	return filler, full
}

// The embedded server's disk filled up under the queue, then got room again: nats-server stops
// storing into a stream whose write failed until it restarts (it does not even answer the
// publishes), so the queue refused every paper for good — ingest timed out waiting for acks
// and POST /api/papers answered 503 until paperpipe was restarted by hand. The embedded server
// now restarts itself once its disk has room, and keeps what it had stored.
func TestEmbeddedServerRecoversFromFullDisk(t *testing.T) {
	e, dir := embeddedOnSmallDisk(t)
	_, js, publish := queueOn(t, e)
	ctx := context.Background()
	const before = 10
	for range before {
		if err := publish(); err != nil {
			t.Fatal(err)
		}
	}

	filler, full := fillUntilRefused(t, dir, publish)
	t.Logf("on a full disk: %v", full)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(60 * time.Second)
	for err := publish(); err != nil; err = publish() {
		if time.Now().After(deadline) {
			t.Fatalf("the queue still refuses papers a minute after its disk got room: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s, err := js.Stream(ctx, StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= before; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d, stored before the disk filled: %v", seq, err)
		}
		if want := fmt.Sprintf(`{"id":"p%d","title":"t","abstract":"a"}`, seq); string(raw.Data) != want {
			t.Fatalf("message %d = %s, want %s", seq, raw.Data, want)
		}
	}
}

// While the embedded server came back from a full disk it was shut down and started again,
// its port free until its store was recovered: another program of the machine could listen
// there first — the server then stayed down, trying again every few seconds for as long as
// that program held the port, and every client reconnecting sent that program the server's
// token, which stays the server's own once it is back. Only JetStream is restarted now: the
// port is the server's throughout, and its clients stay connected.
func TestEmbeddedServerKeepsItsPortWhileItRecovers(t *testing.T) {
	e, dir := embeddedOnSmallDisk(t)
	u, err := url.Parse(e.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc, _, publish := queueOn(t, e)
	filler, _ := fillUntilRefused(t, dir, publish)

	// Another program tries to listen on the server's port all along.
	taken := make(chan net.Listener, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if l, err := net.Listen("tcp", u.Host); err == nil {
				taken <- l
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	reconnects := nc.Stats().Reconnects
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for err := publish(); err != nil; err = publish() {
		select {
		case l := <-taken:
			l.Close()
			t.Fatalf("another program could listen on the embedded server's port %s while the server recovered", u.Port())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue still refuses papers a minute after its disk got room: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case l := <-taken:
		l.Close()
		t.Fatalf("another program could listen on the embedded server's port %s while the server recovered", u.Port())
	default:
	}
	if r := nc.Stats().Reconnects; r != reconnects {
		t.Errorf("the client reconnected %d times while the server recovered, want 0", r-reconnects)
	}
}

// A server that could not write the stream (its disk full) answers no publish, so ingest sent
// its papers again for a minute and then stopped with a message that spoke only of a JetStream
// cluster without a leader: on the embedded server, or any single server, that pointed nowhere.
// The message now names the full disk too.
func TestPublishingToAServerWhoseDiskIsFullSaysTheDiskMayBeFull(t *testing.T) {
	e, dir := embeddedOnSmallDisk(t)
	nc, _, publish := queueOn(t, e)
	fillUntilRefused(t, dir, publish)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(js, SubjectNew, 16)
	p.resendFor = time.Second
	ctx := t.Context()
	if err := p.Publish(ctx, paper.Abstract{ID: "test:full", Title: "T", Abstract: "An abstract the full disk cannot take."}); err != nil {
		t.Fatal(err)
	}
	err = p.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), "answered nothing") {
		t.Fatalf("Flush on a full disk: %v; want the stream to have answered nothing", err)
	}
	if !strings.Contains(err.Error(), "disk") {
		t.Errorf("Flush on a full disk: %v; want it to say that a full disk answers nothing too", err)
	}
}
