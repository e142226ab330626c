package pipeline_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
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
	if dls[0].PaperID != id || !strings.Contains(dls[0].Reason, why) {
		t.Errorf("dead letter of %s for %q, want %s for a reason mentioning %s", dls[0].PaperID, dls[0].Reason, id, why)
	}
}
