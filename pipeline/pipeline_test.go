package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// testBundle is one test's real services: its own JetStream server, its own database schema.
type testBundle struct {
	js    jetstream.JetStream
	store *store.Store
	space paper.Space
	url   string // the store's database
}

func setup(t *testing.T, emb pipeline.Embedder, topo pipeline.TopologyConfig) *testBundle {
	t.Helper()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	return setupOn(t, js, emb)
}

// setupOn is setup on a JetStream whose topology the test set up.
func setupOn(t *testing.T, js jetstream.JetStream, emb pipeline.Embedder) *testBundle {
	t.Helper()
	ctx := context.Background()
	url := pgtest.URL(t)
	st, err := store.Open(ctx, store.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sp, err := st.EnsureSpace(ctx, emb.Space())
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{js: js, store: st, space: sp, url: url}
}

func publish(t *testing.T, js jetstream.JetStream, papers []paper.Abstract) pipeline.PublishStats {
	t.Helper()
	ctx := context.Background()
	p := pipeline.NewPublisher(js, pipeline.SubjectNew, 64)
	for _, a := range papers {
		if err := p.Publish(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return p.Stats()
}

// runUntilIdle runs a worker until the consumer is empty.
func runUntilIdle(t *testing.T, b *testBundle, sum pipeline.Summarizer, emb pipeline.Embedder, cfg pipeline.WorkerConfig) pipeline.WorkerStats {
	t.Helper()
	return runWith(t, b, b.store, sum, emb, cfg)
}

func runWith(t *testing.T, b *testBundle, st pipeline.Store, sum pipeline.Summarizer, emb pipeline.Embedder, cfg pipeline.WorkerConfig) pipeline.WorkerStats {
	t.Helper()
	cfg.SpaceID = b.space.ID
	cfg.ExitWhenIdle = true
	if cfg.FetchWait == 0 {
		cfg.FetchWait = 200 * time.Millisecond
	}
	w, err := pipeline.NewWorker(b.js, st, sum, emb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("worker did not finish: %+v", w.Stats())
	}
	return w.Stats()
}

func counts(t *testing.T, b *testBundle, sum pipeline.Summarizer) store.Counts {
	t.Helper()
	c, err := b.store.Counts(context.Background(), store.Work{Model: sum.Model(), PromptVersion: sum.PromptVersion(), SpaceID: b.space.ID})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// chatCallsFor is the number of chat completions the stored TL;DRs took: one each, two for
// those whose first answer failed validation.
func chatCallsFor(t *testing.T, b *testBundle, papers []paper.Abstract) int64 {
	t.Helper()
	var n int64
	for _, a := range papers {
		sums, err := b.store.Summaries(context.Background(), a.ID)
		if err != nil || len(sums) != 1 {
			t.Fatalf("summaries of %s: %v, %v", a.ID, sums, err)
		}
		n++
		if sums[0].Validation != paper.ValidOK {
			n++
		}
	}
	return n
}

func TestWorkerStoresTLDRAndEmbeddingForEverySamplePaper(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)
	if st := publish(t, b.js, papers); st.Published != len(papers) {
		t.Fatalf("published %d of %d", st.Published, len(papers))
	}
	ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 8, BatchSize: 16})
	c := counts(t, b, sum)
	if c.Papers != int64(len(papers)) || c.WithTLDR != c.Papers || c.WithEmbedding != c.Papers {
		t.Errorf("counts = %+v, want %d papers each with a TL;DR and an embedding", c, len(papers))
	}
	if ws.Acked != int64(len(papers)) || ws.Dead != 0 {
		t.Errorf("worker stats = %+v", ws)
	}
}

func TestRepeatedIngestIsDroppedAndRedeliveryMakesNoAPICalls(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 64})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "test", Model: "gpt-4o-mini"})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := embed.New(embed.Config{BaseURL: api.URL(), APIKey: "test", Model: "text-embedding-3-small", Dimensions: 64})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:40]
	publish(t, b.js, papers)
	runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 8})
	first := api.Stats()
	if want := chatCallsFor(t, b, papers); first.ChatDelivered != want {
		t.Fatalf("chat completions delivered = %d, want %d", first.ChatDelivered, want)
	}
	if first.EmbedRequests >= int64(len(papers)) {
		t.Errorf("embedding requests = %d for %d papers: inputs are not batched", first.EmbedRequests, len(papers))
	}

	// The same ingest again is dropped by the server's duplicate window.
	if st := publish(t, b.js, papers); st.Duplicates != len(papers) || st.Published != 0 {
		t.Errorf("second ingest: %+v, want all %d dropped as duplicates", st, len(papers))
	}
	// Past the window (published without a message id), the worker finds everything stored.
	for _, a := range papers {
		data, _ := json.Marshal(a)
		if _, err := b.js.Publish(context.Background(), pipeline.SubjectNew, data); err != nil {
			t.Fatal(err)
		}
	}
	ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 8})
	if ws.Skipped != int64(len(papers)) {
		t.Errorf("skipped %d, want %d", ws.Skipped, len(papers))
	}
	if second := api.Stats(); second.ChatRequests != first.ChatRequests || second.EmbedRequests != first.EmbedRequests {
		t.Errorf("API calls after redelivery: chat %d→%d, embeddings %d→%d; want none",
			first.ChatRequests, second.ChatRequests, first.EmbedRequests, second.EmbedRequests)
	}
	if c := counts(t, b, sum); c.Papers != int64(len(papers)) || c.TLDRsTotal != int64(len(papers)) {
		t.Errorf("counts = %+v: rows were duplicated", c)
	}
}

