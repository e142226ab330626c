package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/paperpipe/paperpipe/internal/metrics"
	"github.com/paperpipe/paperpipe/paper"
)

type fakeSummarizer struct{ fail bool }

func (fakeSummarizer) Model() string         { return "m" }
func (fakeSummarizer) PromptVersion() string { return "p" }
func (f fakeSummarizer) Summarize(_ context.Context, a paper.Abstract) (paper.Summary, error) {
	if f.fail {
		return paper.Summary{}, errors.New("boom")
	}
	return paper.Summary{PaperID: a.ID, Text: "t", Usage: paper.Usage{Model: "m", Kind: paper.KindChat, InputTokens: 100, OutputTokens: 20}}, nil
}

type fakeEmbedder struct{}

func (fakeEmbedder) Space() paper.Space { return paper.Space{Model: "e", Dimensions: 2, Template: "t"} }
func (fakeEmbedder) Embed(_ context.Context, ps []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	return make([]paper.Embedding, len(ps)), paper.Usage{Model: "e", Kind: paper.KindEmbedding, InputTokens: 7 * len(ps)}, nil
}
func (fakeEmbedder) EmbedQuery(context.Context, string) ([]float32, paper.Usage, error) {
	return []float32{1, 0}, paper.Usage{Model: "e", Kind: paper.KindEmbedding, InputTokens: 3}, nil
}

