package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// dieHolding takes n messages from the consumer the way a worker does and never settles them,
// like a worker killed with its messages in hand.
func dieHolding(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	ctx := context.Background()
	cons, err := js.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for range batch.Messages() {
		got++
	}
	if got != n {
		t.Fatalf("the dying worker got %d messages, want %d", got, n)
	}
}

// startWorker runs a worker until the test ends.
func startWorker(t *testing.T, b *testBundle, sum pipeline.Summarizer, emb pipeline.Embedder, cfg pipeline.WorkerConfig) *pipeline.Worker {
	t.Helper()
	return startWorkerOn(t, b, b.store, sum, emb, cfg)
}

// startWorkerOn is startWorker with the worker's store st (b's database through a proxy, a
// wrapper that records calls). A worker with no Embedder writes TL;DRs only, into no space.
func startWorkerOn(t *testing.T, b *testBundle, st pipeline.Store, sum pipeline.Summarizer, emb pipeline.Embedder, cfg pipeline.WorkerConfig) *pipeline.Worker {
	t.Helper()
	if emb != nil {
		cfg.SpaceID = b.space.ID
	}
	if cfg.FetchWait == 0 {
		cfg.FetchWait = 200 * time.Millisecond
	}
	w, err := pipeline.NewWorker(b.js, st, sum, emb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return w
}

// waitFor polls cond until it holds or a minute has passed.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	return streamState(t, js, name).Msgs
}

// streamState is the stream name's state (messages, first sequence) as the server has it now.
func streamState(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamState {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

func deadLetters(t *testing.T, js jetstream.JetStream) []pipeline.DeadLetter {
	t.Helper()
	dls, err := pipeline.ListDeadLetters(context.Background(), js, 0)
	if err != nil {
		t.Fatal(err)
	}
	return dls
}

func TestMessageWhoseWorkerDiedOnItsLastDeliveryIsDeadLetteredOnTheAdvisory(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1, AckWait: 2 * time.Second})
	papers := sampledata.Papers(t)[:2]
	publish(t, b.js, papers)
	dieHolding(t, b.js, len(papers))
	// No sweep during the test: only the server's advisory can tell the worker.
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})

	waitFor(t, "both messages dead-lettered and removed from the work queue", func() (bool, string) {
		n, q := len(deadLetters(t, b.js)), streamMsgs(t, b.js, pipeline.StreamPapers)
		return n == 2 && q == 0, fmt.Sprintf("%d dead letters, %d messages in %s", n, q, pipeline.StreamPapers)
	})
	for _, d := range deadLetters(t, b.js) {
		if !strings.Contains(d.Reason, pipeline.ReasonMaxDeliveries) || d.Attempts != 1 || d.Subject != pipeline.SubjectNew ||
			(d.PaperID != papers[0].ID && d.PaperID != papers[1].ID) {
			t.Errorf("dead letter %+v", d)
		}
	}
	if s := w.Stats(); s.Dead != 2 || s.Reaped != 2 || s.Received != 0 {
		t.Errorf("worker stats %+v, want 2 dead and reaped, none received", s)
	}
}

