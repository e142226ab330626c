package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/paper"
)

// Summarizer writes a one-sentence TL;DR of an abstract.
type Summarizer interface {
	// Model names the model that writes the TL;DRs; stored with each one.
	Model() string
	// PromptVersion names the prompt; stored with each TL;DR.
	PromptVersion() string
	// Summarize returns the TL;DR of a. Errors wrapping paper.ErrPermanent are not retried;
	// with an error, the Summary's Usage may hold what the failed attempt was billed.
	Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error)
}

// Embedder turns abstracts into vectors of one embedding space.
type Embedder interface {
	// Space names the model, dimensions and input template of the vectors.
	Space() paper.Space
	// Embed returns one embedding per abstract, in order, and what the calls cost.
	// Errors wrapping paper.ErrPermanent are not retried.
	Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error)
}

// Store is the ledger of papers and of the work done on them.
type Store interface {
	// UpsertPapers records papers and reports, per paper and in order, what work is missing.
	UpsertPapers(ctx context.Context, papers []paper.Abstract, w paper.Work) ([]paper.Pending, error)
	// SaveSummaries stores TL;DRs and returns how many were current and saved.
	SaveSummaries(ctx context.Context, sums []paper.Summary) (int, error)
	// SaveEmbeddings stores vectors of one space and returns how many were current and saved.
	SaveEmbeddings(ctx context.Context, spaceID int64, embs []paper.Embedding) (int, error)
	// Removed reports whether the paper was removed (paperpipe remove) and not stored again.
	Removed(ctx context.Context, id string) (bool, error)
	// LastRemoval is the time of the latest such removal; the zero time when there is none.
	LastRemoval(ctx context.Context) (time.Time, error)
	// RecordUsage adds API requests and tokens to the usage ledger.
	RecordUsage(ctx context.Context, u []paper.Usage) error
	// RecordWithheld records TL;DRs the API will not give (a paper.WithheldError's): no later
	// intake (UpsertPapers) or re-processing run asks for them again while the paper's text and
	// the target are the same. It returns how many were recorded.
	RecordWithheld(ctx context.Context, ws []paper.Withheld) (int, error)
	// ForgetWithheld deletes the records of the papers' texts under w's chat model and prompt
	// version, so that UpsertPapers asks for their TL;DRs again (a replayed dead letter).
	ForgetWithheld(ctx context.Context, papers []paper.Abstract, w paper.Work) (int, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
}

// MaxEmbedBatch bounds an embedding batch (WorkerConfig.EmbedBatch), and with it the paid
// vectors a worker killed between an embedding answer and its commit loses with each batch in
// flight (a batch smaller than BatchSize waits for the one in flight; see Run). A batch of
// 200, gathered while its messages waited for chat slots, once took all 200 with a kill -9 in
// the chaos case, 20% of its 1,000 papers. At 64, one intake batch, a full batch's request
// costs 1/64 = 0.016 requests per abstract, and a kill loses at most 64 vectors per batch in
// flight (its save, ~100 ms of HNSW inserts, is most of the window).
const MaxEmbedBatch = 64

// DefaultEmbedLinger is WorkerConfig.EmbedLinger's default. At 1 s, a worker sends at most
// about one partly filled embedding request a second: at 80 abstracts a second without a
// backlog, requests of ~64 inputs (0.016 requests per abstract) where the 10 ms Linger sent
// ~18 (0.053; issue 6's paced benchmark). A request costs one of the account's requests per
// minute whatever its inputs, and its tokens are billed alike either way.
const DefaultEmbedLinger = time.Second

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Consumer is the durable consumer to pull from. Defaults to ConsumerNew.
	Consumer string
	// SpaceID is the embedding space the vectors are stored in. Required with an Embedder,
	// zero without one.
	SpaceID int64
	// OtherSpace, when set, is asked about each message queued for another embedding space
	// than SpaceID (HeaderSpace: the copies of the papers a newly active space lacks, which
	// a process following that space queues). When it reports true, the worker hands the
	// message back for that space's workers instead of taking it for its own space, where the
	// paper may lack nothing and the copy would be acknowledged, its paper never reaching the
	// space it was queued for: a worker that follows the active space and has not noticed yet
	// that it moved there. When it reports false, or is nil, the message is processed as any
	// other. The questions of a micro-batch are asked within one IntakeTimeout: one whose ctx
	// ends is to answer false.
	OtherSpace func(ctx context.Context, spaceID int64) bool
	// Concurrency bounds the TL;DR requests in flight. Defaults to 16.
	Concurrency int
	// MaxInFlight bounds the messages held at once: fetched and not yet settled. It is larger
	// than Concurrency so that embedding batches can gather many abstracts while TL;DRs are
	// being written. Defaults to max(4×Concurrency, 256).
	MaxInFlight int
	// BatchSize bounds the messages taken from the consumer and recorded in one transaction.
	// Defaults to 64.
	BatchSize int
	// EmbedBatch bounds the abstracts gathered, across messages, into one Embed call; the
	// embedder splits it further by its own request limits. It is at most MaxEmbedBatch
	// whatever is set. Defaults to MaxEmbedBatch.
	EmbedBatch int
	// Linger is how long a micro-batch (intake, embedding) waits to fill once it has its first
	// item (TL;DR saves do not wait: they are group commits, see Run). An embedding batch
	// counts Linger only from its first abstract whose message is not waiting for a chat slot,
	// and then, while it holds fewer than BatchSize abstracts, also waits for the previous
	// embedding batch to be embedded and saved (at most half of MsgTimeout in all): it gathers
	// while its members would wait anyway, so the busier the worker or its database, the fewer
	// and fuller the embedding requests. A lone abstract waits Linger (EmbedLinger once the
	// embedder bills requests). Defaults to 10ms.
	Linger time.Duration
	// EmbedLinger replaces Linger for embedding batches once the embedder has billed a
	// request (an answered batch's Usage.Requests > 0; the offline models bill none, and go
	// on with Linger): without a backlog, a batch then waits up to EmbedLinger, from its first
	// abstract whose TL;DR has started, for more abstracts before its request goes — fewer,
	// fuller requests at low load (at most one partly filled request per EmbedLinger) for up
	// to EmbedLinger more latency per paper, mostly spent beside its TL;DR request. A full
	// batch (EmbedBatch) goes at once, and a drain sends what is gathered without waiting;
	// ExitWhenIdle runs (a backlog fills their batches) and the probes after a pause use
	// Linger. A value above half the MsgTimeout is lowered to it, with a warning (a batch goes
	// then at the latest: the other half is its request's). Defaults to DefaultEmbedLinger; a
	// value below Linger means Linger.
	EmbedLinger time.Duration
	// FetchWait is how long one pull request waits for messages. Defaults to 1 second.
	FetchWait time.Duration
	// RecheckAfter: a message whose TL;DR request starts more than RecheckAfter after its
	// paper was recorded (it waited for a chat slot among the MaxInFlight held) asks the store
	// whether its paper was removed meanwhile (Store.Removed: paperpipe remove), and buys no
	// TL;DR for it. A wait shorter than that is the intake's answer's. Defaults to 1 second;
	// negative: never asked again.
	RecheckAfter time.Duration
	// IntakeTimeout bounds recording a micro-batch in the store (UpsertPapers). A database that
	// went silent without a reset (a failover, a firewall dropping the flow) would otherwise hold
	// the batch, its messages marked in progress, for as long as TCP takes to give up (~15
	// minutes) or for ever behind a proxy. On the timeout the messages go back to the queue,
	// never dead-lettered for it (handBack): the database's problem, not the papers'. The worker
	// pauses when the database does not answer a ping either (gone silent; the error is marked
	// paper.ErrUnavailable). Defaults to 1 minute.
	IntakeTimeout time.Duration
	// MsgTimeout bounds the API work for one message — the TL;DR request and the embedding
	// batch it joins, retries and rate-limit waits included — from the moment that work
	// starts. It is kept below the consumer's AckWait: work starts only while the worker's
	// hold on the message is fresh (an InProgress the server is known to have received — a
	// flush after it was answered — was sent less than AckWait−MsgTimeout ago; work on a
	// message whose hold is older waits for it to be renewed, and is not started on one that
	// lapsed meanwhile, see errHoldLapsed), so the work is
	// over before the server could deliver the message to anyone else, even if NATS became
	// unreachable meanwhile or the connection went silent. Defaults to half the
	// AckWait; a value above AckWait−2×ProgressInterval is lowered to it. The AckWait is the
	// consumer's as the server has it, followed while the worker runs (see Run).
	MsgTimeout time.Duration
	// ProgressInterval is how often every message the worker holds — waiting for a slot, for
	// the database, for its API calls, or for its results to be saved — is marked InProgress,
	// which restarts the server's AckWait; it is marked once at once too, as the worker takes it
	// (see startHold). Defaults to a quarter of the consumer's AckWait; a
	// value of half of it or more is an error at start, and lowered to a quarter when the
	// consumer's AckWait is lowered while the worker runs.
	ProgressInterval time.Duration
	// SweepInterval is how often the worker looks for messages its consumer gave up on after
	// MaxDeliver deliveries without an acknowledgement (the worker holding the last delivery
	// died), in case it missed JetStream's advisory; see Run. A sweep acts only while the
	// consumer has nothing delivered and unacknowledged. Defaults to 30 seconds.
	SweepInterval time.Duration
	// DrainTimeout is how long Run lets in-flight messages finish after its context is done
	// before it cancels them and returns them to the queue. Defaults to 30 seconds.
	DrainTimeout time.Duration
	// Backoff gives the redelivery delay after the n-th failed delivery (n ≥ 1), and the
	// length of the n-th pause in a row when the API refuses the account or the configuration,
	// or the API or the database cannot be reached (see Run). Defaults to DefaultBackoff: 2s·2^(n-1), capped at 5 minutes, with equal jitter.
	Backoff func(n int) time.Duration
	// ExitWhenIdle makes Run return once the consumer has nothing pending or unacknowledged;
	// or, with an error wrapping llm.ErrAccount (paper.ErrUnavailable), when the API refuses
	// the account or the configuration, or cannot be reached (the database cannot be reached or
	// cannot write): a run would wait for it to be fixed; the messages stay queued.
	ExitWhenIdle bool
	// APILimitedBy, when set, reports until when the API holds every request of the process
	// (llm.Limiter.LimitedBy: a 429's Retry-After, x-ratelimit headers, or a 503's Retry-After,
	// which unavailable tells apart): not a pause of the worker, whose messages wait for it and
	// go back to the queue, but what State reports while it lasts. Nil: never.
	APILimitedBy func() (until time.Time, unavailable bool)
	// Logger receives one line per failure. Defaults to discarding. The lines do not name the
	// consumer: the caller's logger does (paperpipe's commands give it With("consumer", …)),
	// and a line that named it again carried the key twice.
	Logger *slog.Logger
}

