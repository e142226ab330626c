package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/paperpipe/paperpipe/paper"
)

// Stages whose work is counted by ObserveStage and the decorators.
const (
	StageSummarize      = "summarize"       // one TL;DR per paper
	StageEmbed          = "embed"           // papers embedded
	StageQueryEmbed     = "query_embed"     // search queries embedded
	StageUpsert         = "upsert"          // papers recorded
	StageSaveSummaries  = "save_summaries"  // TL;DRs stored
	StageSaveEmbeddings = "save_embeddings" // vectors stored
	StageRecordUsage    = "record_usage"    // usage ledger updates
)

// Config configures New.
type Config struct {
	// Registry receives every collector. Defaults to a new registry that also holds the Go
	// runtime and process collectors.
	Registry *prometheus.Registry
	// ScrapeTimeout bounds the backlog look-up done during a scrape. Defaults to 3s.
	ScrapeTimeout time.Duration
	// Logger receives scrape-time failures at debug level. Defaults to discarding.
	Logger *slog.Logger
}

// Metrics is paperpipe's set of Prometheus collectors. Its methods are safe for concurrent use,
// and a nil *Metrics accepts every observation and records nothing, so callers need no checks.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	stageProcessed *prometheus.CounterVec
	stageFailed    *prometheus.CounterVec
	stageDuration  *prometheus.HistogramVec
	tokens         *prometheus.CounterVec
	apiDuration    *prometheus.HistogramVec
	apiUnusable    *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	searchDuration *prometheus.HistogramVec
	cache          *prometheus.CounterVec

	queue   *queueCollector
	workers *workerCollector
}

// New returns Metrics with every collector registered on cfg.Registry.
func New(cfg Config) *Metrics {
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.ScrapeTimeout <= 0 {
		cfg.ScrapeTimeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Latencies from a millisecond (a cached query, a local model) to two minutes (a slow
	// completion with retries).
	latency := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	m := &Metrics{
		reg: cfg.Registry,
		log: cfg.Logger,
		stageProcessed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paperpipe_stage_processed_total",
			Help: "Items a pipeline stage completed: papers summarized, embedded or recorded, results stored.",
		}, []string{"stage"}),
		stageFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paperpipe_stage_failed_total",
			Help: "Items a pipeline stage failed on (each attempt counts; the message may be retried).",
		}, []string{"stage"}),
		stageDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "paperpipe_stage_duration_seconds",
			Help:    "Duration of one call of a pipeline stage (one paper, or one batch for the batched stages).",
			Buckets: latency,
		}, []string{"stage"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paperpipe_tokens_total",
			Help: "Tokens the model API reported (for an embeddings answer that reports none, the client's estimate), by model, kind (chat, embedding) and direction (input, output).",
		}, []string{"model", "kind", "direction"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "paperpipe_api_request_duration_seconds",
			Help:    "Latency of HTTP requests to the OpenAI-compatible API, by endpoint and status code (\"error\" when no answer came).",
			Buckets: latency,
		}, []string{"endpoint", "code"}),
		apiUnusable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paperpipe_api_unusable_answers_total",
			Help: "Answers of the OpenAI-compatible API with a success status that could not be used (and were retried), by endpoint and reason (not_json, truncated, empty, wrong_shape, incomplete).",
		}, []string{"endpoint", "reason"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "paperpipe_http_request_duration_seconds",
			Help:    "Latency of the HTTP requests paperpipe serves, by route pattern, method and status code.",
			Buckets: latency,
		}, []string{"route", "method", "code"}),
		searchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "paperpipe_search_duration_seconds",
			Help:    "Latency of searches (query embedding included), by mode (semantic, keyword, hybrid) and outcome (ok, error).",
			Buckets: latency,
		}, []string{"mode", "outcome"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "paperpipe_query_embedding_cache_total",
			Help: "Query-embedding cache look-ups, by result (hit, miss).",
		}, []string{"result"}),
		queue:   &queueCollector{timeout: cfg.ScrapeTimeout, log: cfg.Logger},
		workers: &workerCollector{funcs: map[string]func() WorkerCounts{}, base: map[string]WorkerCounts{}},
	}
	m.reg.MustRegister(m.stageProcessed, m.stageFailed, m.stageDuration, m.tokens, m.apiDuration, m.apiUnusable,
		m.httpDuration, m.searchDuration, m.cache, m.queue, m.workers)
	return m
}

// Registry returns the registry the collectors are registered on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)})
}

// ObserveStage records one call of stage over n items that took d: n processed when err is
// nil, n failed otherwise.
func (m *Metrics) ObserveStage(stage string, n int, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.stageDuration.WithLabelValues(stage).Observe(d.Seconds())
	if err != nil {
		m.stageFailed.WithLabelValues(stage).Add(float64(n))
		return
	}
	m.stageProcessed.WithLabelValues(stage).Add(float64(n))
}

