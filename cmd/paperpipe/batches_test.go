package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/paper"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/store"
)

// fakeBehind serves the env's fake API through hook (a request hook handles, returning true,
// is not passed on) and returns a config using it.
func (e *archiveEnv) fakeBehind(t *testing.T, hook func(w http.ResponseWriter, r *http.Request) bool, mutate func(*config)) *config {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hook(w, r) {
			e.fake.Handler().ServeHTTP(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	return e.cfg(func(c *config) {
		c.BaseURL = ts.URL + "/v1"
		if mutate != nil {
			mutate(c)
		}
	})
}

// After `reprocess --batch-api --wait=false`, a plain `reprocess` (and its --dry-run) says the
// papers are in open Batch API jobs and what collects them, and gives them as a reason the space
// is not filled; it said "nothing to do: every selected paper has its TL;DR and embedding"
// while none had either.
func TestReprocessSaysWhichPapersOpenBatchJobsHold(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 6)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, wait: false})
	if n := e.count(t, `SELECT count(*) FROM tldrs`); n != 0 {
		t.Fatalf("%d TL;DRs after submitting, want 0", n)
	}
	_, dry := e.reprocess(t, ctx, e.c, reprocessOptions{dryRun: true})
	res, out := e.reprocess(t, ctx, e.c, reprocessOptions{wait: true})
	for run, said := range map[string]string{"--dry-run": dry, "a run": out} {
		// The command names the run's targets: a run collects the jobs of its own only.
		const want = "6 TL;DRs and 6 embeddings are in open Batch API jobs and not bought again; `paperpipe reprocess --batch-api --chat-model gpt-4o-mini --embed-model text-embedding-3-small --embed-dimensions 64` collects them"
		if !strings.Contains(said, want) || strings.Contains(said, "every selected paper has its") {
			t.Errorf("%s said:\n%s\nwant %q, and not that every paper has its TL;DR", run, said, want)
		}
	}
	if !strings.Contains(out, "6 missing: 6 in open Batch API jobs (`paperpipe reprocess --batch-api --embed-only --embed-model text-embedding-3-small --embed-dimensions 64` collects them)") {
		t.Errorf("a run said:\n%s\nwant the open jobs as the reason the space is not filled", out)
	}
	if c := res.Counts; c.InBatch != 6 || c.InBatchTLDRs != 6 || c.InBatchEmbeddings != 6 || c.Papers != 0 {
		t.Errorf("counts %+v, want 6 papers in batches for each output and none to process", c)
	}
}

// Papers an open TL;DR batch job holds but which lack their embedding are published by a plain
// reprocess for the embedding; its workers bought their TL;DRs synchronously as well (and the
// job's answers were paid for when collected), while the run said the papers were "in open
// Batch API jobs, not sent again".
func TestPlainReprocessBuysNothingOpenBatchJobsHold(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 6)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	before := e.fake.Stats()
	res, said := e.reprocess(t, ctx, e.c, reprocessOptions{wait: true})
	if sent := e.fake.Stats().ChatRequests - before.ChatRequests; sent != 0 || res.Worker.TLDRs != 0 || res.Worker.Embeddings != 6 {
		t.Errorf("the run sent %d chat requests and stored %d TL;DRs and %d embeddings; want the 6 embeddings only, the TL;DRs "+
			"left to the open job; said:\n%s", sent, res.Worker.TLDRs, res.Worker.Embeddings, said)
	}
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: true, poll: 5 * time.Millisecond})
	if n, delivered := e.count(t, `SELECT count(*) FROM tldrs`), e.fake.Stats().ChatDelivered; n != 6 || delivered != 6 {
		t.Errorf("%d TL;DRs stored, %d chat completions delivered (billed); want 6 and 6", n, delivered)
	}
}

