package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/reprocess"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// Model kinds of a PipelineCase.
const (
	ModelsAPI     = "api"     // summarize.New and embed.New against the fake API
	ModelsOffline = "offline" // summarize.NewOffline and embed.NewOfflineV2
)

// PipelineCase is one pipeline throughput run.
type PipelineCase struct {
	Name   string `json:"name"`
	Models string `json:"models"` // ModelsAPI or ModelsOffline
	N      int    `json:"n"`
	// Concurrency is WorkerConfig.Concurrency: TL;DR requests in flight.
	Concurrency int `json:"concurrency"`
	// ChatLatency and EmbedLatency are the fake API's added latency per request.
	ChatLatency  time.Duration `json:"chat_latency_ns"`
	EmbedLatency time.Duration `json:"embed_latency_ns"`
	// Linger is WorkerConfig.Linger; 0 keeps the worker's default.
	Linger time.Duration `json:"linger_ns"`
	// EmbedLinger is WorkerConfig.EmbedLinger; 0 keeps the worker's default
	// (pipeline.DefaultEmbedLinger).
	EmbedLinger time.Duration `json:"embed_linger_ns,omitempty"`
	// RPM is the client-side request budget shared by both clients (PAPERPIPE_RPM); 0 for none.
	RPM int `json:"rpm"`
	// PaceRate publishes at this many abstracts per second instead of all at once, to measure
	// latency without a backlog.
	PaceRate float64 `json:"pace_rate"`
	// DefaultTransport gives the API clients http.DefaultTransport (2 idle connections per
	// host) instead of the CLI's llm.PooledTransport, to measure what connection churn costs.
	DefaultTransport bool `json:"default_transport"`
	// Vectors is the fake API's kind of embedding vectors: "" or openaitest.VectorsText for
	// vectors derived from the text (clustered like a real model's), openaitest.VectorsRandom
	// for uniformly random ones, the worst case for PostgreSQL's HNSW inserts.
	Vectors string `json:"vectors,omitempty"`
	// Reprocess also measures re-processing over the processed archive (see ReprocessResult).
	Reprocess bool `json:"reprocess"`
	// Index is the store's index kind for the worker's embedding space
	// (store.Config.VectorIndex). Defaults to store.DefaultIndexKind.
	Index store.IndexKind `json:"index,omitempty"`
}

// index is the store's index kind for the case.
func (c PipelineCase) index() store.IndexKind {
	if c.Index == "" {
		return store.DefaultIndexKind
	}
	return c.Index
}

// randomVectors reports whether the case asks the fake API for random vectors.
func (c PipelineCase) randomVectors() bool {
	return c.Models == ModelsAPI && c.Vectors == openaitest.VectorsRandom
}

// PipelineResult is what a PipelineCase measured.
type PipelineResult struct {
	Case PipelineCase `json:"case"`
	// Processed counts papers with both a TL;DR and an embedding in the store afterwards.
	Processed int64 `json:"processed"`
	// Seconds runs from the first publish to the last acknowledgement.
	Seconds float64 `json:"seconds"`
	// Throughput is the abstracts stored (Processed, dead-lettered ones not counted) / Seconds;
	// Steady counts the acks between the 10th and 90th percentile
	// of ack times (the pipeline full, before its tail drains).
	Throughput float64 `json:"throughput_per_s"`
	Steady     float64 `json:"steady_throughput_per_s"`
	// Bound is the throughput the API allows (0 when none applies), Model how it was computed,
	// and Ratio Steady/Bound.
	Bound      float64 `json:"bound_per_s"`
	BoundModel string  `json:"bound_model"`
	Ratio      float64 `json:"ratio"`
	// EndToEnd runs from the server storing the message (publish) to its ack; Service from the
	// message's first delivery to a worker to its ack.
	EndToEnd Dist `json:"end_to_end"`
	Service  Dist `json:"service"`
	// ChatPerAbstract and EmbedPerAbstract are HTTP requests received by the fake API per
	// abstract; EmbedInputsPerRequest the mean embedding batch size.
	ChatPerAbstract       float64 `json:"chat_requests_per_abstract"`
	EmbedPerAbstract      float64 `json:"embed_requests_per_abstract"`
	EmbedInputsPerRequest float64 `json:"embed_inputs_per_request"`
	CPU                   CPUUse  `json:"cpu"`
	// CPUPer1000 is paperpipe's own CPU seconds per 1,000 abstracts (this process: worker,
	// publisher, embedded NATS, store client); FakePer1000 and PostgresPer1000 the fake API's
	// and the PostgreSQL backends'.
	CPUPer1000      float64               `json:"paperpipe_cpu_s_per_1000"`
	FakePer1000     float64               `json:"fake_cpu_s_per_1000"`
	PostgresPer1000 float64               `json:"postgres_cpu_s_per_1000"`
	Worker          pipeline.WorkerStats  `json:"worker"`
	Publish         pipeline.PublishStats `json:"publish"`
	Reprocess       *ReprocessResult      `json:"reprocess,omitempty"`
	Fake            *openaitest.Stats     `json:"-"`
}