func (c *WorkerConfig) setDefaults() {
	if c.Consumer == "" {
		c.Consumer = ConsumerNew
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 64
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = max(4*c.Concurrency, 256)
	}
	if c.BatchSize > c.MaxInFlight {
		c.BatchSize = c.MaxInFlight
	}
	if c.EmbedBatch <= 0 || c.EmbedBatch > MaxEmbedBatch {
		c.EmbedBatch = MaxEmbedBatch
	}
	if c.Linger <= 0 {
		c.Linger = 10 * time.Millisecond
	}
	if c.RecheckAfter == 0 {
		c.RecheckAfter = time.Second
	}
	if c.EmbedLinger == 0 {
		c.EmbedLinger = DefaultEmbedLinger
	}
	c.EmbedLinger = max(c.EmbedLinger, c.Linger)
	if c.FetchWait <= 0 {
		c.FetchWait = time.Second
	}
	if c.IntakeTimeout <= 0 {
		c.IntakeTimeout = time.Minute
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 30 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// DefaultBackoff is 2s·2^(n-1), capped at 5 minutes, with equal jitter: a delay between half
// of it and all of it.
func DefaultBackoff(n int) time.Duration {
	d := 2 * time.Second << min(max(n-1, 0), 8)
	d = min(d, 5*time.Minute)
	return d/2 + rand.N(d/2+1)
}

// WorkerStats counts what a Worker has done since it started.
type WorkerStats struct {
	Received   int64 `json:"received"`   // messages delivered to this worker
	Acked      int64 `json:"acked"`      // messages whose work is stored
	Skipped    int64 `json:"skipped"`    // acked with nothing to do: all results already stored
	Retried    int64 `json:"retried"`    // negatively acknowledged (or, its hold lapsed, left) for a later redelivery
	Dead       int64 `json:"dead"`       // terminated and copied to the dead-letter stream
	Reaped     int64 `json:"reaped"`     // given up by the server after MaxDeliver, then dead-lettered (or, its results stored, removed) here
	Paused     int64 `json:"paused"`     // pauses: the API refused the account or the configuration, could not be reached, failed at TLS, was loading its model or failed every request
	DBPaused   int64 `json:"db_paused"`  // pauses: the database could not be reached or could not write
	TLDRs      int64 `json:"tldrs"`      // TL;DRs stored
	Embeddings int64 `json:"embeddings"` // embeddings stored
}

// Worker processes messages from one durable consumer.
type Worker struct {
	cfg   WorkerConfig
	js    jetstream.JetStream
	store Store
	sum   Summarizer
	emb   Embedder
	work  paper.Work
	log   *slog.Logger

	draining chan struct{} // closed when Run's context is done
	stopping atomic.Bool   // draining is closed (read by State, from other goroutines)
	// tm: the consumer's AckWait and MaxDeliver as the server has them and what they bound
	// (MsgTimeout, ProgressInterval), followed while the worker runs (see follow).
	tm atomic.Pointer[workerTimings]
	// reconnected is closed, and replaced, each time the NATS connection is back after a loss
	// (see watchReconnects): the holds are renewed at once.
	reconnected atomic.Pointer[chan struct{}]
	// maxPull is the consumer's MaxRequestBatch as last read (0: none): the most messages one
	// pull request may ask for, which the server refuses beyond (see pullSize).
	maxPull atomic.Int64
	// maxWait is the consumer's MaxRequestExpires as last read (0: none): the longest one pull
	// request may wait, which the server refuses beyond (see pullWait).
	maxWait    atomic.Int64
	chat       chan struct{} // one token per TL;DR request in flight
	embedBills atomic.Bool   // the embedder has billed a request: embedding batches wait EmbedLinger
	noSpace    atomic.Bool   // the worker's embedding space was dropped, and it said so
	pause      pauses
	// stalls: the writes to the database under way, which State reports when one waits.
	stalls stalls
	// held is the messages fetched and not yet settled, which State reports.
	held atomic.Int64
	// removals is the archive's latest removal as last read (see removedSince).
	removals struct {
		mu     sync.Mutex
		read   time.Time // when it was read; zero: never
		latest time.Time // the latest removal then; zero: none
	}
	// unrecorded is API usage the ledger did not take (the database was down): added to the
	// next RecordUsage, summed per model and kind.
	unrecorded struct {
		mu sync.Mutex
		u  map[[2]string]paper.Usage
	}
	pulls struct {
		mu        sync.Mutex
		open      bool           // a pull request of this worker is open
		held      []heldRequeue  // messages to requeue once it ends (see requeueAfterPull)
		requeuing sync.WaitGroup // those requeues running (see pullOpen); Run's drain waits for them
	}
	stats struct {
		received, acked, skipped, retried, dead, reaped, paused, dbPaused, tldrs, embeddings atomic.Int64
	}
}

// NewWorker returns a Worker. The streams and consumers must exist (see Setup). A nil
// Summarizer makes a worker that only fills the embedding space (a re-embedding run), a nil
// Embedder one that only writes TL;DRs (a re-summarizing run); not both.
func NewWorker(js jetstream.JetStream, st Store, sum Summarizer, emb Embedder, cfg WorkerConfig) (*Worker, error) {
	cfg.setDefaults()
	switch {
	case sum == nil && emb == nil:
		return nil, errors.New("worker: a Summarizer, an Embedder or both are required")
	case emb != nil && cfg.SpaceID == 0:
		return nil, errors.New("worker: SpaceID is required with an Embedder")
	case emb == nil && cfg.SpaceID != 0:
		return nil, fmt.Errorf("worker: SpaceID %d without an Embedder", cfg.SpaceID)
	}
	work := paper.Work{SpaceID: cfg.SpaceID}
	if sum != nil {
		work.Model, work.PromptVersion = sum.Model(), sum.PromptVersion()
	}
	return &Worker{cfg: cfg, js: js, store: st, sum: sum, emb: emb, log: cfg.Logger, work: work,
		chat: make(chan struct{}, cfg.Concurrency)}, nil
}

// Stats returns a snapshot of the worker's counters.
func (w *Worker) Stats() WorkerStats {
	s := &w.stats
	return WorkerStats{
		Received: s.received.Load(), Acked: s.acked.Load(), Skipped: s.skipped.Load(),
		Retried: s.retried.Load(), Dead: s.dead.Load(), Reaped: s.reaped.Load(), Paused: s.paused.Load(), DBPaused: s.dbPaused.Load(), TLDRs: s.tldrs.Load(),
		Embeddings: s.embeddings.Load(),
	}
}

// Run pulls and processes messages until ctx is done (or, with ExitWhenIdle, until the
// consumer is empty), and returns nil then (a ctx done before it started included). When ctx
// is done it stops pulling, lets in-flight messages finish for up to DrainTimeout, then
// cancels the rest and returns them to the queue (see settleFailure). A message is
// acknowledged only after its results are committed, so a crash at any point loses nothing:
// the message is redelivered and finds its finished parts in the store.
//
// A message whose last allowed delivery is never settled (its worker died) is given up by the
// server, which announces it on $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES; Run listens (one
// worker per consumer gets each advisory) and, since advisories are not stored, also sweeps
// for such messages at start, every SweepInterval and before an ExitWhenIdle return (a sweep
// acts only while the consumer has nothing unacknowledged). Each one is dead-lettered with the reason ReasonMaxDeliveries — or, when its
// results turn out to be stored already, simply removed — and deleted from the work queue.
//
// When the API refuses the account or the configuration (llm.ErrAccount: a bad or revoked key,
// an unknown model, a wrong base URL, an exhausted quota), no paper is at fault: Run pauses
// pulling for Backoff(n) at the n-th such pause in a row, logging each pause once with the
// API's answer; the messages it holds go back to the queue without an API call (one on its last
// delivery as a new message, as at a shutdown), so none is dead-lettered for it however long
// it lasts. After a pause it takes one message at a time until one goes through, then resumes.
// An ExitWhenIdle worker returns at the first pause instead, with the error. So it does when
// the API cannot be reached (llm.ErrUnreachable) or no TLS connection to it can be made
// (llm.ErrTLS: a certificate of a CA the machine does not trust), and when the database cannot be reached or
// cannot write (paper.ErrUnavailable: refused or dropped connections, a restart, a full disk).
// So it does, too, when the API fails every request: its calls for two papers in a row
// answered 5xx at every attempt, or answered nothing within the MsgTimeout (llm.ErrServerFailing), none answered between them — except
// that the one message tried after each such pause uses a delivery when it fails again with
// an answer that may be its input's (a 500, none in time: not llm.ErrServerDown), so that
// papers the server alone fails on still end as dead letters (see serverDown).
//
// Workers on several machines may have started with different settings: Run reads the
// consumer every ProgressInterval and follows its AckWait and MaxDeliver (or the shorter or
// lower one announced to replace it, see Setup) as the server has them — the renewal interval,
// the MsgTimeout of work starting from then on and the last delivery's handling change with
// them, and the holds are renewed at once — and sets an announced one once its time has come.
func (w *Worker) Run(ctx context.Context) error {
	cons, err := w.lookUp(ctx)
	if err != nil && ctx.Err() != nil {
		return nil // stopped before it started: nothing to drain
	}
	if err != nil {
		return fmt.Errorf("worker: consumer %s: %w", w.cfg.Consumer, err)
	}
	info := cons.CachedInfo()
	if err := w.setTimeouts(consumerAckWait(info.Config), consumerMaxDeliver(info.Config)); err != nil {
		return err
	}
	if d, at := pendingAckWait(info.Config); d > 0 {
		w.log.Info("the consumer's AckWait is being lowered; this worker holds its messages by the shorter one already",
			"ack_wait", info.Config.AckWait, "to", d, "at", at)
	}
	if n, at := pendingMaxDeliver(info.Config); n > 0 {
		w.log.Info("the consumer's MaxDeliver is being lowered; this worker counts deliveries by the lower one already",
			"max_deliver", info.Config.MaxDeliver, "to", n, "at", at)
	}
	w.readPullLimits(info.Config)
	stopWatch := w.watchReconnects()
	defer stopWatch()
	stopFollow := w.follow(ctx, cons)
	defer stopFollow()
	stopReaper := w.startReaper(ctx, cons)
	defer stopReaper()

	// Once ctx is done the worker drains: messages whose API calls have not started go back to
	// the queue at once — those waiting for the API's rate limit included (llm.WithWaitStop:
	// a 429 with Retry-After: 3600 otherwise held the drain for its pause) —; calls in flight
	// finish and are saved, for up to DrainTimeout, in workCtx, which outlives ctx.
	w.draining = make(chan struct{})
	limitWaits, stopLimitWaits := context.WithCancelCause(context.Background())
	defer stopLimitWaits(nil)
	drain := sync.OnceFunc(func() {
		w.stopping.Store(true)
		close(w.draining)
		stopLimitWaits(errDraining)
	})
	stopDrainWatch := context.AfterFunc(ctx, drain)
	defer stopDrainWatch()
	workCtx, cancelWork := context.WithCancel(llm.WithWaitStop(context.WithoutCancel(ctx), limitWaits))
	defer cancelWork()
	// An embedding batch gathers while its members wait for a chat slot (see process) and,
	// until it holds an intake batch's worth (BatchSize), while the previous one is being
	// embedded and saved; for at most half a message's work time: the other half is left for
	// the request.
	embedB := newBatcher(workCtx, batcherConfig{Max: w.cfg.EmbedBatch, Linger: w.cfg.Linger, MaxHoldNow: func() time.Duration { return w.timings().msgTimeout / 2 },
		Serial: true, Enough: w.cfg.BatchSize, LingerNow: w.embedLinger}, w.flushEmbeddings)
	// TL;DR saves are group commits: a save goes at once when none is running, and the TL;DRs
	// that come back meanwhile go together when it is done. A TL;DR keeps its chat slot until
	// it is saved (see summarize), so every millisecond a save waits is a millisecond of every
	// slot: a Linger here cost ~10 ms of each 400 ms TL;DR at C=64.
	saveB := newBatcher(workCtx, batcherConfig{Max: w.cfg.BatchSize, Serial: true}, w.flushSummaries)

	slots := make(chan struct{}, w.cfg.MaxInFlight)
	var inflight sync.WaitGroup
	release := func(n int) {
		for range n {
			<-slots
		}
	}
	// held counts the messages in hand (State): the slots also count those taken for a pull
	// request and, after a pause, all of them while the worker waits for what it holds to settle.
	settled := func(n int) {
		w.held.Add(-int64(n))
		release(n)
	}
	dispatch := func(msgs []jetstream.Msg) {
		w.held.Add(int64(len(msgs)))
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			w.handleBatch(workCtx, msgs, embedB, saveB, settled)
		}()
	}

	runErr := w.pull(ctx, cons, slots, release, dispatch)
	drain() // ctx is done, or an ExitWhenIdle worker stops: idle, or at a pause
	// The embedding batch being gathered goes now rather than after its linger (a second by
	// default): its members' TL;DRs are bought, and the drain waits for their vectors. A
	// batch begun later (a message already past its drain check) lingers only Linger.
	embedB.startPending()

	done := make(chan struct{})
	go func() { inflight.Wait(); embedB.Wait(); saveB.Wait(); w.pulls.requeuing.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(w.cfg.DrainTimeout):
		w.log.Warn("drain timeout: returning unfinished messages to the queue", "timeout", w.cfg.DrainTimeout)
		cancelWork()
		<-done
	}
	w.flushUsage(ctx) // what the ledger has not taken yet, if any
	return runErr
}

// lookUp looks the worker's consumer up, again while NATS cannot answer: the embedded server is
// changing hands (the process that ran it stopped and another takes it over: its JetStream stops
// first, "JetStream not enabled", then no server answers), a NATS server restarts, a cluster
// elects a leader. The worker's pulls go on through such moments; its lookup at the start
// failed the command instead ("worker: consumer workers: context deadline exceeded" after the
// request's 5 s, for a worker started as the process running the server stopped). A consumer
// or stream that does not exist, or a refusal, is an answer, returned at once.
func (w *Worker) lookUp(ctx context.Context) (jetstream.Consumer, error) {
	for n := 1; ; n++ {
		cons, err := w.js.Consumer(ctx, StreamPapers, w.cfg.Consumer)
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return cons, err
		}
		w.log.Warn("consumer lookup failed; retrying", "consumer", w.cfg.Consumer, "err", err)
		if !sleepCtx(ctx, DefaultBackoff(min(n, 3))) {
			return nil, err
		}
	}
}