func TestSweepFindsGivenUpMessagesAcrossWorkersAndSkipsStoredOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1, AckWait: time.Second})
	papers := sampledata.Papers(t)[:5]
	// The first paper's results were stored by the worker that died before acknowledging; of
	// the second, only its TL;DR, of the third only its vector: they still need the other, and
	// are dead-lettered.
	done, half, vectorOnly := papers[0], papers[1], papers[2]
	if _, err := b.store.UpsertPapers(ctx, []paper.Abstract{done, half, vectorOnly}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	s, _ := sum.Summarize(ctx, done)
	sh, _ := sum.Summarize(ctx, half)
	embs, _, _ := emb.Embed(ctx, []paper.Abstract{done, vectorOnly})
	if _, err := b.store.SaveSummaries(ctx, []paper.Summary{s, sh}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.SaveEmbeddings(ctx, b.space.ID, embs); err != nil {
		t.Fatal(err)
	}
	publish(t, b.js, papers)
	dieHolding(t, b.js, len(papers))
	cons, err := b.js.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to give the messages up", func() (bool, string) {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.NumAckPending == 0, fmt.Sprintf("%d ack pending", info.NumAckPending)
	})
	// Nobody listened to the advisories; the work queue keeps the messages, undeliverable.
	if n := streamMsgs(t, b.js, pipeline.StreamPapers); n != uint64(len(papers)) {
		t.Fatalf("%s holds %d messages, want the %d given up", pipeline.StreamPapers, n, len(papers))
	}

	// Two workers start and sweep at once.
	w1 := startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: 100 * time.Millisecond})
	w2 := startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: 100 * time.Millisecond})
	waitFor(t, "the work queue to be empty", func() (bool, string) {
		q := streamMsgs(t, b.js, pipeline.StreamPapers)
		return q == 0, fmt.Sprintf("%d messages left", q)
	})
	dls := deadLetters(t, b.js)
	if len(dls) != 4 {
		t.Fatalf("dead letters %+v, want one for each of the 4 papers without all their results", dls)
	}
	for _, d := range dls {
		if d.PaperID == done.ID || !strings.Contains(d.Reason, pipeline.ReasonMaxDeliveries) {
			t.Errorf("dead letter %+v", d)
		}
	}
	// A worker counts a message it reaped once its dead letter is written (or, its results
	// stored, once its removal is answered): the other worker, which reaped the same message
	// beside it, may have removed it first, and the queue is empty before the count comes. The counts are awaited, then checked.
	waitFor(t, "the workers to count the dead letters", func() (bool, string) {
		s1, s2 := w1.Stats(), w2.Stats()
		return s1.Dead+s2.Dead >= 4 && s1.Reaped+s2.Reaped >= 5, fmt.Sprintf("stats %+v and %+v", s1, s2)
	})
	s1, s2 := w1.Stats(), w2.Stats()
	if s1.Dead+s2.Dead != 4 || s1.Reaped+s2.Reaped < 5 {
		t.Errorf("stats %+v and %+v: want 4 dead letters between them and all 5 messages reaped", s1, s2)
	}
}

// TestSweepLeavesMessagesWaitingToBeDeliveredAlone: a sweep acts while the consumer has
// nothing unacknowledged, and takes the messages of its subject up to the last it delivered
// for given up. A worker paused (here the API refuses the key, every delivery the last) hands
// its messages back as new ones, beyond that point, and then pulls nothing for a while: its
// sweeps, every SweepInterval meanwhile, must leave those waiting messages alone.
func TestSweepLeavesMessagesWaitingToBeDeliveredAlone(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1})
	papers := sampledata.Papers(t)[:5]
	publish(t, b.js, papers)
	w := startWorker(t, b, refusingSummarizer{summarize.NewOffline(30)}, emb, pipeline.WorkerConfig{Concurrency: 4,
		SweepInterval: 20 * time.Millisecond, Backoff: func(int) time.Duration { return 300 * time.Millisecond }})
	waitFor(t, "the worker pausing three times", func() (bool, string) {
		s := w.Stats()
		return s.Paused >= 3 || s.Dead > 0 || len(deadLetters(t, b.js)) > 0, fmt.Sprintf("%+v", s)
	})
	checkAllQueued(t, b, w, papers, "sweeps while the worker paused")
}

// slowStore makes the first TL;DR save take longer than the consumer's AckWait.
type slowStore struct {
	pipeline.Store
	delay time.Duration
	once  sync.Once
}

func (s *slowStore) SaveSummaries(ctx context.Context, sums []paper.Summary) (int, error) {
	s.once.Do(func() { time.Sleep(s.delay) })
	return s.Store.SaveSummaries(ctx, sums)
}

func TestMessagesWaitingLongerThanAckWaitAreKeptAlive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 2 * time.Second})
	papers := sampledata.Papers(t)[:8]
	publish(t, b.js, papers)
	ws := runWith(t, b, &slowStore{Store: b.store, delay: 5 * time.Second}, sum, emb, pipeline.WorkerConfig{})
	cons, err := b.js.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 || ws.Received != int64(len(papers)) || ws.Acked != int64(len(papers)) {
		t.Errorf("redelivered %d, stats %+v: a message held past AckWait was redelivered", info.NumRedelivered, ws)
	}
}

