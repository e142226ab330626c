package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// logBuffer collects a logger's lines; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const pauseLine = "pausing the worker"

// TestAccountRefusalPausesTheWorkerUntilTheAPIAcceptsIt: a revoked key (a 401; 403, 404 and an
// exhausted quota alike) is no paper's fault, and every message would fail the same way. The
// worker pauses, logging each pause once, and the messages stay queued, none dead-lettered
// however many times the API refuses — even with every delivery the last (MaxDeliver 1); when
// the key works again the worker resumes on its own and does them all.
func TestAccountRefusalPausesTheWorkerUntilTheAPIAcceptsIt(t *testing.T) {
	t.Parallel()
	const key = "sk-new-key-0123456789"
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, APIKey: "sk-old-key"})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: key, Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b, papers, w, logs := pausingWorker(t, sum, emb)

	// Without the pause, the first refusals dead-letter all five messages.
	waitFor(t, "the API refusing the key again and again", func() (bool, string) {
		s := w.Stats()
		return s.Received >= 12 || s.Dead > 0, fmt.Sprintf("stats %+v", s)
	})
	checkAllQueued(t, b, w, papers, "a revoked key")
	if api, db := w.Paused(); !api || db {
		t.Errorf("Paused() = %v, %v while the API refuses the key; want true, false", api, db)
	}
	// After the first pause the worker tries one message at a time: a pause costs about one
	// delivery, not one per message.
	if s := w.Stats(); s.Paused < 3 || s.Received > s.Paused+int64(len(papers))+1 {
		t.Errorf("stats %+v: want a pause per message tried once paused", s)
	}

	api.SetAPIKey(key) // fixed
	// Done: every TL;DR stored and every message acknowledged (the work queue empty). A copy
	// requeued during the pauses withdraws its originals' dead letters before it is acknowledged,
	// each by a claim published to the dead-letter stream and removed at once: read as soon as
	// the TL;DRs were stored, the stream could still hold such a claim for a moment.
	waitFor(t, "every paper done once the key works", func() (bool, string) {
		c, q := counts(t, b, sum), streamMsgs(t, b.js, pipeline.StreamPapers)
		return c.WithTLDR == int64(len(papers)) && q == 0, fmt.Sprintf("counts %+v, %d messages queued, stats %+v", c, q, w.Stats())
	})
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("%d dead letters, want none; the first: %s", len(dls), dls[0].Reason)
	}
	if api, db := w.Paused(); api || db {
		t.Errorf("Paused() = %v, %v once the key works; want false, false", api, db)
	}
	out := logs.String()
	if n, s := strings.Count(out, pauseLine), w.Stats(); int64(n) != s.Paused {
		t.Errorf("%d pause lines logged for %d pauses, want one each:\n%s", n, s.Paused, out)
	}
	if !strings.Contains(out, "Incorrect API key provided") || !strings.Contains(out, "the worker resumes") {
		t.Errorf("the log should give the API's answer and say when the worker resumes:\n%s", out)
	}
	if strings.Contains(out, key) {
		t.Error("the API key appears in the log")
	}
}

// TestAccountRefusalEndsAnExitWhenIdleRunWithTheMessagesQueued: a run that exits when idle
// would wait for someone to fix the key; it stops at once with the API's answer, and leaves
// every message queued for the next run.
func TestAccountRefusalEndsAnExitWhenIdleRunWithTheMessagesQueued(t *testing.T) {
	t.Parallel()
	sum, api := revokedKeySummarizer(t)
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 2})
	papers := sampledata.Papers(t)[:5]
	publish(t, b.js, papers)
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, Concurrency: 4,
		FetchWait: 200 * time.Millisecond, ExitWhenIdle: true, Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = w.Run(ctx)
	if !errors.Is(err, llm.ErrAccount) || !strings.Contains(err.Error(), "Incorrect API key provided") {
		t.Errorf("Run = %v, want the API's refusal (llm.ErrAccount)", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the run did not stop")
	}
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("%d dead letters, want none; the first: %s", len(dls), dls[0].Reason)
	}
	waitQueued(t, b, len(papers))

	api.SetAPIKey("sk-revoked")
	runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4})
	if c := counts(t, b, sum); c.WithTLDR != int64(len(papers)) {
		t.Errorf("counts %+v after the next run, want all %d papers done", c, len(papers))
	}
}

