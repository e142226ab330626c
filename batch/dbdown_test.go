package batch_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/store"
)

// dbProxy is a TCP proxy to PostgreSQL that can drop every connection and refuse new ones, as
// a database server restarting does, and takes connections again after the refusals it is
// given.
type dbProxy struct {
	ln       net.Listener
	target   string
	refusals atomic.Int32 // connections still to refuse
	mu       sync.Mutex
	conns    []net.Conn
}

// proxiedStore returns a proxy to the database of url and a store connected through it.
func proxiedStore(t *testing.T, url string) (*dbProxy, *store.Store) {
	t.Helper()
	hostport := strings.SplitN(strings.SplitN(strings.SplitN(url, "@", 2)[1], "/", 2)[0], "?", 2)[0]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, target: hostport}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
	})
	st, err := store.Open(context.Background(), store.Config{URL: strings.Replace(url, hostport, ln.Addr().String(), 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return p, st
}

func (p *dbProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refusals.Add(-1) >= 0 {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

// restart drops every connection and refuses the next n.
func (p *dbProxy) restart(n int32) {
	p.refusals.Store(n)
	p.closeAll()
}

func (p *dbProxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A database restart during Wait (which lasts up to 24 hours) ended the run with a bare
// "list batch jobs: …" error, or failed the job being collected for the rest of the run. The
// wait rides the outage out, as a worker does, and collects the job once the database is back.
func TestWaitRidesOutADatabaseRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	p, st := proxiedStore(t, b.st.Pool().Config().ConnString())
	var restarted atomic.Bool
	url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		// The database restarts as the batch is looked at: its collection and the next
		// polls find it gone, for a few connection attempts.
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/batches/") && restarted.CompareAndSwap(false, true) {
			p.restart(5)
		}
		return false
	})
	r := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url; c.Store = st })
	rep, err := r.Run(context.Background(), store.Selection{})
	if !restarted.Load() {
		t.Fatal("the batch was never looked at")
	}
	if err != nil || rep.Done != 1 {
		t.Errorf("Run across a database restart: %v, report %+v; want the job collected once the database is back", err, rep)
	}
	if tl, _ := b.counts(t); tl != 3 {
		t.Errorf("%d TL;DRs stored, want 3", tl)
	}
}