// ReprocessResult measures re-processing the fully processed archive of a case.
type ReprocessResult struct {
	Papers int `json:"papers"`
	// Command is `paperpipe reprocess` over the unchanged archive, on the command's path
	// (see ReprocessRun): the reprocess goal's figure. Nil in results written before it was
	// measured, whose goal is then not judged.
	Command *ReprocessRun `json:"command,omitempty"`
	// PartlyStale is the same path once StaleFraction of the papers have their TL;DR from an
	// earlier prompt version: the run buys those TL;DRs from the fake API.
	PartlyStale   *ReprocessRun `json:"partly_stale,omitempty"`
	StaleFraction float64       `json:"stale_fraction,omitempty"`
	// SelectPerSecond is the rate at which store.StalePapers (what `paperpipe reprocess`
	// selects with) walks the archive; Stale how many papers it returned (0 expected).
	SelectSeconds   float64 `json:"select_s"`
	SelectPerSecond float64 `json:"select_papers_per_s"`
	Stale           int     `json:"stale"`
	// Re-ingest of the unchanged archive, the worker's skip path (not the reprocess command's):
	// the papers published again on a re-processing subject (distinct message ids, so not
	// dropped as duplicates) and drained by a worker on the plain store, as an ingest of them
	// again would be, that finds every result stored. WorkerPerSecond runs from the worker's
	// start to the last ack.
	PublishPerSecond float64              `json:"publish_papers_per_s"`
	WorkerSeconds    float64              `json:"worker_s"`
	WorkerPerSecond  float64              `json:"worker_papers_per_s"`
	Steady           float64              `json:"worker_steady_papers_per_s"`
	Skipped          int64                `json:"skipped"`
	APICalls         int64                `json:"api_calls"`
	CPU              CPUUse               `json:"cpu"`
	Worker           pipeline.WorkerStats `json:"worker"`
}

// ReprocessRun is one run of `paperpipe reprocess`'s path (cmd/paperpipe: runReprocess,
// runReprocessWorkers) over the whole archive: the stale papers counted (store.CountStale),
// the target's consumer ensured, the stale papers selected and published
// (reprocess.PublishStale, pages of 5,000), and a worker on the re-processing store
// (reprocess.Store, whose intake is the read-only store.PendingFor) run until its consumer is
// idle after each page and at the end; then its idle consumer removed. PerSecond is the
// archive's papers over Seconds, which runs from the count to the worker's exit.
// CountSeconds is the count's share of Seconds and DrainSeconds the workers' (an idle
// worker waits for one empty pull, pipeline.WorkerConfig.FetchWait, before it exits).
type ReprocessRun struct {
	Stale        int                  `json:"stale"`
	Published    int                  `json:"published"`
	Seconds      float64              `json:"s"`
	CountSeconds float64              `json:"count_s"`
	DrainSeconds float64              `json:"drain_s"`
	PerSecond    float64              `json:"archive_papers_per_s"`
	APICalls     int64                `json:"api_calls"`
	CPU          CPUUse               `json:"cpu"`
	Worker       pipeline.WorkerStats `json:"worker"`
}

// PipelineOptions is what every pipeline case shares.
type PipelineOptions struct {
	DB      *DB
	FakeBin string       // path of the openai-fake binary
	Dims    int          // embedding size asked of the API
	Logger  *slog.Logger // defaults to discarding
}

