package batch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/store"
)

// proxy serves the fake API at a URL of its own, through hook: a request hook handles
// (returns true for) is not passed on. It returns the base URL, ending in /v1.
func proxy(t *testing.T, fake *openaitest.Server, hook func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook(w, r) {
			return
		}
		fake.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/v1"
}

// scanBarrier holds each Runner's walk of the stale papers until every Runner has walked:
// Runners started at the same time, which all see the same papers stale.
type scanBarrier struct {
	*store.Store
	walked *sync.WaitGroup
}

func (s scanBarrier) StalePapers(ctx context.Context, sel store.Selection, n int, fn func([]store.StalePaper) error) error {
	err := s.Store.StalePapers(ctx, sel, n, fn)
	s.walked.Done()
	s.walked.Wait()
	return err
}

// Two Runners of one target that select the same stale papers at once record each paper in
// one job only, and the API is paid once per paper.
func TestTwoRunnersScanningAtOnceSubmitEachPaperOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 6
	b := setup(t, n)
	var walked sync.WaitGroup
	walked.Add(2)
	var runs sync.WaitGroup
	reps := make([]batch.Report, 2)
	for i := range 2 {
		r := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.Store = scanBarrier{b.st, &walked} })
		runs.Go(func() {
			var err error
			if reps[i], err = r.Run(ctx, store.Selection{}); err != nil {
				t.Error(err)
			}
		})
	}
	runs.Wait()
	// The jobs are closed, their items removed: their totals count the papers they held.
	var held int
	if err := b.st.Pool().QueryRow(ctx, `SELECT coalesce(sum(total), 0) FROM batch_jobs`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held != n {
		t.Errorf("the jobs held %d papers, want %d: a paper was recorded in two jobs", held, n)
	}
	if got := reps[0].Submitted + reps[1].Submitted; got != 1 {
		t.Errorf("the runs submitted %d jobs (%+v, %+v), want 1", got, reps[0], reps[1])
	}
	if got := reps[0].Requests + reps[1].Requests; got != n {
		t.Errorf("the runs submitted %d requests, want %d", got, n)
	}
	if s := b.fake.Stats(); s.ChatDelivered != n {
		t.Errorf("API delivered %d chat completions for %d papers, want %d", s.ChatDelivered, n, n)
	}
	if tl, _ := b.counts(t); tl != n {
		t.Errorf("stored %d TL;DRs, want %d", tl, n)
	}
}

// holdUpload holds the first upload of a job (where it reads the job's papers) until release
// is closed, and closes uploading when it starts.
type holdUpload struct {
	*store.Store
	uploading, release chan struct{}
	once               sync.Once
}

func (s *holdUpload) BatchJobItems(ctx context.Context, id int64, n int, fn func([]store.BatchJobItem) error) error {
	s.once.Do(func() {
		close(s.uploading)
		<-s.release
	})
	return s.Store.BatchJobItems(ctx, id, n, fn)
}

// A job still preparing in a live Runner (uploading its input) is not resumed by another
// Runner's Wait: it waits for the creator's batch instead of creating a second one.
func TestWaitLeavesAJobBeingPreparedToItsCreator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 4
	b := setup(t, n)
	var creates atomic.Int32
	url := proxy(t, b.fake, func(_ http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/batches" {
			creates.Add(1)
		}
		return false
	})
	hold := &holdUpload{Store: b.st, uploading: make(chan struct{}), release: make(chan struct{})}
	release := sync.OnceFunc(func() { close(hold.release) })
	defer release()

	creator := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url; c.Store = hold })
	submitted := make(chan error, 1)
	go func() {
		_, err := creator.Submit(ctx, store.Selection{})
		submitted <- err
	}()
	select {
	case <-hold.uploading:
	case err := <-submitted:
		t.Fatalf("Submit returned before uploading: %v", err)
	}

	createsAtFirstLook := int32(-1)
	other := b.runner(t, func(c *batch.Config) {
		c.Embed = nil
		c.BaseURL = url
		c.Progress = func([]store.BatchJob, batch.Report) {
			if createsAtFirstLook < 0 {
				createsAtFirstLook = creates.Load()
				release() // the creator goes on once the other Runner has looked at its job
			}
		}
	})
	rep, err := other.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-submitted; err != nil {
		t.Errorf("creator's Submit: %v", err)
	}
	if createsAtFirstLook != 0 {
		t.Errorf("the other Runner's first look at the job being prepared created %d batches, want 0", createsAtFirstLook)
	}
	if got := creates.Load(); got != 1 {
		t.Errorf("%d batches created for one job, want 1", got)
	}
	if rep.Done != 1 || rep.TLDRs != n {
		t.Errorf("other Runner's report %+v, want the creator's job collected: 1 done, %d TL;DRs", rep, n)
	}
	if s := b.fake.Stats(); s.ChatDelivered != n {
		t.Errorf("API delivered %d chat completions for %d papers, want %d", s.ChatDelivered, n, n)
	}
}