// Papers an open TL;DR job holds but which lack their embedding are sent by a plain reprocess
// for the embedding, yet the run said "6 papers are in open Batch API jobs, not sent again".
// It names the outputs the jobs hold, which are not bought again.
func TestPlainReprocessNamesTheOutputsOpenBatchJobsHold(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 6)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	_, dry := e.reprocess(t, ctx, e.c, reprocessOptions{dryRun: true})
	res, out := e.reprocess(t, ctx, e.c, reprocessOptions{wait: true})
	for run, said := range map[string]string{"--dry-run": dry, "a run": out} {
		const want = "reprocess: 6 TL;DRs are in open Batch API jobs and not bought again; `paperpipe reprocess --batch-api --tldr-only --chat-model gpt-4o-mini` collects them\n"
		if !strings.Contains(said, want) || strings.Contains(said, "papers are in open Batch API jobs") || strings.Contains(said, "embeddings are in") {
			t.Errorf("%s said:\n%s\nwant %q", run, said, want)
		}
	}
	if res.Worker.Embeddings != 6 {
		t.Errorf("the run stored %d embeddings, want the 6 no job holds", res.Worker.Embeddings)
	}
}

// failBatches makes every look at a batch answer that it failed at validation, as OpenAI does
// when the organization's enqueued-token limit is reached.
func (e *archiveEnv) failBatches(w http.ResponseWriter, r *http.Request) bool {
	return e.rewriteBatch(w, r, func(obj map[string]any) {
		obj["status"], obj["failed_at"] = "failed", obj["created_at"]
		obj["errors"] = map[string]any{"object": "list", "data": []any{map[string]any{
			"code": "token_limit_exceeded", "message": "Enqueued token limit reached for text-embedding-3-large in organization org-x."}}}
	})
}

// rewriteBatch answers a look at a batch (GET /v1/batches/ID) with the fake's answer, its
// output and error files left out and changed by edit; it leaves other requests to the fake.
func (e *archiveEnv) rewriteBatch(w http.ResponseWriter, r *http.Request, edit func(obj map[string]any)) bool {
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v1/batches/") {
		return false
	}
	rec := httptest.NewRecorder()
	e.fake.Handler().ServeHTTP(rec, r)
	var obj map[string]any
	json.Unmarshal(rec.Body.Bytes(), &obj)
	delete(obj, "output_file_id")
	delete(obj, "error_file_id")
	edit(obj)
	body, _ := json.Marshal(obj)
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
	return true
}

// A run whose batch failed at OpenAI prints OpenAI's reason and fails (exit 1); it succeeded
// and said the space was not filled because papers changed while it ran.
func TestFailedBatchIsReportedWithItsReasonAndFailsTheRun(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 4)
	c := e.fakeBehind(t, e.failBatches, func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-3-large", 32 })
	var out, errw bytes.Buffer
	res, err := runReprocess(t.Context(), c, reprocessOptions{batchAPI: true, embedOnly: true, wait: true, poll: 5 * time.Millisecond}, &out, &errw)
	said := errw.String()
	if err == nil {
		t.Errorf("a run whose only batch failed returned no error (exit 0); said:\n%s", said)
	}
	if res.Batch == nil || len(res.Batch.Failures) != 1 || !strings.Contains(said, "token_limit_exceeded: Enqueued token limit reached") {
		t.Errorf("batch report %+v; said:\n%s\nwant the failure with OpenAI's error", res.Batch, said)
	}
	if strings.Contains(said, "papers stored or changed while it ran") || !strings.Contains(said, "1 Batch API batch failed at OpenAI") {
		t.Errorf("said:\n%s\nwant the space not filled because the batch failed", said)
	}
}

// A job whose output file is gone (OpenAI keeps them 30 days; or another key's batch) fails
// every run; the error names `paperpipe batches`, which lists the job, and `batches abandon`
// closes it so that the next run processes its papers.
func TestBatchesAbandonsAJobThatCannotBeCollected(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	var gone atomic.Bool
	c := e.fakeBehind(t, func(w http.ResponseWriter, r *http.Request) bool {
		if !gone.Load() || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/content") {
			return false
		}
		writeFileGone(w)
		return true
	}, nil)
	e.reprocess(t, ctx, c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	gone.Store(true)
	for run := 1; run <= 2; run++ {
		_, err := runReprocess(ctx, c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: true, poll: 5 * time.Millisecond}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "`paperpipe batches abandon ID`") {
			t.Fatalf("run %d: %v; want an error that says what to do", run, err)
		}
	}
	var list bytes.Buffer
	if err := listBatchJobs(ctx, e.st, false, time.Now(), &list); err != nil {
		t.Fatal(err)
	}
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || !strings.Contains(list.String(), jobs[0].OpenAIID) || !strings.Contains(list.String(), jobs[0].Target) {
		t.Fatalf("open jobs %+v; `batches` said:\n%s", jobs, list.String())
	}
	var said bytes.Buffer
	if err := abandonBatchJobs(ctx, c, e.st, []int64{jobs[0].ID}, false, &said); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(said.String(), "is lost") {
		t.Errorf("abandon said %q, want that what OpenAI ran is lost", said.String())
	}
	if err := abandonBatchJobs(ctx, c, e.st, []int64{jobs[0].ID}, false, &said); err == nil {
		t.Errorf("abandoning a closed job: no error")
	}
	if jobs, _ := e.st.BatchJobs(ctx, ""); len(jobs) != 1 || jobs[0].Status != store.BatchFailed {
		t.Errorf("jobs %+v, want the job closed failed", jobs)
	}
	e.reprocess(t, ctx, e.c, reprocessOptions{tldrOnly: true, wait: true})
	if n := e.count(t, `SELECT count(*) FROM tldrs`); n != 3 {
		t.Errorf("%d TL;DRs after abandoning the job and running again, want 3", n)
	}
}