// pipelineEnv is one case's world: a fresh schema, NATS server, fake API and models.
type pipelineEnv struct {
	opts  PipelineOptions
	c     PipelineCase
	st    *store.Store
	drop  func()
	ns    *pipeline.Embedded
	dir   string
	nc    *nats.Conn // the worker's and publisher's
	tapNC *nats.Conn
	js    jetstream.JetStream
	tap   *ackTap
	fake  *FakeAPI
	sum   pipeline.Summarizer
	emb   pipeline.Embedder
	space paper.Space
}

func newPipelineEnv(ctx context.Context, opts PipelineOptions, c PipelineCase) (env *pipelineEnv, err error) {
	e := &pipelineEnv{opts: opts, c: c}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.st, e.drop, err = opts.DB.Schema(ctx, "pipe", store.Config{Logger: opts.Logger, VectorIndex: c.Index}); err != nil {
		return nil, err
	}
	if e.dir, err = os.MkdirTemp("", "paperbench-nats-"); err != nil {
		return nil, fmt.Errorf("nats dir: %w", err)
	}
	if e.ns, err = pipeline.StartEmbedded(pipeline.EmbeddedConfig{Dir: e.dir}); err != nil {
		return nil, err
	}
	if e.nc, err = nats.Connect(e.ns.ClientURL()); err != nil {
		return nil, fmt.Errorf("connect NATS: %w", err)
	}
	if e.tapNC, err = nats.Connect(e.ns.ClientURL()); err != nil {
		return nil, fmt.Errorf("connect NATS: %w", err)
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err = pipeline.Setup(ctx, e.js, pipeline.TopologyConfig{}); err != nil {
		return nil, err
	}
	if e.tap, err = startTap(e.tapNC, pipeline.StreamPapers); err != nil {
		return nil, err
	}
	switch c.Models {
	case ModelsOffline:
		e.sum, e.emb = summarize.NewOffline(30), embed.NewOfflineV2()
	case ModelsAPI:
		if e.fake, err = StartFake(ctx, opts.FakeBin, c.ChatLatency, c.EmbedLatency, opts.Dims, c.Vectors); err != nil {
			return nil, err
		}
		lim := llm.NewLimiter(llm.LimiterConfig{RequestsPerMinute: c.RPM})
		hc := &http.Client{Transport: llm.PooledTransport(c.Concurrency)} // as the CLI builds it
		if c.DefaultTransport {
			hc = nil
		}
		s, err := summarize.New(summarize.Config{BaseURL: e.fake.URL, Model: "gpt-4o-mini", Limiter: lim, HTTPClient: hc})
		if err != nil {
			return nil, err
		}
		em, err := embed.New(embed.Config{BaseURL: e.fake.URL, Model: "text-embedding-3-small", Dimensions: opts.Dims,
			Limiter: lim, HTTPClient: hc})
		if err != nil {
			return nil, err
		}
		e.sum, e.emb = s, em
	default:
		return nil, fmt.Errorf("case %s: unknown models %q", c.Name, c.Models)
	}
	if e.space, err = e.st.EnsureSpace(ctx, e.emb.Space()); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *pipelineEnv) close() {
	if e.tap != nil {
		e.tap.stop()
	}
	if e.fake != nil {
		e.fake.Stop()
	}
	if e.tapNC != nil {
		e.tapNC.Close()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.ns != nil {
		e.ns.Shutdown()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	if e.drop != nil {
		e.drop()
	}
}

func (e *pipelineEnv) fakePID() int {
	if e.fake == nil {
		return 0
	}
	return e.fake.PID()
}

func (e *pipelineEnv) fakeStats(ctx context.Context) openaitest.Stats {
	if e.fake == nil {
		return openaitest.Stats{}
	}
	st, err := e.fake.Stats(ctx)
	if err != nil {
		e.opts.Logger.Warn("reading fake API stats", "err", err)
	}
	return st
}

// specViolations is an error listing the requests and answers the fake found to break OpenAI's
// published description (it checks a sample: see StartFake), or nil.
func specViolations(st openaitest.Stats) error {
	if len(st.ValidationErrors) == 0 {
		return nil
	}
	return fmt.Errorf("the fake API found %d requests or answers that break OpenAI's published description: %s",
		len(st.ValidationErrors), strings.Join(st.ValidationErrors[:min(3, len(st.ValidationErrors))], "; "))
}

func (e *pipelineEnv) work() paper.Work {
	return paper.Work{Model: e.sum.Model(), PromptVersion: e.sum.PromptVersion(), SpaceID: e.space.ID}
}

// RunPipeline runs one case on abstracts (len ≥ c.N) in a world of its own, torn down after.
func RunPipeline(ctx context.Context, opts PipelineOptions, c PipelineCase, abstracts []paper.Abstract) (PipelineResult, error) {
	res := PipelineResult{Case: c}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(abstracts) < c.N {
		return res, fmt.Errorf("case %s: %d abstracts for N=%d", c.Name, len(abstracts), c.N)
	}
	abstracts = abstracts[:c.N]
	e, err := newPipelineEnv(ctx, opts, c)
	if err != nil {
		return res, fmt.Errorf("case %s: %w", c.Name, err)
	}
	defer e.close()

	w, err := pipeline.NewWorker(e.js, e.st, e.sum, e.emb, pipeline.WorkerConfig{
		SpaceID: e.space.ID, Concurrency: c.Concurrency, Linger: c.Linger, EmbedLinger: c.EmbedLinger, Logger: opts.Logger,
	})
	if err != nil {
		return res, err
	}
	before := e.fakeStats(ctx)
	cpu0 := SampleCPU(e.fakePID(), opts.DB.Name)
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(runCtx) }()

	start := time.Now()
	pub := pipeline.NewPublisher(e.js, pipeline.SubjectNew, 256)
	for i, a := range abstracts {
		if c.PaceRate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / c.PaceRate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		if err := pub.Publish(ctx, a); err != nil {
			stop()
			return res, fmt.Errorf("case %s: %w", c.Name, err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		stop()
		return res, fmt.Errorf("case %s: %w", c.Name, err)
	}
	res.Publish = pub.Stats()
	err = waitFor(ctx, deadlineFor(c), func() bool { s := w.Stats(); return s.Acked+s.Dead >= int64(c.N) })
	time.Sleep(100 * time.Millisecond) // let the tap see the last acks
	cpu1 := SampleCPU(e.fakePID(), opts.DB.Name)
	stop()
	if rerr := <-runErr; rerr != nil && err == nil {
		err = rerr
	}
	res.Worker = w.Stats()
	if err != nil {
		return res, fmt.Errorf("case %s: %w (worker %+v)", c.Name, err, res.Worker)
	}
	after := e.fakeStats(ctx)
	if err := specViolations(after); err != nil {
		return res, fmt.Errorf("case %s: %w", c.Name, err)
	}
	acks := e.tap.take(pipeline.ConsumerNew)
	e2e, svc, ackTimes := make([]time.Duration, 0, len(acks)), make([]time.Duration, 0, len(acks)), make([]time.Time, 0, len(acks))
	last := start
	for _, a := range acks {
		e2e = append(e2e, a.acked.Sub(a.stored))
		if !a.delivered.IsZero() {
			svc = append(svc, a.acked.Sub(a.delivered))
		}
		ackTimes = append(ackTimes, a.acked)
		if a.acked.After(last) {
			last = a.acked
		}
	}
	counts, err := e.st.Counts(ctx, e.work())
	if err != nil {
		return res, err
	}
	res.Processed = min(counts.WithTLDR, counts.WithEmbedding)
	res.EndToEnd, res.Service = Distribution(e2e), Distribution(svc)
	res.Seconds = round3(last.Sub(start).Seconds())
	// Only stored abstracts count: the wait above ends when every message is acked or
	// dead-lettered, and a dead-lettered one was not processed.
	res.Throughput = round3(Rate(int(min(res.Processed, int64(c.N))), last.Sub(start)))
	res.Steady = round3(SteadyWindow(ackTimes, 0.1, 0.9))
	res.CPU = cpu1.Since(cpu0)
	n := float64(c.N)
	res.CPUPer1000 = round3(res.CPU.SelfSeconds / n * 1000)
	res.FakePer1000 = round3(res.CPU.FakeSeconds / n * 1000)
	res.PostgresPer1000 = round3(res.CPU.PostgresSeconds / n * 1000)
	chat := after.ChatRequests - before.ChatRequests
	embReq := after.EmbedRequests - before.EmbedRequests
	res.ChatPerAbstract = round3(float64(chat) / n)
	res.EmbedPerAbstract = round4(float64(embReq) / n)
	if embReq > 0 {
		res.EmbedInputsPerRequest = round3(float64(after.EmbedInputsDelivered-before.EmbedInputsDelivered) / float64(embReq))
	}
	res.Fake = &after
	res.setBound()

	if c.Reprocess {
		rp, err := e.reprocess(ctx, abstracts)
		if err != nil {
			return res, fmt.Errorf("case %s: reprocess: %w", c.Name, err)
		}
		res.Reprocess = &rp
	}
	return res, nil
}

// pipelineBound is the throughput the API allows a worker: by Little's law, C chat requests in
// flight that each take the chat latency give C/latency abstracts per second (the embedding
// request of a message runs while its TL;DR is written, batched across messages, so it holds
// no chat slot). A client-side budget of RPM requests per minute, shared by both clients,
// allows RPM/60 requests per second after a first minute's worth at once (the limiter's bucket
// starts full), so N abstracts needing r requests each take at least (N·r − RPM)/(RPM/60)
// seconds. The smaller bound binds; the second reports whether it is the rate limit, whose
// ratio compares the overall throughput (the burst is part of the run).
func pipelineBound(c PipelineCase, requestsPerAbstract float64) (float64, bool, string) {
	if c.Models != ModelsAPI || c.ChatLatency <= 0 {
		return 0, false, "none: no API latency (CPU and PostgreSQL bound)"
	}
	bound := float64(c.Concurrency) / c.ChatLatency.Seconds()
	model := fmt.Sprintf("Little: C/chat latency = %d/%.3fs", c.Concurrency, c.ChatLatency.Seconds())
	if c.RPM > 0 && requestsPerAbstract > 0 {
		perSec := float64(c.RPM) / 60
		rl := perSec / requestsPerAbstract
		if extra := float64(c.N)*requestsPerAbstract - float64(c.RPM); extra > 0 && c.N > 0 {
			rl = float64(c.N) / (extra / perSec)
		} else if c.N > 0 {
			rl = math.Inf(1)
		}
		if rl < bound {
			return round3(rl), true, fmt.Sprintf("rate limit: N/((N·r − RPM)/(RPM/60)) = %d/((%d×%.3f − %d)/%.0f/s) (steady state RPM/60/r = %.1f/s)",
				c.N, c.N, requestsPerAbstract, c.RPM, perSec, perSec/requestsPerAbstract)
		}
	}
	return round3(bound), false, model
}

// setBound fills Bound, BoundModel and Ratio from the case and the measured requests.
func (res *PipelineResult) setBound() {
	var rateLimited bool
	res.Bound, rateLimited, res.BoundModel = pipelineBound(res.Case, res.ChatPerAbstract+res.EmbedPerAbstract)
	switch {
	case res.Bound <= 0:
		res.Ratio = 0
	case rateLimited:
		res.Ratio = round3(res.Throughput / res.Bound)
	default:
		res.Ratio = round3(res.Steady / res.Bound)
	}
}

func round4(x float64) float64 { return float64(int64(x*10000+0.5)) / 10000 }

// deadlineFor is how long a case may take: three times what the slower of the API bound and
// 50 abstracts/s (a store far below its measured capacity) would need, plus pacing, the rate
// limit and two minutes.
func deadlineFor(c PipelineCase) time.Duration {
	rate := 50.0
	if c.Models == ModelsAPI && c.ChatLatency > 0 {
		rate = min(rate, float64(c.Concurrency)/c.ChatLatency.Seconds())
	}
	expect := time.Duration(float64(c.N)/rate*3*float64(time.Second)) + 2*time.Minute
	if c.RPM > 0 {
		expect += time.Duration(float64(c.N) * 2 / float64(c.RPM) * float64(time.Minute))
	}
	if c.PaceRate > 0 {
		expect += time.Duration(float64(c.N) / c.PaceRate * float64(time.Second))
	}
	return expect
}

// waitFor polls done every 10ms until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, done func() bool) error {
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// reprocessStaleEvery makes one paper in this many stale for the partly stale reprocess.
const reprocessStaleEvery = 10

// reprocess measures re-processing the archive the case has just processed: the command's
// path over it unchanged, its re-ingest, then the command's path once one paper in
// reprocessStaleEvery has a TL;DR of an earlier prompt version.
func (e *pipelineEnv) reprocess(ctx context.Context, abstracts []paper.Abstract) (ReprocessResult, error) {
	res := ReprocessResult{Papers: len(abstracts)}
	cmd, err := e.reprocessCommand(ctx, len(abstracts))
	if err != nil {
		return res, fmt.Errorf("unchanged archive: %w", err)
	}
	res.Command = &cmd
	if err := e.reingest(ctx, abstracts, &res); err != nil {
		return res, fmt.Errorf("re-ingest: %w", err)
	}
	var ids []string
	for i := 0; i < len(abstracts); i += reprocessStaleEvery {
		ids = append(ids, abstracts[i].ID)
	}
	w := e.work()
	if _, err := e.st.Pool().Exec(ctx, `UPDATE tldrs SET prompt_version = prompt_version || '-earlier'
		WHERE model = $1 AND prompt_version = $2 AND paper_id = ANY($3)`, w.Model, w.PromptVersion, ids); err != nil {
		return res, fmt.Errorf("make papers stale: %w", err)
	}
	part, err := e.reprocessCommand(ctx, len(abstracts))
	if err != nil {
		return res, fmt.Errorf("partly stale archive: %w", err)
	}
	res.PartlyStale, res.StaleFraction = &part, round3(float64(len(ids))/float64(len(abstracts)))
	return res, nil
}

// reprocessCommand runs `paperpipe reprocess`'s path over the archive of papers papers (see
// ReprocessRun), without its locks, progress and messages.
func (e *pipelineEnv) reprocessCommand(ctx context.Context, papers int) (ReprocessRun, error) {
	var res ReprocessRun
	sel := store.Selection{Work: e.work()}
	target := pipeline.NewReprocessTarget(sel.Work, e.space.Name())
	before := e.fakeStats(ctx)
	cpu0 := SampleCPU(e.fakePID(), e.opts.DB.Name)
	t0 := time.Now()
	counts, err := e.st.CountStale(ctx, sel)
	if err != nil {
		return res, err
	}
	res.Stale = int(counts.Papers)
	res.CountSeconds = round3(time.Since(t0).Seconds())
	var drained time.Duration
	if err := pipeline.EnsureReprocessConsumer(ctx, e.js, pipeline.TopologyConfig{}, target, "benchmark"); err != nil {
		return res, err
	}
	drain := func() error {
		w, err := pipeline.NewWorker(e.js, reprocess.Store{Store: e.st}, e.sum, e.emb, pipeline.WorkerConfig{
			Consumer: target.Consumer, SpaceID: e.space.ID, Concurrency: e.c.Concurrency, Linger: e.c.Linger, EmbedLinger: e.c.EmbedLinger,
			ExitWhenIdle: true, Logger: e.opts.Logger,
		})
		if err != nil {
			return err
		}
		d0 := time.Now()
		err = w.Run(ctx)
		drained += time.Since(d0)
		s := w.Stats()
		res.Worker.Acked += s.Acked
		res.Worker.Skipped += s.Skipped
		res.Worker.TLDRs += s.TLDRs
		res.Worker.Embeddings += s.Embeddings
		res.Worker.Dead += s.Dead
		return err
	}
	if left, err := pipeline.Queued(ctx, e.js, target); err != nil {
		return res, err
	} else if left > 0 {
		return res, fmt.Errorf("%d messages of an earlier run queued on %s", left, target.Consumer)
	}
	pub := pipeline.NewRunPublisher(e.js, target.Subject, strconv.FormatInt(time.Now().UnixNano(), 36), 256)
	tooLarge := func(id string, err error) { e.opts.Logger.Warn("left out", "paper", id, "err", err) }
	if res.Published, err = reprocess.PublishStale(ctx, e.st, sel, pub, 5000, drain, tooLarge); err != nil {
		return res, err
	}
	if reprocess.NeedsDrain(ctx, e.js, target, res.Published) {
		if err := drain(); err != nil {
			return res, err
		}
	}
	if _, err := pipeline.RemoveIdleReprocessConsumer(ctx, e.js, target); err != nil {
		return res, err
	}
	d := time.Since(t0)
	res.CPU = SampleCPU(e.fakePID(), e.opts.DB.Name).Since(cpu0)
	after := e.fakeStats(ctx)
	if err := specViolations(after); err != nil {
		return res, err
	}
	res.APICalls = (after.ChatRequests - before.ChatRequests) + (after.EmbedRequests - before.EmbedRequests)
	res.Seconds, res.PerSecond, res.DrainSeconds = round3(d.Seconds()), round3(Rate(papers, d)), round3(drained.Seconds())
	e.tap.take(target.Consumer) // its acks are not the re-ingest's
	return res, nil
}

// reingest measures the selection alone and the re-ingest of the unchanged archive (see
// ReprocessResult) into res.
func (e *pipelineEnv) reingest(ctx context.Context, abstracts []paper.Abstract, res *ReprocessResult) error {
	sel := store.Selection{Work: e.work()}
	t0 := time.Now()
	err := e.st.StalePapers(ctx, sel, 500, func(page []store.StalePaper) error {
		res.Stale += len(page)
		return nil
	})
	if err != nil {
		return err
	}
	d := time.Since(t0)
	res.SelectSeconds, res.SelectPerSecond = round3(d.Seconds()), round3(Rate(len(abstracts), d))

	target := pipeline.NewReprocessTarget(e.work(), e.space.Name())
	if err := pipeline.EnsureReprocessConsumer(ctx, e.js, pipeline.TopologyConfig{}, target, "benchmark"); err != nil {
		return err
	}
	pub := pipeline.NewPublisher(e.js, target.Subject, 256)
	t0 = time.Now()
	for _, a := range abstracts {
		if err := pub.Publish(ctx, a); err != nil {
			return err
		}
	}
	if err := pub.Flush(ctx); err != nil {
		return err
	}
	res.PublishPerSecond = round3(Rate(len(abstracts), time.Since(t0)))

	w, err := pipeline.NewWorker(e.js, e.st, e.sum, e.emb, pipeline.WorkerConfig{
		Consumer: target.Consumer, SpaceID: e.space.ID, Concurrency: e.c.Concurrency, Linger: e.c.Linger, EmbedLinger: e.c.EmbedLinger, Logger: e.opts.Logger,
	})
	if err != nil {
		return err
	}
	before := e.fakeStats(ctx)
	cpu0 := SampleCPU(e.fakePID(), e.opts.DB.Name)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	start := time.Now()
	go func() { runErr <- w.Run(runCtx) }()
	err = waitFor(ctx, 10*time.Minute, func() bool { s := w.Stats(); return s.Acked+s.Dead >= int64(len(abstracts)) })
	time.Sleep(100 * time.Millisecond)
	cpu1 := SampleCPU(e.fakePID(), e.opts.DB.Name)
	stop()
	if rerr := <-runErr; rerr != nil && err == nil {
		err = rerr
	}
	res.Worker = w.Stats()
	if err != nil {
		return fmt.Errorf("worker %+v: %w", res.Worker, err)
	}
	after := e.fakeStats(ctx)
	if err := specViolations(after); err != nil {
		return err
	}
	res.APICalls = (after.ChatRequests - before.ChatRequests) + (after.EmbedRequests - before.EmbedRequests)
	res.Skipped = res.Worker.Skipped
	acks := e.tap.take(target.Consumer)
	times := make([]time.Time, len(acks))
	last := start
	for i, a := range acks {
		times[i] = a.acked
		if a.acked.After(last) {
			last = a.acked
		}
	}
	res.WorkerSeconds = round3(last.Sub(start).Seconds())
	res.WorkerPerSecond = round3(Rate(len(abstracts), last.Sub(start)))
	res.Steady = round3(SteadyWindow(times, 0.1, 0.9))
	res.CPU = cpu1.Since(cpu0)
	return nil
}
