package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestEmbeddingBatchWithTwoTextsOfAPaperStoresTheCurrentOnesVector: an embedding batch can
// hold two texts of one paper (its corrected version arrived while the first one's batch was
// gathering). Each text is embedded: were they merged by paper id, only the first one's
// vector would be bought, the store would skip it as stale, and the current text's message
// would be acked with no vector stored for it.
func TestEmbeddingBatchWithTwoTextsOfAPaperStoresTheCurrentOnesVector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	sp, err := st.EnsureSpace(ctx, emb.Space())
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(nil, st, nil, emb, WorkerConfig{SpaceID: sp.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.setTimeouts(30*time.Second, 5); err != nil {
		t.Fatal(err)
	}
	first := paper.Abstract{ID: "arxiv:2501.00001", Title: "Sparse experts", Abstract: "Routing tokens to sparse experts scales language models.",
		TextAt: time.Now().Add(-time.Minute)}
	corrected := first
	corrected.Abstract = "Routing tokens to sparse experts scales language models, corrected."
	corrected.TextAt = time.Now()
	work := paper.Work{SpaceID: sp.ID}
	if _, err := st.UpsertPapers(ctx, []paper.Abstract{first}, work); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertPapers(ctx, []paper.Abstract{corrected}, work); err != nil {
		t.Fatal(err)
	}
	for i, err := range w.flushEmbeddings(ctx, []paper.Abstract{first, corrected}) {
		if err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
	p, err := st.PendingFor(ctx, []paper.Abstract{corrected}, work)
	if err != nil {
		t.Fatal(err)
	}
	if p[0].NeedEmbedding {
		t.Error("the current text of the paper has no vector after its embedding batch was flushed")
	}
}

// TestEmbeddingBatchWithTheCurrentTextFirstStoresItsVector: the two texts of a paper can come
// in either order within one embedding batch (the older one's message was slower to reach its
// batch: a hold waiting for NATS, a busy machine). The stale one, coming last, must not push the
// current one's vector out of the save: the current text's message is acked once the batch is
// saved.
func TestEmbeddingBatchWithTheCurrentTextFirstStoresItsVector(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, sp, first, corrected := twoTextsOfAPaper(t)
	emb := embed.NewOffline()
	w, err := NewWorker(nil, st, nil, emb, WorkerConfig{SpaceID: sp.ID})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.setTimeouts(30*time.Second, 5); err != nil {
		t.Fatal(err)
	}
	for i, err := range w.flushEmbeddings(ctx, []paper.Abstract{corrected, first}) {
		if err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
	p, err := st.PendingFor(ctx, []paper.Abstract{corrected}, paper.Work{SpaceID: sp.ID})
	if err != nil {
		t.Fatal(err)
	}
	if p[0].NeedEmbedding {
		t.Error("the current text of the paper has no vector after its embedding batch was flushed (its message would be acked without one)")
	}
}

// TestTLDRGroupCommitWithTheCurrentTextFirstStoresItsTLDR: a TL;DR group commit can hold the
// TL;DRs of two texts of a paper, the current one's first (the older text's request answered
// later). The stale one must not push the current one's out of the save: both were paid for, and
// the current text's message is acked once the commit is done.
func TestTLDRGroupCommitWithTheCurrentTextFirstStoresItsTLDR(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, _, first, corrected := twoTextsOfAPaper(t)
	sum := summarize.NewOffline(30)
	w, err := NewWorker(nil, st, sum, nil, WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.setTimeouts(30*time.Second, 5); err != nil {
		t.Fatal(err)
	}
	var sums []paper.Summary
	for _, a := range []paper.Abstract{corrected, first} {
		s, err := sum.Summarize(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		sums = append(sums, s)
	}
	for i, err := range w.flushSummaries(ctx, sums) {
		if err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
	work := paper.Work{Model: sum.Model(), PromptVersion: sum.PromptVersion()}
	p, err := st.PendingFor(ctx, []paper.Abstract{corrected}, work)
	if err != nil {
		t.Fatal(err)
	}
	if p[0].NeedTLDR {
		t.Error("the current text of the paper has no TL;DR after the group commit that held it (its message would be acked without one)")
	}
}

// twoTextsOfAPaper returns a store with an embedding space and a paper recorded in its first
// text, then in its corrected one: the stored, current text.
func twoTextsOfAPaper(t *testing.T) (st *store.Store, sp paper.Space, first, corrected paper.Abstract) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if sp, err = st.EnsureSpace(ctx, embed.NewOffline().Space()); err != nil {
		t.Fatal(err)
	}
	first = paper.Abstract{ID: "arxiv:2501.00001", Title: "Sparse experts", Abstract: "Routing tokens to sparse experts scales language models.",
		TextAt: time.Now().Add(-time.Minute)}
	corrected = first
	corrected.Abstract = "Routing tokens to sparse experts scales language models, corrected."
	corrected.TextAt = time.Now()
	for _, a := range []paper.Abstract{first, corrected} {
		if _, err := st.UpsertPapers(ctx, []paper.Abstract{a}, paper.Work{SpaceID: sp.ID}); err != nil {
			t.Fatal(err)
		}
	}
	return st, sp, first, corrected
}