// A plain reprocess into a space whose papers open Batch API jobs hold built the space's index
// when it ended, so the run collecting the jobs then loaded their vectors into a live index one
// at a time; --batch-api leaves the build to that run, and so does a plain run now.
func TestPlainReprocessLeavesTheIndexToTheRunCollectingOpenJobs(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 6)
	ctx := t.Context()
	green := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-3-large", 32 })
	e.reprocess(t, ctx, green, reprocessOptions{batchAPI: true, embedOnly: true, wait: false})
	e.reprocess(t, ctx, green, reprocessOptions{embedOnly: true})
	indexOf := func() string {
		t.Helper()
		spaces, err := e.st.Spaces(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, sp := range spaces {
			if sp.Model == "text-embedding-3-large" {
				return sp.IndexName
			}
		}
		t.Fatal("no text-embedding-3-large space")
		return ""
	}
	if name := indexOf(); name != "" {
		t.Errorf("the plain run built the index %s while open Batch API jobs hold the space's papers", name)
	}
	e.reprocess(t, ctx, green, reprocessOptions{batchAPI: true, embedOnly: true, wait: true, poll: 5 * time.Millisecond})
	if indexOf() == "" {
		t.Error("the run that collected the jobs built no index")
	}
}

// A TL;DR job that cannot be collected (its output file is gone) made the run return before it
// finished the space: the vectors the same run collected were left without an index, at every
// --batch-api run while the TL;DR job stayed open. The space is finished, and the run still
// fails naming what to do about the job.
func TestUncollectableTLDRJobStillFinishesTheCollectedSpace(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 4)
	ctx := t.Context()
	var gone atomic.Bool
	c := e.fakeBehind(t, func(w http.ResponseWriter, r *http.Request) bool {
		if !gone.Load() || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/content") {
			return false
		}
		rec := httptest.NewRecorder()
		e.fake.Handler().ServeHTTP(rec, r)
		if !bytes.Contains(rec.Body.Bytes(), []byte(`"chat.completion"`)) {
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return true
		}
		writeFileGone(w)
		return true
	}, func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-3-large", 32 })
	e.reprocess(t, ctx, c, reprocessOptions{batchAPI: true, wait: false})
	gone.Store(true)
	var errw bytes.Buffer
	_, err := runReprocess(ctx, c, reprocessOptions{batchAPI: true, wait: true, poll: 5 * time.Millisecond}, &bytes.Buffer{}, &errw)
	if err == nil || !strings.Contains(err.Error(), "`paperpipe batches abandon ID`") {
		t.Errorf("run: %v; want the TL;DR job's error and what to do about it", err)
	}
	spaces, err := e.st.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range spaces {
		if sp.Model == "text-embedding-3-large" && (sp.IndexName == "" || sp.Embedded != 4) {
			t.Errorf("space %s: %d vectors, index %q; want the 4 collected and the index built; said:\n%s", sp.Name(), sp.Embedded, sp.IndexName, errw.String())
		}
	}
	if strings.Contains(errw.String(), "not filled") {
		t.Errorf("said:\n%s\nwant the space, holding every paper's vector, not called unfilled", errw.String())
	}
}

