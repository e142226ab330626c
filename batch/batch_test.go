package batch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

const (
	chatModel = "gpt-4o-mini"
	embModel  = "text-embedding-3-small"
	dims      = 64
)

type bundle struct {
	st    *store.Store
	fake  *openaitest.Server
	space paper.Space
	ids   []string
}

// setup starts a store in a fresh schema with n papers, and the OpenAI test server.
func setup(t *testing.T, n int) *bundle {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var papers []paper.Abstract
	for i := range n {
		papers = append(papers, paper.Abstract{
			ID:    fmt.Sprintf("arxiv:2401.%05d", i),
			Title: fmt.Sprintf("Sparse routing study number %d", i),
			Abstract: fmt.Sprintf("We study sparse routing in mixture-of-experts model %d. "+
				"We propose a balanced router that lowers the loss by %d percent on language modelling.", i, i%7+1),
		})
	}
	if _, err := st.UpsertPapers(ctx, papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	sp, err := st.EnsureSpace(ctx, paper.Space{Model: embModel, Dimensions: dims, Template: embed.TemplateTitleAbstract})
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{st: st, fake: openaitest.Start(t, openaitest.Config{}), space: sp}
	for _, p := range papers {
		b.ids = append(b.ids, p.ID)
	}
	return b
}

func (b *bundle) config() batch.Config {
	return batch.Config{
		BaseURL: b.fake.URL(),
		APIKey:  "sk-test",
		Store:   b.st,
		Chat: &batch.ChatWork{
			Model: chatModel, PromptVersion: summarize.PromptVersion,
			Messages: func(a paper.Abstract) []batch.Message {
				var out []batch.Message
				for _, m := range summarize.Messages(a, 30) {
					out = append(out, batch.Message{Role: m.Role, Content: m.Content})
				}
				return out
			},
			Accept: func(answer string, a paper.Abstract) (string, string, error) {
				return summarize.Accept(answer, a, 30)
			},
		},
		Embed: &batch.EmbedWork{
			Space: b.space, Dimensions: dims,
			Input: func(a paper.Abstract) (string, bool, error) {
				t, cut := llm.TruncateToTokens(embed.TitleAbstract(a), 8191)
				return t, cut, nil
			},
		},
		PollInterval: 5 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond,
		TempDir: "",
	}
}

func (b *bundle) runner(t *testing.T, mutate func(*batch.Config)) *batch.Runner {
	t.Helper()
	cfg := b.config()
	cfg.TempDir = t.TempDir()
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := batch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkUsage fails unless the usage ledger holds chat requests of the chat model's batches and
// embedding requests of the embedding model's, and nothing else (0: none of that kind).
func (b *bundle) checkUsage(t *testing.T, chat, embedding int) {
	t.Helper()
	usage, err := b.st.Usage(context.Background(), time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, u := range usage {
		got[u.Model+"/"+u.Kind] += u.Requests
	}
	want := map[string]int{}
	if chat > 0 {
		want[chatModel+"/"+batch.KindChatBatch] = chat
	}
	if embedding > 0 {
		want[embModel+"/"+batch.KindEmbeddingBatch] = embedding
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("usage (requests) %v, want %v", got, want)
	}
}

// counts returns the stored TL;DRs of the chat target and vectors of the space.
func (b *bundle) counts(t *testing.T) (tldrs, vectors int) {
	t.Helper()
	err := b.st.Pool().QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM tldrs WHERE model = $1 AND prompt_version = $2),
		(SELECT count(*) FROM embeddings WHERE space_id = $3)`, chatModel, summarize.PromptVersion, b.space.ID).
		Scan(&tldrs, &vectors)
	if err != nil {
		t.Fatal(err)
	}
	return tldrs, vectors
}

func TestRunStoresEveryResultOnceWithBatchUsage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 12)
	rep, err := b.runner(t, func(c *batch.Config) { c.MaxRequests = 5 }).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	// 12 papers at 5 per batch: 3 chat jobs and 3 embedding jobs.
	if rep.Submitted != 6 || rep.Done != 6 || rep.Requests != 24 || rep.TLDRs != 12 || rep.Vectors != 12 || rep.Rejected != 0 {
		t.Errorf("report %+v, want 6 jobs submitted and done, 24 requests, 12 TL;DRs and 12 vectors", rep)
	}
	if tl, v := b.counts(t); tl != 12 || v != 12 {
		t.Errorf("stored %d TL;DRs and %d vectors, want 12 and 12", tl, v)
	}
	s := b.fake.Stats()
	if s.ChatDelivered != 12 || s.EmbedInputsDelivered != 12 {
		t.Errorf("API delivered %d chat completions and %d vectors, want 12 and 12", s.ChatDelivered, s.EmbedInputsDelivered)
	}
	b.checkUsage(t, 12, 12)

	// A second run finds nothing stale and spends nothing.
	rep, err = b.runner(t, nil).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Submitted != 0 || rep.Resumed != 0 {
		t.Errorf("second run %+v, want nothing submitted or resumed", rep)
	}
	if s2 := b.fake.Stats(); s2.ChatDelivered != 12 || s2.EmbedInputsDelivered != 12 {
		t.Errorf("second run delivered more: %+v", s2)
	}
}

// A run cancelled after its batches were created leaves them open in the store; a new Runner
// (a restarted paperpipe) resumes polling them, creates no second batch and stores every
// result once. The first run is cancelled by its first look at a batch, which the fake API
// never answers: the fake completes a batch within milliseconds, and a first look that
// collected both jobs left nothing to resume (the test skipped itself in most runs).
func TestRestartAfterBatchCreatedResumesWithoutPayingTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 8)
	cctx, cancel := context.WithCancel(ctx)
	r1 := b.runner(t, func(c *batch.Config) { c.BaseURL = cancelAtFirstLook(t, b.fake, cancel) })
	rep, err := r1.Run(cctx, store.Selection{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %+v, %v; want context.Canceled", rep, err)
	}
	if rep.Submitted != 2 {
		t.Fatalf("first run submitted %d jobs, want 2", rep.Submitted)
	}
	jobs, err := b.st.BatchJobs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.OpenAIID == "" || j.Status != store.BatchSubmitted {
			t.Errorf("job %d: batch %q, status %s; want submitted, with its OpenAI batch id", j.ID, j.OpenAIID, j.Status)
		}
	}
	const open = 2

	// While the jobs are open, their papers are not stale for the target: not sent again.
	var stale int
	err = b.st.StalePapers(ctx, store.Selection{Work: paper.Work{Model: chatModel, PromptVersion: summarize.PromptVersion, SpaceID: b.space.ID}},
		100, func(p []store.StalePaper) error { stale += len(p); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if stale != 0 {
		t.Errorf("%d papers stale while in open batch jobs, want 0", stale)
	}

	rep, err = b.runner(t, nil).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	// Both jobs are resumed and finished.
	if rep.Submitted != 0 || rep.Resumed != open || rep.Done != open {
		t.Errorf("restarted run %+v, want 0 submitted, %d resumed, %d done", rep, open, open)
	}
	if tl, v := b.counts(t); tl != 8 || v != 8 {
		t.Errorf("stored %d TL;DRs and %d vectors, want 8 and 8", tl, v)
	}
	if s := b.fake.Stats(); s.ChatDelivered != 8 || s.EmbedInputsDelivered != 8 {
		t.Errorf("API delivered %d chat completions and %d vectors, want 8 and 8: a batch was paid twice", s.ChatDelivered, s.EmbedInputsDelivered)
	}
	b.checkUsage(t, 8, 8) // recorded once
	if jobs, _ = b.st.BatchJobs(ctx, ""); len(jobs) != 2 {
		t.Errorf("%d batch jobs recorded, want 2", len(jobs))
	}
}

// A job recorded before a crash that came before its upload is uploaded and submitted by the
// next run.
func TestJobRecordedButNotUploadedIsSubmittedOnResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3)
	var items []store.BatchItem
	for _, id := range b.ids {
		rec, err := b.st.Paper(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, store.BatchItem{PaperID: id, ContentHash: rec.ContentHash})
	}
	// Recorded, and its creator gone before the upload.
	_, release, err := b.st.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: chatModel, PromptVersion: summarize.PromptVersion}, items)
	if err != nil {
		t.Fatal(err)
	}
	release.Release()
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil }).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != 1 || rep.Submitted != 0 || rep.TLDRs != 3 {
		t.Errorf("report %+v, want 1 resumed, 0 submitted, 3 TL;DRs", rep)
	}
	if s := b.fake.Stats(); s.ChatDelivered != 3 {
		t.Errorf("API delivered %d chat completions, want 3", s.ChatDelivered)
	}
}

// claimChat records a TL;DR job for papers at their current text, as a run that stopped
// before the upload leaves it.
func (b *bundle) claimChat(t *testing.T, ids ...string) store.BatchJob {
	t.Helper()
	ctx := context.Background()
	var items []store.BatchItem
	for _, id := range ids {
		rec, err := b.st.Paper(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, store.BatchItem{PaperID: id, ContentHash: rec.ContentHash})
	}
	j, release, err := b.st.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: chatModel, PromptVersion: summarize.PromptVersion}, items)
	if err != nil {
		t.Fatal(err)
	}
	release.Release()
	return j
}

// rewrite gives paper id a new abstract.
func (b *bundle) rewrite(t *testing.T, id string) {
	t.Helper()
	ctx := context.Background()
	rec, err := b.st.Paper(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	a := rec.Abstract
	a.Abstract = "We revisit sparse routing in mixture-of-experts models and correct the balanced router, which lowers the loss further."
	if _, err := b.st.UpsertPapers(ctx, []paper.Abstract{a}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
}

// A job recorded but not uploaded whose paper changed meanwhile is uploaded without that
// paper: its new text goes into a new job only, and is paid for once.
func TestResumedUploadLeavesOutAPaperChangedSinceRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3)
	b.claimChat(t, b.ids...)
	b.rewrite(t, b.ids[0])
	seen := map[int64]store.BatchJob{} // each job as the progress reports last saw it
	rep, err := b.runner(t, func(c *batch.Config) {
		c.Embed = nil
		c.Progress = func(jobs []store.BatchJob, _ batch.Report) {
			for _, j := range jobs {
				seen[j.ID] = j
			}
		}
	}).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != 1 || rep.Submitted != 1 || rep.Done != 2 || rep.Skipped != 1 || rep.TLDRs != 3 {
		t.Errorf("report %+v, want 1 resumed (1 paper skipped) and 1 submitted, both done, 3 TL;DRs", rep)
	}
	for _, j := range seen {
		if j.Completed != j.Total {
			t.Errorf("job %d last seen with %d of %d requests completed, want all: its total counts the requests uploaded", j.ID, j.Completed, j.Total)
		}
	}
	if tl, _ := b.counts(t); tl != 3 {
		t.Errorf("%d TL;DRs stored, want 3", tl)
	}
	if s := b.fake.Stats(); s.ChatDelivered != 3 {
		t.Errorf("API delivered %d chat completions for 3 papers, want 3", s.ChatDelivered)
	}
	rec, err := b.st.Paper(ctx, b.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if rec.TLDR == nil || rec.TLDR.ContentHash != rec.ContentHash {
		t.Errorf("changed paper's TL;DR %+v, want one of its current text %s", rec.TLDR, rec.ContentHash)
	}
}

// A paper left out of a job's upload (its text changed after the job was recorded) kept its
// item in the job: when its text went back to what the job recorded (A, B, A), the open job
// held its TL;DR again, and no run bought it until the job closed, though the job's batch does
// not hold it. The left-out paper is no longer the job's.
func TestPaperLeftOutOfAnUploadIsNotHeldWhenItsTextComesBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3)
	rec, err := b.st.Paper(ctx, b.ids[0])
	if err != nil {
		t.Fatal(err)
	}
	b.claimChat(t, b.ids...)
	b.rewrite(t, b.ids[0])
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil }).Submit(ctx, store.Selection{})
	if err != nil || rep.Resumed != 1 || rep.Skipped != 1 || rep.Submitted != 1 {
		t.Fatalf("submit = %+v, %v; want the recorded job resumed without the changed paper, and a job for its new text", rep, err)
	}
	if _, err := b.st.UpsertPapers(ctx, []paper.Abstract{rec.Abstract}, paper.Work{}); err != nil { // its text goes back
		t.Fatal(err)
	}
	rep, err = b.runner(t, func(c *batch.Config) { c.Embed = nil }).Submit(ctx, store.Selection{})
	if err != nil || rep.Submitted != 1 || rep.Requests != 1 {
		t.Errorf("submit after the text went back = %+v, %v; want a job for the paper, which no open job's batch holds", rep, err)
	}
}

// A job recorded but not uploaded with nothing left to send — its papers deleted, or all
// changed — is closed, and later runs go on.
func TestResumedJobWithNothingLeftToUploadIsClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3)
	b.claimChat(t, b.ids[0], b.ids[1])
	b.claimChat(t, b.ids[2])
	if _, err := b.st.Pool().Exec(ctx, `DELETE FROM papers WHERE id = ANY($1)`, b.ids[:2]); err != nil {
		t.Fatal(err)
	}
	b.rewrite(t, b.ids[2])
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil }).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != 2 || rep.Failed != 2 || rep.Skipped != 1 || rep.Submitted != 1 || rep.Done != 1 || rep.TLDRs != 1 {
		t.Errorf("report %+v, want 2 resumed and closed unsent (1 paper skipped), 1 submitted and done, 1 TL;DR", rep)
	}
	jobs, err := b.st.BatchJobs(ctx, store.BatchTarget(paper.KindChat, chatModel, summarize.PromptVersion, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 0 {
		t.Errorf("%d jobs still open: %+v", len(jobs), jobs)
	}
	rep, err = b.runner(t, func(c *batch.Config) { c.Embed = nil }).Run(ctx, store.Selection{})
	if err != nil || !reflect.DeepEqual(rep, batch.Report{}) {
		t.Errorf("later run = %+v, %v; want nothing to do", rep, err)
	}
	if s := b.fake.Stats(); s.ChatDelivered != 1 {
		t.Errorf("API delivered %d chat completions, want 1 (the changed paper's new text)", s.ChatDelivered)
	}
}

// inputBytes returns the size of the input file of each job of the TL;DR target of
// promptVersion, as the API stored it.
func (b *bundle) inputBytes(t *testing.T, promptVersion string) []int {
	t.Helper()
	jobs, err := b.st.BatchJobs(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, j := range jobs {
		if j.PromptVersion != promptVersion {
			continue
		}
		resp, err := http.Get(b.fake.URL() + "/files/" + j.InputFileID)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Bytes int `json:"bytes"`
		}
		err = json.NewDecoder(resp.Body).Decode(&f)
		resp.Body.Close()
		if err != nil || f.Bytes == 0 {
			t.Fatalf("input file %q of job %d: %d bytes, %v", j.InputFileID, j.ID, f.Bytes, err)
		}
		sizes = append(sizes, f.Bytes)
	}
	return sizes
}

// No input file is larger than MaxBytes, newlines included: a file of two requests one byte
// over it is split in two.
func TestInputFileNeverExceedsMaxBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 2)
	chatOnly := func(version string, maxBytes int) func(*batch.Config) {
		return func(c *batch.Config) { c.Embed = nil; c.Chat.PromptVersion = version; c.MaxBytes = maxBytes }
	}
	// The size of the file of both papers, measured under one prompt version; the requests of
	// another are the same (the version is not sent), and are then capped one byte below it.
	if _, err := b.runner(t, chatOnly("measure", 0)).Submit(ctx, store.Selection{}); err != nil {
		t.Fatal(err)
	}
	whole := b.inputBytes(t, "measure")
	if len(whole) != 1 {
		t.Fatalf("%d jobs for 2 papers without a byte cap, want 1", len(whole))
	}
	maxBytes := whole[0] - 1
	if _, err := b.runner(t, chatOnly("capped", maxBytes)).Submit(ctx, store.Selection{}); err != nil {
		t.Fatal(err)
	}
	sizes := b.inputBytes(t, "capped")
	for _, n := range sizes {
		if n > maxBytes {
			t.Errorf("input files of %v bytes with MaxBytes %d", sizes, maxBytes)
			break
		}
	}
	if len(sizes) != 2 {
		t.Errorf("%d jobs, want 2 (one request each)", len(sizes))
	}
}

// An upload attempt is given time for its file at Config.UploadRate on top of a request's
// timeout: a slow upload is not abandoned (and sent again) at the request timeout.
func TestSlowUploadGetsTimeForItsSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 2
	b := setup(t, n)
	var uploads atomic.Int32
	url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/files" {
			return false
		}
		uploads.Add(1)
		select { // a slow uplink: the upload takes 500 ms
		case <-time.After(500 * time.Millisecond):
			return false
		case <-r.Context().Done():
			return true
		}
	})
	// Two requests of about 1 kB at 100 bytes a second: some 20 s allowed on top of 100 ms.
	r := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url; c.UploadRate = 100 })
	batch.SetRequestTimeout(r, 100*time.Millisecond)
	rep, err := r.Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Done != 1 || rep.TLDRs != n {
		t.Errorf("report %+v, want 1 done, %d TL;DRs", rep, n)
	}
	if got := uploads.Load(); got != 1 {
		t.Errorf("%d upload attempts, want 1", got)
	}
}

// isPoll reports whether r looks at a batch (GET /v1/batches/{id}).
func isPoll(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/batches/")
}

// cancelAtFirstLook serves the fake API at a URL of its own where a look at a batch cancels
// the Runner's context (cancel) and is left unanswered: a Runner stopped once its jobs are
// submitted, before it collects any, however soon the fake completes their batches (within
// milliseconds).
func cancelAtFirstLook(t *testing.T, fake *openaitest.Server, cancel context.CancelFunc) string {
	t.Helper()
	return proxy(t, fake, func(_ http.ResponseWriter, r *http.Request) bool {
		if !isPoll(r) {
			return false
		}
		cancel()
		<-r.Context().Done() // the Runner's request ends with its context
		return true
	})
}

// A 429 answering a look at a batch, with Retry-After, is waited out before the batch is
// looked at again; the job is then collected as usual.
func TestRateLimitedPollWaitsRetryAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 2
	b := setup(t, n)
	var (
		mu    sync.Mutex
		polls []time.Time
	)
	url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		if !isPoll(r) {
			return false
		}
		mu.Lock()
		polls = append(polls, time.Now())
		first := len(polls) == 1
		mu.Unlock()
		if !first {
			return false
		}
		w.Header().Set("Retry-After", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)
		return true
	})
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Done != 1 || rep.TLDRs != n {
		t.Errorf("report %+v, want 1 done, %d TL;DRs", rep, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(polls) < 2 {
		t.Fatalf("%d looks at the batch, want the rate-limited one and another", len(polls))
	}
	// The pause starts when the 429 arrives, after its request was recorded: a lower bound.
	if gap := polls[1].Sub(polls[0]); gap < time.Second {
		t.Errorf("batch looked at again %v after a 429 with Retry-After: 1 (%d looks in all), want at least 1s", gap, len(polls))
	}
}

// TestBaseURLErrorNeverShowsItsSecrets: a refused BaseURL — malformed, or with a query that
// go-openai would put inside every request's URL — is shown without the password of its
// userinfo or the credential of its query.
func TestBaseURLErrorNeverShowsItsSecrets(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"https://user:PassW0rd@api.example.com:badport/v1?api_key=K3yValue",
		"https://user:PassW0rd@api.example.com/v1?api_key=K3yValue",
	} {
		_, err := batch.New(batch.Config{BaseURL: raw, Store: (*store.Store)(nil), Chat: &batch.ChatWork{}})
		if err == nil || !strings.Contains(err.Error(), "BaseURL") {
			t.Errorf("New with BaseURL %s: %v, want an error naming BaseURL", raw, err)
			continue
		}
		for _, secret := range []string{"PassW0rd", "K3yValue"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error of BaseURL %s shows %s: %v", raw, secret, err)
			}
		}
	}
}

func TestConfigIsValidated(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]batch.Config{
		"no store":   {Chat: &batch.ChatWork{}},
		"no work":    {Store: (*store.Store)(nil)},
		"bad url":    {BaseURL: "ftp://x", Store: (*store.Store)(nil), Chat: &batch.ChatWork{}},
		"chat parts": {Store: (*store.Store)(nil), Chat: &batch.ChatWork{Model: "m"}},
		"too many":   {Store: (*store.Store)(nil), Embed: &batch.EmbedWork{Space: paper.Space{ID: 1, Model: "m"}, Input: func(paper.Abstract) (string, bool, error) { return "", false, nil }}, MaxRequests: 50001},
	} {
		if _, err := batch.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

// TestWaitReturnsOnceTheLastJobIsCollected: once the poll that collects the last open job is
// done, Wait returns; it slept another poll interval first (up to MaxPollInterval, 10 minutes),
// which delayed the end of every run and the new space's index build. The batches are complete
// before Wait's first poll, and the interval is an hour: a Wait that sleeps it does not end
// within the test's minute.
func TestWaitReturnsOnceTheLastJobIsCollected(t *testing.T) {
	t.Parallel()
	b := setup(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := b.runner(t, func(c *batch.Config) { c.PollInterval, c.MaxPollInterval = time.Hour, time.Hour })
	if _, err := r.Submit(ctx, store.Selection{}); err != nil {
		t.Fatal(err)
	}
	oc := openai.DefaultConfig("sk-test")
	oc.BaseURL = b.fake.URL()
	api := openai.NewClientWithConfig(oc)
	for _, target := range []string{
		store.BatchTarget(paper.KindChat, chatModel, summarize.PromptVersion, 0),
		store.BatchTarget(paper.KindEmbedding, b.space.Model, "", b.space.ID),
	} {
		jobs, err := b.st.BatchJobs(ctx, target)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("open jobs of %s = %+v, %v; want 1", target, jobs, err)
		}
		for {
			bt, err := api.RetrieveBatch(ctx, jobs[0].OpenAIID)
			if err != nil {
				t.Fatal(err)
			}
			if bt.Status == "completed" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	rep, err := r.Wait(ctx)
	if err != nil || rep.Done != 2 {
		t.Errorf("Wait = %+v, %v; want its 2 jobs done and no wait for another poll", rep, err)
	}
}

// TestCollectedJobsLeaveNoInputFileAtOpenAI: once a job's results are stored, its input file is
// deleted at OpenAI, which keeps an uploaded file until then (output files expire): every run
// left its inputs, up to 190 MB a job, in the project's storage for good.
func TestCollectedJobsLeaveNoInputFileAtOpenAI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 12)
	if _, err := b.runner(t, func(c *batch.Config) { c.MaxRequests = 5 }).Run(ctx, store.Selection{}); err != nil {
		t.Fatal(err)
	}
	rows, err := b.st.Pool().Query(ctx, "SELECT input_file_id FROM batch_jobs WHERE status = 'done'")
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) != 6 {
		t.Fatalf("%d jobs done, want 6", len(inputs))
	}
	held := b.fake.Files()
	for _, id := range inputs {
		if slices.Contains(held, id) {
			t.Errorf("input file %s of a collected job is still at OpenAI (files held: %v)", id, held)
		}
	}
}
