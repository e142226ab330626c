package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// countingEmbedder counts Embed calls.
type countingEmbedder struct {
	pipeline.Embedder
	calls atomic.Int64
}

func (c *countingEmbedder) Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	c.calls.Add(1)
	return c.Embedder.Embed(ctx, papers)
}

// slowSummarizer takes a while over each TL;DR, as an API does.
type slowSummarizer struct {
	pipeline.Summarizer
	delay time.Duration
}

func (s slowSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return paper.Summary{}, ctx.Err()
	}
	return s.Summarizer.Summarize(ctx, a)
}

// Abstracts arriving one at a time, further apart than Linger, while the TL;DRs are the
// bottleneck: each would get an embedding request of its own if a batch went Linger after
// its first abstract. Their embeddings wait with them for a chat slot instead, and go
// together.
func TestEmbeddingsOfMessagesWaitingForAChatSlotShareRequests(t *testing.T) {
	t.Parallel()
	emb := &countingEmbedder{Embedder: embed.NewOffline()}
	sum := slowSummarizer{Summarizer: summarize.NewOffline(30), delay: 100 * time.Millisecond}
	b := setup(t, emb, pipeline.TopologyConfig{})
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 1, Linger: 10 * time.Millisecond})
	const n = 30
	pub := pipeline.NewPublisher(b.js, pipeline.SubjectNew, 1)
	for i := range n {
		a := paper.Abstract{ID: fmt.Sprintf("spaced:%d", i), Title: fmt.Sprintf("Paper %d", i),
			Abstract: fmt.Sprintf("We study spaced arrivals, case %d.", i)}
		if err := pub.Publish(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		if err := pub.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(25 * time.Millisecond)
	}
	waitFor(t, "all messages acked", func() (bool, string) {
		s := w.Stats()
		return s.Acked == n, fmt.Sprintf("%+v", s)
	})
	if s := w.Stats(); s.Embeddings != n {
		t.Fatalf("stored %d embeddings, want %d", s.Embeddings, n)
	}
	// The TL;DRs take 100 ms each, one at a time, while abstracts arrive every 25 ms or so:
	// about four join each batch. One request per abstract would be n.
	if calls := emb.calls.Load(); calls > n/3 {
		t.Errorf("%d embedding requests for %d abstracts, want at most %d", calls, n, n/3)
	}
}

// largestEmbedder records the most abstracts one Embed call was given.
type largestEmbedder struct {
	pipeline.Embedder
	largest atomic.Int64
}

func (l *largestEmbedder) Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	for {
		cur := l.largest.Load()
		if int64(len(papers)) <= cur || l.largest.CompareAndSwap(cur, int64(len(papers))) {
			break
		}
	}
	return l.Embedder.Embed(ctx, papers)
}

// However many messages wait for the one chat slot, and whatever EmbedBatch asks for, an
// embedding batch holds at most MaxEmbedBatch abstracts: what a killed worker can lose with it.
func TestEmbeddingBatchesStayWithinWhatAKillMayLose(t *testing.T) {
	t.Parallel()
	emb := &largestEmbedder{Embedder: embed.NewOffline()}
	sum := slowSummarizer{Summarizer: summarize.NewOffline(30), delay: 20 * time.Millisecond}
	b := setup(t, emb, pipeline.TopologyConfig{})
	const n = 3 * pipeline.MaxEmbedBatch
	pub := pipeline.NewPublisher(b.js, pipeline.SubjectNew, 64)
	for i := range n {
		a := paper.Abstract{ID: fmt.Sprintf("runs:%d", i), Title: fmt.Sprintf("Paper %d", i),
			Abstract: fmt.Sprintf("We study runs of embeddings, case %d.", i)}
		if err := pub.Publish(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 1, EmbedBatch: 2048})
	waitFor(t, "all messages acked", func() (bool, string) {
		s := w.Stats()
		return s.Acked == n, fmt.Sprintf("%+v", s)
	})
	if s := w.Stats(); s.Embeddings != n {
		t.Fatalf("stored %d embeddings, want %d", s.Embeddings, n)
	}
	if got := emb.largest.Load(); got > pipeline.MaxEmbedBatch {
		t.Errorf("an Embed call was given %d abstracts, want at most %d", got, pipeline.MaxEmbedBatch)
	}
}