// runningBatches makes every look at a batch answer that it is in progress.
func (e *archiveEnv) runningBatches(w http.ResponseWriter, r *http.Request) bool {
	return e.rewriteBatch(w, r, func(obj map[string]any) { obj["status"] = "in_progress" })
}

// `batches abandon` closed a job whose batch was running at OpenAI: that batch is still
// billed, and the next run bought its papers again. It looks at the batch now: one running is
// refused without --force, saying so and that cancelling it at OpenAI stops the billing, and
// what it saw is recorded for `paperpipe batches`; with --force it is closed.
func TestBatchesAbandonRefusesAJobWhoseBatchIsRunningWithoutForce(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	c := e.fakeBehind(t, e.runningBatches, nil)
	e.reprocess(t, ctx, c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("open jobs %+v, %v", jobs, err)
	}
	e.st.Pool().Exec(ctx, `UPDATE batch_jobs SET openai_status = 'completed'`) // an old look: the look now decides
	var said bytes.Buffer
	err = abandonBatchJobs(ctx, c, e.st, []int64{jobs[0].ID}, false, &said)
	if err == nil || !strings.Contains(err.Error(), "is still running (in_progress) and billed") ||
		!strings.Contains(err.Error(), "cancel the batch at OpenAI") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("abandon without --force: %v; want a refusal saying the batch is still running and billed, to cancel it, and --force", err)
	}
	var list bytes.Buffer
	if err := listBatchJobs(ctx, e.st, false, time.Now(), &list); err != nil || !strings.Contains(list.String(), "submitted (in_progress)") {
		t.Fatalf("batches said (%v):\n%s\nwant the job open, with the status abandon saw", err, list.String())
	}
	if err := abandonBatchJobs(ctx, c, e.st, []int64{jobs[0].ID}, true, &said); err != nil || !strings.Contains(said.String(), "abandoned batch job") {
		t.Errorf("abandon --force: %v, said %q; want the job abandoned", err, said.String())
	}
	if open, _ := openBatchJobs(ctx, e.st); len(open) != 0 {
		t.Errorf("open jobs after abandon --force %+v, want none", open)
	}
}

// A job whose batch OpenAI answers 404 for (deleted, or another API key's: what the run's hint
// sends the user to `batches abandon` for) was last seen "validating" when it was created, and
// abandon refused it as running, telling the user to let the run collect it or cancel it,
// neither of which could work. Abandon looks at the batch now, and closes it.
func TestBatchesAbandonsAJobWhoseBatchIsGone(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	c := e.fakeBehind(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/v1/batches/") {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"message":"No batch found with id 'x'.","type":"invalid_request_error","param":null,"code":null}}`))
		return true
	}, nil)
	_, err := runReprocess(ctx, c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: true, poll: 5 * time.Millisecond}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "`paperpipe batches abandon ID`") {
		t.Fatalf("run: %v; want the job's failure and what to do about it", err)
	}
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil || len(jobs) != 1 || !batchRunning(jobs[0].OpenAIStatus) {
		t.Fatalf("open jobs %+v, %v; want one last seen running", jobs, err)
	}
	var said bytes.Buffer
	if err := abandonBatchJobs(ctx, c, e.st, []int64{jobs[0].ID}, false, &said); err != nil {
		t.Fatalf("abandon of a job whose batch OpenAI answers 404 for: %v", err)
	}
	if !strings.Contains(said.String(), "OpenAI has no batch "+jobs[0].OpenAIID+" (404") {
		t.Errorf("abandon said %q, want what it found", said.String())
	}
	if all, _ := e.st.BatchJobs(ctx, ""); len(all) != 1 || all[0].Status != store.BatchFailed || all[0].OpenAIStatus != "not found" {
		t.Errorf("jobs %+v, want the job closed failed, its batch recorded not found", all)
	}
	// Its input file, which no batch reads any more, is deleted at OpenAI (which keeps an
	// upload until then: up to 190 MB a job), as a run deletes a collected job's.
	if slices.Contains(e.fake.Files(), jobs[0].InputFileID) {
		t.Errorf("the abandoned job's input file %s is still at OpenAI (files %v)", jobs[0].InputFileID, e.fake.Files())
	}
}