// A job whose results one Runner is collecting is not collected by another Runner's Wait: it
// waits for the job to close, and the results are downloaded, stored and reported once.
func TestTwoRunnersWaitingOnOneJobCollectItOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 4
	b := setup(t, n)
	var downloads atomic.Int32
	started, end := make(chan struct{}), make(chan struct{})
	endOnce := sync.OnceFunc(func() { close(end) })
	t.Cleanup(endOnce) // before the proxy's Close, which waits for its handlers
	held := proxy(t, b.fake, func(_ http.ResponseWriter, r *http.Request) bool {
		if isContent(r) {
			downloads.Add(1)
			select {
			case <-started:
			default:
				close(started)
			}
			<-end // the first Runner's download waits until the other Runner has looked
		}
		return false
	})
	free := proxy(t, b.fake, func(_ http.ResponseWriter, r *http.Request) bool {
		if isContent(r) {
			downloads.Add(1)
		}
		return false
	})

	first := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = held })
	batch.SetStallTimeout(first, time.Minute)
	firstDone := make(chan error, 1)
	var firstRep batch.Report
	go func() {
		var err error
		firstRep, err = first.Run(ctx, store.Selection{})
		firstDone <- err
	}()
	select {
	case <-started:
	case err := <-firstDone:
		t.Fatalf("the first Run returned before downloading its results: %v", err)
	}

	looks := 0
	other := b.runner(t, func(c *batch.Config) {
		c.Embed = nil
		c.BaseURL = free
		c.Progress = func([]store.BatchJob, batch.Report) {
			if looks++; looks == 2 {
				endOnce() // the first Runner goes on once the other has polled the ended job twice
			}
		}
	})
	rep, err := other.Wait(ctx)
	endOnce() // when the other Wait collected the job itself, it returned before letting go
	if err != nil {
		t.Fatal(err)
	}
	if err := <-firstDone; err != nil {
		t.Fatalf("first Run: %v", err)
	}
	if looks < 2 {
		t.Fatalf("the other Runner's Wait returned after %d polls, before the first Runner was let go", looks)
	}
	if rep.Done != 0 || rep.TLDRs != 0 {
		t.Errorf("other Runner's report %+v, want nothing collected (the first Runner was collecting the job)", rep)
	}
	if firstRep.Done != 1 || firstRep.TLDRs != n {
		t.Errorf("first Runner's report %+v, want 1 done, %d TL;DRs", firstRep, n)
	}
	if got := downloads.Load(); got != 1 {
		t.Errorf("the job's output was downloaded %d times, want 1", got)
	}
	if tl, _ := b.counts(t); tl != n {
		t.Errorf("stored %d TL;DRs, want %d", tl, n)
	}
}

// Two Runners waiting on one job: B looks at the batch and sees it in progress, A then collects
// the completed batch and closes the job, and B saves what it saw. The job is closed elsewhere:
// B's Wait ends without an error (it failed with "no open job with this id").
func TestStalePollOfAJobAnotherRunnerClosedIsNoError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3)
	a := b.runner(t, func(c *batch.Config) { c.Embed = nil })
	if _, err := a.Submit(ctx, store.Selection{}); err != nil {
		t.Fatal(err)
	}
	var once atomic.Bool
	url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		if !isPoll(r) || !once.CompareAndSwap(false, true) {
			return false
		}
		// What B sees: the batch in progress, a moment before it completed.
		rec := httptest.NewRecorder()
		b.fake.Handler().ServeHTTP(rec, r)
		var obj map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil {
			t.Error(err)
		}
		obj["status"] = "in_progress"
		delete(obj, "output_file_id")
		// Meanwhile A collects the batch and closes the job.
		if rep, err := a.Wait(ctx); err != nil || rep.Done != 1 {
			t.Errorf("A's Wait: %+v, %v; want the job done", rep, err)
		}
		body, _ := json.Marshal(obj)
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		return true
	})
	if _, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Wait(ctx); err != nil {
		t.Errorf("B's Wait: %v; want nil (A collected the job)", err)
	}
	if tl, _ := b.counts(t); tl != 3 {
		t.Errorf("%d TL;DRs stored, want 3", tl)
	}
}

// lateClaim holds a Runner's claims of jobs until proceed is closed: a Runner that selected
// its papers before another one, but records its job only after the other's was collected.
type lateClaim struct {
	scanBarrier
	proceed chan struct{}
}

func (s lateClaim) ClaimBatchJob(ctx context.Context, j store.BatchJob, items []store.BatchItem) (store.BatchJob, *store.JobLock, error) {
	<-s.proceed
	return s.Store.ClaimBatchJob(ctx, j, items)
}

// Two Runners select the same stale papers at once; the second records its job only once the
// first one's job has been collected and closed, their TL;DRs stored. The papers are done:
// the second Runner submits nothing (it sent them again, and the API was paid twice).
func TestRunnerClaimingAfterAnotherCollectedTheSamePapersSubmitsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 6
	b := setup(t, n)
	var walked sync.WaitGroup
	walked.Add(2)
	proceed := make(chan struct{})
	first := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.Store = scanBarrier{b.st, &walked} })
	late := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.Store = lateClaim{scanBarrier{b.st, &walked}, proceed} })
	lateDone := make(chan error, 1)
	var lateRep batch.Report
	go func() {
		var err error
		lateRep, err = late.Run(ctx, store.Selection{})
		lateDone <- err
	}()
	firstRep, err := first.Run(ctx, store.Selection{})
	close(proceed)
	if lerr := <-lateDone; lerr != nil {
		t.Errorf("late Runner: %v", lerr)
	}
	if err != nil {
		t.Fatalf("first Runner: %v", err)
	}
	if firstRep.Submitted != 1 || firstRep.Done != 1 || firstRep.TLDRs != n {
		t.Errorf("first Runner's report %+v, want 1 job submitted and done, %d TL;DRs", firstRep, n)
	}
	if lateRep.Submitted != 0 || lateRep.Requests != 0 {
		t.Errorf("late Runner's report %+v, want nothing submitted: its papers were done", lateRep)
	}
	if s := b.fake.Stats(); s.ChatDelivered != n {
		t.Errorf("API delivered %d chat completions for %d papers, want %d", s.ChatDelivered, n, n)
	}
}
