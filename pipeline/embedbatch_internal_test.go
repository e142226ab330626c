package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
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