func TestDecoratorsCountProcessedFailedAndTokens(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{})
	ctx := t.Context()
	ok, bad := m.Summarizer(fakeSummarizer{}), m.Summarizer(fakeSummarizer{fail: true})
	for range 3 {
		if _, err := ok.Summarize(ctx, paper.Abstract{ID: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bad.Summarize(ctx, paper.Abstract{ID: "b"}); err == nil {
		t.Fatal("the failing summarizer's error was lost")
	}
	emb := m.Embedder(fakeEmbedder{})
	if _, _, err := emb.Embed(ctx, make([]paper.Abstract, 5)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := emb.EmbedQuery(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP paperpipe_stage_failed_total Items a pipeline stage failed on (each attempt counts; the message may be retried).
# TYPE paperpipe_stage_failed_total counter
paperpipe_stage_failed_total{stage="summarize"} 1
# HELP paperpipe_stage_processed_total Items a pipeline stage completed: papers summarized, embedded or recorded, results stored.
# TYPE paperpipe_stage_processed_total counter
paperpipe_stage_processed_total{stage="embed"} 5
paperpipe_stage_processed_total{stage="query_embed"} 1
paperpipe_stage_processed_total{stage="summarize"} 3
# HELP paperpipe_tokens_total Tokens the model API reported (for an embeddings answer that reports none, the client's estimate), by model, kind (chat, embedding) and direction (input, output).
# TYPE paperpipe_tokens_total counter
paperpipe_tokens_total{direction="input",kind="chat",model="m"} 300
paperpipe_tokens_total{direction="input",kind="embedding",model="e"} 38
paperpipe_tokens_total{direction="output",kind="chat",model="m"} 60
paperpipe_tokens_total{direction="output",kind="embedding",model="e"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"paperpipe_stage_processed_total", "paperpipe_stage_failed_total", "paperpipe_tokens_total"); err != nil {
		t.Error(err)
	}
}

func TestTransportRecordsEndpointAndCode(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/embeddings") {
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	m := metrics.New(metrics.Config{})
	c := &http.Client{Transport: m.Transport(nil)}
	for _, p := range []string{"/v1/chat/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/secret-path-42"} {
		resp, err := c.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if _, err := c.Get("http://127.0.0.1:1/v1/embeddings"); err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	for _, tc := range []struct {
		endpoint, code string
		n              int
	}{{"chat/completions", "200", 2}, {"embeddings", "429", 1}, {"other", "200", 1}, {"embeddings", "error", 1}} {
		h, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got uint64
		for _, mf := range h {
			if mf.GetName() != "paperpipe_api_request_duration_seconds" {
				continue
			}
			for _, mm := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range mm.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["endpoint"] == tc.endpoint && labels["code"] == tc.code {
					got = mm.GetHistogram().GetSampleCount()
				}
			}
		}
		if got != uint64(tc.n) {
			t.Errorf("requests to %s with code %s = %d, want %d", tc.endpoint, tc.code, got, tc.n)
		}
	}
}

func TestBacklogAndWorkersAreReadAtScrape(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{ScrapeTimeout: time.Second})
	pending := uint64(7)
	fail := false
	m.SetQueueSource(func(ctx context.Context) (metrics.Queue, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("queue source called without a deadline")
		}
		if fail {
			return metrics.Queue{}, errors.New("nats down")
		}
		return metrics.Queue{Backlogs: []metrics.Backlog{{Consumer: "new", Pending: pending, AckPending: 2}}, DeadLetters: 3}, nil
	})
	acked := int64(4)
	m.AddWorker("new", func() metrics.WorkerCounts {
		return metrics.WorkerCounts{Received: 5, Acked: acked, Dead: 1, Pauses: 2}
	})
	check := func(want string, names ...string) {
		t.Helper()
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
			t.Error(err)
		}
	}
	check(`
# HELP paperpipe_dead_letters Dead letters kept on the PAPERS_DLQ stream: papers given up on, waiting for `+"`paperpipe dlq replay`"+` (or `+"`paperpipe dlq drop`"+`, which removes them for good).
# TYPE paperpipe_dead_letters gauge
paperpipe_dead_letters 3
# HELP paperpipe_queue_messages Messages of a durable consumer by state: pending (not yet delivered), ack_pending (delivered and not yet acknowledged: in a worker, or handed back to be delivered again), redelivered.
# TYPE paperpipe_queue_messages gauge
paperpipe_queue_messages{consumer="new",state="ack_pending"} 2
paperpipe_queue_messages{consumer="new",state="pending"} 7
paperpipe_queue_messages{consumer="new",state="redelivered"} 0
# HELP paperpipe_queue_up 1 when the last scrape could read the queue backlog from JetStream, 0 when it could not.
# TYPE paperpipe_queue_up gauge
paperpipe_queue_up 1
`, "paperpipe_dead_letters", "paperpipe_queue_messages", "paperpipe_queue_up")
	pending, acked, fail = 3, 5, true
	check(`
# HELP paperpipe_queue_up 1 when the last scrape could read the queue backlog from JetStream, 0 when it could not.
# TYPE paperpipe_queue_up gauge
paperpipe_queue_up 0
# HELP paperpipe_worker_messages_total Messages a worker of this process handled, by consumer and outcome (received; acked, of which skipped: nothing was left to do; retried; dead).
# TYPE paperpipe_worker_messages_total counter
paperpipe_worker_messages_total{consumer="new",outcome="acked"} 5
paperpipe_worker_messages_total{consumer="new",outcome="dead"} 1
paperpipe_worker_messages_total{consumer="new",outcome="received"} 5
paperpipe_worker_messages_total{consumer="new",outcome="retried"} 0
paperpipe_worker_messages_total{consumer="new",outcome="skipped"} 0
# HELP paperpipe_worker_api_pauses_total Pauses of a worker of this process because the API refused the account or the configuration (401, 402, 403, 404, 405, 501, insufficient_quota, a daily quota used up, vectors of another length than the space's), could not be reached, failed at TLS, was still loading its model, or failed every request (server errors, bodies that are no answer, or no answer in time, for several papers in a row, none answered): its messages wait in the queue until the API accepts them again.
# TYPE paperpipe_worker_api_pauses_total counter
paperpipe_worker_api_pauses_total{consumer="new"} 2
`, "paperpipe_dead_letters", "paperpipe_queue_messages", "paperpipe_queue_up", "paperpipe_worker_messages_total", "paperpipe_worker_api_pauses_total")
}

// TestWorkerCountersOnlyGrowWhenTheWorkerStartsAgain: `up` and `worker` start their workers
// again after a fit activates another offline model, each with counts from zero, and
// AddWorker is called again for the same consumer. The counters of the process go on from
// the stopped worker's last counts instead of falling to the new one's.
func TestWorkerCountersOnlyGrowWhenTheWorkerStartsAgain(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{})
	m.AddWorker("new", func() metrics.WorkerCounts {
		return metrics.WorkerCounts{Received: 1000, Acked: 990, Skipped: 3, Retried: 4, Dead: 2, Pauses: 1, DBPauses: 2}
	})
	m.AddWorker("other", func() metrics.WorkerCounts { return metrics.WorkerCounts{Received: 7, Acked: 7} })
	acked := int64(3)
	m.AddWorker("new", func() metrics.WorkerCounts {
		return metrics.WorkerCounts{Received: 3, Acked: acked, Pauses: 1, DBPauses: 1}
	})
	acked = 4
	m.AddWorker("new", func() metrics.WorkerCounts { return metrics.WorkerCounts{Received: 1, Acked: 1} })
	want := `
# HELP paperpipe_worker_messages_total Messages a worker of this process handled, by consumer and outcome (received; acked, of which skipped: nothing was left to do; retried; dead).
# TYPE paperpipe_worker_messages_total counter
paperpipe_worker_messages_total{consumer="new",outcome="acked"} 995
paperpipe_worker_messages_total{consumer="new",outcome="dead"} 2
paperpipe_worker_messages_total{consumer="new",outcome="received"} 1004
paperpipe_worker_messages_total{consumer="new",outcome="retried"} 4
paperpipe_worker_messages_total{consumer="new",outcome="skipped"} 3
paperpipe_worker_messages_total{consumer="other",outcome="acked"} 7
paperpipe_worker_messages_total{consumer="other",outcome="dead"} 0
paperpipe_worker_messages_total{consumer="other",outcome="received"} 7
paperpipe_worker_messages_total{consumer="other",outcome="retried"} 0
paperpipe_worker_messages_total{consumer="other",outcome="skipped"} 0
# HELP paperpipe_worker_api_pauses_total Pauses of a worker of this process because the API refused the account or the configuration (401, 402, 403, 404, 405, 501, insufficient_quota, a daily quota used up, vectors of another length than the space's), could not be reached, failed at TLS, was still loading its model, or failed every request (server errors, bodies that are no answer, or no answer in time, for several papers in a row, none answered): its messages wait in the queue until the API accepts them again.
# TYPE paperpipe_worker_api_pauses_total counter
paperpipe_worker_api_pauses_total{consumer="new"} 2
paperpipe_worker_api_pauses_total{consumer="other"} 0
# HELP paperpipe_worker_database_pauses_total Pauses of a worker of this process because the database could not be reached or could not write: its messages wait in the queue until it records them again.
# TYPE paperpipe_worker_database_pauses_total counter
paperpipe_worker_database_pauses_total{consumer="new"} 3
paperpipe_worker_database_pauses_total{consumer="other"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "paperpipe_worker_messages_total", "paperpipe_worker_api_pauses_total", "paperpipe_worker_database_pauses_total"); err != nil {
		t.Error(err)
	}
}

// TestUnusableAnswersAreCountedByEndpointAndReason: an answer with status 200 whose body is no
// answer counts in paperpipe_api_request_duration_seconds as a success; it has its own counter.
func TestUnusableAnswersAreCountedByEndpointAndReason(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{})
	m.UnusableAnswer("chat/completions", "not_json")
	m.UnusableAnswer("chat/completions", "not_json")
	m.UnusableAnswer("embeddings", "truncated")
	want := `
# HELP paperpipe_api_unusable_answers_total Answers of the OpenAI-compatible API with a success status that could not be used (and were retried), by endpoint and reason (not_json, truncated, empty, wrong_shape, incomplete).
# TYPE paperpipe_api_unusable_answers_total counter
paperpipe_api_unusable_answers_total{endpoint="chat/completions",reason="not_json"} 2
paperpipe_api_unusable_answers_total{endpoint="embeddings",reason="truncated"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "paperpipe_api_unusable_answers_total"); err != nil {
		t.Error(err)
	}
}

