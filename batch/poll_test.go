package batch_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/store"
)

// failLooks answers the first n looks at a batch (GET /v1/batches/ID) with status, and counts
// every look.
type failLooks struct {
	n, looks atomic.Int32
	status   int
}

func (f *failLooks) hook(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v1/batches/") {
		return false
	}
	f.looks.Add(1)
	if f.n.Add(-1) < 0 {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	w.Write([]byte(`{"error":{"message":"look failed","type":"server_error"}}`))
	return true
}

// run runs a TL;DR Runner through f, each request tried once.
func (f *failLooks) run(t *testing.T, b *bundle) (batch.Report, error) {
	t.Helper()
	url := proxy(t, b.fake, f.hook)
	r := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url })
	batch.SetRetries(r, -1, time.Millisecond)
	return r.Run(context.Background(), store.Selection{})
}

// A look at a batch that failed transiently past the Retrier's retries (a minute's network or
// 5xx blip during a wait of up to 24 hours) failed the job for the rest of the run: it was
// never looked at again, though its batch completed, and the run ended with exit 1 and the
// advice to abandon it. It is looked at again at the next poll, and collected.
func TestTransientlyFailedLookIsTriedAgainAtTheNextPoll(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	f := &failLooks{status: http.StatusServiceUnavailable}
	f.n.Store(batch.MaxFailedLooks - 1)
	rep, err := f.run(t, b)
	if err != nil || rep.Done != 1 {
		t.Errorf("Run: %v, report %+v; want the job collected once the API answers again", err, rep)
	}
	if tl, _ := b.counts(t); tl != 3 || f.looks.Load() != batch.MaxFailedLooks {
		t.Errorf("%d TL;DRs stored after %d looks; want 3 after %d", tl, f.looks.Load(), batch.MaxFailedLooks)
	}
	b.checkClosed(t)
}

// An API that keeps failing the looks fails the job after MaxFailedLooks looks in a row,
// saying so; a look refused for good (a 404: no such batch, or another key's) fails it at once.
// The job stays open for a later run.
func TestFailedLooksFailTheJobAfterTheBoundOrAtOnceWhenPermanent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		looks  int32
		says   string
	}{
		{http.StatusBadGateway, batch.MaxFailedLooks, "looks at its batch in a row failed"},
		{http.StatusNotFound, 1, "retrieve batch"},
	} {
		b := setup(t, 2)
		f := &failLooks{status: tc.status}
		f.n.Store(1 << 20)
		_, err := f.run(t, b)
		if err == nil || !strings.Contains(err.Error(), tc.says) || f.looks.Load() != tc.looks {
			t.Errorf("HTTP %d: Run: %v after %d looks; want an error saying %q after %d", tc.status, err, f.looks.Load(), tc.says, tc.looks)
		}
		if jobs, _ := b.st.BatchJobs(context.Background(), ""); len(jobs) != 1 || jobs[0].Status != store.BatchSubmitted {
			t.Errorf("HTTP %d: jobs %+v; want the job still open", tc.status, jobs)
		}
	}
}