// AddUsage counts the tokens of u.
func (m *Metrics) AddUsage(u paper.Usage) {
	if m == nil || (u.InputTokens == 0 && u.OutputTokens == 0) {
		return
	}
	m.tokens.WithLabelValues(u.Model, u.Kind, "input").Add(float64(u.InputTokens))
	m.tokens.WithLabelValues(u.Model, u.Kind, "output").Add(float64(u.OutputTokens))
}

// UnusableAnswer counts one answer of the API's endpoint ("chat/completions", "embeddings") with
// a success status that could not be used, for reason (llm.UnusableReason): in the latency of
// the API's requests it counts as a success.
func (m *Metrics) UnusableAnswer(endpoint, reason string) {
	if m == nil {
		return
	}
	m.apiUnusable.WithLabelValues(endpoint, reason).Inc()
}

// ObserveHTTP records one served request: its route pattern (such as "GET /api/papers/{id}";
// "" for a request no route matched), method, status code and duration.
func (m *Metrics) ObserveHTTP(route, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	if route == "" {
		route = "unmatched"
	}
	// A method is any token a client sends: each new one would be a new series.
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	m.httpDuration.WithLabelValues(route, method, strconv.Itoa(code)).Observe(d.Seconds())
}

// ObserveSearch records one search of mode that took d.
func (m *Metrics) ObserveSearch(mode string, d time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.searchDuration.WithLabelValues(mode, outcome).Observe(d.Seconds())
}

// ObserveQueryCache records one look-up in the query-embedding cache.
func (m *Metrics) ObserveQueryCache(hit bool) {
	if m == nil {
		return
	}
	result := "miss"
	if hit {
		result = "hit"
	}
	m.cache.WithLabelValues(result).Inc()
}

// Backlog is one consumer's queue, as JetStream reports it.
type Backlog struct {
	Consumer    string
	Pending     uint64 // not yet delivered
	AckPending  int    // delivered, not yet acknowledged
	Redelivered int    // delivered more than once, not yet acknowledged
}

// Queue is the state of the queue a scrape reports: each durable consumer's backlog, and the
// dead letters kept on the dead-letter stream.
type Queue struct {
	Backlogs    []Backlog
	DeadLetters uint64
}

// SetQueueSource makes every scrape report the queue fn returns, as the gauges
// paperpipe_queue_messages{consumer,state} and paperpipe_dead_letters. fn gets a context
// bounded by Config.ScrapeTimeout; when it fails, the scrape reports paperpipe_queue_up 0 and
// neither gauge.
func (m *Metrics) SetQueueSource(fn func(context.Context) (Queue, error)) {
	if m == nil {
		return
	}
	m.queue.mu.Lock()
	m.queue.fn = fn
	m.queue.mu.Unlock()
}

// WorkerCounts is what a worker has done since it started.
type WorkerCounts struct {
	Received, Acked, Skipped, Retried, Dead int64
	// Pauses counts the worker's pauses because the API refused the account or the
	// configuration (a revoked key, an exhausted quota) or could not be reached, DBPauses its
	// pauses because the database could not be reached or could not write: no message fails
	// for them.
	Pauses, DBPauses int64
	// APIPaused and DBPaused say whether the worker is paused now for the API or for the
	// database (pipeline.Worker.Paused): from its first pause until the service answers again.
	APIPaused, DBPaused bool
}

// add returns the sum of c's and d's counts, with d's state (APIPaused, DBPaused).
func (c WorkerCounts) add(d WorkerCounts) WorkerCounts {
	return WorkerCounts{Received: c.Received + d.Received, Acked: c.Acked + d.Acked, Skipped: c.Skipped + d.Skipped,
		Retried: c.Retried + d.Retried, Dead: c.Dead + d.Dead, Pauses: c.Pauses + d.Pauses, DBPauses: c.DBPauses + d.DBPauses,
		APIPaused: d.APIPaused, DBPaused: d.DBPaused}
}

// AddWorker makes every scrape report the counts fn returns for consumer, as
// paperpipe_worker_messages_total{consumer,outcome}, paperpipe_worker_api_pauses_total{consumer},
// paperpipe_worker_database_pauses_total{consumer}, and the gauges
// paperpipe_worker_api_paused{consumer} and paperpipe_worker_database_paused{consumer}.
// A later call for the same consumer replaces fn, for a worker started again (after a fit, by
// `up` and `worker`) whose counts start from zero: the replaced fn's last counts are kept and
// added to the new one's, so that the counters of the process never go backwards. The worker
// of the replaced fn must have stopped: what it does after the call is not counted.
func (m *Metrics) AddWorker(consumer string, fn func() WorkerCounts) {
	if m == nil {
		return
	}
	m.workers.mu.Lock()
	defer m.workers.mu.Unlock()
	if old := m.workers.funcs[consumer]; old != nil {
		m.workers.base[consumer] = m.workers.base[consumer].add(old())
	}
	m.workers.funcs[consumer] = fn
}

