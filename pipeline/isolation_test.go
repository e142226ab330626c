package pipeline_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// The store refuses a whole save for one invalid item. A worker saves TL;DRs and vectors in
// batches across messages, all paid for: one bad answer must cost its own paper, not the
// batch it was saved with.

// nanEmbedder puts a NaN into the vector of one paper (a base64 answer can carry one).
type nanEmbedder struct {
	pipeline.Embedder
	bad string
}

func (n nanEmbedder) Embed(ctx context.Context, ps []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	embs, u, err := n.Embedder.Embed(ctx, ps)
	for i := range embs {
		if embs[i].PaperID == n.bad {
			embs[i].Vector[0] = float32(math.NaN())
		}
	}
	return embs, u, err
}

func TestOneBadVectorDeadLettersOnlyItsPaper(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)[:8]
	emb := nanEmbedder{Embedder: embed.NewOffline(), bad: papers[3].ID}
	b := setup(t, emb, pipeline.TopologyConfig{})
	publish(t, b.js, papers)
	ws := runUntilIdle(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{Concurrency: 8})
	assertOnlyDead(t, b, ws, papers[3].ID, "NaN")
	if ws.Embeddings != int64(len(papers)-1) {
		t.Errorf("%d embeddings stored, want %d: all but the bad one", ws.Embeddings, len(papers)-1)
	}
}

// nulSummarizer writes a TL;DR with a NUL byte ("\u0000" in a JSON answer) for one paper.
type nulSummarizer struct {
	pipeline.Summarizer
	bad string
}

func (n nulSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	s, err := n.Summarizer.Summarize(ctx, a)
	if a.ID == n.bad {
		s.Text = "Bad \x00 answer."
	}
	return s, err
}

func TestOneBadTLDRDeadLettersOnlyItsPaper(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)[:16]
	emb := embed.NewOffline()
	// The delay makes the TL;DRs finish together, so that they are saved in batches.
	sum := nulSummarizer{Summarizer: slowSummarizer{Summarizer: summarize.NewOffline(30), delay: 20 * time.Millisecond}, bad: papers[3].ID}
	b := setup(t, emb, pipeline.TopologyConfig{})
	publish(t, b.js, papers)
	ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 16})
	assertOnlyDead(t, b, ws, papers[3].ID, "NUL")
	if ws.TLDRs != int64(len(papers)-1) {
		t.Errorf("%d TL;DRs stored, want %d: all but the bad one", ws.TLDRs, len(papers)-1)
	}
}

// assertOnlyDead checks that paper id, and it alone, was dead-lettered, for a reason that
// mentions why.
func assertOnlyDead(t *testing.T, b *testBundle, ws pipeline.WorkerStats, id, why string) {
	t.Helper()
	dls := deadLetters(t, b.js)
	if len(dls) != 1 || ws.Dead != 1 {
		t.Fatalf("%d dead letters (worker stats %+v), want 1: the bad paper's alone", len(dls), ws)
	}
	// Read whole: a list cuts an id over pipeline.MaxShownPaperID bytes.
	dl, err := pipeline.GetDeadLetter(t.Context(), b.js, dls[0].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if dl.PaperID != id || !strings.Contains(dl.Reason, why) {
		t.Errorf("dead letter of %s for %q, want %s for a reason mentioning %s", dl.PaperID, dl.Reason, id, why)
	}
}

// wrongSizeEmbedder fails every request permanently through no fault of one input: a model's
// own failure, such as answers that cannot be matched to the inputs. (The embeddings client
// reports vectors of another size than the space's as llm.ErrAccount now, which pauses the
// worker instead; this stands for the permanent kind.)
type wrongSizeEmbedder struct {
	pipeline.Embedder
	inputs atomic.Int64
}

func (w *wrongSizeEmbedder) Embed(ctx context.Context, ps []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	w.inputs.Add(int64(len(ps)))
	return nil, paper.Usage{Requests: 1}, fmt.Errorf("model e returned 1536-dimensional vectors, the space has 768: %w", paper.ErrPermanent)
}

// TestModelFailureIsNotHalvedAcrossTheBatch: halving a failed embeddings batch finds the one
// input an API rejects; a failure of the model's own (every answer the wrong size) would fail
// every half too, each request paid for, so each paper is asked for once.
func TestModelFailureIsNotHalvedAcrossTheBatch(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)[:16]
	emb := &wrongSizeEmbedder{Embedder: embed.NewOffline()}
	b := setup(t, emb, pipeline.TopologyConfig{})
	publish(t, b.js, papers)
	sum := slowSummarizer{Summarizer: summarize.NewOffline(30), delay: 20 * time.Millisecond}
	ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 16})
	if n := emb.inputs.Load(); n != int64(len(papers)) {
		t.Errorf("the embedder was asked for %d inputs for %d papers, want each once", n, len(papers))
	}
	if dls := deadLetters(t, b.js); len(dls) != len(papers) || ws.Dead != int64(len(papers)) {
		t.Errorf("%d dead letters (stats %+v), want all %d papers", len(dls), ws, len(papers))
	}
}