// TestExitWhenIdleStopsAtARefusalWhateverThePauseLength: an ExitWhenIdle run stops at the
// first refusal even when its pause is over by the time the pull loop looks (a Backoff of 0,
// "retry at once"; or a pause shorter than the pull request in progress) — it went on trying
// one message at a time, each refused, for ever, with a warning each.
func TestExitWhenIdleStopsAtARefusalWhateverThePauseLength(t *testing.T) {
	t.Parallel()
	sum, _ := revokedKeySummarizer(t)
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 3})
	publish(t, b.js, sampledata.Papers(t)[:10])
	var logs logBuffer
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, Concurrency: 4,
		FetchWait: 200 * time.Millisecond, ExitWhenIdle: true, Backoff: func(int) time.Duration { return 0 },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if ctx.Err() != nil || !errors.Is(err, llm.ErrAccount) {
		t.Errorf("Run = %v (still running at the deadline: %v), want it to stop at the refusal with llm.ErrAccount; stats %+v, %d warnings logged",
			err, ctx.Err() != nil, w.Stats(), strings.Count(logs.String(), "level=WARN"))
	}
	if s := w.Stats(); s.Dead != 0 {
		t.Errorf("%d papers dead-lettered for the API's refusal", s.Dead)
	}
}

// TestVectorsOfTheWrongLengthPauseTheWorker: a model server answering vectors of another
// length than the space's (another model behind the name, a model that cannot shorten its
// vectors, dimensions configured wrong) fails every paper alike, each request paid for. It is
// the configuration's problem, as a 401 or a 404: the worker pauses with one warning per pause
// naming the model and both lengths, and the messages stay queued — none dead-lettered, even
// on its last delivery.
func TestVectorsOfTheWrongLengthPauseTheWorker(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16}) // what the server returns
	emb, err := embed.New(embed.Config{BaseURL: api.URL(), APIKey: "k", Model: "BAAI/bge-m3", Dimensions: 32})
	if err != nil {
		t.Fatal(err)
	}
	sum := summarize.NewOffline(30)
	b, papers, w, logs := pausingWorker(t, sum, emb)

	checkPausedAllQueued(t, b, w, papers, 3, "vectors of the wrong length")
	out := logs.String()
	if n, s := strings.Count(out, pauseLine), w.Stats(); n < 1 || int64(n) > s.Paused {
		t.Errorf("%d pause lines logged for %d pauses, want one each:\n%s", n, s.Paused, out)
	}
	if !strings.Contains(out, "model BAAI/bge-m3 returned 16-dimensional vectors, the space expects 32") {
		t.Errorf("the warning should name the model, the length returned and the length expected:\n%s", out)
	}
	if st := api.Stats(); st.EmbedRequests > w.Stats().Paused+int64(len(papers)) {
		t.Errorf("%d embeddings requests for %d pauses: want about one per pause", st.EmbedRequests, w.Stats().Paused)
	}
}

// pausingWorker publishes five sample papers, each delivery their last (MaxDeliver 1), and
// starts a worker of sum and emb with short pauses, logging into the returned buffer.
func pausingWorker(t *testing.T, sum pipeline.Summarizer, emb pipeline.Embedder) (*testBundle, []paper.Abstract, *pipeline.Worker, *logBuffer) {
	t.Helper()
	return pausingWorkerWith(t, sum, emb, 1, pipeline.WorkerConfig{Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
}

// pausingWorkerWith is pausingWorker with maxDeliver deliveries per message, and cfg's Backoff
// and timeouts (its Concurrency and Logger are set here).
func pausingWorkerWith(t *testing.T, sum pipeline.Summarizer, emb pipeline.Embedder, maxDeliver int, cfg pipeline.WorkerConfig) (*testBundle, []paper.Abstract, *pipeline.Worker, *logBuffer) {
	t.Helper()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: maxDeliver})
	papers := sampledata.Papers(t)[:5]
	publish(t, b.js, papers)
	logs := &logBuffer{}
	cfg.Concurrency = 4
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	w := startWorker(t, b, sum, emb, cfg)
	return b, papers, w, logs
}