// hangingSummarizer never answers; it records the deadline each call was given.
type hangingSummarizer struct {
	calls      atomic.Int64
	inFlight   atomic.Int64
	overlap    atomic.Bool
	mu         sync.Mutex
	longest    time.Duration
	noDeadline bool
}

func (h *hangingSummarizer) Model() string         { return "hanging" }
func (h *hangingSummarizer) PromptVersion() string { return "v0" }
func (h *hangingSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	h.calls.Add(1)
	if h.inFlight.Add(1) > 1 {
		h.overlap.Store(true)
	}
	defer h.inFlight.Add(-1)
	d, ok := ctx.Deadline()
	h.mu.Lock()
	if !ok {
		h.noDeadline = true
	} else if left := time.Until(d); left > h.longest {
		h.longest = left
	}
	h.mu.Unlock()
	<-ctx.Done()
	return paper.Summary{}, ctx.Err()
}

func TestAPIWorkOnAMessageEndsBeforeItsAckWait(t *testing.T) {
	t.Parallel()
	const ackWait = 4 * time.Second
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: ackWait, MaxDeliver: 3})
	publish(t, b.js, sampledata.Papers(t)[:1])
	h := &hangingSummarizer{}
	// A timeout above AckWait is lowered below it.
	ws := runWith(t, b, b.store, h, emb, pipeline.WorkerConfig{MsgTimeout: time.Hour, Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.noDeadline || h.longest <= 0 || h.longest >= ackWait {
		t.Errorf("TL;DR calls got deadlines up to %v away (none: %v); want each below the AckWait %v", h.longest, h.noDeadline, ackWait)
	}
	if h.calls.Load() != 3 || h.overlap.Load() {
		t.Errorf("%d calls, overlapping: %v; want one per delivery, never two at once", h.calls.Load(), h.overlap.Load())
	}
	dls := deadLetters(t, b.js)
	if ws.Dead != 1 || len(dls) != 1 || dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "deadline exceeded") {
		t.Errorf("stats %+v, dead letters %+v: want the message dead-lettered after 3 timed-out deliveries", ws, dls)
	}
}

// failingSummarizer fails every TL;DR permanently with its error.
type failingSummarizer struct{ err error }

func (f failingSummarizer) Model() string         { return "failing" }
func (f failingSummarizer) PromptVersion() string { return "v0" }
func (f failingSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	return paper.Summary{}, f.err
}

// TestPaperTooLongForTheModelServerIsStoredTruncated: the model server's context is shorter
// than the client's (a llama.cpp server's physical batch of 512 tokens, a vLLM model's
// max_model_len, a text-embeddings-inference model's max_input_length), so the client's
// truncation is not enough, and the server refuses the one long abstract: vLLM with a 400 and
// TEI with a 413, which dead-lettered it at once, llama.cpp with a 500, retried and
// redelivered until it was dead-lettered. Its answer says how much the model takes: the paper
// is stored with the vector of as much of it, marked truncated, and its neighbours are too.
func TestPaperTooLongForTheModelServerIsStoredTruncated(t *testing.T) {
	t.Parallel()
	for _, flavor := range []string{openaitest.FlavorVLLM, openaitest.FlavorLlamaCpp, openaitest.FlavorTEI} {
		t.Run(flavor, func(t *testing.T) {
			t.Parallel()
			api := openaitest.Start(t, openaitest.Config{Dimensions: 16, ContextTokens: 2000, Flavor: flavor})
			emb, err := embed.New(embed.Config{BaseURL: api.URL(), APIKey: "k", Model: "e", Dimensions: 16})
			if err != nil {
				t.Fatal(err)
			}
			long := sampledata.Papers(t)[0]
			long.ID, long.Abstract = "arxiv:2409.99999", strings.Repeat(long.Abstract+" ", 20)
			papers := append(sampledata.Papers(t)[1:5], long)
			sum := summarize.NewOffline(30)
			b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 5})
			publish(t, b.js, papers)
			ws := runWith(t, b, b.store, sum, emb, pipeline.WorkerConfig{})
			if dls := deadLetters(t, b.js); len(dls) != 0 || ws.Dead != 0 || ws.Retried != 0 || ws.Acked != int64(len(papers)) {
				t.Fatalf("dead letters %+v, stats %+v; want every paper acked at its first delivery", dls, ws)
			}
			if c := counts(t, b, sum); c.WithEmbedding != int64(len(papers)) {
				t.Fatalf("%d papers with a vector of %d", c.WithEmbedding, len(papers))
			}
			conn, err := pgx.Connect(context.Background(), b.url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			rows, _ := conn.Query(context.Background(), `SELECT paper_id FROM embeddings WHERE truncated ORDER BY paper_id`)
			truncated, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil || len(truncated) != 1 || truncated[0] != long.ID {
				t.Fatalf("truncated vectors of %v (%v); want %s's alone", truncated, err, long.ID)
			}
		})
	}
}