// A TL;DR job submitted under another prompt version (PAPERPIPE_TLDR_MAX_WORDS changed since)
// is looked at by no run of the configured target; abandon refused it as running and said to
// let `paperpipe reprocess --batch-api` collect it, which that run never does. Abandon sees its
// output can still be downloaded, refuses to throw it away, and names the settings of the run
// that collects it; that run does.
func TestBatchesAbandonNamesTheSettingsThatCollectAJobOfAnotherTarget(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	old := e.cfg(func(c *config) { c.MaxWords = 15 })
	e.reprocess(t, ctx, old, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: true, poll: 5 * time.Millisecond})
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil || len(jobs) != 1 || jobs[0].PromptVersion != "tldr-v1-w15" {
		t.Fatalf("open jobs %+v, %v; want the job of the old prompt version, left by the configured run", jobs, err)
	}
	var said bytes.Buffer
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err = abandonBatchJobs(ctx, e.c, e.st, []int64{jobs[0].ID}, false, &said)
		if err == nil || !strings.Contains(err.Error(), "still running") || time.Now().After(deadline) {
			break // the fake's batch runs for a few steps
		}
	}
	for _, want := range []string{"output file", "can still be downloaded", "chat model gpt-4o-mini and prompt version tldr-v1-w15",
		"PAPERPIPE_TLDR_MAX_WORDS=15", "--force"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("abandon: %v; want a refusal naming %q", err, want)
		}
	}
	e.reprocess(t, ctx, old, reprocessOptions{batchAPI: true, tldrOnly: true, wait: true, poll: 5 * time.Millisecond})
	if open, _ := openBatchJobs(ctx, e.st); len(open) != 0 || e.count(t, `SELECT count(*) FROM tldrs WHERE prompt_version = 'tldr-v1-w15'`) != 3 {
		t.Errorf("open jobs %+v after the run abandon named; want the job collected, its 3 TL;DRs stored", open)
	}
}

// Without a key, abandon cannot ask OpenAI: the status recorded at the job's last look decides,
// and it says so. A job given twice is abandoned once.
func TestBatchesAbandonWithoutAKeyGoesByTheRecordedStatus(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	keyless := e.cfg(func(c *config) { c.BaseURL, c.APIKey = "", "" })
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil || len(jobs) != 1 || !batchRunning(jobs[0].OpenAIStatus) {
		t.Fatalf("open jobs %+v, %v; want one last seen running", jobs, err)
	}
	var said bytes.Buffer
	err = abandonBatchJobs(ctx, keyless, e.st, []int64{jobs[0].ID}, false, &said)
	if err == nil || !strings.Contains(err.Error(), "OpenAI could not be asked") || !strings.Contains(err.Error(), "was last seen running") {
		t.Errorf("abandon without a key: %v; want a refusal going by the recorded status, saying so", err)
	}
	e.st.Pool().Exec(ctx, `UPDATE batch_jobs SET openai_status = 'expired'`)
	if err := abandonBatchJobs(ctx, keyless, e.st, []int64{jobs[0].ID, jobs[0].ID}, false, &said); err != nil {
		t.Errorf("abandon ID ID of a job last seen expired: %v", err)
	}
	if n := strings.Count(said.String(), "abandoned batch job"); n != 1 || !strings.Contains(said.String(), "OpenAI could not be asked") {
		t.Errorf("abandon said %q, want the job abandoned once, saying OpenAI could not be asked", said.String())
	}
}

// The list's AGE is one human unit ("26h", "3d"), not a duration ("26h0m0s", "72h0m0s").
func TestBatchesListsAgesInOneUnit(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		-time.Second: "0m", 90 * time.Second: "1m", 59 * time.Minute: "59m", 26*time.Hour + 59*time.Minute: "26h",
		47 * time.Hour: "47h", 72 * time.Hour: "3d", 10*24*time.Hour + time.Hour: "10d",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("open jobs %+v, %v", jobs, err)
	}
	var list bytes.Buffer
	if err := listBatchJobs(ctx, e.st, false, jobs[0].CreatedAt.Add(26*time.Hour+5*time.Minute), &list); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(strings.TrimSpace(list.String()), " 26h") {
		t.Errorf("batches said:\n%s\nwant the job's age as 26h", list.String())
	}
}

// writeFileGone answers as OpenAI does for a file it no longer has (404).
func writeFileGone(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte(`{"error":{"message":"No such File object","type":"invalid_request_error","param":"id","code":null}}`))
}

