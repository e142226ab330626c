package store_test

import (
	"math"
	"slices"
	"testing"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// TestKeywordRankLimitBeyondInt4: a very high PAPERPIPE_KEYWORD_RANK_LIMIT ("never bound")
// opened a store that then failed every keyword and hybrid search ($3 + 1 was typed int4).
func TestKeywordRankLimitBeyondInt4(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	if s, err := store.Open(t.Context(), store.Config{URL: u, KeywordRankLimit: store.MaxKeywordRankLimit + 1}); err == nil {
		s.Close()
		t.Errorf("Open(KeywordRankLimit %d) is accepted; want it refused", store.MaxKeywordRankLimit+1)
	}
	for i, limit := range []int{math.MaxInt32, math.MaxInt32 + 1} {
		s, err := store.Open(t.Context(), store.Config{URL: u, KeywordRankLimit: limit})
		if err != nil {
			t.Fatalf("Open(KeywordRankLimit %d) = %v: the config is refused (that would be fine)", limit, err)
		}
		t.Cleanup(s.Close)
		if i == 0 {
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			upsert(t, s, []paper.Abstract{topic(1, "Quokka census", "We count quokkas.")}, store.Work{})
		}
		hits, err := s.KeywordSearch(t.Context(), "quokka", 10)
		if err != nil || len(hits) != 1 {
			t.Errorf("limit %d: KeywordSearch(quokka) = %v, %v; want the one paper", limit, hits, err)
		}
		sp := space(t, s, "m", 3)
		if _, _, err := s.HybridSearchRanked(t.Context(), sp.ID, "quokka", []float32{1, 0, 0}, 10); err != nil {
			t.Errorf("limit %d: HybridSearchRanked(quokka) = %v", limit, err)
		}
	}
}

// TestOrWithAnExcludedWordWithinTheLimit: hybrid "quokka or -wombat" where only 3 papers are
// left after the exclusion (limit 4): the keyword ranking must be the full one (3 papers) and
// not bounded (the 4 newest candidates of 'quokka' | !'wombat' were mostly wombat papers, which
// a filter then dropped: 1 paper ranked, "bounded"); and keyword mode leaves the wombat papers
// out too (it returned them first).
func TestOrWithAnExcludedWordWithinTheLimit(t *testing.T) {
	t.Parallel()
	bounded, full := boundedStores(t, 4)
	ctx := t.Context()
	// oldest first, one call each (created_at)
	for _, a := range []paper.Abstract{
		topic(1, "Kangaroo locomotion", "Hopping is efficient."),
		topic(2, "Quokka census", "We count quokkas on the island."),
		topic(3, "Island shrubs", "Shrubs grow in sand."),
		topic(4, "Quokka and wombat", "A quokka met a wombat."),
		topic(5, "Wombat burrows", "A wombat and a quokka share a burrow."),
		topic(6, "Wombat diet", "The wombat eats grass; quokka too."),
	} {
		upsert(t, full, []paper.Abstract{a}, store.Work{})
	}
	sp := space(t, full, "m", 3) // no vectors: the fusion is the keyword ranking alone
	const q = "quokka or -wombat"
	want, wrk, err := full.HybridSearchRanked(ctx, sp.ID, q, []float32{1, 0, 0}, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full ranking: %v %+v", hitIDs(want), wrk)
	got, rk, err := bounded.HybridSearchRanked(ctx, sp.ID, q, []float32{1, 0, 0}, 10)
	if err != nil || !slices.Equal(hitIDs(got), hitIDs(want)) || rk.Bounded {
		t.Errorf("HybridSearchRanked(%q) with a limit of 4 (3 papers without wombat)\n= %v, %+v, %v\nwant the full ranking, unbounded: %v", q, hitIDs(got), rk, err, hitIDs(want))
	}
	// Keyword mode: README says every mode leaves out every paper that has an excluded word.
	kw, err := full.KeywordSearch(ctx, q, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range kw {
		if h.ID == topic(4, "", "").ID || h.ID == topic(5, "", "").ID || h.ID == topic(6, "", "").ID {
			t.Errorf("KeywordSearch(%q) = %v: returns %s, which says wombat", q, hitIDs(kw), h.ID)
		}
	}
}

// TestKeywordBoundUnchangedAcrossQueryShapes: many query shapes, at most the limit matches
// (limit 6), with ties in created_at (one batch) and in score; bounded == full, keyword and
// hybrid.
func TestKeywordBoundUnchangedAcrossQueryShapes(t *testing.T) {
	t.Parallel()
	bounded, full := boundedStores(t, 6)
	ctx := t.Context()
	upsert(t, full, []paper.Abstract{
		topic(1, "Quokka census", "We count quokkas on the island."),
		topic(2, "Quokka census", "We count quokkas on the island."),
		topic(3, "Wombat burrows", "A wombat digs; the island has sand."),
	}, store.Work{})
	upsert(t, full, []paper.Abstract{
		topic(4, "Quokka-Forschung über Inseln", "Wir zählen Quokkas auf der Insel. 袋鼠 研究"),
		topic(5, "Island shrubs", "Shrubs grow in sand on the island."),
	}, store.Work{})
	upsert(t, full, []paper.Abstract{topic(6, "Kangaroo locomotion", "Hopping is efficient on the island.")}, store.Work{})
	sp := space(t, full, "m", 3)
	if _, err := full.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(topic(6, "Kangaroo locomotion", "Hopping is efficient on the island."), 1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"quokka", "island", "quokka or wombat", `"on the island"`, "island -wombat", `island -"the island has"`,
		"quokka or -wombat", "-wombat", "-wombat -quokka", "the island", "Insel", "袋鼠", "über Inseln", "sand or hopping"} {
		for _, k := range []int{1, 3, 100} {
			want, err1 := full.KeywordSearch(ctx, q, k)
			got, rk, err2 := bounded.KeywordSearchRanked(ctx, q, k)
			if (err1 == nil) != (err2 == nil) || !slices.Equal(got, want) || rk.Bounded {
				t.Errorf("keyword %q k=%d: bounded %v %+v %v; full %v %v", q, k, got, rk, err2, want, err1)
			}
			wantH, err1 := full.HybridSearch(ctx, sp.ID, q, []float32{1, 0, 0}, k)
			gotH, rk, err2 := bounded.HybridSearchRanked(ctx, sp.ID, q, []float32{1, 0, 0}, k)
			if (err1 == nil) != (err2 == nil) || !slices.Equal(gotH, wantH) || rk.Bounded {
				t.Errorf("hybrid %q k=%d: bounded %v %+v %v; full %v %v", q, k, gotH, rk, err2, wantH, err1)
			}
		}
	}
}

// TestNoBreakSpaceBeforeAnExclusion: a no-break space (pasted from a web page) before -word is
// a space to both readers of the query: paper.ParseQuery, which leaves the excluded word out of
// the semantic ranking, and websearch_to_tsquery, which read "quokka\u00a0-wombat" as the
// phrase "quokka wombat" and returned only the wombat paper.
func TestNoBreakSpaceBeforeAnExclusion(t *testing.T) {
	t.Parallel()
	s := setup(t)
	upsert(t, s, []paper.Abstract{
		topic(1, "Quokka census", "We count quokkas on the island."),
		topic(2, "Quokka wombat", "A quokka wombat encounter."),
	}, store.Work{})
	for _, q := range []string{"quokka\u00a0-wombat", "quokka\u2003-wombat", "quokka\u00a0or\u00a0-wombat"} {
		hits, err := s.KeywordSearch(t.Context(), q, 10)
		if err != nil || len(hits) != 1 || hits[0].ID != topic(1, "", "").ID {
			t.Errorf("KeywordSearch(%q) = %v, %v; want only %s (the wombat paper left out)", q, hitIDs(hits), err, topic(1, "", "").ID)
		}
	}
}
