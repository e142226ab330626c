package batch

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/pricing"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// Usage kinds of Batch API work: billed at half the price of paper.KindChat and
// paper.KindEmbedding.
const (
	KindChatBatch      = paper.KindChat + pricing.BatchSuffix
	KindEmbeddingBatch = paper.KindEmbedding + pricing.BatchSuffix
)

// OpenAI's limits of one batch input file.
const (
	maxRequestsPerBatch = 50000
	maxBytesPerBatch    = 200 << 20
)

// Bounds of one attempt to download a batch output or error file: it is abandoned (and
// retried) when no byte came for downloadStall, and takes at most downloadTimeout (an output
// file of 50,000 vectors is about a gigabyte).
const (
	downloadStall   = 2 * time.Minute
	downloadTimeout = time.Hour
)

// defaultUploadRate is Config.UploadRate's default: 1 Mbit/s.
const defaultUploadRate = 125_000

// errStalled ends a download attempt that received nothing for a while.
var errStalled = errors.New("download stalled")

// Store is what a Runner needs of the store: the selection of stale papers, the batch job
// ledger, and the results.
type Store interface {
	StalePapers(ctx context.Context, sel store.Selection, pageSize int, fn func([]store.StalePaper) error) error
	ClaimBatchJob(ctx context.Context, j store.BatchJob, items []store.BatchItem) (store.BatchJob, *store.JobLock, error)
	LockBatchJob(ctx context.Context, id int64) (store.BatchJob, *store.JobLock, error)
	UpdateBatchJob(ctx context.Context, j store.BatchJob) error
	RecordBatchUpload(ctx context.Context, j store.BatchJob, leftOut []string) error
	FinishBatchJob(ctx context.Context, j store.BatchJob, usage []paper.Usage) error
	BatchJobs(ctx context.Context, target string) ([]store.BatchJob, error)
	BatchJobItems(ctx context.Context, id int64, pageSize int, fn func([]store.BatchJobItem) error) error
	BatchItemsOf(ctx context.Context, id int64, paperIDs []string) (map[string]store.BatchJobItem, error)
	MissingPapers(ctx context.Context, ids []string) ([]string, error)
	RecordWithheld(ctx context.Context, ws []store.Withheld) (int, error)
	SaveSummaries(ctx context.Context, sums []paper.Summary) (int, error)
	SaveEmbeddings(ctx context.Context, spaceID int64, embs []paper.Embedding) (int, error)
}

// Message is one chat message of a TL;DR request.
type Message struct {
	Role    string // "system" or "user"
	Content string
}

// ChatWork describes the TL;DRs a Runner asks for.
type ChatWork struct {
	// Model is the chat model; PromptVersion is stored with each TL;DR. Both required.
	Model, PromptVersion string
	// Messages returns the request's messages for a paper. Required.
	Messages func(a paper.Abstract) []Message
	// Accept turns an answer into the text to store and its paper.Valid* outcome, or an
	// error when the answer is unusable. Required.
	Accept func(answer string, a paper.Abstract) (text, validation string, err error)
}

// EmbedWork describes the embeddings a Runner asks for.
type EmbedWork struct {
	// Space is the target space, with its ID (see store.EnsureSpace). Required.
	Space paper.Space
	// Dimensions is sent as the request's "dimensions" when > 0. Defaults to 0 (not sent).
	Dimensions int
	// Input returns the text embedded for a paper and whether it was truncated. Required.
	Input func(a paper.Abstract) (text string, truncated bool, err error)
}

// Config configures a Runner.
type Config struct {
	// BaseURL is the OpenAI API's base URL, up to and including "/v1". Defaults to
	// "https://api.openai.com/v1".
	BaseURL string
	// APIKey is sent as a bearer token; never logged. Defaults to "".
	APIKey string
	// HTTPClient sends the requests; its transport is wrapped to feed the Limiter. Defaults to
	// a client with http.DefaultTransport.
	HTTPClient *http.Client
	// Limiter is waited on before every request the Runner retries (uploads, polls,
	// downloads) and fed with every response, so a 429's Retry-After (or retry-after-ms,
	// x-ratelimit-reset-*) is waited out before the next attempt. Defaults to a limiter of the
	// Runner's own with no request or token budget, which still honours those headers.
	Limiter *llm.Limiter
	// Store is the ledger. Required.
	Store Store
	// Chat is the TL;DR work. Defaults to nil: no TL;DRs. Chat or Embed is required.
	Chat *ChatWork
	// Embed is the embedding work. Defaults to nil: no embeddings.
	Embed *EmbedWork
	// MaxRequests caps the requests (papers) of one batch. Defaults to 50,000, OpenAI's limit.
	MaxRequests int
	// MaxBytes caps the size of one batch input file. Defaults to 190 MB (OpenAI allows 200).
	MaxBytes int
	// UploadRate is the slowest upload, in bytes per second, an input file's upload allows
	// for: an attempt to upload a file of n bytes may take the usual 5 minutes of a request
	// plus n / UploadRate seconds before it is abandoned and retried. Defaults to 125,000
	// (1 Mbit/s): a 190 MB file gets 30 minutes.
	UploadRate int
	// PollInterval is the first wait between two looks at an unfinished batch; it grows by
	// half each time up to MaxPollInterval. Defaults to 30 seconds.
	PollInterval time.Duration
	// MaxPollInterval caps the wait between two looks. Defaults to 10 minutes.
	MaxPollInterval time.Duration
	// TempDir holds input files while they are written and uploaded. Defaults to os.TempDir().
	TempDir string
	// Progress, when set, is called after every look at the open jobs with the jobs and the
	// report so far. Defaults to nil.
	Progress func(jobs []store.BatchJob, r Report)
	// Logger receives one line per job step. Defaults to discarding.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = "https://api.openai.com/v1"
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = maxRequestsPerBatch
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 190 << 20
	}
	if c.UploadRate <= 0 {
		c.UploadRate = defaultUploadRate
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 30 * time.Second
	}
	if c.MaxPollInterval <= 0 {
		c.MaxPollInterval = 10 * time.Minute
	}
	c.MaxPollInterval = max(c.MaxPollInterval, c.PollInterval)
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Limiter == nil {
		c.Limiter = llm.NewLimiter(llm.LimiterConfig{Logger: c.Logger})
	}
}

func (c *Config) validate() error {
	if err := llm.CheckBaseURL(c.BaseURL); err != nil {
		return fmt.Errorf("batch config: BaseURL %w", err)
	}
	switch {
	case c.Store == nil:
		return errors.New("batch config: Store is required")
	case c.Chat == nil && c.Embed == nil:
		return errors.New("batch config: Chat or Embed is required")
	case c.Chat != nil && (c.Chat.Model == "" || c.Chat.PromptVersion == "" || c.Chat.Messages == nil || c.Chat.Accept == nil):
		return errors.New("batch config: Chat needs Model, PromptVersion, Messages and Accept")
	case c.Embed != nil && (c.Embed.Space.ID == 0 || c.Embed.Space.Model == "" || c.Embed.Input == nil):
		return errors.New("batch config: Embed needs Space (with its ID and Model) and Input")
	case c.MaxRequests > maxRequestsPerBatch:
		return fmt.Errorf("batch config: MaxRequests is %d, OpenAI allows at most %d", c.MaxRequests, maxRequestsPerBatch)
	case c.MaxBytes > maxBytesPerBatch:
		return fmt.Errorf("batch config: MaxBytes is %d, OpenAI allows at most %d", c.MaxBytes, maxBytesPerBatch)
	}
	return nil
}