// jobWhoseCreateWasRefused leaves e one TL;DR job preparing, its input file uploaded: a run
// whose creation of the job's batch OpenAI refused.
func (e *archiveEnv) jobWhoseCreateWasRefused(t *testing.T) store.BatchJob {
	t.Helper()
	ctx := t.Context()
	refuse := e.fakeBehind(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/batches" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":{"message":"batch refused","type":"invalid_request_error"}}`))
		return true
	}, nil)
	if _, err := runReprocess(ctx, refuse, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("run: no error, want the refused create's")
	}
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil || len(jobs) != 1 || jobs[0].Status != store.BatchPreparing || jobs[0].InputFileID == "" {
		t.Fatalf("open jobs %+v, %v; want one job preparing with its input file", jobs, err)
	}
	return jobs[0]
}

// With the default PAPERPIPE_EMBED_DIMENSIONS (0: the model's own length), abandon's refusal of
// a job of the configured space said another run collects it, "the configured model is
// text-embedding-3-small" — the same model — where a bare `paperpipe reprocess --batch-api`
// does.
func TestAbandonNamesTheConfiguredRunForTheModelsOwnDimensions(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	c := e.cfg(func(c *config) { c.EmbedDims = 0 })
	sp, err := e.st.EnsureSpace(t.Context(), paper.Space{Model: "text-embedding-3-small", Dimensions: 1536, Template: embed.TemplateTitleAbstract})
	if err != nil {
		t.Fatal(err)
	}
	if got := collectsIt(t.Context(), c, e.st, store.BatchJob{Kind: paper.KindEmbedding, SpaceID: sp.ID}); got != "`paperpipe reprocess --batch-api`" {
		t.Errorf("the run that collects a job of the configured space (its model's own 1536 dimensions): %s", got)
	}
	// A job of a prompt version no run writes any more (an older one), or of a space dropped
	// since: no run collects it, and abandon says so instead of sending the user to one.
	for _, j := range []store.BatchJob{
		{Kind: paper.KindChat, Model: "gpt-4o-mini", PromptVersion: "tldr-v0"},
		{Kind: paper.KindEmbedding, SpaceID: 999},
	} {
		if run, ok := collectingRun(t.Context(), c, e.st, j); ok || !strings.HasPrefix(run, "no run of this paperpipe") {
			t.Errorf("job %+v: %q, %v; want that no run collects it", j, run, ok)
		}
	}
}

// A job whose batch ended with an output file is refused by abandon when it looks (the output
// can still be collected); when it cannot look (no key, the API unreachable), the recorded
// status decided, and a job recorded "completed" with its output file was abandoned without
// --force: its paid results thrown away. It is refused too.
func TestAbandonWithoutALookKeepsAJobRecordedWithItsOutput(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("open jobs %+v, %v", jobs, err)
	}
	var said bytes.Buffer
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err = abandonBatchJobs(ctx, e.c, e.st, []int64{jobs[0].ID}, false, &said)
		if err == nil || !strings.Contains(err.Error(), "still running") || time.Now().After(deadline) {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "can still be downloaded") {
		t.Fatalf("abandon with a look: %v; want a refusal (its output can be collected)", err)
	}
	jobs, _ = openBatchJobs(ctx, e.st)
	keyless := e.cfg(func(c *config) { c.BaseURL, c.APIKey = "", "" })
	err = abandonBatchJobs(ctx, keyless, e.st, []int64{jobs[0].ID}, false, &said)
	if err == nil || !strings.Contains(err.Error(), "may still be downloadable") {
		t.Errorf("abandon without a key of a job recorded %q with output file %s: %v; want a refusal",
			jobs[0].OpenAIStatus, jobs[0].OutputFileID, err)
	}
	if open, _ := openBatchJobs(ctx, e.st); len(open) != 1 {
		t.Errorf("%d open jobs after the refusal, want the job kept", len(open))
	}
}

// A 404 that is not OpenAI's "no such batch" — a route the server does not have (the base URL
// now names an OpenAI-compatible server without the Batch API, or a wrong path) — said the
// batch was gone, and abandon closed a job whose batch may still run, and be billed, at OpenAI.
// It is no answer about the batch: the recorded status decides (here: running, refused).
func TestBatchesAbandonTakesARouteNotFoundForNoAnswer(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	c := e.fakeBehind(t, func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasPrefix(r.URL.Path, "/v1/batches") {
			return false
		}
		http.NotFound(w, r) // "404 page not found", as a server without the route answers
		return true
	}, nil)
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil || len(jobs) != 1 || !batchRunning(jobs[0].OpenAIStatus) {
		t.Fatalf("open jobs %+v, %v; want one last seen running", jobs, err)
	}
	var said bytes.Buffer
	err = abandonBatchJobs(ctx, c, e.st, []int64{jobs[0].ID}, false, &said)
	if err == nil || !strings.Contains(err.Error(), "could not be asked") {
		t.Errorf("abandon of a job whose batch the server has no route for: %v (said %q); want a refusal by the recorded status", err, said.String())
	}
	if open, _ := openBatchJobs(ctx, e.st); len(open) != 1 {
		t.Errorf("%d open jobs, want the job kept", len(open))
	}
	// OpenAI (and the fake) answer a path they have not — a base URL ending in /v2 — with a
	// 404 of its own error shape, "Invalid URL (GET /v2/batches/…)": no answer either.
	wrong := e.cfg(func(c *config) { c.BaseURL = strings.TrimSuffix(e.fake.URL(), "/v1") + "/v2" })
	said.Reset()
	err = abandonBatchJobs(ctx, wrong, e.st, []int64{jobs[0].ID}, false, &said)
	if err == nil || !strings.Contains(err.Error(), "could not be asked") {
		t.Errorf("abandon behind a wrong base URL (/v2): %v (said %q); want a refusal by the recorded status", err, said.String())
	}
	if open, _ := openBatchJobs(ctx, e.st); len(open) != 1 {
		t.Errorf("%d open jobs, want the job kept", len(open))
	}
}

// loseCreateAnswer passes requests to the env's fake API but loses the answer of the first
// POST /v1/batches after the fake created the batch (a dropped connection, a crash), counting
// the batches created.
func (e *archiveEnv) loseCreateAnswer(creates *atomic.Int32) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/batches" {
			return false
		}
		if creates.Add(1) > 1 {
			return false
		}
		e.fake.Handler().ServeHTTP(httptest.NewRecorder(), r)
		http.Error(w, `{"error":{"message":"bad gateway","type":"server_error"}}`, http.StatusBadGateway)
		return true
	}
}

// A job whose batch was created at OpenAI but the answer lost stays preparing, with no batch
// id: abandon closed it without a look at OpenAI, while its batch ran and was billed, and the
// next run bought its papers again. Abandon looks for the job's batch in OpenAI's list as a
// resumed run does, records it, and refuses it as it does a job whose batch id it knows; the
// run then collects it, one batch paid once.
func TestBatchesAbandonFindsTheBatchWhoseCreateAnswerWasLost(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	var creates atomic.Int32
	c := e.fakeBehind(t, e.loseCreateAnswer(&creates), nil)
	if _, err := runReprocess(ctx, c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("run: no error, want the lost create answer's")
	}
	jobs, err := openBatchJobs(ctx, e.st)
	if err != nil || len(jobs) != 1 || jobs[0].Status != store.BatchPreparing || jobs[0].OpenAIID != "" || creates.Load() != 1 {
		t.Fatalf("open jobs %+v, %v, %d batches created; want one job preparing without a batch id, its batch created", jobs, err, creates.Load())
	}
	var said bytes.Buffer
	err = abandonBatchJobs(ctx, c, e.st, []int64{jobs[0].ID}, false, &said)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("abandon: %v, said %q; want a refusal, the job's batch running or its output still to collect", err, said.String())
	}
	cur, err := openBatchJobs(ctx, e.st)
	if err != nil || len(cur) != 1 || cur[0].Status != store.BatchSubmitted || cur[0].OpenAIID == "" {
		t.Fatalf("open jobs %+v, %v; want the job submitted, with the batch abandon found", cur, err)
	}
	e.reprocess(t, ctx, c, reprocessOptions{batchAPI: true, tldrOnly: true, wait: true, poll: 5 * time.Millisecond})
	if n := e.count(t, `SELECT count(*) FROM tldrs`); n != 3 || creates.Load() != 1 || e.fake.Stats().ChatDelivered != 3 {
		t.Errorf("%d TL;DRs stored, %d batches created, %d chat completions billed; want 3, 1 and 3", n, creates.Load(), e.fake.Stats().ChatDelivered)
	}
}

// A job whose batch's creation failed, or may have succeeded with its answer lost, stays
// preparing with its input file: abandon closed it without a look. A list of batches that
// cannot be read is no proof that the job has no batch (running, billed): abandon refuses the
// job then, saying so; a list that answered without the job's batch lets it abandon the job.
func TestBatchesAbandonOfAJobWithoutABatchIdGoesByOpenAIsList(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	job := e.jobWhoseCreateWasRefused(t)
	unlisted := e.fakeBehind(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/batches" {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"message":"no such route","type":"server_error"}}`))
		return true
	}, nil)
	keyless := e.cfg(func(c *config) { c.BaseURL, c.APIKey = "", "" })
	var said bytes.Buffer
	for _, c := range []*config{unlisted, keyless} {
		err := abandonBatchJobs(ctx, c, e.st, []int64{job.ID}, false, &said)
		if err == nil || !strings.Contains(err.Error(), "may have been created") || !strings.Contains(err.Error(), "--force") {
			t.Errorf("abandon, the list of batches unreadable (key %q): %v; want a refusal saying the job's batch may exist, and --force", c.APIKey, err)
		}
	}
	if err := abandonBatchJobs(ctx, e.c, e.st, []int64{job.ID}, false, &said); err != nil || !strings.Contains(said.String(), "OpenAI lists no batch of it") {
		t.Errorf("abandon: %v, said %q; want the job abandoned, saying OpenAI lists no batch of it", err, said.String())
	}
	if open, _ := openBatchJobs(ctx, e.st); len(open) != 0 {
		t.Errorf("open jobs %+v, want none", open)
	}
}