func TestNilMetricsRecordsNothing(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	m.ObserveStage("x", 1, time.Second, nil)
	m.ObserveHTTP("r", "GET", 200, time.Second)
	m.ObserveSearch("keyword", time.Second, nil)
	m.ObserveQueryCache(true)
	m.AddUsage(paper.Usage{InputTokens: 1})
	m.SetQueueSource(nil)
	m.AddWorker("c", nil)
	m.UnusableAnswer("embeddings", "not_json")
	var s metrics.Summarizer = fakeSummarizer{}
	if m.Summarizer(s) != s {
		t.Error("a nil Metrics wraps the summarizer")
	}
	if m.Transport(nil) != http.DefaultTransport {
		t.Error("a nil Metrics wraps the transport")
	}
}

func TestEndpoint(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/v1/chat/completions":      "chat/completions",
		"/openai/v1/embeddings/":    "embeddings",
		"/v1/models":                "models",
		"/v1/completions":           "completions",
		"/v1/fine_tuning/jobs/ft-1": "other",
		"":                          "other",
	} {
		if got := metrics.Endpoint(in); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWorkerPausedGaugesShowThePauseNow: the pause counters move once per pause, minutes apart
// in a long outage (the pauses grow to 5 minutes), and stop when it ends as they do between
// pauses: the gauges say whether the workers are paused now, and so when the outage was over.
// A worker started again reports its own state, not the stopped one's.
func TestWorkerPausedGaugesShowThePauseNow(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{})
	var api, db bool
	m.AddWorker("new", func() metrics.WorkerCounts {
		return metrics.WorkerCounts{Pauses: 3, APIPaused: api, DBPaused: db}
	})
	check := func(api, db int) {
		t.Helper()
		want := fmt.Sprintf(`
# HELP paperpipe_worker_api_paused 1 while a worker of this process is paused because the API refuses the account or the configuration (401, 402, 403, 404, 405, 501, insufficient_quota, a daily quota used up, vectors of another length than the space's), cannot be reached, fails at TLS, is still loading its model, or fails every request (server errors, bodies that are no answer, or no answer in time, for several papers in a row, none answered) — from its first such pause until the API accepts a request again —, 0 otherwise.
# TYPE paperpipe_worker_api_paused gauge
paperpipe_worker_api_paused{consumer="new"} %d
# HELP paperpipe_worker_database_paused 1 while a worker of this process is paused because the database cannot be reached or cannot write (from its first such pause until the database records again), 0 otherwise.
# TYPE paperpipe_worker_database_paused gauge
paperpipe_worker_database_paused{consumer="new"} %d
`, api, db)
		if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "paperpipe_worker_api_paused", "paperpipe_worker_database_paused"); err != nil {
			t.Error(err)
		}
	}
	check(0, 0)
	api = true
	check(1, 0)
	api, db = false, true
	check(0, 1)
	m.AddWorker("new", func() metrics.WorkerCounts { return metrics.WorkerCounts{} })
	check(0, 0)
}