// unanswered reports whether err, a JetStream request's, is one met while NATS cannot answer
// for now (see lookUp): no answer in time, no responders, JetStream stopping or not running yet,
// or a cluster without a leader (503).
func unanswered(err error) bool {
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok && apiErr.Code == http.StatusServiceUnavailable {
		return true
	}
	return NoAnswer(err)
}

// NoAnswer reports whether err, a JetStream request's, got no answer from a server able to give
// one: none in time, no responders, JetStream stopping or not running yet. The commands' retry
// across the embedded server's takeover asks it too (with a dropped connection).
func NoAnswer(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
}

// pull fetches messages while slots are free and hands them out in micro-batches.
func (w *Worker) pull(ctx context.Context, cons jetstream.Consumer, slots chan struct{}, release func(int), dispatch func([]jetstream.Msg)) error {
	var failed pullFailures
	for ctx.Err() == nil {
		if w.cfg.ExitWhenIdle && w.pause.active.Load() {
			// At the first refusal, whether its pause is still running or not.
			return w.pauseErr()
		}
		if d := w.pausedFor(); d > 0 {
			if !sleepCtx(ctx, d) {
				return nil
			}
			continue
		}
		var held int
		if w.probing() {
			// After a pause, until the API (or the database) answers: one message at a time,
			// once those held before have settled.
			if !waitSettled(ctx, slots) {
				return nil
			}
			if !w.probing() {
				continue
			}
			select {
			case slots <- struct{}{}:
				held = 1
			case <-ctx.Done():
				return nil
			}
		} else {
			var ok bool
			if held, ok = w.holdSlots(ctx, slots); !ok {
				return nil
			}
			if w.pausedFor() > 0 {
				release(held)
				continue
			}
		}
		w.pullOpen(true)
		got := 0
		batch, err := cons.Fetch(held, jetstream.FetchMaxWait(w.pullWait()))
		if err == nil {
			got, err = w.gather(batch, dispatch)
		}
		w.pullOpen(false)
		release(held - got)
		if err != nil {
			if c, cerr := w.recheckConsumer(ctx, err); cerr != nil {
				return cerr
			} else if c != nil {
				cons = c
			}
			// A MaxRequestBatch or MaxRequestExpires lowered since it was read refuses the
			// request ("Exceeded MaxRequestBatch of 8", "Exceeded MaxRequestExpires of 500ms"):
			// the next one asks for no more, and waits no longer, than the consumer allows.
			if strings.Contains(err.Error(), "Exceeded MaxRequest") {
				if info, ierr := cons.Info(ctx); ierr == nil {
					w.readPullLimits(info.Config)
				}
			}
			w.log.Warn("pull request failed; retrying", "err", err)
			if !sleepCtx(ctx, failed.wait(err)) {
				return nil
			}
			continue
		}
		failed = 0
		if got == 0 && w.cfg.ExitWhenIdle && len(slots) == 0 {
			idle, err := w.idle(ctx, cons)
			if err != nil && ctx.Err() != nil {
				// Stopped while its pull request waited: nothing failed, and nothing to say.
				return nil
			}
			if err != nil {
				w.log.Warn("consumer info failed", "err", err)
			}
			if idle {
				// Messages given up while no worker listened for the advisory go now, not at
				// the next run.
				w.sweep(ctx, cons)
				return nil
			}
		}
	}
	return nil
}

// pullFailures counts a worker's pull requests failed in a row.
type pullFailures int

// wait counts a pull request that failed with err and returns how long to wait before the
// next: a backoff growing with the failures in a row, 1–2 s after the first, 8–16 s from the
// fourth on; but none after a "409 Leadership Change", which is not counted. The consumer's new
// leader sends that as it takes over, to the requests the old one held, and takes the next
// request at once: waiting the backoff left each worker idle 1–2 s at every move of its
// consumer's leader (a server restarted, an operator's step-down), and a move after failures
// lengthened the wait after the next one.
func (f *pullFailures) wait(err error) time.Duration {
	if errors.Is(err, jetstream.ErrConsumerLeadershipChanged) {
		return 0
	}
	*f++
	return DefaultBackoff(min(int(*f), 4))
}

// pullSize is the most messages one pull request asks for: BatchSize, or the consumer's
// MaxRequestBatch when it is lower (an operator's `nats consumer edit --max-batch`, or a
// server's `limits { max_request_batch }`, which the server gives the consumers it creates): the
// server refuses a larger request (409 Exceeded MaxRequestBatch), and a worker asking for
// BatchSize took no message, ever.
func (w *Worker) pullSize() int {
	if n := w.maxPull.Load(); n > 0 && n < int64(w.cfg.BatchSize) {
		return int(n)
	}
	return w.cfg.BatchSize
}

// pullWait is how long one pull request waits for messages: FetchWait, or the consumer's
// MaxRequestExpires when it is shorter (an operator's `nats consumer edit --max-pull-expire`):
// the server refuses a request that would wait longer (409 Exceeded MaxRequestExpires), and a
// worker asking for FetchWait took no message, ever.
func (w *Worker) pullWait() time.Duration {
	if d := time.Duration(w.maxWait.Load()); d > 0 && d < w.cfg.FetchWait {
		return d
	}
	return w.cfg.FetchWait
}

// readPullLimits takes the limits a consumer sets on each pull request (see pullSize,
// pullWait) from its configuration.
func (w *Worker) readPullLimits(cc jetstream.ConsumerConfig) {
	w.maxPull.Store(int64(cc.MaxRequestBatch))
	w.maxWait.Store(int64(cc.MaxRequestExpires))
}