// checkPausedAllQueued waits until the worker has paused pauses times (for the API), then
// checks that no paper was dead-lettered meanwhile (for why) and every one is still queued.
func checkPausedAllQueued(t *testing.T, b *testBundle, w *pipeline.Worker, papers []paper.Abstract, pauses int64, why string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the worker pausing %d times", pauses), func() (bool, string) {
		s := w.Stats()
		return s.Paused >= pauses || s.Dead > 0, fmt.Sprintf("stats %+v", s)
	})
	checkAllQueued(t, b, w, papers, why)
}

// checkAllQueued fails the test unless no paper was dead-lettered (for why) and every one is
// still queued.
func checkAllQueued(t *testing.T, b *testBundle, w *pipeline.Worker, papers []paper.Abstract, why string) {
	t.Helper()
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Fatalf("%d of %d papers dead-lettered for %s (stats %+v); the first: %s", len(dls), len(papers), why, w.Stats(), dls[0].Reason)
	}
	waitQueued(t, b, len(papers))
}

// checkAllDone waits until the worker has acked every paper, once when (the API is back), and
// fails the test if any was dead-lettered before.
func checkAllDone(t *testing.T, b *testBundle, w *pipeline.Worker, papers []paper.Abstract, when string) {
	t.Helper()
	waitFor(t, "every paper done once "+when, func() (bool, string) {
		s := w.Stats()
		return s.Acked == int64(len(papers)), fmt.Sprintf("%+v", s)
	})
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("%d papers dead-lettered before %s", len(dls), when)
	}
}

// waitQueued waits until the work queue holds n messages (it fails the test after a minute): a
// message handed back on its last delivery is requeued as a copy, and the original's
// termination is an acknowledgement the server applies on its own time — a copy too many
// stays, one whose original is being terminated goes.
func waitQueued(t *testing.T, b *testBundle, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the queue to hold the %d messages", n), func() (bool, string) {
		q := streamMsgs(t, b.js, pipeline.StreamPapers)
		return q == uint64(n), fmt.Sprintf("%d messages queued, want all %d", q, n)
	})
}

// TestUnreachableAPIPausesTheWorkerUntilItIsBack: the API's server down (a local model server
// stopped, a network outage) is no paper's fault either: the worker pauses as on a refused key,
// nothing is dead-lettered however long it lasts (every delivery the last here), and when the
// server is back the worker does every paper. It used up the messages' deliveries and
// dead-lettered the whole backlog within minutes.
func TestUnreachableAPIPausesTheWorkerUntilItIsBack(t *testing.T) {
	t.Parallel()
	// The server is down: nothing listens on the port, below the ephemeral range, so that no
	// other test's server takes it before this one's comes back.
	addr := "127.0.0.1:" + strconv.Itoa(nettest.FreePort(t))
	sum, err := summarize.New(summarize.Config{BaseURL: "http://" + addr + "/v1", APIKey: "sk-test", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	b, papers, w, logs := pausingWorker(t, sum, embed.NewOffline())
	checkPausedAllQueued(t, b, w, papers, 2, "an unreachable API")
	if !strings.Contains(logs.String(), "the API cannot be reached (not the papers' fault): pausing the worker") {
		t.Errorf("the pause does not say the API cannot be reached:\n%s", logs.String())
	}
	// The server comes back on its address.
	back, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: openaitest.New(openaitest.Config{Dimensions: 16}).Handler()}
	go func() { _ = srv.Serve(back) }()
	t.Cleanup(func() { _ = srv.Close() })
	checkAllDone(t, b, w, papers, "the API is back")
}

// TestModelServerLoadingItsModelPausesTheWorker: llama.cpp's server listens before it has
// loaded its model and answers 503 "Loading model" until it has, for minutes with a large one —
// a worker started with it (a compose file, a reboot) meets that answer first. It was retried as
// a server failure and used up the messages' deliveries, dead-lettering the backlog (at once
// here, every delivery the last). No paper is at fault: the worker pauses, as on a server that
// cannot be reached, and does every paper once the model is loaded.
func TestModelServerLoadingItsModelPausesTheWorker(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16})
	api.SetLoading(true)
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), Model: "m", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, papers, w, logs := pausingWorker(t, sum, embed.NewOffline())
	checkPausedAllQueued(t, b, w, papers, 2, "a model server loading its model")
	if out := logs.String(); !strings.Contains(out, "pausing the worker") || !strings.Contains(out, "Loading model") {
		t.Errorf("the pause does not give the server's answer:\n%s", out)
	}
	api.SetLoading(false) // loaded
	checkAllDone(t, b, w, papers, "the model is loaded")
}