var (
	queueDesc = prometheus.NewDesc("paperpipe_queue_messages",
		"Messages of a durable consumer by state: pending (not yet delivered), ack_pending (delivered and not yet acknowledged: in a worker, or handed back to be delivered again), redelivered.",
		[]string{"consumer", "state"}, nil)
	queueUpDesc = prometheus.NewDesc("paperpipe_queue_up",
		"1 when the last scrape could read the queue backlog from JetStream, 0 when it could not.", nil, nil)
	deadLettersDesc = prometheus.NewDesc("paperpipe_dead_letters",
		"Dead letters kept on the PAPERS_DLQ stream: papers given up on, waiting for `paperpipe dlq replay` (or `paperpipe dlq drop`, which removes them for good).", nil, nil)
	workerDesc = prometheus.NewDesc("paperpipe_worker_messages_total",
		"Messages a worker of this process handled, by consumer and outcome (received; acked, of which skipped: nothing was left to do; retried; dead).",
		[]string{"consumer", "outcome"}, nil)
	pauseDesc = prometheus.NewDesc("paperpipe_worker_api_pauses_total",
		"Pauses of a worker of this process because the API refused the account or the configuration (401, 402, 403, 404, 405, 501, insufficient_quota, a daily quota used up, vectors of another length than the space's), could not be reached, failed at TLS, was still loading its model, or failed every request (server errors, bodies that are no answer, or no answer in time, for several papers in a row, none answered): its messages wait in the queue until the API accepts them again.",
		[]string{"consumer"}, nil)
	dbPauseDesc = prometheus.NewDesc("paperpipe_worker_database_pauses_total",
		"Pauses of a worker of this process because the database could not be reached or could not write: its messages wait in the queue until it records them again.",
		[]string{"consumer"}, nil)
	pausedDesc = prometheus.NewDesc("paperpipe_worker_api_paused",
		"1 while a worker of this process is paused because the API refuses the account or the configuration (401, 402, 403, 404, 405, 501, insufficient_quota, a daily quota used up, vectors of another length than the space's), cannot be reached, fails at TLS, is still loading its model, or fails every request (server errors, bodies that are no answer, or no answer in time, for several papers in a row, none answered) — from its first such pause until the API accepts a request again —, 0 otherwise.",
		[]string{"consumer"}, nil)
	dbPausedDesc = prometheus.NewDesc("paperpipe_worker_database_paused",
		"1 while a worker of this process is paused because the database cannot be reached or cannot write (from its first such pause until the database records again), 0 otherwise.",
		[]string{"consumer"}, nil)
)

// queueCollector reads the backlog at scrape time.
type queueCollector struct {
	timeout time.Duration
	log     *slog.Logger
	mu      sync.Mutex
	fn      func(context.Context) (Queue, error)
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- queueUpDesc
	ch <- deadLettersDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	fn := c.fn
	c.mu.Unlock()
	if fn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	q, err := fn(ctx)
	if err != nil {
		c.log.Debug("metrics: read queue backlog", "err", err)
		ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64(q.DeadLetters))
	for _, b := range q.Backlogs {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(b.Pending), b.Consumer, "pending")
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(b.AckPending), b.Consumer, "ack_pending")
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(b.Redelivered), b.Consumer, "redelivered")
	}
}

// workerCollector reads each worker's counts at scrape time.
type workerCollector struct {
	mu    sync.Mutex
	funcs map[string]func() WorkerCounts
	// base is, per consumer, the final counts of the workers whose funcs were replaced.
	base map[string]WorkerCounts
}

func (c *workerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- workerDesc
	ch <- pauseDesc
	ch <- dbPauseDesc
	ch <- pausedDesc
	ch <- dbPausedDesc
}

func (c *workerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for consumer, fn := range c.funcs {
		w := c.base[consumer].add(fn())
		for _, o := range []struct {
			name string
			n    int64
		}{{"received", w.Received}, {"acked", w.Acked}, {"skipped", w.Skipped}, {"retried", w.Retried}, {"dead", w.Dead}} {
			ch <- prometheus.MustNewConstMetric(workerDesc, prometheus.CounterValue, float64(o.n), consumer, o.name)
		}
		ch <- prometheus.MustNewConstMetric(pauseDesc, prometheus.CounterValue, float64(w.Pauses), consumer)
		ch <- prometheus.MustNewConstMetric(dbPauseDesc, prometheus.CounterValue, float64(w.DBPauses), consumer)
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, gauge(w.APIPaused), consumer)
		ch <- prometheus.MustNewConstMetric(dbPausedDesc, prometheus.GaugeValue, gauge(w.DBPaused), consumer)
	}
}

// gauge is 1 for true, 0 for false.
func gauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