// holdSlots takes in-flight slots for the next pull: a whole pullSize when they free up within
// FetchWait, else at least one. Pulling in whole batches while the worker is saturated keeps
// its messages moving in groups, so that each group's abstracts share one embedding request
// instead of trickling in one completion at a time. It returns false when ctx is done.
func (w *Worker) holdSlots(ctx context.Context, slots chan struct{}) (int, bool) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0, false
	}
	held, size := 1, w.pullSize()
	wait := time.NewTimer(w.cfg.FetchWait)
	defer wait.Stop()
	for held < size {
		select {
		case slots <- struct{}{}:
			held++
		case <-wait.C:
			return held, true
		case <-ctx.Done():
			for range held {
				<-slots
			}
			return 0, false
		}
	}
	return held, true
}

// gather reads one pull batch as messages arrive and dispatches them in groups: a group goes
// when it is full or Linger after its first message. It returns the messages received and the
// error that ended the pull request, if not its expiry.
func (w *Worker) gather(batch jetstream.MessageBatch, dispatch func([]jetstream.Msg)) (int, error) {
	got := 0
	var group []jetstream.Msg
	var timer *time.Timer
	msgs := batch.Messages()
	for {
		var tick <-chan time.Time
		if timer != nil {
			tick = timer.C
		}
		select {
		case m, ok := <-msgs:
			if !ok {
				if len(group) > 0 {
					dispatch(group)
				}
				if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
					return got, err
				}
				return got, nil
			}
			got++
			w.stats.received.Add(1)
			group = append(group, m)
			if len(group) == 1 {
				timer = time.NewTimer(w.cfg.Linger)
			}
			if len(group) >= w.cfg.BatchSize {
				timer.Stop()
				timer = nil
				dispatch(group)
				group = nil
			}
		case <-tick:
			timer = nil
			dispatch(group)
			group = nil
		}
	}
}

// recheckConsumer looks the worker's consumer up again after a pull request failed in a way
// that may mean it no longer exists (it was deleted: `nats consumer rm`). If it does not, the
// worker can process nothing, and recheckConsumer returns the error that stops it (every
// process start recreates the consumer, see Setup). If it exists, it returns the consumer to
// go on with (it may have been recreated). Otherwise both are nil.
func (w *Worker) recheckConsumer(ctx context.Context, pullErr error) (jetstream.Consumer, error) {
	if !errors.Is(pullErr, jetstream.ErrConsumerDeleted) && !errors.Is(pullErr, jetstream.ErrConsumerNotFound) &&
		!errors.Is(pullErr, nats.ErrNoResponders) {
		return nil, nil
	}
	c, err := w.js.Consumer(ctx, StreamPapers, w.cfg.Consumer)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return nil, fmt.Errorf("worker: consumer %s no longer exists (deleted?): %w; starting a paperpipe process recreates it", w.cfg.Consumer, err)
	case errors.Is(err, jetstream.ErrStreamNotFound): // its consumers went with it
		return nil, fmt.Errorf("worker: stream %s no longer exists (deleted?), nor its consumer %s: %w; starting a paperpipe process recreates them",
			StreamPapers, w.cfg.Consumer, err)
	case err != nil:
		return nil, nil
	}
	return c, nil
}

// idle reports whether the consumer has nothing left to deliver or to acknowledge.
func (w *Worker) idle(ctx context.Context, cons jetstream.Consumer) (bool, error) {
	info, err := cons.Info(ctx)
	if err != nil {
		return false, err
	}
	return info.NumPending == 0 && info.NumAckPending == 0, nil
}

// job is one message on its way through the worker.
type job struct {
	msg  jetstream.Msg
	meta *jetstream.MsgMetadata
	a    paper.Abstract
	hold *hold // nil for a message that could not be decoded
	// space is the embedding space the message was queued for (HeaderSpace); 0: any.
	space int64
	// recorded is when the store told what the paper needs (UpsertPapers).
	recorded time.Time
	// received is when the worker took the message (decode): a dead letter of this delivery,
	// written once the server gave it up, is not older (see withdrawDeadLetter).
	received time.Time
	// replayed is set on a dead letter's replay (HeaderReplayed): its TL;DR is asked for again
	// even when the API withheld it (forgetWithheld).
	replayed bool
}

// handleBatch records a micro-batch of papers in one transaction, then processes each
// message on its own. It releases one slot per message when that message is settled.
func (w *Worker) handleBatch(ctx context.Context, msgs []jetstream.Msg, embedB *batcher[paper.Abstract], saveB *batcher[paper.Summary], release func(int)) {
	jobs := make([]job, 0, len(msgs))
	// The questions to OtherSpace (the database's active space) are part of the intake: all of
	// them within one IntakeTimeout, as upsertEach's records. A database gone silent would
	// otherwise hold the micro-batch, its messages marked in progress, for as long as TCP takes
	// to give up; a question unanswered counts as false, and the recording's own bound and pause
	// follow.
	octx, cancelAsk := context.WithTimeout(ctx, w.cfg.IntakeTimeout)
	for _, m := range msgs {
		j, err := decode(m)
		if err != nil {
			w.deadLetter(ctx, j, err)
			release(1)
			continue
		}
		j.hold = w.startHold(ctx, m)
		if j.space != 0 && j.space != w.cfg.SpaceID && w.cfg.OtherSpace != nil && w.cfg.OtherSpace(octx, j.space) {
			w.handBack(ctx, j, byOtherSpace)
			release(1)
			continue
		}
		jobs = append(jobs, j)
	}
	cancelAsk()
	jobs = w.forgetWithheld(ctx, jobs, release)
	if len(jobs) == 0 {
		return
	}
	abstracts := make([]paper.Abstract, len(jobs))
	for i, j := range jobs {
		abstracts[i] = j.a
	}
	pending, err := w.upsert(ctx, abstracts)
	if err == nil {
		w.storeReached()
	}
	switch {
	case (errors.Is(err, paper.ErrInvalid) || errors.Is(err, paper.ErrLocked)) && len(jobs) > 1:
		// One bad record fails the whole statement: record the papers one by one so that only
		// the bad one is dead-lettered. So does one paper whose row another session holds
		// locked (store.Config.RowLockTimeout): only its message is tried again later.
		jobs, pending = w.upsertEach(ctx, jobs, release)
	case err != nil:
		if !errors.Is(err, paper.ErrUnavailable) { // the pause has its own line
			w.log.Warn("recording papers failed; messages will be redelivered", "papers", len(jobs), "err", err)
		}
		for _, j := range jobs {
			w.settleFailure(ctx, j, err)
		}
		release(len(jobs))
		return
	}
	var wg sync.WaitGroup
	recorded := time.Now()
	for i, j := range jobs {
		j.recorded = recorded
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release(1)
			w.process(ctx, j, pending[i], embedB, saveB)
		}()
	}
	wg.Wait()
}

// forgetWithheld deletes, within IntakeTimeout, the records of the TL;DRs the API withheld for
// the texts of the replayed messages among jobs (Store.ForgetWithheld): a user replays a dead
// letter on purpose, and the record would have the intake answer that the TL;DR is not needed.
// When the store cannot, those messages are settled with its error (the database's state: back
// to the queue) and their slots released; it returns the jobs left.
func (w *Worker) forgetWithheld(ctx context.Context, jobs []job, release func(int)) []job {
	if w.sum == nil {
		return jobs
	}
	var replayed []paper.Abstract
	for _, j := range jobs {
		if j.replayed {
			replayed = append(replayed, j.a)
		}
	}
	if len(replayed) == 0 {
		return jobs
	}
	fctx, cancel := context.WithTimeout(ctx, w.cfg.IntakeTimeout)
	n, err := w.store.ForgetWithheld(fctx, replayed, w.work)
	err = w.intakeTimedOut(ctx, fctx, err)
	cancel()
	if err == nil {
		if n > 0 {
			w.log.Info("replayed dead letters: their TL;DRs the API withheld are asked for again", "papers", n)
		}
		return jobs
	}
	w.log.Warn("forgetting the withheld TL;DRs of replayed messages failed; they will be redelivered", "papers", len(replayed), "err", err)
	kept := jobs[:0]
	for _, j := range jobs {
		if !j.replayed {
			kept = append(kept, j)
			continue
		}
		w.settleFailure(ctx, j, fmt.Errorf("forget the withheld TL;DR of a replayed message: %w", err))
		release(1)
	}
	return kept
}

// upsertEach records papers one at a time, all within one IntakeTimeout (a silent database
// must not hold a micro-batch for one IntakeTimeout per paper); those that fail are settled and
// their slots released. It returns the jobs that were recorded with their Pending.
func (w *Worker) upsertEach(ctx context.Context, jobs []job, release func(int)) ([]job, []paper.Pending) {
	var kept []job
	var pending []paper.Pending
	deadline := time.Now().Add(w.cfg.IntakeTimeout)
	var timedOut error // the batch's IntakeTimeout ran out: the others go back with its error
	for _, j := range jobs {
		if timedOut != nil {
			w.settleFailure(ctx, j, timedOut)
			release(1)
			continue
		}
		p, err := w.upsertBy(ctx, []paper.Abstract{j.a}, deadline)
		if errors.Is(err, errIntakeTimeout) {
			timedOut = err
		}
		if err != nil {
			w.settleFailure(ctx, j, err)
			release(1)
			continue
		}
		kept = append(kept, j)
		pending = append(pending, p[0])
	}
	return kept, pending
}

// decode parses and checks a message. On error the returned job still carries the message.
func decode(m jetstream.Msg) (job, error) {
	j := job{msg: m, received: time.Now()}
	meta, err := m.Metadata()
	if err != nil {
		return j, fmt.Errorf("message metadata: %w: %w", err, paper.ErrInvalid)
	}
	j.meta = meta
	if err := json.Unmarshal(m.Data(), &j.a); err != nil {
		return j, fmt.Errorf("message is not an abstract: %w: %w", err, paper.ErrInvalid)
	}
	// When the text was read — when the queue stored the message, or the date a republished
	// stored text carries: a redelivery of an older version of the paper, handled after the
	// newer one, must not put its text back (store.UpsertPapers).
	j.a.TextAt = textAt(m.Headers(), meta.Timestamp)
	if v := m.Headers().Get(HeaderSpace); v != "" {
		j.space, _ = strconv.ParseInt(v, 10, 64) // one that does not parse is for any space
	}
	j.replayed = m.Headers().Get(HeaderReplayed) != ""
	if j.a.ID == "" || j.a.Title == "" || j.a.Abstract == "" {
		return j, fmt.Errorf("abstract %q lacks id, title or text: %w", j.a.ID, paper.ErrInvalid)
	}
	return j, nil
}