// flakyStore fails the first n TL;DR saves, like a database that restarts mid-run.
type flakyStore struct {
	*store.Store
	failures atomic.Int64
}

func (f *flakyStore) SaveSummaries(ctx context.Context, s []paper.Summary) (int, error) {
	if f.failures.Add(-1) >= 0 {
		return 0, errors.New("connection reset by peer")
	}
	return f.Store.SaveSummaries(ctx, s)
}

func (f *flakyStore) UpsertPapers(ctx context.Context, p []paper.Abstract, w paper.Work) ([]paper.Pending, error) {
	return f.Store.UpsertPapers(ctx, p, w)
}

func TestFailedSaveIsRetriedWithoutPayingTwice(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 32})
	sum, _ := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "k", Model: "m"})
	emb, _ := embed.New(embed.Config{BaseURL: api.URL(), APIKey: "k", Model: "e", Dimensions: 32})
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:10]
	publish(t, b.js, papers)
	fs := &flakyStore{Store: b.store}
	fs.failures.Store(3)
	ws := runWith(t, b, fs, sum, emb, pipeline.WorkerConfig{Concurrency: 10})
	if c := counts(t, b, sum); c.WithTLDR != int64(len(papers)) || c.WithEmbedding != int64(len(papers)) {
		t.Fatalf("counts = %+v, want all %d done", c, len(papers))
	}
	if fs.failures.Load() >= 0 {
		t.Fatal("the store never failed; the test proves nothing")
	}
	// The TL;DRs that came back were kept and saved again, not bought again.
	if s := api.Stats(); s.ChatDelivered != chatCallsFor(t, b, papers) || s.EmbedInputsDelivered != int64(len(papers)) {
		t.Errorf("delivered chat %d, embeddings %d for %d papers: work was paid twice", s.ChatDelivered, s.EmbedInputsDelivered, len(papers))
	}
	if ws.Acked != int64(len(papers)) {
		t.Errorf("stats = %+v", ws)
	}
}