// billingEmbedder reports one API request for each Embed call, as an API embedder does.
type billingEmbedder struct {
	countingEmbedder
}

func (b *billingEmbedder) Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	embs, u, err := b.countingEmbedder.Embed(ctx, papers)
	u.Requests = 1
	return embs, u, err
}

// publishSpaced publishes n abstracts one at a time, gap apart: arrivals without a backlog.
func publishSpaced(t *testing.T, b *testBundle, prefix string, n int, gap time.Duration) {
	t.Helper()
	pub := pipeline.NewPublisher(b.js, pipeline.SubjectNew, 1)
	for i := range n {
		a := paper.Abstract{ID: fmt.Sprintf("%s:%d", prefix, i), Title: fmt.Sprintf("Paper %d", i),
			Abstract: fmt.Sprintf("We study arrivals without a backlog, case %d.", i)}
		if err := pub.Publish(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		if err := pub.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(gap)
	}
}

// Abstracts arriving one at a time, 25 ms apart, with free chat slots: a batch gathers only
// during its linger. Once the embedder has billed a request, a batch waits EmbedLinger
// (longer than all the arrivals take) instead of Linger, so the 40 abstracts share a couple of
// requests instead of one each.
func TestBilledEmbeddingsWaitEmbedLingerForFullerRequests(t *testing.T) {
	t.Parallel()
	emb := &billingEmbedder{countingEmbedder{Embedder: embed.NewOffline()}}
	b := setup(t, emb, pipeline.TopologyConfig{})
	w := startWorker(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{Concurrency: 64,
		Linger: 10 * time.Millisecond, EmbedLinger: 5 * time.Second})
	const n = 40
	publishSpaced(t, b, "billed", n, 25*time.Millisecond)
	waitFor(t, "all messages acked", func() (bool, string) {
		s := w.Stats()
		return s.Acked == n, fmt.Sprintf("%+v", s)
	})
	if s := w.Stats(); s.Embeddings != n {
		t.Fatalf("stored %d embeddings, want %d", s.Embeddings, n)
	}
	// The first batch goes Linger after its abstract (nothing billed yet); the next gathers
	// the rest, which arrive within its EmbedLinger.
	if calls := emb.calls.Load(); calls > 3 {
		t.Errorf("%d embedding requests for %d spaced abstracts, want at most 3", calls, n)
	}
}

// An embedder that bills no requests (the offline models) gains nothing from fuller batches:
// its batches keep the short Linger whatever EmbedLinger says, so spaced abstracts are not
// held back for each other.
func TestUnbilledEmbeddingsKeepTheShortLinger(t *testing.T) {
	t.Parallel()
	emb := &countingEmbedder{Embedder: embed.NewOffline()}
	b := setup(t, emb, pipeline.TopologyConfig{})
	w := startWorker(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{Concurrency: 64,
		Linger: 10 * time.Millisecond, EmbedLinger: 5 * time.Second})
	const n = 15
	publishSpaced(t, b, "unbilled", n, 100*time.Millisecond)
	waitFor(t, "all messages acked", func() (bool, string) {
		s := w.Stats()
		return s.Acked == n, fmt.Sprintf("%+v", s)
	})
	// Arrivals 100 ms apart, batches going 10 ms after their first abstract: mostly one each
	// (a save slower than the gap on a busy machine merges a few); with EmbedLinger, one or two.
	if calls := emb.calls.Load(); calls < n/3 {
		t.Errorf("%d embedding requests for %d abstracts 100 ms apart, want at least %d (no EmbedLinger without billing)", calls, n, n/3)
	}
}

// A drain does not wait for EmbedLinger: the batch being gathered goes at once, and the
// messages whose TL;DRs are bought are finished, not handed back. (Otherwise the drain would
// wait until the batch's MaxHold, half a MsgTimeout: here minutes.)
func TestDrainSendsTheEmbeddingBatchItIsGathering(t *testing.T) {
	t.Parallel()
	emb := &billingEmbedder{countingEmbedder{Embedder: embed.NewOffline()}}
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 20 * time.Minute})
	w, err := pipeline.NewWorker(b.js, b.store, summarize.NewOffline(30), emb, pipeline.WorkerConfig{SpaceID: b.space.ID,
		Linger: 10 * time.Millisecond, EmbedLinger: time.Hour, DrainTimeout: time.Hour, FetchWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// The first batch goes after Linger and bills a request; the next one would wait an hour.
	publishSpaced(t, b, "drained", 1, 0)
	waitFor(t, "the first paper acked", func() (bool, string) { s := w.Stats(); return s.Acked == 1, fmt.Sprintf("%+v", s) })
	publishSpaced(t, b, "drained-next", 3, 0)
	waitFor(t, "the next TL;DRs written", func() (bool, string) { s := w.Stats(); return s.TLDRs == 4, fmt.Sprintf("%+v", s) })
	if s := w.Stats(); s.Acked != 1 {
		t.Fatalf("acked %d before the drain, want 1: the test needs a batch lingering", s.Acked)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the drain waited for the embedding batch's linger")
	}
	if s := w.Stats(); s.Acked != 4 || s.Embeddings != 4 {
		t.Errorf("after the drain: %+v, want all 4 acked with their embeddings", s)
	}
}

// An ExitWhenIdle run (`worker --exit-when-idle`, each page of `reprocess`) works through a
// backlog, which fills its batches: its last, partly filled batch goes after Linger, not after
// EmbedLinger, for abstracts that cannot come.
func TestExitWhenIdleRunsDoNotWaitEmbedLingerForTheirLastBatch(t *testing.T) {
	t.Parallel()
	emb := &billingEmbedder{countingEmbedder{Embedder: embed.NewOffline()}}
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 10 * time.Minute})
	var ps []paper.Abstract
	for i := range 100 { // a full batch of 64, then 36
		ps = append(ps, paper.Abstract{ID: fmt.Sprintf("backlog:%d", i), Title: fmt.Sprintf("Paper %d", i),
			Abstract: fmt.Sprintf("We study the end of a backlog, case %d.", i)})
	}
	publish(t, b.js, ps)
	start := time.Now()
	s := runUntilIdle(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{Concurrency: 16, EmbedLinger: time.Minute})
	if s.Embeddings != 100 {
		t.Fatalf("stats %+v, want 100 embeddings", s)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the run over a backlog of 100 took %s: its last batch waited EmbedLinger (1m)", took.Round(time.Second))
	}
}

// An EmbedLinger above half the MsgTimeout is lowered to it (a batch goes then at the latest:
// the other half is its request's), and the worker says so rather than silently.
func TestAnEmbedLingerAboveHalfTheMsgTimeoutIsLoweredWithAWarning(t *testing.T) {
	t.Parallel()
	emb := &billingEmbedder{countingEmbedder{Embedder: embed.NewOffline()}}
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 2 * time.Second})
	var logs logBuffer
	w := startWorker(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{Concurrency: 4, EmbedLinger: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	publishSpaced(t, b, "capped", 1, 0)
	waitFor(t, "the paper acked", func() (bool, string) { s := w.Stats(); return s.Acked == 1, fmt.Sprintf("%+v", s) })
	if out := logs.String(); !strings.Contains(out, "embedding linger lowered") || !strings.Contains(out, "embed_linger=5s") {
		t.Errorf("no warning that EmbedLinger 5s was lowered below the 1s MsgTimeout; logs:\n%s", out)
	}
}
