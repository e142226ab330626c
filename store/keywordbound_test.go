package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// boundedStores returns a migrated store whose keyword rankings rank at most limit matches,
// and a second store on the same schema that ranks every match (a plain full ranking).
func boundedStores(t *testing.T, limit int) (bounded, full *store.Store) {
	t.Helper()
	u := pgtest.URL(t)
	openLimit := func(n int) *store.Store {
		s, err := store.Open(t.Context(), store.Config{URL: u, KeywordRankLimit: n})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(s.Close)
		return s
	}
	full = openLimit(1 << 30)
	if err := full.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return openLimit(limit), full
}

// quokkaPapers stores n papers that match "quokka", one call each so that each is stored
// after the one before (created_at), the oldest the best matches: the first three have the
// word in the title and several times in the abstract, the others once in an abstract of
// growing length; every third also says "wombat". It returns them oldest first.
func quokkaPapers(t *testing.T, s *store.Store, n int) []paper.Abstract {
	t.Helper()
	var out []paper.Abstract
	for i := range n {
		a := topic(100+i, fmt.Sprintf("Field notes %d", i), "We observe a quokka. "+strings.Repeat("The island has sand and shrubs. ", i+1))
		if i < 3 {
			a.Title = fmt.Sprintf("Quokka census %d", i)
			a.Abstract = "Quokka quokka quokka: we count quokkas on the island."
		}
		if i%3 == 2 {
			a.Abstract += " A wombat was seen too."
		}
		upsert(t, s, []paper.Abstract{a}, store.Work{})
		out = append(out, a)
	}
	return out
}

// TestKeywordSearchWithinTheLimitIsUnchanged: a query matching at most the rank limit — also
// exactly as many as the limit — returns what a full ranking returns (same papers, order and
// scores), unbounded; so does hybrid search.
func TestKeywordSearchWithinTheLimitIsUnchanged(t *testing.T) {
	t.Parallel()
	bounded, full := boundedStores(t, 8)
	ctx := t.Context()
	ps := quokkaPapers(t, full, 8)
	upsert(t, full, []paper.Abstract{topic(1, "Kangaroo locomotion", "Hopping is efficient.")}, store.Work{})
	sp := space(t, full, "bound", 3)
	if _, err := full.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(ps[5], 1, 0, 0), embeddingOf(ps[0], 0, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"quokka", "island", "quokka -wombat", `"on the island"`, "shrubs"} {
		want, err := full.KeywordSearch(ctx, q, 20)
		if err != nil || len(want) == 0 {
			t.Fatalf("full ranking of %q: %v, %v", q, want, err)
		}
		got, rk, err := bounded.KeywordSearchRanked(ctx, q, 20)
		if err != nil || !slices.Equal(got, want) || rk.Bounded || rk.Limit != 8 {
			t.Errorf("KeywordSearchRanked(%q) with a limit of 8\n= %v, %+v, %v\nwant the full ranking (%d matches), unbounded:\n  %v", q, got, rk, err, len(want), want)
		}
		wantH, err := full.HybridSearch(ctx, sp.ID, q, []float32{1, 0.2, 0}, 20)
		if err != nil {
			t.Fatal(err)
		}
		gotH, rk, err := bounded.HybridSearchRanked(ctx, sp.ID, q, []float32{1, 0.2, 0}, 20)
		if err != nil || !slices.Equal(gotH, wantH) || rk.Bounded {
			t.Errorf("HybridSearchRanked(%q) with a limit of 8\n= %v, %+v, %v\nwant the full ranking's fusion, unbounded:\n  %v", q, gotH, rk, err, wantH)
		}
	}
}

// TestKeywordSearchBeyondTheLimitRanksTheNewestAndSaysSo: a query matching more papers than
// the rank limit ranks only the limit most recently stored of them, by the same scores, and
// reports it; -excluded words are left out before the newest are taken. Hybrid search's
// keyword ranking is bounded the same way and says so.
func TestKeywordSearchBeyondTheLimitRanksTheNewestAndSaysSo(t *testing.T) {
	t.Parallel()
	bounded, full := boundedStores(t, 4)
	ctx := t.Context()
	ps := quokkaPapers(t, full, 12)
	sp := space(t, full, "bound", 3)
	unrelated := topic(1, "Kangaroo locomotion", "Hopping is efficient.")
	upsert(t, full, []paper.Abstract{unrelated}, store.Work{})
	if _, err := full.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(unrelated, 1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	ids := func(as []paper.Abstract) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.ID)
		}
		return out
	}
	for _, tc := range []struct {
		q      string
		newest []string // the 4 newest matches
	}{
		{"quokka", ids(ps[8:])},
		// ps[8] and ps[11] say wombat: the 4 newest without it.
		{"quokka -wombat", ids([]paper.Abstract{ps[6], ps[7], ps[9], ps[10]})},
	} {
		all, err := full.KeywordSearch(ctx, tc.q, 20)
		if err != nil {
			t.Fatal(err)
		}
		if hitIDs(all)[0] != ps[0].ID && hitIDs(all)[0] != ps[1].ID {
			t.Fatalf("full ranking of %q = %v: the test's premise (an old paper is the best match) is wrong", tc.q, hitIDs(all))
		}
		var want []paper.Hit
		for _, h := range all {
			if slices.Contains(tc.newest, h.ID) {
				want = append(want, h)
			}
		}
		got, rk, err := bounded.KeywordSearchRanked(ctx, tc.q, 20)
		if err != nil || !slices.Equal(got, want) || !rk.Bounded || rk.Limit != 4 {
			t.Errorf("KeywordSearchRanked(%q) with a limit of 4\n= %v, %+v, %v\nwant the 4 newest matches in the full ranking's order and scores, bounded:\n  %v", tc.q, got, rk, err, want)
		}
		hits, rk, err := bounded.HybridSearchRanked(ctx, sp.ID, tc.q, []float32{1, 0, 0}, 20)
		if err != nil || !rk.Bounded {
			t.Fatalf("HybridSearchRanked(%q) = %+v, %v; want it bounded", tc.q, rk, err)
		}
		if gotIDs, wantIDs := hitIDs(hits), append([]string{unrelated.ID}, tc.newest...); !sameSet(gotIDs, wantIDs) {
			t.Errorf("HybridSearchRanked(%q) found %v; want the embedded paper and the 4 newest matches %v", tc.q, gotIDs, wantIDs)
		}
	}
	// Unbounded store, same query: not bounded.
	if _, rk, err := full.KeywordSearchRanked(ctx, "quokka", 20); err != nil || rk.Bounded {
		t.Errorf("KeywordSearchRanked with the limit above the matches = %+v, %v; want unbounded", rk, err)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