// process does what one paper still needs, stores it, and settles the message.
func (w *Worker) process(ctx context.Context, j job, p paper.Pending, embedB *batcher[paper.Abstract], saveB *batcher[paper.Summary]) {
	if p.NoSpace {
		w.spaceDropped()
	}
	if p.Removed {
		w.log.Debug("message of a paper removed since its text was read: not stored", "paper", j.a.ID)
	}
	if !p.NeedTLDR && !p.NeedEmbedding {
		w.stats.skipped.Add(1)
		w.ack(j)
		return
	}
	if w.isDraining() {
		w.settleFailure(ctx, j, errDraining)
		return
	}
	if w.pausedFor() > 0 {
		w.settleFailure(ctx, j, errPaused)
		return
	}
	var embErr, sumErr error
	var wg sync.WaitGroup
	needTLDR := p.NeedTLDR && w.sum != nil
	var emb *pendingItem[paper.Abstract]
	if p.NeedEmbedding && w.emb != nil {
		// The abstract joins an embedding batch at once, held while its message waits for a
		// chat slot: the batch keeps gathering meanwhile, at no cost in latency, and goes
		// (its linger after; see embedLinger) once the first of its members starts its TL;DR
		// request. Its vector
		// then comes back while the TL;DR is being written. The request must end within
		// MsgTimeout of the submission, but like a TL;DR, a vector that came back is waited
		// for until it is saved, even past that deadline: settling the message earlier would
		// let its redelivery buy the vector again while the first one is still being saved
		// (a database restart).
		if deadline, err := w.startDeadline(ctx, j.hold); err != nil {
			embErr = err
		} else {
			emb = embedB.submit(deadline, j.a, needTLDR)
			wg.Add(1)
			go func() {
				defer wg.Done()
				embErr = emb.wait(ctx)
			}()
		}
	}
	if needTLDR {
		started := func() {
			if emb != nil {
				embedB.release(emb)
			}
		}
		sumErr = w.summarize(ctx, j, saveB, started)
		started() // the TL;DR failed before it started: the embedding is not held back for it
		if errors.Is(sumErr, errNotWanted) {
			sumErr, needTLDR = nil, false
			if emb == nil {
				w.stats.skipped.Add(1) // nothing left to do, as the intake counts it
			}
		}
	}
	wg.Wait()

	err := errors.Join(wrapStage("tldr", sumErr), wrapStage("embedding", embErr))
	if err == nil {
		if needTLDR || emb != nil {
			// Its API work answered and its results saved.
			w.apiAnswered()
			w.storeAnswered()
		}
		w.ack(j)
		return
	}
	w.settleFailure(ctx, j, err)
}

// settleFailure decides a failed message's fate: one whose hold lapsed before its work
// started is let go (letGo: another worker may have it); bad input and permanent failures are
// dead-lettered; during shutdown the message goes back to the queue (for the next worker:
// after FetchWait; on its last delivery as a new message once no pull request of this worker
// is open, see requeueAfterPull); so does it when the API refuses the account or the
// configuration, or the API or the database cannot be reached or the database did not record
// it in time, which pauses the worker (see pauses, handBack), and when the rate limit held its
// request past its time (handBack, no pause); anything else is
// redelivered after a backoff, or dead-lettered when it has used its deliveries.
func (w *Worker) settleFailure(ctx context.Context, j job, err error) {
	switch {
	case errors.Is(err, errHoldLapsed):
		w.letGo(ctx, j)
	case errors.Is(err, paper.ErrPermanent) || errors.Is(err, paper.ErrInvalid):
		w.deadLetter(ctx, j, err)
	case (ctx.Err() != nil || errors.Is(err, errDraining)) && w.lastDelivery(j):
		w.requeueAfterPull(ctx, j, byShutdown)
	case ctx.Err() != nil || errors.Is(err, errDraining):
		// Back to the queue, but not at once: this worker's last pull request is still open
		// for up to FetchWait, and a plain Nak would have the server deliver the message to
		// it again, and again — a message that arrives during a drain would use up its
		// deliveries in a moment and be dead-lettered.
		j.release()
		if nerr := j.msg.NakWithDelay(w.cfg.FetchWait); nerr != nil {
			w.log.Debug("nak failed", "paper", j.a.ID, "err", nerr)
		}
		w.stats.retried.Add(1)
	case errors.Is(err, paper.ErrUnavailable):
		// The database's state, not the paper's (refused or dropped connections, a restart, a
		// full disk, a connection gone silent: see errIntakeTimeout and saveWithRetry): the
		// worker pauses as for the API's refusals (see pauses), and the message waits in the
		// queue, whatever its deliveries.
		w.openPause(err)
		why := byDatabaseDown
		if errors.Is(err, errIntakeTimeout) {
			why = bySlowDatabase
		}
		w.handBack(ctx, j, why)
	case errors.Is(err, errIntakeTimeout):
		// A database that answers, slow to record these papers (a row another session holds
		// locked, a load): back to the queue (handBack), no pause.
		w.handBack(ctx, j, bySlowDatabase)
	case errors.Is(err, llm.ErrAccount):
		// The account's or the configuration's problem, not the paper's: the worker pauses
		// (see pauses), and the message waits in the queue, whatever its deliveries.
		w.openPause(err)
		w.handBack(ctx, j, byRefusal)
	case errors.Is(err, errPaused):
		w.handBack(ctx, j, byPause)
	case errors.Is(err, llm.ErrRateLimited):
		// The API's rate limit (a 429's pause, x-ratelimit headers) or PAPERPIPE_RPM/TPM held
		// the request past the message's time: never sent, not the paper's failure. Counted
		// as one, a long limit used up the deliveries of every message held meanwhile and
		// dead-lettered them ("context deadline exceeded").
		w.handBack(ctx, j, byRateLimit)
	case errors.Is(err, llm.ErrServerFailing) && w.serverDown(j.a.ID):
		// The server fails every paper's calls (a crashed engine behind a proxy, a broken
		// deployment): down, not the papers' fault. The worker pauses and the message waits
		// in the queue — except the one message a probe after a pause tries, which uses a
		// delivery when its calls may have failed for its input (a 500, no answer in time):
		// papers that the server alone fails on, the last ones queued, end as dead letters
		// however the server does. A probe answered only with statuses of a server that is down
		// (a proxy's 502 or 504, a 503: llm.ErrServerDown) uses none: the one message tried
		// after each pause was otherwise dead-lettered every MaxDeliver pauses of an outage.
		probe := w.probing()
		w.openPause(err)
		if probe && !errors.Is(err, llm.ErrServerDown) {
			w.retry(ctx, j, err)
			return
		}
		w.handBack(ctx, j, byServerFailing)
	default:
		w.retry(ctx, j, err)
	}
}

// letGo settles a message whose hold lapsed before its work started (errHoldLapsed): NATS
// was out of reach for about its AckWait, and the server may have delivered it to another
// worker meanwhile, or given it up. It is left to its redelivery without a Nak, which would
// have the server deliver it yet again while the other worker has it; on its last delivery,
// which the server gives up (and a reaper dead-letters), it is requeued as a new message, and
// that dead letter withdrawn (see requeue).
func (w *Worker) letGo(ctx context.Context, j job) {
	if w.lastDelivery(j) {
		w.requeueAfterPull(ctx, j, byLapse)
		return
	}
	j.release()
	w.log.Info("the worker's hold on a message lapsed (NATS was out of reach): left to its redelivery, its work not started", "paper", j.a.ID)
	w.stats.retried.Add(1)
}

// summarize writes the TL;DR of j's paper under the Concurrency limit, within MsgTimeout of
// starting, and stores it; it calls started once it holds a Concurrency slot and the TL;DR is
// to be bought (not when the worker is paused or the paper no longer wants it). The paid TL;DR
// is waited for until it is saved, even past the deadline, and it keeps its Concurrency slot
// meanwhile: the answers bought and not yet committed — what a kill -9 takes away, to be
// bought again — are never more than Concurrency, however slow the database.
func (w *Worker) summarize(ctx context.Context, j job, saveB *batcher[paper.Summary], started func()) error {
	select {
	case w.chat <- struct{}{}:
	case <-w.draining:
		return errDraining
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-w.chat }()
	if w.pausedFor() > 0 {
		// Paused while this message waited for its slot: no call.
		return errPaused
	}
	if !w.stillWanted(ctx, j) {
		return errNotWanted
	}
	started()
	s, err := w.summarizeNow(ctx, j)
	if err != nil {
		// Answers billed before the failure (an answer that stayed invalid) are still spent.
		if s.Usage.Requests > 0 {
			w.recordUsage(context.WithoutCancel(ctx), []paper.Usage{s.Usage})
		}
		if wh := (*paper.WithheldError)(nil); errors.As(err, &wh) {
			w.recordWithheld(ctx, j, wh.Reason)
		}
		return err
	}
	return saveB.Do(ctx, s)
}

// recordWithheld records that the API will not give the TL;DR of j's text (its content filter
// withheld it, or the model refused: why), as the Batch API's runner records its answers: the
// paper is then dead-lettered, and every `reprocess` queued it again (stale: no TL;DR of its
// text) and bought the same refusal, for ever. It is tried as a paid result's save is; a record
// that cannot be written is logged, and the paper dead-lettered all the same.
func (w *Worker) recordWithheld(ctx context.Context, j job, why string) {
	rec := []paper.Withheld{{PaperID: j.a.ID, Model: w.sum.Model(), PromptVersion: w.sum.PromptVersion(),
		ContentHash: j.a.ContentHash(), Reason: why}}
	err := w.saveWithRetry(context.WithoutCancel(ctx), "withheld TL;DR", func(ctx context.Context) error {
		_, err := w.store.RecordWithheld(ctx, rec)
		return err
	})
	if err != nil {
		w.log.Warn("a TL;DR the API withheld could not be recorded: a later run will ask for it again",
			"paper", j.a.ID, "reason", why, "err", err)
	}
}