func TestUndecodableMessageIsDeadLetteredWithReasonAndReplayable(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	ctx := context.Background()
	if _, err := b.js.Publish(ctx, pipeline.SubjectNew, []byte(`{"id":"arxiv:2401.00001","title":"x"`)); err != nil {
		t.Fatal(err)
	}
	good := sampledata.Papers(t)[:3]
	publish(t, b.js, good)
	ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{})
	if ws.Dead != 1 || ws.Acked != 3 {
		t.Fatalf("stats = %+v, want 1 dead and 3 acked", ws)
	}
	dls, err := pipeline.ListDeadLetters(ctx, b.js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || !strings.Contains(dls[0].Reason, "not an abstract") || dls[0].Attempts != 1 || dls[0].Subject != pipeline.SubjectNew {
		t.Fatalf("dead letters = %+v", dls)
	}
	if _, err := pipeline.ReplayDeadLetter(ctx, b.js, dls[0].Seq); err != nil {
		t.Fatal(err)
	}
	ws = runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{})
	if ws.Dead != 1 {
		t.Errorf("replayed message: stats %+v, want it dead-lettered again", ws)
	}
	if dls, _ := pipeline.ListDeadLetters(ctx, b.js, 0); len(dls) != 1 || dls[0].Seq == 1 {
		t.Errorf("after replay the dead-letter stream holds %+v, want only the new copy", dls)
	}
}

func TestShutdownMidRunLosesNothingAndDoesNothingTwice(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, ChatLatency: 150 * time.Millisecond})
	sum, _ := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "k", Model: "m"})
	emb, _ := embed.New(embed.Config{BaseURL: api.URL(), APIKey: "k", Model: "e", Dimensions: 16})
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)
	publish(t, b.js, papers)

	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	// Stop once some work has been acknowledged, with more in flight.
	for w.Stats().Acked < 10 {
		time.Sleep(5 * time.Millisecond)
	}
	chatAtStop := api.Stats().ChatDelivered
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The drain let the TL;DR calls in flight finish (at most Concurrency of them) and
	// returned the rest of the held messages at once: no TL;DR request started after it began.
	// (The bound allows one more round of 8: the worker sees the cancellation asynchronously,
	// so a slot freed just then may still start a call. Processing the held messages would
	// answer dozens more.)
	first := w.Stats()
	if first.Acked >= int64(len(papers)) {
		t.Fatalf("the worker finished everything before the shutdown; the test proves nothing: %+v", first)
	}
	if chat := api.Stats().ChatDelivered; chat > chatAtStop+2*8 {
		t.Errorf("%d TL;DRs answered by the end of the drain, %d when it began, with 8 calls at a time: the drain started held messages instead of returning them",
			chat, chatAtStop)
	}
	runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 8})
	c := counts(t, b, sum)
	if c.Papers != int64(len(papers)) || c.WithTLDR != c.Papers || c.WithEmbedding != c.Papers || c.TLDRsTotal != c.Papers {
		t.Errorf("after restart: %+v, want every paper done once", c)
	}
	// A graceful shutdown pays for nothing twice.
	if s, want := api.Stats(), chatCallsFor(t, b, papers); s.ChatDelivered != want {
		t.Errorf("chat completions delivered %d, want %d: work was paid twice across the shutdown", s.ChatDelivered, want)
	}
}

// TestDrainReturnsMessagesWithoutUsingUpTheirDeliveries: messages a draining worker hands back
// must not come back to its still-open pull request, again and again, until their deliveries
// are used up and they are dead-lettered.
func TestDrainReturnsMessagesWithoutUsingUpTheirDeliveries(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, ChatLatency: 300 * time.Millisecond})
	sum, _ := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "k", Model: "m"})
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 3})
	papers := sampledata.Papers(t)[:12]
	publish(t, b.js, papers)

	s := stopOnceHeld(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 1, FetchWait: 2 * time.Second}, len(papers))
	if s.Received > int64(len(papers))+1 {
		t.Errorf("the draining worker received %d deliveries of %d messages: returned messages came back to it", s.Received, len(papers))
	}
	runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4})
	dls, err := pipeline.ListDeadLetters(context.Background(), b.js, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 0 {
		t.Errorf("%d dead letters after a drain, want none; the first: %s: %s", len(dls), dls[0].PaperID, dls[0].Reason)
	}
	if c := counts(t, b, sum); c.WithTLDR != int64(len(papers)) || c.WithEmbedding != int64(len(papers)) {
		t.Errorf("counts = %+v, want all %d papers done", c, len(papers))
	}
}