// TestAPIPauseHelpNamesEveryReason: an operator reading the API pause metrics (in a dashboard,
// or `curl /metrics`) learns from their help why a worker pauses. Each reason the worker pauses
// for (pipeline's openPause) is named by both: the counter and the gauge say the same.
func TestAPIPauseHelpNamesEveryReason(t *testing.T) {
	t.Parallel()
	m := metrics.New(metrics.Config{})
	m.AddWorker("new", func() metrics.WorkerCounts { return metrics.WorkerCounts{} })
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	help := map[string]string{}
	for _, f := range fams {
		help[f.GetName()] = f.GetHelp()
	}
	reasons := []string{
		"refuse",            // 401, 402, 403, 404, 405, 501, insufficient_quota, a daily quota, vectors of another length
		"be reached",        // llm.ErrUnreachable
		"loading its model", // llama.cpp's 503 "Loading model"
		"TLS",               // llm.ErrTLS
		"every request",     // llm.ErrServerFailing: server errors for several papers in a row
		"in time",           // llm.ErrServerFailing: no answer within the message's time
	}
	for _, name := range []string{"paperpipe_worker_api_pauses_total", "paperpipe_worker_api_paused"} {
		h, ok := help[name]
		if !ok {
			t.Fatalf("%s not gathered", name)
		}
		for _, r := range reasons {
			if !strings.Contains(h, r) {
				t.Errorf("%s's help does not name %q: %s", name, r, h)
			}
		}
	}
}