func (w *Worker) summarizeNow(ctx context.Context, j job) (paper.Summary, error) {
	deadline, err := w.startDeadline(ctx, j.hold)
	if err != nil {
		return paper.Summary{}, err
	}
	sctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return w.sum.Summarize(sctx, j.a)
}

// recheckTimeout bounds stillWanted's question to the store.
const recheckTimeout = 5 * time.Second

// errNotWanted is summarize's answer for a TL;DR the store no longer wants (see stillWanted):
// none was bought, and the message is done.
var errNotWanted = errors.New("TL;DR no longer wanted")

// removalClockMargin is how far before a message's recording a removal still counts as
// possibly after it: the removal is dated by the database's clock, the recording by the
// worker's, and a removal's transaction commits after the time it records.
const removalClockMargin = time.Minute

// stillWanted reports whether j's TL;DR is still to be bought once its chat slot is free: a
// message that waited longer than RecheckAfter since its paper was recorded asks the store
// whether the paper was removed meanwhile (paperpipe remove) — each such TL;DR was bought and
// then dropped by the save, up to MaxInFlight of them per worker after a removal — when any
// paper was removed since about then (removedSince). At C64 and C256 with 400 ms TL;DRs every
// message waits ~1.6 s for its slot (4 × Concurrency held): asking the store about each paper
// (Store.PendingFor) cost PostgreSQL 1.3–1.7 CPU-s per 1,000 papers in the benchmarks, and even
// a primary-key probe each ~0.1; the latest removal, read once a RecheckAfter, costs nothing
// per paper while no paper is being removed. A paper whose text changed or whose TL;DR another
// worker stored is, as before, bought and dropped by the save (rare: the queue drops repeats).
// When the store cannot answer, the intake's answer stands.
func (w *Worker) stillWanted(ctx context.Context, j job) bool {
	if w.cfg.RecheckAfter < 0 || j.recorded.IsZero() || time.Since(j.recorded) <= w.cfg.RecheckAfter {
		return true
	}
	// Bounded: the message holds a chat slot meanwhile, and a database gone silent would hold it
	// for as long as TCP takes to give up (see IntakeTimeout).
	rctx, cancel := context.WithTimeout(ctx, recheckTimeout)
	defer cancel()
	if !w.removedSince(rctx, j.recorded.Add(-removalClockMargin)) {
		return true
	}
	removed, err := w.store.Removed(rctx, j.a.ID)
	if err != nil {
		w.log.Debug("could not ask the store whether a paper was removed; buying its TL;DR", "paper", j.a.ID, "err", err)
		return true
	}
	if removed {
		w.log.Debug("TL;DR not bought: its paper was removed while its message waited", "paper", j.a.ID)
	}
	return !removed
}

// removedSince reports whether a paper may have been removed after t: the archive's latest
// removal (Store.LastRemoval), read again when the last read is older than RecheckAfter, by
// one message while the others asking wait for its answer. A read that fails answers true.
func (w *Worker) removedSince(ctx context.Context, t time.Time) bool {
	r := &w.removals
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.read.IsZero() || time.Since(r.read) >= w.cfg.RecheckAfter {
		latest, err := w.store.LastRemoval(ctx)
		if err != nil {
			return true
		}
		r.latest, r.read = latest, time.Now()
	}
	return !r.latest.IsZero() && r.latest.After(t)
}

// errDraining returns a message whose TL;DR request has not started to the queue at once when
// the worker is shutting down.
var errDraining = errors.New("worker is shutting down")

func (w *Worker) isDraining() bool {
	select {
	case <-w.draining:
		return true
	default:
		return false
	}
}

func wrapStage(stage string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", stage, err)
}

// ack acknowledges j, whose results are all stored. When j was its last delivery, the server
// may have given it up meanwhile and a reaper dead-lettered it before the results were stored:
// that dead letter is withdrawn (withdrawDeadLetter).
func (w *Worker) ack(j job) {
	j.release()
	if w.lastDelivery(j) {
		w.withdrawDeadLetter(j, "stored its results")
	}
	w.withdrawOriginal(j, "processed")
	if err := j.msg.Ack(); err != nil {
		// The results are stored; a redelivery will find them and make no API call.
		w.log.Warn("ack failed; the message will be redelivered and skipped", "paper", j.a.ID, "err", err)
		return
	}
	w.stats.acked.Add(1)
}

// lastDelivery reports whether j is the message's last delivery: the server gives up a
// message returned on it, and the message would be dead-lettered for a shutdown that was no
// fault of its own.
func (w *Worker) lastDelivery(j job) bool {
	md := w.timings().maxDeliver
	return md > 0 && j.meta != nil && int(j.meta.NumDelivered) >= md
}

// requeueAfterPull requeues j (see requeue) once no pull request of this worker is open: the
// copy is a new message, which the server would deliver at once to an open one — this
// worker's, still draining, which would hand it back and requeue it again, as many times as
// the pull request had room for. Until then j stays held (its hold goes on marking it
// InProgress).
func (w *Worker) requeueAfterPull(ctx context.Context, j job, why string) {
	w.pulls.mu.Lock()
	if w.pulls.open {
		w.pulls.held = append(w.pulls.held, heldRequeue{ctx: ctx, j: j, why: why})
		w.pulls.mu.Unlock()
		return
	}
	w.pulls.mu.Unlock()
	w.requeue(ctx, j, why)
}

// Why requeue sends a message back on its last delivery.
const (
	byShutdown      = "the shutdown"
	byRefusal       = "the API's refusal of the account or the configuration"
	bySlowDatabase  = "a database that did not record it in time"
	byDatabaseDown  = "a database that could not be reached or could not write"
	byPause         = "the worker's pause"
	byRateLimit     = "the API's rate limit"
	byServerFailing = "an API that fails every request"
	byLapse         = "a lapse of the worker's hold (NATS out of reach)"
	byOtherSpace    = "its queueing for another embedding space's workers"
)

// heldRequeue is a message requeueAfterPull holds until the pull request ends.
type heldRequeue struct {
	ctx context.Context
	j   job
	why string
}

// pullOpen records whether a pull request of this worker is open; when it ends, the messages
// held for requeueing are requeued, each in a goroutine of its own: a requeue waits up to
// requeueFor for its copy's answer and as long again for its withdrawal's (a claim whose
// answer a dropped connection lost), and on the pull loop it held every pull of the worker
// that long. The copy is published after the pull request ended all the same; a later one of
// this worker may get it, as any worker's may.
func (w *Worker) pullOpen(open bool) {
	w.pulls.mu.Lock()
	w.pulls.open = open
	var held []heldRequeue
	if !open {
		held, w.pulls.held = w.pulls.held, nil
		w.pulls.requeuing.Add(len(held))
	}
	w.pulls.mu.Unlock()
	for _, r := range held {
		go func() {
			defer w.pulls.requeuing.Done()
			w.requeue(r.ctx, r.j, r.why)
		}()
	}
}

// requeue returns a message that a shutdown (or another cause that is not the message's, why)
// interrupted on its last delivery to the work queue
// as a new message (a fresh message id, deliveries counted from one; its text keeps its date,
// see requeued), then terminates the
// delivered one; a dead letter a reaper may have written of it is withdrawn, as ack does. If the publish fails, the message is returned as on any other delivery, and
// the server's giving it up dead-letters it (see the reaper). A publish left unanswered is sent
// again under its message id (see publishRequeued): the copy may be stored, and the original,
// handed back, would be dead-lettered while the copy was processed.
func (w *Worker) requeue(ctx context.Context, j job, why string) {
	j.release()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), requeueFor)
	defer cancel()
	id := "requeue:" + strconv.FormatUint(j.meta.Sequence.Stream, 10) + ":" + strconv.FormatInt(time.Now().UnixNano(), 10)
	copied, dropped := requeued(j, w.deadLetterID(j.meta.Sequence.Stream, j.meta.Timestamp))
	if err := w.publishRequeued(ctx, copied, id); err != nil {
		w.log.Warn("could not requeue a message interrupted on its last delivery; it will be dead-lettered",
			"paper", j.a.ID, "by", why, "err", err)
		_ = j.msg.NakWithDelay(w.cfg.FetchWait)
		w.stats.retried.Add(1)
		return
	}
	for _, from := range dropped {
		// An original the copy no longer names (maxRequeuedFrom): its letter, if any, is
		// withdrawn now — the copy carries its work.
		since, _ := storedAt(from) // the zero time when from does not say
		w.withdrawLetter(j.msg.Data(), j.a.ID, from, since, "a copy of its copy was requeued",
			"the worker requeued a copy of a copy, whose first original the server may have given up")
	}
	// The server may have given the delivered message up meanwhile and a reaper dead-lettered
	// it: the copy carries its work now, and the letter would name a paper that is then
	// processed (see withdrawDeadLetter).
	w.withdrawDeadLetter(j, "requeued it")
	if err := j.msg.TermWithReason("interrupted by " + why + " on its last delivery: requeued"); err != nil {
		w.log.Debug("term failed", "paper", j.a.ID, "err", err)
	}
	lvl := slog.LevelInfo
	if why != byShutdown && why != byLapse {
		lvl = slog.LevelDebug // the other causes have their own lines (a pause, a warning)
	}
	w.log.Log(ctx, lvl, "requeued a message interrupted on its last delivery", "paper", j.a.ID, "by", why)
	w.stats.retried.Add(1)
}

// requeueFor bounds requeue's sends of a copy, and requeueTry each one's wait for its answer.
const (
	requeueFor = 10 * time.Second
	requeueTry = 2 * time.Second
)