// TestShutdownOnALastDeliveryRequeuesTheMessage: a message a draining worker hands back on its
// last allowed delivery would be given up by the server and dead-lettered, though nothing
// failed; it goes back to the queue as a new message instead.
func TestShutdownOnALastDeliveryRequeuesTheMessage(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, ChatLatency: 300 * time.Millisecond})
	sum, _ := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "k", Model: "m"})
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1}) // every delivery is the last
	papers := sampledata.Papers(t)[:12]
	publish(t, b.js, papers)

	if s := stopOnceHeld(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 1}, len(papers)); s.Acked >= int64(len(papers)) || s.Retried == 0 {
		t.Fatalf("the worker handed back no message at its shutdown; the test proves nothing: %+v", s)
	}
	runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4})
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("%d dead letters after a shutdown, want none; the first: %s: %s", len(dls), dls[0].PaperID, dls[0].Reason)
	}
	if c := counts(t, b, sum); c.WithTLDR != int64(len(papers)) || c.WithEmbedding != int64(len(papers)) {
		t.Errorf("counts = %+v, want all %d papers done", c, len(papers))
	}
}

// stopOnceHeld runs a worker until it has received n messages, then shuts it down (its drain
// included) and returns its stats.
func stopOnceHeld(t *testing.T, b *testBundle, sum pipeline.Summarizer, emb pipeline.Embedder, cfg pipeline.WorkerConfig, n int) pipeline.WorkerStats {
	t.Helper()
	cfg.SpaceID = b.space.ID
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	for w.Stats().Received < int64(n) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return w.Stats()
}

// TestDeadLettersAreCountedFromTheStreamAndTheLatestReadNewestFirst: status pages count dead
// letters without reading them, and show the newest few; replayed ones (gaps) are left out.
func TestDeadLettersAreCountedFromTheStreamAndTheLatestReadNewestFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if n, err := pipeline.CountDeadLetters(ctx, js); n != 0 || err != nil {
		t.Errorf("CountDeadLetters without the stream = %d, %v; want 0", n, err)
	}
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 4; i++ {
		if _, err := js.Publish(ctx, pipeline.SubjectDead+".workers", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, pipeline.StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if n, err := pipeline.CountDeadLetters(ctx, js); n != 3 || err != nil {
		t.Errorf("CountDeadLetters = %d, %v; want 3", n, err)
	}
	dls, err := pipeline.LatestDeadLetters(ctx, js, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 2 || dls[0].Seq != 4 || dls[1].Seq != 2 {
		t.Errorf("LatestDeadLetters(2) = %+v, want sequences 4 and 2", dls)
	}
}

// A worker whose context ended before it started (Ctrl-C as `up` or `worker` start their
// workers) stops as it does once running, returning nil: it returned "worker: consumer …:
// context canceled", which the command reported as a failure (exit 1).
func TestWorkerStoppedBeforeItStartedReturnsNil(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Errorf("Run with its context ended before it started: %v, want nil", err)
	}
}

// A paper whose TL;DR is stored and whose vector is not (written by a worker without an
// embedder, or before the space was made) gets its vector: its message is not settled as done
// because the TL;DR is there.
func TestPaperWithItsTLDRStoredGetsItsVector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	sum := summarize.NewOffline(30)
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:3]
	if _, err := b.store.UpsertPapers(ctx, papers, store.Work{}); err != nil {
		t.Fatal(err)
	}
	sums := make([]paper.Summary, len(papers))
	for i, p := range papers {
		sums[i] = paper.Summary{PaperID: p.ID, Text: "A TL;DR written before the space was made.", Model: sum.Model(),
			PromptVersion: sum.PromptVersion(), ContentHash: p.ContentHash(), Validation: paper.ValidOK}
	}
	if _, err := b.store.SaveSummaries(ctx, sums); err != nil {
		t.Fatal(err)
	}
	publish(t, b.js, papers)
	ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{})
	if c := counts(t, b, sum); c.WithTLDR != 3 || c.WithEmbedding != 3 || ws.Acked != 3 {
		t.Errorf("counts %+v, stats %+v; want the 3 papers acked with their TL;DRs and now their vectors", c, ws)
	}
}