// TestPaperTheDatabaseRefusesDeadLettersOnlyItselfAtOnce: an id too long for PostgreSQL's
// index (a btree entry holds at most 2,704 bytes; ingest refuses one over 512, but a message
// may come from elsewhere) makes the database refuse the micro-batch's insert (SQLSTATE 54000).
// That is the paper's fault: the others of its micro-batch are stored, and it alone is
// dead-lettered on its first delivery, for a reason naming the limit. It was taken for a
// transient failure: the whole micro-batch was retried until its deliveries ran out.
func TestPaperTheDatabaseRefusesDeadLettersOnlyItselfAtOnce(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)[:8]
	var long strings.Builder
	long.WriteString("id:")
	x := uint32(12345)
	for long.Len() < 3000 { // incompressible, so that PostgreSQL cannot squeeze the index entry
		x = x*1664525 + 1013904223
		long.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789"[x>>16%36])
	}
	papers[3].ID = long.String()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	publish(t, b.js, papers)
	ws := runUntilIdle(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{
		Concurrency: 8,
		Backoff:     func(int) time.Duration { return 10 * time.Millisecond }, // the failing case ends soon
	})
	assertOnlyDead(t, b, ws, papers[3].ID, "54000")
	if dls := deadLetters(t, b.js); len(dls) == 1 && dls[0].Attempts != 1 {
		t.Errorf("dead-lettered after %d deliveries, want at once", dls[0].Attempts)
	}
	if ws.TLDRs != int64(len(papers)-1) {
		t.Errorf("%d TL;DRs stored, want %d: all but the refused paper", ws.TLDRs, len(papers)-1)
	}
}

// TestPaperTheEmbeddingsServerFailsOnDeadLettersOnlyItself: Ollama answers 500 for a whole
// embeddings request when one input embeds to NaN (ollama#9639), every time for that text. The
// paper's neighbours in its embedding batch failed with it at every delivery (a 5xx was not
// narrowed down) until they were dead-lettered together. They are stored now, and the paper
// alone is dead-lettered, when its deliveries are used up, for the server's 500.
func TestPaperTheEmbeddingsServerFailsOnDeadLettersOnlyItself(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)[:8]
	bad := papers[3]
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16,
		EmbedFailsOn: func(in string) bool { return in == embed.TitleAbstract(bad) }})
	emb, err := embed.New(embed.Config{BaseURL: api.URL(), Model: "m", Dimensions: 16, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 3})
	publish(t, b.js, papers)
	// The delay makes the TL;DRs, which release the embeddings, finish together: one batch.
	sum := slowSummarizer{Summarizer: summarize.NewOffline(30), delay: 20 * time.Millisecond}
	ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 8,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	assertOnlyDead(t, b, ws, bad.ID, "500")
	if ws.Embeddings != int64(len(papers)-1) {
		t.Errorf("%d embeddings stored, want %d: all but the bad one", ws.Embeddings, len(papers)-1)
	}
}
