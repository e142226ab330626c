package batch_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// proxiedStore returns a proxy to the database of url (see nettest.Proxy) and a store connected
// through it.
func proxiedStore(t *testing.T, url string) (*nettest.Proxy, *store.Store) {
	t.Helper()
	p, via := nettest.ProxyURL(t, url)
	st, err := store.Open(context.Background(), store.Config{URL: via})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return p, st
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
			p.Restart(5)
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

// A database restart during Submit (while the jobs are claimed, uploaded and created, before
// the wait) ended it with a bare error ("claim batch job: …: connection refused"), which said
// neither what was left half-done nor what to do. Nothing is: a job whose batch was created and
// not recorded is found by its tag at the next run. The error says the database is
// unavailable and to run again once it is back, and that run submits the rest, paying for no
// paper twice.
func TestSubmitStoppedByADatabaseRestartSaysToRunAgain(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	p, st := proxiedStore(t, b.st.Pool().Config().ConnString())
	var created atomic.Int32
	url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		// The database goes down as the first job's batch is created: the batch exists, its
		// record and the next job's claim fail.
		if r.Method == http.MethodPost && r.URL.Path == "/v1/batches" && created.Add(1) == 1 {
			p.Refuse()
		}
		return false
	})
	r := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url; c.Store = st; c.MaxRequests = 1 })
	_, err := r.Submit(context.Background(), store.Selection{})
	if !errors.Is(err, paper.ErrUnavailable) || !strings.Contains(err.Error(), "run again once the database is back") {
		t.Fatalf("Submit with the database down: %v; want it said unavailable, and to run again once it is back", err)
	}

	p.Accept() // back
	r = b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url; c.Store = st; c.MaxRequests = 1 })
	if rep, err := r.Run(context.Background(), store.Selection{}); err != nil || rep.Done != 3 {
		t.Fatalf("the run again: %v, report %+v; want the 3 jobs done", err, rep)
	}
	if tl, _ := b.counts(t); tl != 3 {
		t.Errorf("%d TL;DRs stored, want 3", tl)
	}
	if n := created.Load(); n != 3 {
		t.Errorf("%d batches created for 3 jobs of one paper each; want 3", n)
	}
}
