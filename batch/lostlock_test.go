package batch_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/store"
)

// endJobLockSessions ends the sessions that hold the lock of job id (store.LockBatchJob), as a
// database restart, a pg_terminate_backend or idle_session_timeout does, and returns how many.
func endJobLockSessions(t *testing.T, b *bundle, id int64) int {
	t.Helper()
	var n int
	err := b.st.Pool().QueryRow(context.Background(), `SELECT count(pg_terminate_backend(l.pid, 10000))
		FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
			AND ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended('paperpipe.batch.job.' || current_schema() || '.' || $1::bigint, 0)`,
		id).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// loseJobLockAtUpload serves the fake API at a URL of its own, through hook as proxy does (nil:
// none), where the first upload of an input file (POST /v1/files) first ends the sessions that
// hold the lock of the one job being prepared, then runs then (another Runner, say) unless it
// is nil, and goes on to the fake. ended is how many sessions it ended.
func loseJobLockAtUpload(t *testing.T, b *bundle, then func(), hook func(w http.ResponseWriter, r *http.Request) bool) (url string, ended func() int) {
	t.Helper()
	var once sync.Once
	var n atomic.Int32
	url = proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/files" {
			once.Do(func() {
				jobs, err := b.st.BatchJobs(context.Background(), "")
				if err != nil || len(jobs) != 1 {
					t.Errorf("jobs %+v, %v; want the one being prepared", jobs, err)
					return
				}
				n.Store(int32(endJobLockSessions(t, b, jobs[0].ID)))
				if then != nil {
					then()
				}
			})
		}
		return hook != nil && hook(w, r)
	})
	return url, func() int { return int(n.Load()) }
}

// A Runner uploading a job's input whose lock's session the database ends meanwhile (a restart,
// pg_terminate_backend, idle_session_timeout: the Runner goes on uploading, its lock's
// connection idle) leaves the job to the Runner that resumed it in the meantime: that one
// uploaded the input and created the job's batch. The first Runner recorded its own upload
// over the other's record (the job back to preparing, its batch forgotten) and created a
// second batch of the same papers: paid twice, one of the two never collected.
func TestARunnerWhoseJobLockWasLostCreatesNoSecondBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 4
	b := setup(t, n)
	var creates atomic.Int32
	count := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/batches" {
			creates.Add(1)
		}
		return false
	}
	other := proxy(t, b.fake, count)
	var otherRep batch.Report
	// The first Runner's upload is on its way: its lock's session ends, and another Runner,
	// started meanwhile, finds the job preparing and unlocked.
	url, ended := loseJobLockAtUpload(t, b, func() {
		var err error
		if otherRep, err = b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = other }).Submit(ctx, store.Selection{}); err != nil {
			t.Errorf("the other Runner's Submit: %v", err)
		}
	}, count)
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{})
	if err != nil {
		t.Errorf("first Runner: %v", err)
	}
	if n := ended(); n != 1 {
		t.Errorf("ended %d sessions holding the job's lock, want 1", n)
	}
	if otherRep.Resumed != 1 || otherRep.Submitted != 0 {
		t.Errorf("the other Runner's report %+v, want the job resumed", otherRep)
	}
	if got := creates.Load(); got != 1 {
		t.Errorf("%d batches created for one job, want 1 (report %+v)", got, rep)
	}
	if tl, _ := b.counts(t); tl != n {
		t.Errorf("%d TL;DRs stored, want %d", tl, n)
	}
	if s := b.fake.Stats(); s.ChatDelivered != n {
		t.Errorf("API delivered %d chat completions for %d papers, want %d", s.ChatDelivered, n, n)
	}
}

// A Runner whose job lock's session the database ended while it uploaded, with no other run
// about, takes the lock again and submits the job: the lost session does not strand it.
func TestARunnerWhoseJobLockWasLostAloneTakesItAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 3
	b := setup(t, n)
	url, ended := loseJobLockAtUpload(t, b, nil, nil)
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{})
	if err != nil || ended() != 1 {
		t.Fatalf("Run: %v (%d lock sessions ended); want nil, 1", err, ended())
	}
	if rep.Submitted != 1 || rep.Done != 1 || rep.TLDRs != n {
		t.Errorf("report %+v, want the job submitted and done, %d TL;DRs", rep, n)
	}
	if s := b.fake.Stats(); s.ChatDelivered != n {
		t.Errorf("API delivered %d chat completions for %d papers, want %d", s.ChatDelivered, n, n)
	}
}

// A Runner that finds, its input uploaded, that another run took its job over meanwhile (its
// lock's session ended) deletes that upload at OpenAI: nothing records it, so nothing else ever
// would, and OpenAI keeps an uploaded file (up to 190 MB a job) until it is deleted.
func TestARunnerWhoseJobWasTakenOverDeletesItsUpload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3)
	other := proxy(t, b.fake, func(http.ResponseWriter, *http.Request) bool { return false })
	url, ended := loseJobLockAtUpload(t, b, func() {
		if _, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = other }).Submit(ctx, store.Selection{}); err != nil {
			t.Errorf("the other Runner's Submit: %v", err)
		}
	}, nil)
	if _, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{}); err != nil {
		t.Fatalf("first Runner: %v", err)
	}
	if n := ended(); n != 1 {
		t.Errorf("ended %d sessions holding the job's lock, want 1", n)
	}
	jobs, err := b.st.BatchJobs(ctx, "")
	if err != nil || len(jobs) != 1 || jobs[0].Status != store.BatchDone {
		t.Fatalf("jobs %+v, %v; want the one, done", jobs, err)
	}
	// What stays at OpenAI is the batch's output (and error) file, which expires.
	for _, id := range b.fake.Files() {
		if id != jobs[0].OutputFileID && id != jobs[0].ErrorFileID {
			t.Errorf("file %s is still at OpenAI: neither the job's output nor its error file (the job's input was %s)", id, jobs[0].InputFileID)
		}
	}
}