// TestModelServerWithNoModelLoadedPausesTheWorker: LM Studio's server answers every request
// 400 "No models loaded. Please load a model in the developer page or use the `lms load`
// command." while it has none loaded (its just-in-time loading off, or the model evicted after
// its idle time-to-live, an hour by default). A 400 was the paper's fault: every TL;DR and
// embedding failed at once and the backlog was dead-lettered. No paper is at fault: the worker
// pauses, giving the server's answer, and does every paper once a model is loaded.
func TestModelServerWithNoModelLoadedPausesTheWorker(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16})
	api.SetNoModel(true)
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), Model: "m", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := embed.New(embed.Config{BaseURL: api.URL(), Model: "local", Dimensions: 16, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, papers, w, logs := pausingWorker(t, sum, emb)
	checkPausedAllQueued(t, b, w, papers, 2, "a model server with no model loaded")
	if out := logs.String(); !strings.Contains(out, "pausing the worker") || !strings.Contains(out, "No models loaded") {
		t.Errorf("the pause does not give the server's answer:\n%s", out)
	}
	api.SetNoModel(false) // loaded
	checkAllDone(t, b, w, papers, "a model is loaded")
}

// TestServerThatDoesNotServeEmbeddingsPausesTheWorker: llama.cpp's server started without
// --embeddings answers every embeddings request 501 "This server does not support embeddings.
// Start it with `--embeddings`" (and started with it, every chat request 501). It was retried
// as a server failure, and the messages' deliveries used up until the backlog was
// dead-lettered (at once here, every delivery the last). No paper is at fault and the answer
// will not change until the server is restarted: the worker pauses, saying why.
func TestServerThatDoesNotServeEmbeddingsPausesTheWorker(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, Serves: openaitest.ServesChat})
	emb, err := embed.New(embed.Config{BaseURL: api.URL(), Model: "local", Dimensions: 16, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, papers, w, logs := pausingWorker(t, summarize.NewOffline(30), emb)
	checkPausedAllQueued(t, b, w, papers, 2, "a server that does not serve embeddings")
	if out := logs.String(); !strings.Contains(out, "pausing the worker") || !strings.Contains(out, "Start it with `--embeddings`") {
		t.Errorf("the pause does not give the server's answer:\n%s", out)
	}
}

// TestUntrustedCertificatePausesTheWorker: an API whose TLS certificate this machine does not
// trust (a private CA not in the system's bundle, a proxy that intercepts TLS) fails every
// paper the same way. Each call was retried as a transient failure and the messages' deliveries
// used up: the backlog was dead-lettered (at once here, every delivery the last). The worker
// pauses, saying what is wrong and which settings Go reads the CAs from.
func TestUntrustedCertificatePausesTheWorker(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16})
	ts := httptest.NewUnstartedServer(api.Handler())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes the client refuses
	ts.StartTLS()
	t.Cleanup(ts.Close)
	sum, err := summarize.New(summarize.Config{BaseURL: ts.URL + "/v1", APIKey: "sk-test", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	b, papers, w, logs := pausingWorker(t, sum, embed.NewOffline())
	checkPausedAllQueued(t, b, w, papers, 2, "an API certificate of an unknown CA")
	if out := logs.String(); !strings.Contains(out, "the connection to the API fails at TLS (not the papers' fault): pausing the worker") ||
		!strings.Contains(out, "unknown authority") || !strings.Contains(out, "SSL_CERT_FILE") {
		t.Errorf("the pause does not say the certificate is not trusted and what to set:\n%s", out)
	}
}

// revokedKeySummarizer is a summarizer whose key the API (returned) refuses (401) until it is
// given that key.
func revokedKeySummarizer(t *testing.T) (pipeline.Summarizer, *openaitest.Server) {
	t.Helper()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, APIKey: "sk-valid"})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "sk-revoked", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	return sum, api
}