// The Batch API's answers — a batch's status, its errors' messages — are the API's text, or a
// gateway's in its place: reprocess --batch-api and batches print them terminal-safe, as status
// prints a pause's detail (the API's error), with their control characters as escapes.
func TestBatchAPIAnswersArePrintedTerminalSafe(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 4)
	ctx := t.Context()
	failed := e.fakeBehind(t, func(w http.ResponseWriter, r *http.Request) bool {
		return e.rewriteBatch(w, r, func(obj map[string]any) {
			obj["status"], obj["failed_at"] = "failed", obj["created_at"]
			obj["errors"] = map[string]any{"object": "list", "data": []any{map[string]any{
				"code": "token_limit_exceeded\x1b[2J", "message": "Enqueued \x1b]0;PWNED\x07 limit reached \u202edone"}}}
		})
	}, func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-3-large", 32 })
	var errw bytes.Buffer
	if _, err := runReprocess(ctx, failed, reprocessOptions{batchAPI: true, embedOnly: true, wait: true, poll: 5 * time.Millisecond}, &bytes.Buffer{}, &errw); err == nil {
		t.Fatalf("a run whose batch failed: no error; said:\n%s", errw.String())
	}
	if said := errw.String(); strings.ContainsAny(said, rawControls) || !strings.Contains(said, `Enqueued \x1b]0;PWNED\x07 limit reached \u202edone`) {
		t.Errorf("reprocess --batch-api said %q; want the batch's errors with their control characters as escapes", said)
	}

	// A batch's status, as its creation's answer gave it, listed by `paperpipe batches`.
	running := e.fakeBehind(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/batches" {
			return false
		}
		rec := httptest.NewRecorder()
		e.fake.Handler().ServeHTTP(rec, r)
		var obj map[string]any
		json.Unmarshal(rec.Body.Bytes(), &obj)
		obj["status"] = "validating\x1b]0;PWNED\x07"
		body, _ := json.Marshal(obj)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		w.Write(body)
		return true
	}, nil)
	e.reprocess(t, ctx, running, reprocessOptions{batchAPI: true, tldrOnly: true, wait: false})
	var list bytes.Buffer
	if err := listBatchJobs(ctx, e.st, false, time.Now(), &list); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(list.String(), rawControls) || !strings.Contains(list.String(), `validating\x1b]0;PWNED\x07`) {
		t.Errorf("batches said %q; want the batch's status with its control characters as escapes", list.String())
	}
}