// TestWorkerKeepsToTheServersLimitOfInputsPerRequest: an embeddings server that takes fewer
// inputs per request than the worker gathers (64) — some Azure OpenAI deployments take 1, or
// 16; text-embeddings-inference 32 — refuses each longer request, naming its limit, and the
// worker halved every batch until its halves fitted: for a limit of 1, 126 refused requests per
// batch of 64, for as long as it ran (each counting against the account's requests a minute).
// After the first refusal, no request is longer than the limit.
func TestWorkerKeepsToTheServersLimitOfInputsPerRequest(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, MaxInputs: 1, Flavor: openaitest.FlavorAzure})
	emb, err := embed.New(embed.Config{BaseURL: api.URL(), APIKey: "k", Model: "e", Dimensions: 16})
	if err != nil {
		t.Fatal(err)
	}
	papers := sampledata.Papers(t)
	sum := summarize.NewOffline(30)
	b := setup(t, emb, pipeline.TopologyConfig{})
	publish(t, b.js, papers)
	ws := runWith(t, b, b.store, sum, emb, pipeline.WorkerConfig{})
	if ws.Dead != 0 || ws.Acked != int64(len(papers)) {
		t.Fatalf("stats %+v; want every paper acked", ws)
	}
	if c := counts(t, b, sum); c.WithEmbedding != int64(len(papers)) {
		t.Fatalf("%d papers with a vector of %d", c.WithEmbedding, len(papers))
	}
	api.Close()
	// Every request the server took holds one input, and only the requests already on their way
	// when the first was refused were refused too: the worker's embedding flushes run side by
	// side (one or two here, by the timing; before the fix, 126 refused per batch of 64).
	if st := api.Stats(); st.EmbedRequests-st.EmbedInputsDelivered < 1 || st.EmbedRequests-st.EmbedInputsDelivered > 4 {
		t.Errorf("%d embeddings requests for %d vectors: %d refused; want 1 to 4 (those in flight at the first refusal)",
			st.EmbedRequests, st.EmbedInputsDelivered, st.EmbedRequests-st.EmbedInputsDelivered)
	}
}

// TestPapersAreEmbeddedThroughAGatewayThatRefusesTheEncoding: LiteLLM's proxy refuses an
// embeddings request's "encoding_format" for the models of Gemini, Vertex AI or Bedrock (a
// 400 naming it): the worker halved every batch down to single papers and dead-lettered each
// one. The embedder leaves the field out from the first refusal on, and no paper is at fault.
func TestPapersAreEmbeddedThroughAGatewayThatRefusesTheEncoding(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, Flavor: openaitest.FlavorLiteLLM})
	emb, err := embed.New(embed.Config{BaseURL: api.URL(), APIKey: "k", Model: "gemini/gemini-embedding-001", Dimensions: 16})
	if err != nil {
		t.Fatal(err)
	}
	papers := sampledata.Papers(t)[:20]
	sum := summarize.NewOffline(30)
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 3})
	publish(t, b.js, papers)
	ws := runWith(t, b, b.store, sum, emb, pipeline.WorkerConfig{})
	if dls := deadLetters(t, b.js); len(dls) != 0 || ws.Dead != 0 || ws.Acked != int64(len(papers)) {
		t.Fatalf("%d dead letters %+v, stats %+v; want every paper acked", len(dls), dls[:min(len(dls), 1)], ws)
	}
	if c := counts(t, b, sum); c.WithEmbedding != int64(len(papers)) {
		t.Fatalf("%d papers with a vector of %d", c.WithEmbedding, len(papers))
	}
}