// TestAPIHostThatDropsConnectionsPausesTheWorker: an API host that drops the connection
// attempts (a firewall, a partition) instead of refusing them gave no dial error — the
// message's deadline ended mid-connect — so every message used its deliveries and the backlog
// was dead-lettered. It pauses the worker now, as a refused connection does.
func TestAPIHostThatDropsConnectionsPausesTheWorker(t *testing.T) {
	t.Parallel()
	sum, err := summarize.New(summarize.Config{BaseURL: "http://" + nettest.BlackholeAddr(t) + "/v1", APIKey: "sk-test", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1, AckWait: 4 * time.Second})
	papers := sampledata.Papers(t)[:5]
	publish(t, b.js, papers)
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
	checkPausedAllQueued(t, b, w, papers, 1, "an API host that drops connection attempts")
}

// probeSummarizer refuses the account while refusing is set; then it fails the first call
// (the probe after the pause) transiently after slow, and answers every later call after
// slow. It records how many calls ran at once once the refusals ended.
type probeSummarizer struct {
	slow            time.Duration
	refusing        atomic.Bool
	after, inFlight atomic.Int64 // calls since the refusals ended, calls in flight
	most            atomic.Int64 // calls in flight at once since the refusals ended
	sum             pipeline.Summarizer
}

func (p *probeSummarizer) Model() string         { return p.sum.Model() }
func (p *probeSummarizer) PromptVersion() string { return p.sum.PromptVersion() }
func (p *probeSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	if p.refusing.Load() {
		return paper.Summary{}, fmt.Errorf("a revoked key: %w", llm.ErrAccount)
	}
	n := p.after.Add(1)
	in := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	for m := p.most.Load(); in > m && !p.most.CompareAndSwap(m, in); m = p.most.Load() {
	}
	select {
	case <-time.After(p.slow):
	case <-ctx.Done():
		return paper.Summary{}, ctx.Err()
	}
	if n == 1 {
		return paper.Summary{}, errors.New("502 bad gateway")
	}
	return p.sum.Summarize(ctx, a)
}

// TestResumeAfterASlowOrFailedProbe: after a pause the worker tries one message at a time and
// waits for each to settle (waitSettled). A probe that is slow, or that fails for a reason of
// its own (a 5xx), only delays the resumption by its own processing: the next message is
// tried, and once one goes through the worker processes Concurrency messages at once again.
func TestResumeAfterASlowOrFailedProbe(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	sum := &probeSummarizer{slow: 500 * time.Millisecond, sum: summarize.NewOffline(30)}
	sum.refusing.Store(true)
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:12]
	publish(t, b.js, papers)
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
	waitFor(t, "a pause", func() (bool, string) {
		s := w.Stats()
		return s.Paused >= 2, fmt.Sprintf("%+v", s)
	})
	sum.refusing.Store(false)
	waitFor(t, "every paper done after the pause", func() (bool, string) {
		c := counts(t, b, sum)
		return c.WithTLDR == int64(len(papers)), fmt.Sprintf("counts %+v, stats %+v", c, w.Stats())
	})
	if s := w.Stats(); s.Dead != 0 {
		t.Errorf("stats %+v: want no dead letter", s)
	}
	if most := sum.most.Load(); most < 2 {
		t.Errorf("at most %d TL;DR request at once after the pause: the worker did not resume its concurrency", most)
	}
}