// publishRequeued publishes msg, requeue's copy, under the message id id. A send the server
// leaves unanswered (a timeout: a connection cut after the send, a stream leader killed; no
// responders while a cluster elects one) may have been stored: it is sent again under the same
// id, resendWait apart, until the server answers or ctx ends — a copy stored already is then
// answered as a repeat, which settles it as well as a first answer. Without it the lost answer
// counted as a failure, and the original, handed back on its last delivery, was given up and
// dead-lettered while its stored copy was processed: a paper in `dlq list` that was also
// stored. A send goes again only while the queue's duplicate window remembers the first (see
// resendable): under a shorter window (a server's max_duplicate_window) each later one was
// stored as one more copy. The server's refusal (an API error: a full queue) is returned at
// once.
func (w *Worker) publishRequeued(ctx context.Context, msg *nats.Msg, id string) error {
	first := time.Now()
	for {
		tctx, cancel := context.WithTimeout(ctx, requeueTry)
		_, err := w.js.PublishMsg(tctx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil || isAPIError(err) {
			return err
		}
		select {
		case <-time.After(resendWait):
		case <-ctx.Done():
			return err
		}
		if !w.resendable(ctx, first) {
			return fmt.Errorf("%w (not sent again: the queue's duplicate window would not drop a copy stored already)", err)
		}
	}
}

// resendable reports whether a copy first sent at first may be sent again now: the queue's
// duplicate window (PAPERS') still remembers it, with a margin for the send's way to the
// server. A window that cannot be read counts as the default hour's.
func (w *Worker) resendable(ctx context.Context, first time.Time) bool {
	window := time.Hour
	ictx, cancel := context.WithTimeout(ctx, requeueTry)
	defer cancel()
	if s, err := w.js.Stream(ictx, StreamPapers); err == nil {
		window = s.CachedInfo().Config.Duplicates
	}
	return time.Since(first)+requeueTry < window
}

// requeued is the copy of j's message that requeue publishes: its subject, body and headers
// (the server's own, Nats-*, left out: the copy gets its own message id), dated by HeaderTextAt
// as j's text was (see decode). Without the date the copy's text would count as read when it
// was requeued, newer than a version of the paper stored meanwhile, and replace it. from is
// the dead-letter id of j's message (HeaderRequeuedFrom): should the server give it up after
// all (its requeue unanswered, its Term lost), the copy's worker withdraws its letter. The
// copy also names the messages j, itself a copy, was requeued from — each may have been given
// up and dead-lettered the same way, and a copy that named only its own original left the
// first one's letter — up to maxRequeuedFrom, the newest; dropped are those it leaves out.
func requeued(j job, from string) (m *nats.Msg, dropped []string) {
	m = &nats.Msg{Subject: j.msg.Subject(), Data: j.msg.Data(), Header: nats.Header{}}
	for k, v := range j.msg.Headers() {
		if !strings.HasPrefix(strings.ToLower(k), "nats-") {
			m.Header[k] = slices.Clone(v)
		}
	}
	if !j.a.TextAt.IsZero() {
		m.Header.Set(HeaderTextAt, j.a.TextAt.UTC().Format(time.RFC3339Nano))
	}
	ids := append(m.Header.Values(HeaderRequeuedFrom), from)
	if n := len(ids) - maxRequeuedFrom; n > 0 {
		dropped, ids = ids[:n], ids[n:]
	}
	m.Header[HeaderRequeuedFrom] = ids
	return m, dropped
}

// maxRequeuedFrom bounds the messages a requeued copy names (HeaderRequeuedFrom): a worker
// paused for days requeues the same paper again and again.
const maxRequeuedFrom = 16

// retry returns the message for a later redelivery, or dead-letters it when this was its last
// allowed delivery.
func (w *Worker) retry(ctx context.Context, j job, cause error) {
	j.release()
	n := int(j.meta.NumDelivered)
	if w.lastDelivery(j) {
		w.deadLetter(ctx, j, fmt.Errorf("gave up after %d deliveries: %w", n, cause))
		return
	}
	delay := w.cfg.Backoff(n)
	w.log.Info("will retry", "paper", j.a.ID, "delivery", n, "delay", delay.Round(time.Millisecond), "err", cause)
	if err := j.msg.NakWithDelay(delay); err != nil {
		w.log.Debug("nak failed", "paper", j.a.ID, "err", err)
	}
	w.stats.retried.Add(1)
}

// flushEmbeddings embeds a batch gathered across messages in one Embed call and stores the
// vectors in one transaction. Each text of a paper is embedded once, whatever the number of
// messages for it; two texts of one paper are two inputs (the store keeps the current one's).
func (w *Worker) flushEmbeddings(ctx context.Context, items []paper.Abstract) []error {
	if w.pausedFor() > 0 {
		return fill(len(items), errPaused)
	}
	index := make(map[string]int, len(items))
	var uniq []paper.Abstract
	pos := make([]int, len(items))
	for i, a := range items {
		key := a.ID + "@" + a.ContentHash()
		k, ok := index[key]
		if !ok {
			k = len(uniq)
			index[key] = k
			uniq = append(uniq, a)
		}
		pos[i] = k
	}
	uerrs := w.embedAndSave(ctx, uniq)
	errs := make([]error, len(items))
	for i := range items {
		errs[i] = uerrs[pos[i]]
	}
	return errs
}

// embedLinger is how long an embedding batch waits for more abstracts: EmbedLinger once the
// embedder has billed a request; Linger until then, during a drain or a pause, and in an
// ExitWhenIdle run.
func (w *Worker) embedLinger() time.Duration {
	// An ExitWhenIdle run works through a backlog, which fills batches: only its last one is
	// partly filled, and nothing more will come for it. A probe after a pause is one message.
	if w.embedBills.Load() && !w.isDraining() && !w.cfg.ExitWhenIdle && !w.pause.active.Load() {
		// At most half the MsgTimeout, which follows the consumer's AckWait (see setTimeouts).
		return min(w.cfg.EmbedLinger, max(w.timings().msgTimeout/2, w.cfg.Linger))
	}
	return w.cfg.Linger
}

// embedAndSave embeds and stores papers. A permanent failure of a request with several inputs
// is narrowed down by halves, so one bad input does not fail its neighbours. Vectors that came
// back are stored even when the call as a whole failed (a later request of the batch did) or
// its deadline has passed: they are paid for.
func (w *Worker) embedAndSave(ctx context.Context, papers []paper.Abstract) []error {
	embs, usage, err := w.emb.Embed(ctx, papers)
	saveCtx := context.WithoutCancel(ctx)
	if usage.Requests > 0 {
		w.embedBills.Store(true)
		// After the vectors: until they are committed a crash loses them, so nothing else
		// goes first.
		defer w.recordUsage(saveCtx, []paper.Usage{usage})
	}
	if err == nil && len(embs) != len(papers) {
		err = fmt.Errorf("embedder returned %d vectors for %d inputs: %w", len(embs), len(papers), paper.ErrPermanent)
	}
	if err != nil {
		errs := fill(len(papers), err)
		if len(embs) == len(papers) {
			// Keep what was delivered before the failure.
			var got []paper.Embedding
			var at []int
			for i, e := range embs {
				if e.Vector != nil {
					got, at = append(got, e), append(at, i)
				}
			}
			if len(got) > 0 {
				for k, serr := range saveIsolating(got, embeddingPaper, func(e []paper.Embedding) error { return w.saveEmbeddings(saveCtx, e) }) {
					if serr == nil {
						errs[at[k]] = nil
					}
				}
			}
		}
		if errors.Is(err, paper.ErrPermanent) && rejectsInput(err) && len(papers) > 1 && ctx.Err() == nil {
			var retry []paper.Abstract
			var idx []int
			for i, e := range errs {
				if e != nil {
					retry, idx = append(retry, papers[i]), append(idx, i)
				}
			}
			if len(retry) > 1 {
				h := len(retry) / 2
				sub := append(w.embedAndSave(ctx, retry[:h]), w.embedAndSave(ctx, retry[h:])...)
				for k, i := range idx {
					errs[i] = sub[k]
				}
			}
		}
		return errs
	}
	return saveIsolating(embs, embeddingPaper, func(e []paper.Embedding) error { return w.saveEmbeddings(saveCtx, e) })
}

// rejectsInput reports whether a permanent failure of an embeddings request is the API
// rejecting what was sent (400, 413, 422): then one input may be the cause, and halving the
// batch finds it. Other permanent failures (a count of vectors that does not match the inputs)
// are the model's, and every half would fail the same way — each a request paid for. (Vectors of
// the wrong size are the configuration's: llm.ErrAccount, which pauses the worker.)
func rejectsInput(err error) bool {
	switch llm.HTTPStatus(err) {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// saveIsolating saves items with save and returns one error per item. The store refuses a
// whole batch for one invalid item (a NaN in a vector, a NUL byte in a TL;DR); the others are
// paid for and fine, so a batch refused as invalid is saved again one item at a time, and only
// the bad item fails (and is dead-lettered). A batch that waited too long for papers' rows
// another session holds locked (a *paper.LockedError naming them) is saved again without
// them at once, and only their items fail (their messages are tried again later): the others
// neither wait for the lock nor are bought again.
func saveIsolating[T any](items []T, paperID func(T) string, save func([]T) error) []error {
	err := save(items)
	if err == nil {
		return make([]error, len(items))
	}
	var locked *paper.LockedError
	switch {
	case len(items) == 1:
		return fill(1, err)
	case errors.As(err, &locked):
		errs := make([]error, len(items))
		var rest []T
		var at []int
		for i, it := range items {
			if slices.Contains(locked.IDs, paperID(it)) {
				errs[i] = err
			} else {
				rest, at = append(rest, it), append(at, i)
			}
		}
		if len(rest) == len(items) {
			return fill(len(items), err) // none of these: the store named papers it was not given
		}
		for k, e := range saveIsolating(rest, paperID, save) {
			errs[at[k]] = e
		}
		return errs
	case errors.Is(err, paper.ErrInvalid) || errors.Is(err, paper.ErrLocked):
		// ErrLocked without names: a lock on an output's row, or one gone by the probe.
		errs := make([]error, len(items))
		for i := range items {
			errs[i] = save(items[i : i+1])
		}
		return errs
	}
	return fill(len(items), err)
}

func summaryPaper(s paper.Summary) string     { return s.PaperID }
func embeddingPaper(e paper.Embedding) string { return e.PaperID }

// saveEmbeddings stores vectors, retrying as saveWithRetry does. Vectors of a space that was
// dropped meanwhile cannot be stored anywhere, and their papers are not at fault: they are let
// go, the messages settle once their other work is stored, and the worker says once what to do
// (spaceDropped).
func (w *Worker) saveEmbeddings(ctx context.Context, embs []paper.Embedding) error {
	var n int
	err := w.saveWithRetry(ctx, "embeddings", func(ctx context.Context) (err error) {
		n, err = w.store.SaveEmbeddings(ctx, w.cfg.SpaceID, embs)
		return err
	})
	if errors.Is(err, paper.ErrSpaceDropped) {
		w.spaceDropped()
		return nil
	}
	if err != nil {
		return fmt.Errorf("store embeddings: %w", err)
	}
	w.stats.embeddings.Add(int64(n))
	return nil
}

// spaceDropped warns, once per worker, that its embedding space no longer exists: the store
// then asks it for no vector (paper.Pending.NoSpace), so it writes TL;DRs only.
func (w *Worker) spaceDropped() {
	if w.emb == nil || !w.noSpace.CompareAndSwap(false, true) {
		return
	}
	w.log.Warn(fmt.Sprintf("embedding space %d (%s) was dropped: this worker stores no more vectors, only TL;DRs; "+
		"restart it configured for the active space's embedding model (PAPERPIPE_EMBED_MODEL and PAPERPIPE_EMBED_DIMENSIONS; "+
		"`paperpipe spaces` lists the spaces), then `paperpipe reprocess --embed-only` embeds the papers that arrived meanwhile",
		w.cfg.SpaceID, w.emb.Space().Name()), "space", w.cfg.SpaceID)
}

// flushSummaries stores TL;DRs gathered across messages in one transaction (group commit),
// with their usage; a batch the store refuses for one invalid TL;DR is saved one at a time
// (saveIsolating). The TL;DRs are paid for, so the save is not cut short by shutdown.
func (w *Worker) flushSummaries(ctx context.Context, sums []paper.Summary) []error {
	ctx = context.WithoutCancel(ctx)
	errs := saveIsolating(sums, summaryPaper, func(sums []paper.Summary) error {
		var n int
		err := w.saveWithRetry(ctx, "TL;DRs", func(ctx context.Context) (err error) {
			n, err = w.store.SaveSummaries(ctx, sums)
			return err
		})
		if err != nil {
			return fmt.Errorf("store TL;DRs: %w", err)
		}
		w.stats.tldrs.Add(int64(n))
		return nil
	})
	// Every TL;DR here was paid for, saved or not (a failed one is bought again on its retry,
	// and that purchase is recorded then). After the save, as for vectors: a kill between the
	// two loses the ledger's line, not paid answers.
	usage := make([]paper.Usage, 0, len(sums))
	for _, s := range sums {
		if s.Usage.Requests > 0 {
			usage = append(usage, s.Usage)
		}
	}
	w.recordUsage(ctx, usage)
	return errs
}

// recordUsage adds to the usage ledger, with what earlier calls could not record. A failure is
// logged, not returned: the results are what matter, and the ledger is for reporting. Usage
// the ledger did not take is kept for the next call (summed per model and kind, so it stays
// small however long the database is down), and for flushUsage when the worker stops: answers
// bought during an outage, and lost with it, are spent all the same.
func (w *Worker) recordUsage(ctx context.Context, u []paper.Usage) {
	switch err := w.tryRecordUsage(ctx, u); {
	case errors.Is(err, paper.ErrInvalid):
		w.log.Warn("recording API usage failed", "err", err)
	case err != nil:
		w.log.Warn("recording API usage failed; kept for the next record", "err", err)
	}
}

// tryRecordUsage records u and the usage kept from earlier failures, keeping them all again if
// the ledger does not take them (unless the store refuses them as invalid).
func (w *Worker) tryRecordUsage(ctx context.Context, u []paper.Usage) error {
	w.unrecorded.mu.Lock()
	for _, x := range w.unrecorded.u {
		u = append(u, x)
	}
	w.unrecorded.u = nil
	w.unrecorded.mu.Unlock()
	if len(u) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, saveAttemptTimeout)
	defer cancel()
	err := w.store.RecordUsage(ctx, u)
	if err == nil || errors.Is(err, paper.ErrInvalid) {
		return err
	}
	w.unrecorded.mu.Lock()
	defer w.unrecorded.mu.Unlock()
	if w.unrecorded.u == nil {
		w.unrecorded.u = make(map[[2]string]paper.Usage)
	}
	for _, x := range u {
		k := [2]string{x.Model, x.Kind}
		t := w.unrecorded.u[k]
		t.Model, t.Kind = x.Model, x.Kind
		t.Requests += x.Requests
		t.InputTokens += x.InputTokens
		t.OutputTokens += x.OutputTokens
		w.unrecorded.u[k] = t
	}
	return err
}

// flushUsage records, when the worker stops, the usage the ledger has not taken yet: three
// attempts over a few seconds (a run stopped by a database pause may find it back); what it
// still cannot record is logged per model and kind, at error level — spent, and not in the
// ledger.
func (w *Worker) flushUsage(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		if err = w.tryRecordUsage(ctx, nil); err == nil {
			return
		}
		if attempt < 3 {
			time.Sleep(time.Duration(attempt) * time.Second)
		}
	}
	w.unrecorded.mu.Lock()
	defer w.unrecorded.mu.Unlock()
	for _, x := range w.unrecorded.u {
		w.log.Error("API usage not recorded in the ledger (the database did not take it): spent all the same",
			"model", x.Model, "kind", x.Kind, "requests", x.Requests, "input_tokens", x.InputTokens,
			"output_tokens", x.OutputTokens, "err", err)
	}
	w.unrecorded.u = nil
}

// saveWithRetry retries a save of results already paid for: losing them would mean buying
// them again. It gives up after 9 attempts (saveRetry: ~21 s of delays between them, each
// attempt up to 15 s — 2.6 minutes when the database is silent), or when ctx is done (callers pass
// a context without cancellation: a save is not abandoned for a shutdown). When its last
// attempt ran out of time and the database does not answer a ping either, the error is
// marked paper.ErrUnavailable: a database gone silent, which the store cannot tell from the
// error (the attempt's context ended). A database that answers was slow for these records (a
// row another session holds locked): their failure is theirs, and uses a delivery.
// While it retries, and while an attempt goes unanswered for stallAfter, State says the worker
// waits for the database (StateStalled).
func (w *Worker) saveWithRetry(ctx context.Context, what string, save func(context.Context) error) error {
	id := w.stalls.begin(what)
	defer w.stalls.end(id)
	return saveRetry.do(ctx, w.log, what, func(ctx context.Context) error {
		w.stalls.started(id)
		err := save(ctx)
		w.stalls.ended(id, err)
		return err
	}, w.databaseAnswers)
}

// databaseAnswers reports whether the database answers a ping within a few seconds.
func (w *Worker) databaseAnswers(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
	defer cancel()
	return w.store.Ping(pctx) == nil
}

// pingTimeout bounds databaseAnswers' ping.
const pingTimeout = 3 * time.Second

// retryTiming is how saveWithRetry tries: attempts of at most attempt each, separated by
// delays doubling from first up to maxDelay.
type retryTiming struct {
	attempts                 int
	attempt, first, maxDelay time.Duration
}

// saveRetry: 9 attempts of 15 s at most, 0.1 s apart, then 0.2, 0.4 … 8 s (~21 s of delays).
var saveRetry = retryTiming{attempts: 9, attempt: saveAttemptTimeout, first: 100 * time.Millisecond, maxDelay: 8 * time.Second}

func (r retryTiming) do(ctx context.Context, log *slog.Logger, what string, save func(context.Context) error, answers func(context.Context) bool) error {
	delay := r.first
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, r.attempt)
		err := save(actx)
		timedOut := err != nil && actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil || saveFinal(err) {
			// A row locked by another session (store.Config.RowLockTimeout) is not waited for
			// again here: saves are serial, and every other result would wait behind it
			// (saveIsolating saves the others at once).
			return err
		}
		if attempt == r.attempts {
			if timedOut && !errors.Is(err, paper.ErrUnavailable) && !answers(ctx) {
				err = fmt.Errorf("%w: %w", paper.ErrUnavailable, err)
			}
			return err
		}
		log.Warn("saving results failed; retrying", "what", what, "attempt", attempt, "err", err)
		if !sleepCtx(ctx, delay) {
			return err
		}
		delay = min(delay*2, r.maxDelay)
	}
}

