package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/web"
)

// swappedEmbedder is the client of a model server whose model behind the configured name can be
// replaced while serve runs (an `ollama pull` of a new version under the same tag).
type swappedEmbedder struct{ cur atomic.Pointer[embed.Client] }

func (e *swappedEmbedder) Space() paper.Space { return e.cur.Load().Space() }

func (e *swappedEmbedder) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	return e.cur.Load().EmbedQuery(ctx, text)
}

// TestRecreatedSpaceDoesNotUseTheDroppedSpacesCachedQueries: after the model behind a name
// changed (same length, another geometry), the operator re-embeds the archive into a new space of
// the same name (drop, fill, activate) while serve runs. A search of a text searched before must
// be embedded by the model of the new space, not taken from the cache of the dropped space, whose
// vector was of the old model and, compared with the new space's vectors, finds unrelated papers
// without a word.
func TestRecreatedSpaceDoesNotUseTheDroppedSpacesCachedQueries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	oldAI := openaitest.Start(t, openaitest.Config{})
	newAI := openaitest.Start(t, openaitest.Config{Vectors: openaitest.VectorsRandom})
	client := func(ai *openaitest.Server) *embed.Client {
		c, err := embed.New(embed.Config{BaseURL: ai.URL(), APIKey: "test", Model: "text-embedding-3-small", Dimensions: 64})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	emb := &swappedEmbedder{}
	emb.cur.Store(client(oldAI))

	b := newBundle(t)
	papers := sampledata.Papers(t)[:20]
	if _, err := b.st.UpsertPapers(ctx, papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	fill := func() paper.Space {
		t.Helper()
		sp, err := b.st.EnsureSpace(ctx, emb.Space())
		if err != nil {
			t.Fatal(err)
		}
		embs, _, err := emb.cur.Load().Embed(ctx, papers)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.st.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
			t.Fatal(err)
		}
		if err := b.st.Activate(ctx, sp.ID); err != nil {
			t.Fatal(err)
		}
		return sp
	}
	old := fill()
	cfg := b.config()
	cfg.Embedder = emb
	b.serve(cfg)

	const q = "mixture of experts routing"
	search := func() hitsBody {
		t.Helper()
		var body hitsBody
		r := b.get("/api/search?mode=semantic&k=5&q=" + url.QueryEscape(q))
		r.json(t, &body)
		if r.code != http.StatusOK {
			t.Fatalf("search: %d %s", r.code, r.body)
		}
		return body
	}
	search()
	if again := search(); !again.CachedEmbedding {
		t.Fatal("the repeated search was not answered from the cache")
	}

	// The model changes behind its name; the archive is embedded again into a space of the same
	// name, and that one is made active.
	emb.cur.Store(client(newAI))
	if err := b.st.Activate(ctx, b.space.ID); err != nil {
		t.Fatal(err)
	}
	if err := b.st.DropSpace(ctx, old.ID, store.DropOptions{}); err != nil {
		t.Fatal(err)
	}
	sp := fill()
	if sp.ID == old.ID || sp.Name() != old.Name() {
		t.Fatalf("re-created space %d %s; want a new id with the name %s", sp.ID, sp.Name(), old.Name())
	}

	before := newAI.Stats().EmbedRequests
	got := search()
	if calls := newAI.Stats().EmbedRequests - before; got.CachedEmbedding || calls != 1 {
		t.Errorf("search in the re-created space %d: cached_embedding %v, %d calls to its model; want the query embedded by it (1 call), "+
			"not the dropped space %d's cached vector of the old model", sp.ID, got.CachedEmbedding, calls, old.ID)
	}
	// What it finds is what the new model's vector of the query finds.
	vec, _, err := emb.EmbedQuery(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	want, err := b.st.SemanticSearch(ctx, sp.ID, q, vec, 5)
	if err != nil {
		t.Fatal(err)
	}
	if ids(got.Results) != ids(want) {
		t.Errorf("search in the re-created space found %s; the new model's vector of the query finds %s", ids(got.Results), ids(want))
	}
}

func ids(hits []paper.Hit) string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ID
	}
	return strings.Join(out, " ")
}

var _ web.QueryEmbedder = (*swappedEmbedder)(nil)