// Report counts what a Runner did.
type Report struct {
	Submitted int `json:"submitted"` // jobs created by this Runner whose batch it created at OpenAI
	// Unsubmitted counts the jobs created by this Runner whose submission failed before their
	// batch was created (their input file could not be written or uploaded, the creation
	// failed: see the run's *JobError): they stay open, their papers out of other work, and a
	// later run submits them. A job whose batch was created and could not be recorded counts
	// in Submitted, its *JobError saying so: Wait (this Runner's, or a later run's) finds its
	// batch by its tag.
	Unsubmitted int `json:"unsubmitted"`
	Resumed     int `json:"resumed"`  // open jobs found from an earlier run
	Done        int `json:"done"`     // jobs closed with their results stored
	Failed      int `json:"failed"`   // jobs whose batch failed, expired or was cancelled, or closed unsent: none of their papers was left as recorded
	Requests    int `json:"requests"` // request lines in the batches created by this Runner (Submitted)
	TLDRs       int `json:"tldrs"`    // TL;DRs stored
	Vectors     int `json:"vectors"`  // embeddings stored
	Rejected    int `json:"rejected"` // answers that failed or were unusable (their papers stay stale)
	// Withheld counts the rejected TL;DRs the API will not give (its content filter withheld
	// them, or the model refused): recorded (store.RecordWithheld), their papers are not asked
	// for again while their text and the target are the same. Part of Rejected.
	Withheld int `json:"withheld"`
	Skipped  int `json:"skipped"` // papers left out of a job's upload: their text changed after the job was recorded (they stay stale, for a new job)
	// Removed counts the answers of papers removed (paperpipe remove) while their job was
	// open: their places in the job went with them, and the answers are not stored, as the
	// removal asked. Billed all the same; not a failure.
	Removed int `json:"removed"`
	// Failures says, for each job whose batch failed, expired or was cancelled at OpenAI, why:
	// the job, the batch, its status and OpenAI's errors (such as token_limit_exceeded).
	Failures []string `json:"failures,omitempty"`
}

// Runner runs re-processing work through the Batch API. It is not safe for concurrent use;
// two Runners on one database share the ledger and never submit a paper twice: a job is
// recorded only with the papers neither in an open job of its target nor done for it since
// they were selected, checked under a lock of the target (store.ClaimBatchJob), and the Runner preparing a job holds the job's
// lock until its batch is created, so another Runner resumes only a job whose creator is
// gone (store.LockBatchJob); the Runner collecting a job's results holds that lock too, so
// they are stored and reported once.
type Runner struct {
	cfg   Config
	api   *openai.Client
	retry llm.Retrier
	log   *slog.Logger

	report  Report
	created map[int64]bool      // jobs created (not resumed) by this Runner
	broken  map[int64]*JobError // jobs whose step failed in this Runner, left alone from then on
	// unrecorded are the jobs of broken whose batch was created at OpenAI and whose record of
	// it failed for the database's unavailability: Wait takes them up again (see Wait).
	unrecorded  map[int64]bool
	failedLooks map[int64]int // jobs whose last looks at their batch failed transiently: how many in a row
	dbDown      bool          // Wait found the database unavailable at its last try (see databaseDown)
	stall       time.Duration // downloadStall, shorter in tests
}

// maxFailedLooks is how many looks in a row at a job's batch may fail transiently (a 5xx, a
// network error, an unreachable API, each after the Retrier's retries) before the job fails in
// the run. At the default poll intervals (the first look at once, then waits of 30 seconds
// growing by half up to 10 minutes) the 9 waits between 10 looks last from about 35 minutes,
// for an API down from the start of the wait, to 90 minutes once the waits have reached 10
// minutes, plus the time each look's retries take. A blip during a wait of up to 24 hours does
// not end it; an API that stays down does, with its error.
const maxFailedLooks = 10

// lookError is the failure of a look at a job's batch (GET /v1/batches/ID), after the retries.
type lookError struct{ err error }

func (e *lookError) Error() string { return e.err.Error() }
func (e *lookError) Unwrap() error { return e.err }

// New returns a Runner, or an error naming the Config field that is wrong. It makes no request.
func New(cfg Config) (*Runner, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	api, retry := cfg.client()
	return &Runner{
		cfg:         cfg,
		api:         api,
		retry:       retry,
		log:         cfg.Logger,
		created:     map[int64]bool{},
		broken:      map[int64]*JobError{},
		unrecorded:  map[int64]bool{},
		failedLooks: map[int64]int{},
		stall:       downloadStall,
	}, nil
}

// client returns the API client and the Retrier of cfg (defaults set).
func (cfg *Config) client() (*openai.Client, llm.Retrier) {
	oc := openai.DefaultConfig(cfg.APIKey)
	oc.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	// The transport feeds the Limiter with every response: a 429's Retry-After pauses the
	// Retrier's next attempt (without it, 429s were retried every 0-250 ms).
	// Errors of calls show URLs with their secrets masked (llm.APIClient).
	oc.HTTPClient = llm.APIClient(cfg.HTTPClient, cfg.Limiter)
	return openai.NewClientWithConfig(oc), llm.Retrier{Logger: cfg.Logger, Timeout: 5 * time.Minute, Limiter: cfg.Limiter, APIKey: cfg.APIKey, BaseURL: oc.BaseURL}
}

// targets returns the work keys of the Runner's open jobs.
func (r *Runner) targets() []string {
	var t []string
	if c := r.cfg.Chat; c != nil {
		t = append(t, store.BatchTarget(paper.KindChat, c.Model, c.PromptVersion, 0))
	}
	if e := r.cfg.Embed; e != nil {
		t = append(t, store.BatchTarget(paper.KindEmbedding, "", "", e.Space.ID))
	}
	return t
}

// openJobs lists the open jobs of the Runner's targets.
func (r *Runner) openJobs(ctx context.Context) ([]store.BatchJob, error) {
	var jobs []store.BatchJob
	for _, t := range r.targets() {
		js, err := r.cfg.Store.BatchJobs(ctx, t)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, js...)
	}
	return jobs, nil
}

// JobError is the failure of one job's step (its upload, the creation or lookup of its batch,
// a look at it, the collection of its results), after the retries of transient errors. It
// ends that job's work in the Runner, not the other jobs'; the job stays open, so a later run
// tries again, and its papers stay out of other work until it is closed.
type JobError struct {
	Job int64 // the job's id in the ledger
	Err error
}

func (e *JobError) Error() string {
	msg := e.Err.Error()
	if prefix := fmt.Sprintf("batch job %d: ", e.Job); !strings.HasPrefix(msg, prefix) {
		msg = prefix + msg
	}
	return msg
}

func (e *JobError) Unwrap() error { return e.Err }

// failJob records err as the failure of job j in this Runner, which leaves the job alone from
// then on — but for a batch created that the database, unavailable, could not record, which
// Wait takes up again — and returns nil; when ctx ended, it returns err: the run is over.
func (r *Runner) failJob(ctx context.Context, j store.BatchJob, err error) error {
	if ctx.Err() != nil {
		return err
	}
	je := &JobError{Job: j.ID, Err: err}
	r.broken[j.ID] = je
	if j.OpenAIID != "" && errors.Is(err, paper.ErrUnavailable) {
		// Its batch was created and the database could not record it (a restart in that
		// round trip): Wait takes it up again.
		r.unrecorded[j.ID] = true
		r.log.WarnContext(ctx, "batch created at OpenAI and not recorded, the database unavailable; a wait finds it by its tag once the database answers",
			"job", j.ID, "openai_batch", j.OpenAIID, "err", je.Err)
		return nil
	}
	r.log.ErrorContext(ctx, "batch job failed in this run; the other jobs go on", "job", j.ID, "err", je.Err)
	return nil
}