// rejectingEmbedder is an Embedder whose API rejects (400) every request holding the paper bad.
type rejectingEmbedder struct {
	pipeline.Embedder
	bad string
}

func (r rejectingEmbedder) Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	for _, p := range papers {
		if p.ID == r.bad {
			return nil, paper.Usage{}, fmt.Errorf("embed: %w: %w", paper.ErrPermanent,
				&openai.APIError{HTTPStatusCode: http.StatusBadRequest, Message: "Invalid 'input'"})
		}
	}
	return r.Embedder.Embed(ctx, papers)
}

func TestPermanentFailuresAreDeadLetteredAtOnceWithReasonAndAttempts(t *testing.T) {
	t.Parallel()
	bad := sampledata.Papers(t)[4]
	tests := []struct {
		name       string
		sum        pipeline.Summarizer
		emb        pipeline.Embedder
		papers     []paper.Abstract
		deadID     string
		wantReason string
	}{
		{
			name: "400 for the embeddings request: halving the batch finds the input",
			sum:  summarize.NewOffline(30), emb: rejectingEmbedder{embed.NewOffline(), bad.ID},
			papers: sampledata.Papers(t)[:5], deadID: bad.ID, wantReason: "Invalid 'input'",
		},
		{
			name: "TL;DR still invalid after the stricter retry and cleaning",
			sum:  failingSummarizer{fmt.Errorf("answer stays invalid after retry and cleaning (2 sentences): %w", paper.ErrPermanent)},
			emb:  embed.NewOffline(), papers: sampledata.Papers(t)[:1], deadID: sampledata.Papers(t)[0].ID, wantReason: "stays invalid",
		},
		{
			name: "400 for the TL;DR request",
			sum:  failingSummarizer{fmt.Errorf("%w: error, status code: 400, message: Invalid 'messages'", paper.ErrPermanent)},
			emb:  embed.NewOffline(), papers: sampledata.Papers(t)[:1], deadID: sampledata.Papers(t)[0].ID, wantReason: "status code: 400",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tt.emb, pipeline.TopologyConfig{MaxDeliver: 5})
			publish(t, b.js, tt.papers)
			ws := runWith(t, b, b.store, tt.sum, tt.emb, pipeline.WorkerConfig{})
			dls := deadLetters(t, b.js)
			if len(dls) != 1 || dls[0].PaperID != tt.deadID || dls[0].Attempts != 1 || !strings.Contains(dls[0].Reason, tt.wantReason) {
				t.Fatalf("dead letters %+v; want %s after 1 attempt, reason containing %q", dls, tt.deadID, tt.wantReason)
			}
			if ws.Dead != 1 || ws.Retried != 0 || ws.Acked != int64(len(tt.papers)-1) {
				t.Errorf("stats %+v: want the bad one dead at once, the others acked", ws)
			}
			if n := streamMsgs(t, b.js, pipeline.StreamPapers); n != 0 {
				t.Errorf("%d messages left in the work queue", n)
			}
		})
	}
}