// upsert records papers (store.UpsertPapers) within IntakeTimeout; the error of a call that
// ran out of it wraps errIntakeTimeout.
func (w *Worker) upsert(ctx context.Context, papers []paper.Abstract) ([]paper.Pending, error) {
	return w.upsertBy(ctx, papers, time.Now().Add(w.cfg.IntakeTimeout))
}

// upsertBy is upsert with the intake's deadline given.
func (w *Worker) upsertBy(ctx context.Context, papers []paper.Abstract, deadline time.Time) ([]paper.Pending, error) {
	uctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	id := w.stalls.begin("papers")
	defer w.stalls.end(id)
	w.stalls.started(id)
	p, err := w.store.UpsertPapers(uctx, papers, w.work)
	return p, w.intakeTimedOut(ctx, uctx, err)
}

// intakeTimedOut marks err, the error of an intake's store call made under sctx (derived from
// ctx, bounded by IntakeTimeout), as errIntakeTimeout when sctx's time ran out and ctx's did
// not, and as paper.ErrUnavailable too when the database does not answer a ping either: the
// messages go back to the queue (and the worker pauses for a silent database), never
// dead-lettered for the database's slowness. Other errors are returned as they are.
func (w *Worker) intakeTimedOut(ctx, sctx context.Context, err error) error {
	if err == nil || sctx.Err() == nil || ctx.Err() != nil {
		return err
	}
	err = fmt.Errorf("%w (%s): %w", errIntakeTimeout, w.cfg.IntakeTimeout, err)
	if !errors.Is(err, paper.ErrUnavailable) && !w.databaseAnswers(ctx) {
		err = fmt.Errorf("%w: %w", paper.ErrUnavailable, err) // gone silent: pause
	}
	return err
}

// errIntakeTimeout marks a micro-batch the store did not record within IntakeTimeout: its
// messages go back to the queue, never dead-lettered for it (handBack), and the worker pauses when the
// database does not answer a ping either (then the error is marked paper.ErrUnavailable too;
// see settleFailure).
var errIntakeTimeout = errors.New("the database did not record the papers in time")

// saveAttemptTimeout bounds one attempt to write to the store.
const saveAttemptTimeout = 15 * time.Second

func fill(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