// jobErrors joins the failures of the jobs that failed in this Runner, by job id; nil when none.
func (r *Runner) jobErrors() error {
	ids := make([]int64, 0, len(r.broken))
	for id := range r.broken {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	errs := make([]error, len(ids))
	for i, id := range ids {
		errs[i] = r.broken[id]
	}
	return errors.Join(errs...)
}

// Run submits the work and waits for it: Submit, then Wait. Jobs that failed in Submit do not
// stop the Wait for the others; their errors are returned with Wait's.
func (r *Runner) Run(ctx context.Context, sel store.Selection) (Report, error) {
	if _, err := r.Submit(ctx, sel); err != nil {
		if je := (*JobError)(nil); !errors.As(err, &je) {
			return r.report, err
		}
	}
	return r.Wait(ctx)
}

// Submit finishes the submission of open jobs left by an earlier run (upload, create; a job
// another live Runner is preparing is left to it), then creates jobs for the papers of sel
// that are stale for the Runner's target and not in an open job, and submits them. sel.Work
// is set from the Runner's Config. A job whose submission fails does not stop the others: the
// failures are returned at the end, joined, each a *JobError. The database unavailable
// (paper.ErrUnavailable) while the jobs are listed, selected or claimed stops Submit (unlike
// Wait, which rides an outage out): it leaves nothing half-done — the jobs recorded stay open,
// and a batch created whose record failed is found by its tag when its job is resumed — and
// its error says to run again once the database is back, which resumes them and submits the
// rest.
func (r *Runner) Submit(ctx context.Context, sel store.Selection) (Report, error) {
	open, err := r.openJobs(ctx)
	if err != nil {
		return r.report, submitStopped(err)
	}
	for _, j := range open {
		if r.created[j.ID] {
			continue
		}
		r.report.Resumed++
		r.log.InfoContext(ctx, "resuming batch job", "job", j.ID, "kind", j.Kind, "status", j.Status, "openai_batch", j.OpenAIID)
		if j.Status == store.BatchPreparing && r.broken[j.ID] == nil {
			if j, err := r.resume(ctx, j); err != nil {
				if err := r.failJob(ctx, j, err); err != nil {
					return r.report, err
				}
			}
		}
	}

	sel.Work = paper.Work{}
	if c := r.cfg.Chat; c != nil {
		sel.Work.Model, sel.Work.PromptVersion = c.Model, c.PromptVersion
	}
	if e := r.cfg.Embed; e != nil {
		sel.Work.SpaceID = e.Space.ID
	}
	chat := &pendingJob{kind: paper.KindChat}
	emb := &pendingJob{kind: paper.KindEmbedding}
	err = r.cfg.Store.StalePapers(ctx, sel, 500, func(page []store.StalePaper) error {
		for _, sp := range page {
			if sp.NeedTLDR && r.cfg.Chat != nil {
				if err := r.add(ctx, chat, sp); err != nil {
					return err
				}
			}
			if sp.NeedEmbedding && r.cfg.Embed != nil {
				if err := r.add(ctx, emb, sp); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return r.report, submitStopped(err)
	}
	for _, p := range []*pendingJob{chat, emb} {
		if err := r.flush(ctx, p); err != nil {
			return r.report, submitStopped(err)
		}
	}
	return r.report, r.jobErrors()
}

// submitStopped is err, which stopped Submit, with what to do when it is the database's
// unavailability.
func submitStopped(err error) error {
	if !errors.Is(err, paper.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w; the batch jobs recorded before it stay open, their batches running at OpenAI: "+
		"run again once the database is back, which resumes them and submits the rest", err)
}

// pendingJob gathers the items of the next job of one kind.
type pendingJob struct {
	kind  string
	items []store.BatchItem
	bytes int
}

// add puts a paper in the next job of its kind, submitting the job when it is full.
func (r *Runner) add(ctx context.Context, p *pendingJob, sp store.StalePaper) error {
	a := sp.Abstract
	line, truncated, err := r.line(p.kind, a, sp.ContentHash)
	if err != nil {
		r.log.WarnContext(ctx, "paper left out of the batch", "paper", a.ID, "err", err)
		r.report.Rejected++
		return nil
	}
	size := len(line) + 1 // and its newline: the file's size is what OpenAI limits
	if len(p.items) > 0 && (len(p.items) >= r.cfg.MaxRequests || p.bytes+size > r.cfg.MaxBytes) {
		if err := r.flush(ctx, p); err != nil {
			return err
		}
	}
	p.items = append(p.items, store.BatchItem{PaperID: a.ID, ContentHash: sp.ContentHash, Truncated: truncated})
	p.bytes += size
	return nil
}

// flush records and submits the gathered job of p, if any.
func (r *Runner) flush(ctx context.Context, p *pendingJob) error {
	if len(p.items) == 0 {
		return nil
	}
	j := store.BatchJob{Kind: p.kind}
	if p.kind == paper.KindChat {
		j.Model, j.PromptVersion = r.cfg.Chat.Model, r.cfg.Chat.PromptVersion
	} else {
		j.Model, j.SpaceID = r.cfg.Embed.Space.Model, r.cfg.Embed.Space.ID
	}
	n := len(p.items)
	j, release, err := r.cfg.Store.ClaimBatchJob(ctx, j, p.items)
	p.items, p.bytes = p.items[:0], 0
	if err != nil {
		return err
	}
	defer release.Release() // once the batch is created, or the attempt failed: another run may resume it
	if n > j.Total {
		r.log.InfoContext(ctx, "papers left out: already in an open batch job of another run, or removed", "kind", p.kind, "papers", n-j.Total)
	}
	if j.ID == 0 {
		return nil
	}
	r.created[j.ID] = true
	j, err = r.submit(ctx, j, release)
	if errors.Is(err, errTakenOver) {
		// Another run's now: Wait resumes it as any other's, should that run stop before its
		// batch is created.
		delete(r.created, j.ID)
		return nil
	}
	if j.OpenAIID != "" { // not a job closed unsent (every paper of it changed meanwhile)
		// Its batch exists at OpenAI, also when its record failed.
		r.report.Submitted++
		r.report.Requests += j.Total
	} else if err != nil {
		r.report.Unsubmitted++
	}
	if err != nil {
		return r.failJob(ctx, j, err)
	}
	return nil
}

// resume finishes the submission of job j, found preparing, that this Runner did not create.
// It takes the job's lock first: when another process holds it, the job is being prepared by a
// live Runner and is left to it (returned unchanged); otherwise the job is submitted as it is
// stored now (another Runner may have submitted it since j was read) and returned so.
func (r *Runner) resume(ctx context.Context, j store.BatchJob) (store.BatchJob, error) {
	cur, release, err := r.cfg.Store.LockBatchJob(ctx, j.ID)
	if errors.Is(err, store.ErrBatchJobBusy) {
		r.log.DebugContext(ctx, "batch job is being prepared by another run", "job", j.ID)
		return j, nil
	}
	if err != nil {
		return j, err
	}
	defer release.Release()
	if cur.Status != store.BatchPreparing {
		return cur, nil
	}
	j, err = r.submit(ctx, cur, release)
	if errors.Is(err, errTakenOver) {
		return j, nil
	}
	return j, err
}

// errTakenOver ends the submission of a job whose lock was lost meanwhile (see confirm):
// another run took the job over, and it is left to that run.
var errTakenOver = errors.New("batch job taken over by another run")

// confirm makes sure that the Runner still holds job j's lock, and that no other run has
// prepared the job meanwhile, before the next step of its submission (the upload recorded, the
// batch created): the lock's session sits idle while the input is uploaded (minutes, for a
// large job), and the database may end it meanwhile (a restart, a pg_terminate_backend,
// idle_session_timeout) — another run then finds the job unlocked and submits it. That run's
// work shows in the job as stored (its upload or batch recorded, or the lock held), and this
// Runner leaves the job to it, with errTakenOver: recording its own upload over the other's
// would forget the other's batch, and creating a batch would pay twice for the same papers.
func (r *Runner) confirm(ctx context.Context, lock *store.JobLock, j store.BatchJob) error {
	cur, err := lock.Confirm(ctx)
	if err == nil && cur.Status == store.BatchPreparing && cur.OpenAIID == "" && cur.InputFileID == j.InputFileID {
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrBatchJobLockLost) && !errors.Is(err, paper.ErrNotFound) {
		return fmt.Errorf("batch job %d: confirm its lock before going on: %w", j.ID, err)
	}
	r.log.WarnContext(ctx, "batch job taken over by another run while this one prepared it (the database ended the session of its lock): left to it",
		"job", j.ID, "status", cur.Status, "openai_batch", cur.OpenAIID, "err", err)
	return errTakenOver
}

// customID names one request line: "<paper id>@<content hash>#<kind>".
func customID(id, hash, kind string) string { return id + "@" + hash + "#" + kind }

// parseCustomID splits a custom_id made by customID, from the right (paper ids may hold
// anything).
func parseCustomID(s string) (id, hash, kind string, ok bool) {
	rest, kind, ok1 := cutLast(s, "#")
	id, hash, ok2 := cutLast(rest, "@")
	return id, hash, kind, ok1 && ok2 && id != "" && hash != ""
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// line returns the JSONL request line of one paper.
func (r *Runner) line(kind string, a paper.Abstract, hash string) ([]byte, bool, error) {
	cid := customID(a.ID, hash, kind)
	if kind == paper.KindChat {
		req := openai.ChatCompletionRequest{Model: r.cfg.Chat.Model}
		for _, m := range r.cfg.Chat.Messages(a) {
			req.Messages = append(req.Messages, openai.ChatCompletionMessage{Role: m.Role, Content: m.Content})
		}
		b, err := json.Marshal(openai.BatchChatCompletionRequest{
			CustomID: cid, Body: req, Method: http.MethodPost, URL: openai.BatchEndpointChatCompletions,
		})
		return b, false, err
	}
	text, truncated, err := r.cfg.Embed.Input(a)
	if err != nil {
		return nil, false, err
	}
	if strings.TrimSpace(text) == "" {
		return nil, false, fmt.Errorf("paper %s has no text to embed: %w", a.ID, paper.ErrInvalid)
	}
	b, err := json.Marshal(openai.BatchEmbeddingRequest{
		CustomID: cid, Method: http.MethodPost, URL: openai.BatchEndpointEmbeddings,
		Body: openai.EmbeddingRequest{
			Input: text, Model: openai.EmbeddingModel(r.cfg.Embed.Space.Model),
			EncodingFormat: openai.EmbeddingEncodingFormatFloat, Dimensions: r.cfg.Embed.Dimensions,
		},
	})
	return b, truncated, err
}

// submit uploads a job's input file (unless done before) and creates its batch (unless done
// before). A job whose file was uploaded before this call may have a batch (the answer to its
// creation may have been lost): a batch tagged with its id is looked for before one is created.
// A job whose file is uploaded here has none (a batch is created only after its file id is
// recorded), so it is not looked for: an API whose list of batches cannot be read would
// otherwise hold the job at every run, uploading a new file each time.
//
// Each step is taken only once lock, the job's, is confirmed (see confirm): a job another run
// took over meanwhile is left to it (errTakenOver).
func (r *Runner) submit(ctx context.Context, j store.BatchJob, lock *store.JobLock) (store.BatchJob, error) {
	uploadedBefore := j.InputFileID != ""
	if !uploadedBefore {
		id, n, leftOut, err := r.upload(ctx, j)
		if err != nil {
			return j, err
		}
		if err := r.confirm(ctx, lock, j); err != nil {
			// The upload is recorded nowhere, and so never collected nor deleted with the job:
			// the run that took the job over uploads its own, and a later one would upload
			// again.
			dropped := j
			dropped.InputFileID = id
			r.deleteInput(ctx, dropped)
			return j, err
		}
		if n == 0 {
			return r.closeUnsent(ctx, j)
		}
		j.InputFileID, j.Total = id, n // n < Total when papers were left out
		// The papers left out are no longer the job's: it would hold their outputs for their
		// recorded text, which its batch does not have (should that text come back).
		if err := r.cfg.Store.RecordBatchUpload(ctx, j, leftOut); err != nil {
			return j, err
		}
	}
	if j.OpenAIID == "" && uploadedBefore {
		b, ok, err := findBatch(ctx, r.api, r.retry, j)
		if err != nil {
			return j, fmt.Errorf("batch job %d: its batch may exist at OpenAI (the answer to its creation may have been lost) and the list of batches cannot be read, so none is created (that could pay twice for its papers); run again later: %w", j.ID, err)
		}
		if ok {
			j.OpenAIID, j.Status, j.OpenAIStatus = b.ID, store.BatchSubmitted, b.Status
			r.log.InfoContext(ctx, "found the batch of a job created before a restart", "job", j.ID, "openai_batch", b.ID)
			return j, r.cfg.Store.UpdateBatchJob(ctx, j)
		}
	}
	if j.OpenAIID == "" {
		if err := r.confirm(ctx, lock, j); err != nil {
			return j, err
		}
		ep := openai.BatchEndpointChatCompletions
		if j.Kind == paper.KindEmbedding {
			ep = openai.BatchEndpointEmbeddings
		}
		// Not retried: a retry after a lost answer would create a second batch.
		resp, err := r.api.CreateBatch(ctx, openai.CreateBatchRequest{
			InputFileID: j.InputFileID, Endpoint: ep, CompletionWindow: "24h",
			Metadata: map[string]any{"paperpipe_job": strconv.FormatInt(j.ID, 10), "paperpipe_target": j.Target},
		})
		if err != nil {
			return j, fmt.Errorf("create batch for job %d: %w", j.ID, err)
		}
		j.OpenAIID, j.Status, j.OpenAIStatus = resp.ID, store.BatchSubmitted, resp.Status
		// Saved even when ctx ended meanwhile: the batch exists and is paid for.
		if err := r.cfg.Store.UpdateBatchJob(context.WithoutCancel(ctx), j); err != nil {
			return j, fmt.Errorf("batch job %d: its batch %s was created at OpenAI (and runs, billed) but could not be recorded; "+
				"a wait for it (this run's, or the next run's) finds it by its tag and collects it: %w", j.ID, j.OpenAIID, err)
		}
		r.log.InfoContext(ctx, "batch created", "job", j.ID, "kind", j.Kind, "openai_batch", j.OpenAIID, "requests", j.Total)
	}
	return j, nil
}

// clockSlack is how much older than its job a batch listed by OpenAI may look (the two
// clocks differ) and still be looked at as the job's.
const clockSlack = time.Hour

// maxListPages bounds the pages of OpenAI's list of batches findBatch reads: 100,000
// batches created after the job, far more than an organization makes in the 24 hours a batch
// may run.
const maxListPages = 1000

// findBatch looks for the batch tagged with job j among the batches OpenAI lists, newest
// first, page by page until one is older than the job (less clockSlack): a batch created for
// the job cannot be older than it. found is false only when the list answered and holds no
// such batch; a list that cannot be read (after the retries of transient errors) is an error,
// for the batch may exist and creating another would pay twice for the same papers. So is a
// list that does not page back: a page that ends with the previous page's last batch (an API
// that ignores "after" would be read for ever), or more than maxListPages pages.
func findBatch(ctx context.Context, api *openai.Client, retry llm.Retrier, j store.BatchJob) (b openai.Batch, found bool, err error) {
	limit := 100
	var after *string
	oldest := j.CreatedAt.Add(-clockSlack).Unix()
	tag := strconv.FormatInt(j.ID, 10)
	for pages := 1; ; pages++ {
		if pages > maxListPages {
			return b, false, fmt.Errorf("the list of batches goes on past %d pages of %d", maxListPages, limit)
		}
		var page openai.ListBatchResponse
		_, err := retry.Do(ctx, 0, func(ctx context.Context) (err error) {
			page, err = api.ListBatch(ctx, after, &limit)
			return err
		})
		if err != nil {
			return b, false, err
		}
		for _, b := range page.Data {
			if v, _ := b.Metadata["paperpipe_job"].(string); v == tag && b.InputFileID == j.InputFileID {
				return b, true, nil
			}
		}
		if !page.HasMore || len(page.Data) == 0 || int64(page.Data[len(page.Data)-1].CreatedAt) < oldest {
			return b, false, nil
		}
		last := page.Data[len(page.Data)-1].ID
		if after != nil && last == *after {
			return b, false, fmt.Errorf("the list of batches does not page: the page after batch %s ends with it again", last)
		}
		after = &last
	}
}

// closeUnsent closes job j, found with nothing to upload (every paper of it changed or was
// deleted after it was recorded), as failed without a batch, so that it does not stay
// preparing and come back to every later run.
func (r *Runner) closeUnsent(ctx context.Context, j store.BatchJob) (store.BatchJob, error) {
	j.Status = store.BatchFailed
	if err := r.cfg.Store.FinishBatchJob(ctx, j, nil); err != nil {
		return j, err
	}
	r.report.Failed++
	r.log.WarnContext(ctx, "batch job closed unsent: its papers changed or were deleted after it was recorded", "job", j.ID, "kind", j.Kind)
	return j, nil
}

// upload writes job j's input file from its recorded items and uploads it, returning the
// file's id, the requests it holds and the papers left out. A paper whose text changed after
// the job was recorded is left out: its answer would be stored under the recorded content
// hash, which is no longer current, and thrown away, while the new text is stale and goes into
// a new job. When no request is left, nothing is uploaded and n is 0.
func (r *Runner) upload(ctx context.Context, j store.BatchJob) (fileID string, n int, leftOut []string, err error) {
	f, err := os.CreateTemp(r.cfg.TempDir, fmt.Sprintf("paperpipe-batch-%d-*.jsonl", j.ID))
	if err != nil {
		hint := ""
		if r.cfg.TempDir == os.TempDir() {
			hint = " (the temporary directory: TMPDIR names a writable one)"
		}
		return "", 0, nil, fmt.Errorf("batch job %d: input file in %s%s: %w", j.ID, r.cfg.TempDir, hint, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	err = r.cfg.Store.BatchJobItems(ctx, j.ID, 1000, func(items []store.BatchJobItem) error {
		for _, it := range items {
			if it.Abstract.ContentHash() != it.ContentHash {
				r.report.Skipped++
				leftOut = append(leftOut, it.PaperID)
				r.log.InfoContext(ctx, "paper left out of the batch: its text changed after the job was recorded", "job", j.ID, "paper", it.PaperID)
				continue
			}
			line, _, err := r.line(j.Kind, it.Abstract, it.ContentHash)
			if err != nil {
				return fmt.Errorf("paper %s: %w", it.PaperID, err)
			}
			w.Write(line)
			w.WriteByte('\n')
			n++
		}
		return nil
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return "", 0, nil, fmt.Errorf("batch job %d: write input file: %w", j.ID, err)
	}
	if n == 0 {
		return "", 0, nil, nil
	}
	st, err := os.Stat(f.Name())
	if err != nil {
		return "", 0, nil, fmt.Errorf("batch job %d: input file: %w", j.ID, err)
	}
	// An attempt sends the whole file (go-openai buffers it and posts it in one request): at a
	// fixed timeout, a file of 150-190 MB on an uplink below ~5 Mbit/s timed out every time.
	up := r.retry
	up.Timeout = uploadTimeout(r.retry.Timeout, st.Size(), r.cfg.UploadRate)
	var file openai.File
	_, err = up.Do(ctx, 0, func(ctx context.Context) error {
		file, err = r.api.CreateFile(ctx, openai.FileRequest{
			FileName: fmt.Sprintf("paperpipe-job-%d.jsonl", j.ID), FilePath: f.Name(), Purpose: string(openai.PurposeBatch),
		})
		return err
	})
	if err != nil {
		return "", 0, nil, fmt.Errorf("batch job %d: upload input file: %w", j.ID, err)
	}
	r.log.InfoContext(ctx, "batch input uploaded", "job", j.ID, "file", file.ID, "requests", n, "bytes", file.Bytes)
	return file.ID, n, leftOut, nil
}

// uploadTimeout bounds one attempt to upload a file of size bytes: base (a request's own
// timeout) plus the time the file takes at rate bytes per second.
func uploadTimeout(base time.Duration, size int64, rate int) time.Duration {
	return base + time.Duration(float64(size)/float64(rate)*float64(time.Second))
}

// Wait polls the open jobs of the Runner's targets until every one is closed, collecting the
// results of each as it completes. A look at a batch that failed transiently is tried again at
// the next poll, up to maxFailedLooks looks in a row; any other failure of a job's step fails
// the job in this Runner. It returns when none is open but those that failed in this
// Runner, with their failures (each a *JobError, joined; one job's failure does not stop the
// others' collection), or with ctx.Err() when ctx ends: the jobs stay open in the store, and a
// later Wait resumes them. The database unavailable (paper.ErrUnavailable: a restart, a
// failover) fails neither the Wait nor a job: the wait goes on, and what could not be read or
// stored is tried again at the next poll, for as long as the outage lasts (the batches keep
// running at OpenAI meanwhile).
func (r *Runner) Wait(ctx context.Context) (Report, error) {
	delay := r.cfg.PollInterval
	// A batch Submit created and could not record, the database unavailable, is the Wait's as
	// any batch the database fails to record: resumed (as a job prepared by another run), it is
	// found by its tag, recorded and collected once the database answers.
	for id := range r.unrecorded {
		delete(r.broken, id)
		delete(r.created, id)
	}
	clear(r.unrecorded)
	for {
		jobs, err := r.openJobs(ctx)
		switch {
		case err == nil:
			r.databaseBack(ctx)
		case r.databaseDown(ctx, err):
			jobs = nil // none looked at until the database is back
		default:
			return r.report, err
		}
		jobs = slices.DeleteFunc(jobs, func(j store.BatchJob) bool { return r.broken[j.ID] != nil })
		if err == nil && len(jobs) == 0 {
			return r.report, r.jobErrors()
		}
		for i, j := range jobs {
			if !r.created[j.ID] && j.Status == store.BatchPreparing {
				if j, err = r.resume(ctx, j); err != nil {
					if r.databaseDown(ctx, err) {
						continue // its resume is tried again at the next poll
					}
					if err := r.failJob(ctx, j, err); err != nil {
						return r.report, err
					}
					continue
				}
				jobs[i] = j
			}
			if j.Status != store.BatchSubmitted {
				continue
			}
			if jobs[i], err = r.poll(ctx, j); err != nil {
				if r.databaseDown(ctx, err) {
					continue // looked at, or collected, again at the next poll
				}
				var again bool
				if again, err = r.lookAgain(ctx, j, err); again {
					continue
				}
				if err := r.failJob(ctx, j, err); err != nil {
					return r.report, err
				}
			}
		}
		if r.cfg.Progress != nil && !r.dbDown {
			r.cfg.Progress(jobs, r.report)
		}
		if !r.dbDown && !slices.ContainsFunc(jobs, func(j store.BatchJob) bool {
			return r.broken[j.ID] == nil && j.Open()
		}) {
			continue // every job seen is closed now: list again at once (none open: done)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return r.report, ctx.Err()
		case <-t.C:
		}
		delay = min(time.Duration(float64(delay)*1.5), r.cfg.MaxPollInterval)
	}
}

// databaseDown reports whether err, of a step of Wait, is the database's unavailability
// (paper.ErrUnavailable) rather than a failure of the step, while ctx lasts; it says so in the
// log at the first such error of an outage, and the step is tried again at the next poll.
func (r *Runner) databaseDown(ctx context.Context, err error) bool {
	if ctx.Err() != nil || !errors.Is(err, paper.ErrUnavailable) {
		return false
	}
	if !r.dbDown {
		r.log.WarnContext(ctx, "the database is unavailable; the wait goes on, and tries it again at each poll (the batches keep running at OpenAI)", "err", err)
	}
	r.dbDown = true
	return true
}

// databaseBack ends an outage databaseDown said, saying so.
func (r *Runner) databaseBack(ctx context.Context) {
	if r.dbDown {
		r.log.InfoContext(ctx, "the database answers again; the wait goes on")
		r.dbDown = false
	}
}

// lookAgain says whether job j, whose poll failed with err, is kept for the next poll: when the
// look at its batch failed transiently (a 5xx, a network error, a 429 past the Retrier's wait,
// an unreachable API) fewer than maxFailedLooks times in a row. It logs the failure then. A
// permanent failure (a 400; a 401, 403 or 404: the key, or a batch that is not there), the
// last of maxFailedLooks (returned saying so), or a failure of another step than the look is
// not kept: the job fails in the run.
func (r *Runner) lookAgain(ctx context.Context, j store.BatchJob, err error) (bool, error) {
	if le := (*lookError)(nil); ctx.Err() != nil || !errors.As(err, &le) {
		return false, err
	}
	switch llm.Classify(err) {
	case llm.Transient, llm.RateLimited:
	default:
		if !errors.Is(err, llm.ErrUnreachable) {
			return false, err
		}
	}
	r.failedLooks[j.ID]++
	n := r.failedLooks[j.ID]
	if n < maxFailedLooks {
		r.log.WarnContext(ctx, "look at a batch failed; trying again at the next poll", "job", j.ID,
			"openai_batch", j.OpenAIID, "failed_looks", n, "max", maxFailedLooks, "err", err)
		return true, nil
	}
	return false, fmt.Errorf("%d looks at its batch in a row failed, the last: %w", n, err)
}

// poll looks at one submitted job's batch and collects its results when it has ended.
func (r *Runner) poll(ctx context.Context, j store.BatchJob) (store.BatchJob, error) {
	var b openai.BatchResponse
	_, err := r.retry.Do(ctx, 0, func(ctx context.Context) (err error) {
		b, err = r.api.RetrieveBatch(ctx, j.OpenAIID)
		return err
	})
	if err != nil {
		return j, &lookError{fmt.Errorf("retrieve batch %s: %w", j.OpenAIID, err)}
	}
	delete(r.failedLooks, j.ID)
	seen(&j, b)
	var status string
	switch b.Status {
	case "completed":
		status = store.BatchDone
	case "failed", "expired", "cancelled":
		status = store.BatchFailed
	default:
		err := r.cfg.Store.UpdateBatchJob(ctx, j)
		if errors.Is(err, paper.ErrNotFound) {
			// Another Runner closed the job after this look at its batch: nothing to do here.
			r.log.DebugContext(ctx, "batch job closed by another run", "job", j.ID)
			return j, nil
		}
		return j, err
	}
	// One Runner collects a job: another one's Wait polling the same job skips it while it is
	// locked, and finds it closed afterwards (its results would be downloaded, stored and
	// reported twice).
	cur, release, err := r.cfg.Store.LockBatchJob(ctx, j.ID)
	if errors.Is(err, store.ErrBatchJobBusy) {
		r.log.DebugContext(ctx, "batch job is being collected by another run", "job", j.ID)
		return j, nil
	}
	if err != nil {
		return j, err
	}
	defer release.Release()
	if cur.Status != store.BatchSubmitted {
		return cur, nil
	}
	// The batch's end is recorded before its collection, which may fail (its output file
	// gone): `paperpipe batches` shows it, and `batches abandon` does not take the job's batch
	// for one still running (and billed).
	if err := r.cfg.Store.UpdateBatchJob(ctx, j); err != nil {
		return j, err
	}
	if status != store.BatchFailed {
		return r.collect(ctx, j, status)
	}
	why := fmt.Sprintf("batch job %d: OpenAI batch %s %s", j.ID, j.OpenAIID, b.Status)
	if b.Errors != nil {
		for i, e := range b.Errors.Data {
			line := 0
			if e.Line != nil {
				line = *e.Line
			}
			r.log.WarnContext(ctx, "batch error", "job", j.ID, "openai_batch", j.OpenAIID, "code", e.Code, "line", line, "message", e.Message)
			sep := "; "
			if i == 0 {
				sep = ": "
			}
			why += sep + e.Code + ": " + e.Message
		}
	}
	r.log.WarnContext(ctx, "batch ended without completing", "job", j.ID, "openai_batch", j.OpenAIID, "status", b.Status)
	j, err = r.collect(ctx, j, status)
	if err == nil {
		r.report.Failures = append(r.report.Failures, why)
	}
	return j, err
}

// resultLine is one line of a batch output or error file.
type resultLine struct {
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// collectChunk is how many output lines are stored per transaction.
const collectChunk = 500

// collect downloads a job's output and error files, stores every usable result and closes the
// job with status and the usage of its delivered requests.
func (r *Runner) collect(ctx context.Context, j store.BatchJob, status string) (store.BatchJob, error) {
	kind := KindChatBatch
	if j.Kind == paper.KindEmbedding {
		kind = KindEmbeddingBatch
	}
	usage := paper.Usage{Model: j.Model, Kind: kind}
	stored, rejected := 0, 0
	seen := map[string]bool{} // custom_ids read: a line repeated in a file is used once
	if j.OutputFileID != "" {
		bad, err := r.readLines(ctx, j.ID, j.OutputFileID, func(lines []resultLine) error {
			s, rej, u, err := r.store(ctx, j, lines, seen)
			stored += s
			rejected += rej
			usage.Requests += u.Requests
			usage.InputTokens += u.InputTokens
			usage.OutputTokens += u.OutputTokens
			return err
		})
		rejected += bad
		if err != nil {
			return j, fmt.Errorf("batch job %d: output file %s: %w", j.ID, j.OutputFileID, err)
		}
	}
	if j.ErrorFileID != "" {
		bad, err := r.readLines(ctx, j.ID, j.ErrorFileID, func(lines []resultLine) error {
			for _, l := range lines {
				if seen[l.CustomID] {
					continue
				}
				seen[l.CustomID] = true
				rejected++
				msg := ""
				if l.Error != nil {
					msg = l.Error.Code + ": " + l.Error.Message
				} else if l.Response != nil {
					msg = "HTTP " + strconv.Itoa(l.Response.StatusCode) + ": " + string(l.Response.Body)
				}
				r.log.WarnContext(ctx, "batch request failed", "job", j.ID, "custom_id", l.CustomID, "err", msg)
			}
			return nil
		})
		rejected += bad
		if err != nil {
			return j, fmt.Errorf("batch job %d: error file %s: %w", j.ID, j.ErrorFileID, err)
		}
	}
	j.Status, j.Stored = status, stored
	if err := r.cfg.Store.FinishBatchJob(ctx, j, []paper.Usage{usage}); err != nil {
		return j, err
	}
	if status == store.BatchDone {
		r.report.Done++
	} else {
		r.report.Failed++
	}
	r.report.Rejected += rejected
	if j.Kind == paper.KindChat {
		r.report.TLDRs += stored
	} else {
		r.report.Vectors += stored
	}
	r.log.InfoContext(ctx, "batch job closed", "job", j.ID, "status", status, "stored", stored, "rejected", rejected)
	r.deleteInput(ctx, j)
	return j, nil
}

// deleteInput deletes job j's input file at OpenAI, once the job is closed, or an upload of it
// that is recorded nowhere (see submit): nothing reads it any more, and
// OpenAI keeps an uploaded file until it is deleted (its output files expire), so every run's
// input (up to 190 MB a job) stayed in the project's storage. A failure is only logged: the
// file is the project's to delete then.
func (r *Runner) deleteInput(ctx context.Context, j store.BatchJob) {
	if j.InputFileID == "" {
		return
	}
	_, err := r.retry.Do(ctx, 0, func(ctx context.Context) error {
		return r.api.DeleteFile(ctx, j.InputFileID)
	})
	if err != nil {
		r.log.WarnContext(ctx, "could not delete the batch job's input file at OpenAI; it stays in the project's storage until deleted there",
			"job", j.ID, "file", j.InputFileID, "err", err)
		return
	}
	r.log.InfoContext(ctx, "batch input file deleted", "job", j.ID, "file", j.InputFileID)
}

// readLines downloads file fileID of job jobID to a temporary file, then streams its JSON
// lines to fn in chunks of collectChunk. A line that is not JSON is logged with the file and
// its number, counted in malformed and left out; only the download, reading the file and fn
// fail the call.
func (r *Runner) readLines(ctx context.Context, jobID int64, fileID string, fn func([]resultLine) error) (malformed int, err error) {
	f, err := os.CreateTemp(r.cfg.TempDir, fmt.Sprintf("paperpipe-batch-%d-result-*.jsonl", jobID))
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := r.download(ctx, fileID, f); err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	var chunk []resultLine
	n := 0
	for sc.Scan() {
		n++
		raw := sc.Bytes()
		if len(strings.TrimSpace(string(raw))) == 0 {
			continue
		}
		var l resultLine
		if err := json.Unmarshal(raw, &l); err != nil {
			malformed++
			r.log.WarnContext(ctx, "batch result line not readable: left out", "job", jobID, "file", fileID, "line", n, "err", err)
			continue
		}
		chunk = append(chunk, l)
		if len(chunk) == collectChunk {
			if err := fn(chunk); err != nil {
				return malformed, err
			}
			chunk = chunk[:0]
		}
	}
	if err := sc.Err(); err != nil {
		return malformed, fmt.Errorf("read: %w", err)
	}
	if len(chunk) > 0 {
		return malformed, fn(chunk)
	}
	return malformed, nil
}

// download writes the content of file fileID to f. Each attempt reads the whole body under
// the attempt's context, so the caller's cancellation ends it at once, and a stalled body
// (no byte for r.stall) or a download longer than downloadTimeout ends the attempt, which is
// retried from the start. The whole file is downloaded before any line is used, so a retry
// never stores or counts a line twice.
func (r *Runner) download(ctx context.Context, fileID string, f *os.File) error {
	dl := r.retry
	dl.Timeout = downloadTimeout
	_, err := dl.Do(ctx, 0, func(ctx context.Context) error {
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		watch := time.AfterFunc(r.stall, func() { cancel(errStalled) })
		defer watch.Stop()
		body, err := r.api.GetFileContent(ctx, fileID)
		if err == nil {
			_, err = io.Copy(f, progressReader{body, func() { watch.Reset(r.stall) }})
			body.Close()
		}
		if err != nil && errors.Is(context.Cause(ctx), errStalled) {
			return fmt.Errorf("%w: nothing received for %v: %w", errStalled, r.stall, err)
		}
		return err
	})
	return err
}

// progressReader calls progress after every read that returned data.
type progressReader struct {
	r        io.Reader
	progress func()
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.progress()
	}
	return n, err
}

// store validates and saves one chunk of output lines; it returns how many results were
// stored, how many lines were unusable, and the usage of the delivered requests. A line whose
// custom_id is in seen (read before in the job's files) is left out, and the others' are added.
func (r *Runner) store(ctx context.Context, j store.BatchJob, lines []resultLine, seen map[string]bool) (stored, rejected int, usage paper.Usage, err error) {
	ids := make([]string, 0, len(lines))
	for _, l := range lines {
		if id, _, _, ok := parseCustomID(l.CustomID); ok {
			ids = append(ids, id)
		}
	}
	items, err := r.cfg.Store.BatchItemsOf(ctx, j.ID, ids)
	if err != nil {
		return 0, 0, usage, err
	}
	// An answer of a paper the job no longer holds: its paper was removed while the job was
	// open (its item went with it), which is what was asked, or it is not the job's.
	var unknown []string
	for _, id := range ids {
		if _, ok := items[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	missing, err := r.cfg.Store.MissingPapers(ctx, unknown)
	if err != nil {
		return 0, 0, usage, fmt.Errorf("look up the papers of answers not in the job: %w", err)
	}
	removed := make(map[string]bool, len(missing))
	for _, id := range missing {
		removed[id] = true
	}
	var (
		sums     []paper.Summary
		embs     []paper.Embedding
		withheld []store.Withheld
	)
	reject := func(l resultLine, why string) {
		rejected++
		r.log.WarnContext(ctx, "batch answer not used", "job", j.ID, "custom_id", l.CustomID, "reason", why)
	}
	// withhold records that the API will not give paper id's TL;DR of its text under the job's
	// target: the same request would buy the same refusal at every run.
	withhold := func(l resultLine, id, hash, why string) {
		reject(l, why)
		withheld = append(withheld, store.Withheld{PaperID: id, Model: j.Model, PromptVersion: j.PromptVersion,
			ContentHash: hash, Reason: why})
	}
	for _, l := range lines {
		if seen[l.CustomID] {
			r.log.WarnContext(ctx, "batch answer repeated in the output: used once", "job", j.ID, "custom_id", l.CustomID)
			continue
		}
		seen[l.CustomID] = true
		id, _, kind, ok := parseCustomID(l.CustomID)
		it, known := items[id]
		// The answer is stored at the item's hash, not the custom_id's: the store moves an
		// item with its paper when it re-keys it to its text's new form (see
		// paper.Abstract.LegacyHash), and the answer is of that same text. The text of a
		// paper changed otherwise keeps its item's hash, and the answer is stale as before.
		hash := it.ContentHash
		switch {
		case !ok || kind != j.Kind:
			reject(l, "custom_id not made by this job")
			continue
		case l.Response == nil || l.Response.StatusCode != http.StatusOK:
			reject(l, "request failed")
			continue
		}
		// An answer is billed, its result used or not: it counts in usage before it is judged.
		unused := func() {
			if removed[id] {
				r.report.Removed++
				r.log.InfoContext(ctx, "batch answer not stored: its paper was removed", "job", j.ID, "custom_id", l.CustomID)
				return
			}
			reject(l, "paper not in the job")
		}
		if j.Kind == paper.KindChat {
			var resp openai.ChatCompletionResponse
			err := json.Unmarshal(l.Response.Body, &resp)
			in, out := llm.Billed(resp.Usage)
			if err == nil {
				usage.Requests++
				usage.InputTokens += in
				usage.OutputTokens += out
			}
			switch {
			case err != nil || len(resp.Choices) == 0:
				reject(l, "chat completion without a choice")
				continue
			case !known:
				unused()
				continue
			}
			if why := llm.Unfinished(resp.Choices[0].FinishReason); why != "" {
				// The start of a sentence, which may pass every check of a TL;DR. The content
				// filter's is permanent, as the worker's client holds it: the same text and prompt
				// are withheld again.
				if resp.Choices[0].FinishReason == openai.FinishReasonContentFilter {
					withhold(l, id, hash, "TL;DR "+why)
				} else {
					reject(l, "TL;DR "+why)
				}
				continue
			}
			if msg := resp.Choices[0].Message; strings.TrimSpace(msg.Content) == "" && strings.TrimSpace(msg.Refusal) != "" {
				withhold(l, id, hash, llm.Refused(msg.Refusal))
				continue
			}
			text, valid, err := r.cfg.Chat.Accept(resp.Choices[0].Message.Content, it.Abstract)
			if err != nil {
				reject(l, err.Error())
				continue
			}
			sums = append(sums, paper.Summary{
				PaperID: id, Text: text, Model: j.Model, PromptVersion: j.PromptVersion, ContentHash: hash,
				Validation: valid,
				Usage: paper.Usage{Model: j.Model, Kind: KindChatBatch, Requests: 1,
					InputTokens: in, OutputTokens: out},
			})
			continue
		}
		var resp openai.EmbeddingResponse
		err := json.Unmarshal(l.Response.Body, &resp)
		if err == nil {
			in, _ := llm.Billed(resp.Usage)
			usage.Requests++
			usage.InputTokens += in
		}
		switch {
		case err != nil || len(resp.Data) != 1:
			reject(l, "embedding response without exactly one vector")
			continue
		case !known:
			unused()
			continue
		}
		vec := resp.Data[0].Embedding
		if len(vec) != r.cfg.Embed.Space.Dimensions {
			reject(l, fmt.Sprintf("vector of %d dimensions, space %s holds %d", len(vec), r.cfg.Embed.Space.Name(), r.cfg.Embed.Space.Dimensions))
			continue
		}
		// The zero vector is left to the store, which refuses it (see saveEach).
		if bad, _ := paper.VectorFault(vec); bad >= 0 {
			reject(l, "vector holds NaN or infinite values")
			continue
		}
		embs = append(embs, paper.Embedding{PaperID: id, Vector: vec, ContentHash: hash, Truncated: it.Truncated})
	}
	// Saved even when ctx ended meanwhile: the answers are paid for.
	sctx := context.WithoutCancel(ctx)
	refused := func(id string, err error) {
		rejected++
		r.log.WarnContext(ctx, "batch answer refused by the store", "job", j.ID, "paper", id, "err", err)
	}
	if len(withheld) > 0 {
		if _, err := r.cfg.Store.RecordWithheld(sctx, withheld); err != nil {
			return stored, rejected, usage, fmt.Errorf("record the TL;DRs the API withheld: %w", err)
		}
		r.report.Withheld += len(withheld)
		r.log.WarnContext(ctx, "TL;DRs the API will not give recorded: not asked again for the same text and prompt (paperpipe batches withheld)",
			"job", j.ID, "papers", len(withheld))
	}
	n, err := saveEach(sums, func(s []paper.Summary) (int, error) {
		return r.waitLocked(ctx, j, func() (int, error) { return r.cfg.Store.SaveSummaries(sctx, s) })
	}, func(s paper.Summary, err error) { refused(s.PaperID, err) })
	stored += n
	if err != nil {
		return stored, rejected, usage, err
	}
	n, err = saveEach(embs, func(e []paper.Embedding) (int, error) {
		return r.waitLocked(ctx, j, func() (int, error) { return r.cfg.Store.SaveEmbeddings(sctx, j.SpaceID, e) })
	}, func(e paper.Embedding, err error) { refused(e.PaperID, err) })
	stored += n
	return stored, rejected, usage, err
}

// lockedWait is how a collection waits for paper rows another session holds locked (a save
// that fails with paper.ErrLocked, after the store's RowLockTimeout): it tries again every
// pause, up to tries times — a few minutes, for an operator's transaction to end. Then the job
// fails in this run, its results still collectable by the next.
var lockedWait = struct {
	tries int
	pause time.Duration
}{tries: 24, pause: 5 * time.Second}

// waitLocked runs save, and runs it again while it fails for rows another session holds
// locked (see lockedWait) and ctx lasts.
func (r *Runner) waitLocked(ctx context.Context, j store.BatchJob, save func() (int, error)) (int, error) {
	for try := 1; ; try++ {
		n, err := save()
		if !errors.Is(err, paper.ErrLocked) {
			return n, err
		}
		if try > lockedWait.tries || ctx.Err() != nil {
			return n, fmt.Errorf("%w; its results are still collectable: run the same command again once the other session's transaction has ended", err)
		}
		r.log.WarnContext(ctx, "batch results wait for rows another session holds locked", "job", j.ID, "try", try, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(lockedWait.pause):
		}
	}
}

// saveEach saves recs in one call of save; when the store refuses it for a record it cannot
// hold (paper.ErrInvalid: a zero vector, a value beyond a halfvec space's range, text
// PostgreSQL cannot store; paper.ErrSpaceMismatch), it saves them one by one, passing each one
// refused so to refuse, as the worker rejects such a paper, so that the others are stored.
func saveEach[T any](recs []T, save func([]T) (int, error), refuse func(T, error)) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	n, err := save(recs)
	if !errors.Is(err, paper.ErrInvalid) && !errors.Is(err, paper.ErrSpaceMismatch) {
		return n, err
	}
	if len(recs) == 1 {
		refuse(recs[0], err) // refused alone already: no second try
		return 0, nil
	}
	n = 0
	for _, rec := range recs {
		k, err := save([]T{rec})
		switch {
		case errors.Is(err, paper.ErrInvalid) || errors.Is(err, paper.ErrSpaceMismatch):
			refuse(rec, err)
		case err != nil:
			return n, err
		}
		n += k
	}
	return n, nil
}

// seen records on job j what a look at its batch b found: its status, request counts, and
// output and error files.
func seen(j *store.BatchJob, b openai.BatchResponse) {
	j.OpenAIStatus = b.Status
	j.Completed, j.Failed = b.RequestCounts.Completed, b.RequestCounts.Failed
	if b.OutputFileID != nil {
		j.OutputFileID = *b.OutputFileID
	}
	if b.ErrorFileID != nil {
		j.ErrorFileID = *b.ErrorFileID
	}
}