// TestReplayedOlderVersionInTheBatchOfTheNewerOneChangesNothing: v1 of a paper is
// dead-lettered, the user ingests the corrected v2, then replays the dead letters (dlq replay
// --all). Both messages land in one micro-batch, v2 first; the replayed v1 carries its older
// text date (HeaderTextAt). The store keeps v2, whose TL;DR is bought once, and v1's message is
// settled with nothing to do.
func TestReplayedOlderVersionInTheBatchOfTheNewerOneChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	v1 := sampledata.Papers(t)[0]
	publish(t, b.js, []paper.Abstract{v1})
	runWith(t, b, b.store, failingSummarizer{fmt.Errorf("refused: %w", paper.ErrPermanent)}, emb, pipeline.WorkerConfig{})
	dls := deadLetters(t, b.js)
	if len(dls) != 1 {
		t.Fatalf("dead letters %+v, want 1", dls)
	}
	v2 := v1
	v2.Abstract = v1.Abstract + " Corrected in the second version."
	publish(t, b.js, []paper.Abstract{v2})
	if _, err := pipeline.ReplayDeadLetter(ctx, b.js, dls[0].Seq); err != nil {
		t.Fatal(err)
	}
	ws := runUntilIdle(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{BatchSize: 16})
	rec, err := b.store.Paper(ctx, v1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Abstract.Abstract != v2.Abstract {
		t.Errorf("stored abstract is the replayed old version (%d bytes); want the corrected v2 (%d bytes), ingested after it", len(rec.Abstract.Abstract), len(v2.Abstract))
	}
	if ws.TLDRs != 1 || ws.Skipped != 1 || ws.Acked != 2 {
		t.Errorf("stats %+v; want v2's TL;DR stored once and the replayed v1 skipped", ws)
	}
}

var _ = errors.New

// outageStore fails the first n embedding saves, like a database restarting.
type outageStore struct {
	pipeline.Store
	failures atomic.Int64
}

func (o *outageStore) SaveEmbeddings(ctx context.Context, spaceID int64, embs []paper.Embedding) (int, error) {
	if o.failures.Add(-1) >= 0 {
		return 0, errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)")
	}
	return o.Store.SaveEmbeddings(ctx, spaceID, embs)
}

func TestVectorsSavedPastTheMessageTimeoutAreNotBoughtAgain(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16})
	emb, err := embed.New(embed.Config{BaseURL: api.URL(), APIKey: "k", Model: "e", Dimensions: 16})
	if err != nil {
		t.Fatal(err)
	}
	sum := summarize.NewOffline(30)
	// AckWait 2s: API work has 1s; the saves fail for about 1.5s (100+200+400+800ms of backoff).
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 2 * time.Second})
	papers := sampledata.Papers(t)[:6]
	publish(t, b.js, papers)
	st := &outageStore{Store: b.store}
	st.failures.Store(4)
	runWith(t, b, st, sum, emb, pipeline.WorkerConfig{Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	if c := counts(t, b, sum); c.WithEmbedding != int64(len(papers)) {
		t.Fatalf("counts = %+v, want every paper embedded", c)
	}
	if s := api.Stats(); s.EmbedInputsDelivered != int64(len(papers)) {
		t.Errorf("%d vectors paid for %d papers: a vector still being saved was bought again", s.EmbedInputsDelivered, len(papers))
	}
}

// TestWorkerStopsWhenItsConsumerIsDeleted: a worker whose consumer was deleted (`nats consumer
// rm`, or `nats stream rm PAPERS`, which takes its consumers with it) can process nothing: it
// stops with an error naming what is gone, instead of pulling again for ever.
func TestWorkerStopsWhenItsConsumerIsDeleted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		del    func(ctx context.Context, js jetstream.JetStream) error
		want   error
		naming string
	}{
		{"the consumer", func(ctx context.Context, js jetstream.JetStream) error {
			return js.DeleteConsumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
		}, jetstream.ErrConsumerNotFound, pipeline.ConsumerNew},
		{"the stream", func(ctx context.Context, js jetstream.JetStream) error {
			return js.DeleteStream(ctx, pipeline.StreamPapers)
		}, jetstream.ErrStreamNotFound, pipeline.StreamPapers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			sum, emb := summarize.NewOffline(30), embed.NewOffline()
			b := setup(t, emb, pipeline.TopologyConfig{})
			var logs logBuffer
			w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, FetchWait: 200 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Run(rctx) }()
			publish(t, b.js, sampledata.Papers(t)[:2])
			waitFor(t, "the papers done", func() (bool, string) { return w.Stats().Acked == 2, fmt.Sprintf("%+v", w.Stats()) })

			if err := tc.del(ctx, b.js); err != nil {
				t.Fatal(err)
			}
			err = <-done
			if rctx.Err() != nil {
				t.Fatalf("the worker went on without %s until the test's deadline; its log:\n%s", tc.name, logs.String())
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.naming) {
				t.Errorf("Run = %v, want an error naming %s", err, tc.naming)
			}
		})
	}
}
