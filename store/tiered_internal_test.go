package store

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/paper"
)

// tieredStore: a migrated store ranking at most limit matches, holding n papers stored in
// batches of 5 that share a created_at (a minute apart; g = 1 the newest), each with an
// abstract of ~40 distinct tokens and "routing"; the oldest old also say quokka and are in
// old.cat; every third says wombat and every other is in cs.CV; every 150th says emu; the newest
// tenth say kiwi; those at the edges of ListFiltered's windows (the 4, 16 and 64 × (page + 1)-th
// newest paper and the next, for pages of 1, 3, 7 and 20) are in edge.cat. Every paper has a 3-d vector in the active space (no HNSW index: exact scans).
// Analyzed. It returns the space id.
func tieredStore(t *testing.T, n, old, limit int) (*Store, int64) {
	t.Helper()
	s := migratedStore(t)
	s.keywordLimit = limit
	ctx := t.Context()
	sp, _, err := s.EnsureSpaceForLoad(ctx, paper.Space{Model: "m", Dimensions: 3, Template: "t"})
	if err != nil {
		t.Fatal(err)
	}
	addTieredPapers(t, s, 1, n, n, old)
	for _, q := range []string{
		`INSERT INTO embeddings (space_id, paper_id, content_hash, embedding)
			SELECT ` + itoa(sp.ID) + `, p.id, p.content_hash, ARRAY[(hashtext(p.id) % 7)::float4, (hashtext(p.id) % 5)::float4, 1]::vector FROM papers p`,
		`VACUUM ANALYZE papers`, `VACUUM ANALYZE embeddings`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return s, sp.ID
}

// addTieredPapers stores the papers g = from..to of tieredStore's archive of n papers (see
// there), with ids after those of g > to.
func addTieredPapers(t *testing.T, s *Store, from, to, n, old int) {
	t.Helper()
	q := fmt.Sprintf(`INSERT INTO papers (id, title, abstract, categories, content_hash, created_at, updated_at)
		SELECT 'p' || lpad((%[1]d - g)::text, 6, '0'), 'title ' || g,
			'an abstract about routing ' || (SELECT string_agg(md5(g::text || '-' || i::text), ' ') FROM generate_series(1, 40) i)
			|| CASE WHEN g > %[1]d - %[2]d THEN ' quokka' ELSE '' END
			|| CASE WHEN g %% 3 = 0 THEN ' wombat' ELSE '' END
			|| CASE WHEN g %% 150 = 7 THEN ' emu' ELSE '' END
			|| CASE WHEN g <= %[1]d / 10 THEN ' kiwi kiwi' ELSE '' END
			|| CASE WHEN g > %[1]d - %[2]d THEN repeat(' quokka', g %% 4) ELSE '' END,
			ARRAY['cs.LG'] || CASE WHEN g > %[1]d - %[2]d THEN ARRAY['old.cat'] ELSE '{}' END
				|| CASE WHEN g %% 2 = 0 THEN ARRAY['cs.CV'] ELSE '{}' END
				|| CASE WHEN g IN (8, 9, 16, 17, 32, 33, 64, 65, 84, 85, 128, 129, 256, 257, 336, 337, 512, 513)
					THEN ARRAY['edge.cat'] ELSE '{}' END,
			'h' || g,
			timestamptz '2026-01-01' - (g / 5) * interval '1 minute', now()
		FROM generate_series(%[3]d, %[4]d) g`, n, old, from, to)
	if _, err := s.pool.Exec(t.Context(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// setEdges makes s use edges as its windows' edges for the next minute.
func setEdges(s *Store, edges []time.Time) {
	s.storeTierEdges(int64(s.keywordLimit), tierEdges{at: time.Now(), edges: edges})
}

// tieredQueries are the full-text queries of the tests: old-only, spread, rare, new-only,
// everywhere, and their combinations.
var tieredQueries = []string{"quokka", "wombat", "emu", "kiwi", "routing", "quokka wombat", "wombat -quokka",
	"kiwi or -wombat", `"about routing"`, "quokka or kiwi", "routing -kiwi", "emu or quokka", "nothingmatches"}

// TestTieredRankingIsTheUntieredOne: keyword and hybrid search return exactly what the
// statement without windows returns (the same hits, scores and Bounded), whatever the windows'
// edges: the store's own, random ones (also several on one created_at, shared by a batch of
// papers, and outside the archive's dates), and edges left stale by many papers added since.
func TestTieredRankingIsTheUntieredOne(t *testing.T) {
	t.Parallel()
	const n, old, limit = 600, 90, 6
	s, spaceID := tieredStore(t, n, old, limit)
	s.tiers.always = true // also the rankings the planner reads from the GIN index
	ctx := t.Context()
	vec := []float32{1, 2, 1}
	type answer struct {
		hits []paper.Hit
		rk   Ranking
	}
	search := func(q string) (kw, hy answer) {
		t.Helper()
		var err error
		if kw.hits, kw.rk, err = s.KeywordSearchRanked(ctx, q, 20); err != nil {
			t.Fatalf("KeywordSearchRanked(%q): %v", q, err)
		}
		if hy.hits, hy.rk, err = s.HybridSearchRanked(ctx, spaceID, q, vec, 20); err != nil {
			t.Fatalf("HybridSearchRanked(%q): %v", q, err)
		}
		return kw, hy
	}
	oracle := func() map[string][2]answer {
		setEdges(s, nil) // one window: the statement without windows
		out := map[string][2]answer{}
		for _, q := range tieredQueries {
			kw, hy := search(q)
			out[q] = [2]answer{kw, hy}
		}
		return out
	}
	check := func(edges []time.Time, want map[string][2]answer) {
		t.Helper()
		setEdges(s, edges)
		for _, q := range tieredQueries {
			kw, hy := search(q)
			if !slices.Equal(kw.hits, want[q][0].hits) || kw.rk != want[q][0].rk {
				t.Errorf("edges %v: KeywordSearchRanked(%q) = %v, %+v\nwant (no windows) %v, %+v", edges, q, kw.hits, kw.rk, want[q][0].hits, want[q][0].rk)
			}
			if !slices.Equal(hy.hits, want[q][1].hits) || hy.rk != want[q][1].rk {
				t.Errorf("edges %v: HybridSearchRanked(%q) = %v, %+v\nwant (no windows) %v, %+v", edges, q, hy.hits, hy.rk, want[q][1].hits, want[q][1].rk)
			}
		}
	}
	want := oracle()
	if !want["quokka"][0].rk.Bounded || want["emu"][0].rk.Bounded || len(want["nothingmatches"][0].hits) != 0 {
		t.Fatalf("the test's premise is wrong: quokka %+v, emu %+v", want["quokka"][0].rk, want["emu"][0].rk)
	}
	own, err := s.lookupTierEdges(ctx, limit)
	if err != nil || len(own) != 3 {
		t.Fatalf("lookupTierEdges = %v, %v; want 3 edges (24, 96 and 384 papers of %d)", own, err, n)
	}
	check(own, want)
	var dates []time.Time
	if err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT created_at FROM papers ORDER BY created_at DESC`)
		if err != nil {
			return err
		}
		dates, err = pgx.CollectRows(rows, pgx.RowTo[time.Time])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 12 {
		var edges []time.Time
		for range 1 + r.IntN(3) {
			switch r.IntN(6) {
			case 0:
				edges = append(edges, dates[0].Add(time.Hour)) // after every paper
			case 1:
				edges = append(edges, dates[len(dates)-1].Add(-time.Hour)) // before every paper
			default:
				edges = append(edges, dates[r.IntN(len(dates))])
			}
		}
		slices.SortFunc(edges, func(a, b time.Time) int { return b.Compare(a) })
		check(edges, want)
	}
	// The batch at the 24th paper's created_at, all edges on it.
	check([]time.Time{own[0], own[0], own[0]}, want)

	// 800 papers more, newer than all, with the edges of before.
	addTieredPapers(t, s, -800, 0, n, old)
	want = oracle()
	check(own, want)
	fresh, err := s.lookupTierEdges(ctx, limit)
	if err != nil || slices.Equal(fresh, own) {
		t.Fatalf("lookupTierEdges after 800 papers = %v, %v; want new edges", fresh, err)
	}
	check(fresh, want)
}

// TestTieredRankingOfASmallOrEmptyArchive: an empty archive, and one with fewer papers than
// the first window, have no edges (a ranking is then the statement without windows) and
// answer as before.
func TestTieredRankingOfASmallOrEmptyArchive(t *testing.T) {
	t.Parallel()
	s := migratedStore(t)
	s.keywordLimit = 4
	ctx := t.Context()
	if edges, err := s.tierEdgesFor(ctx, 4); err != nil || len(edges) != 0 {
		t.Fatalf("edges of an empty archive = %v, %v; want none", edges, err)
	}
	if hits, rk, err := s.KeywordSearchRanked(ctx, "quokka", 10); err != nil || len(hits) != 0 || rk.Bounded {
		t.Errorf("KeywordSearchRanked on an empty archive = %v, %+v, %v", hits, rk, err)
	}
	if recs, next, err := s.ListFiltered(ctx, ListFilter{Category: "cs.LG"}, 10, nil); err != nil || len(recs) != 0 || next != nil {
		t.Errorf("ListFiltered on an empty archive = %v, %v, %v", recs, next, err)
	}
	for i := range 9 {
		upsertOne(t, s, paper.Abstract{ID: fmt.Sprintf("q%d", i), Title: "Quokka census", Abstract: strings.Repeat("quokka ", i+1) + "on the island.", Categories: []string{"cs.LG"}})
	}
	s.tiers.byUnit = nil // forget the empty archive's edges
	if edges, err := s.tierEdgesFor(ctx, 4); err != nil || len(edges) != 0 {
		t.Fatalf("edges of 9 papers with windows of 16 = %v, %v; want none", edges, err)
	}
	hits, rk, err := s.KeywordSearchRanked(ctx, "quokka", 10)
	if err != nil || len(hits) != 4 || !rk.Bounded || hits[0].ID != "q8" {
		t.Errorf("KeywordSearchRanked(quokka) of 9 papers, limit 4 = %v, %+v, %v; want the 4 newest, q8 first, bounded", hits, rk, err)
	}
	recs, next, err := s.ListFiltered(ctx, ListFilter{Category: "cs.LG"}, 2, nil)
	if err != nil || len(recs) != 2 || recs[0].ID != "q8" || next == nil {
		t.Errorf("ListFiltered(cs.LG, 2) of 9 papers = %v, %v, %v", recs, next, err)
	}
}

func upsertOne(t *testing.T, s *Store, a paper.Abstract) {
	t.Helper()
	if _, err := s.UpsertPapers(t.Context(), []paper.Abstract{a}, Work{}); err != nil {
		t.Fatal(err)
	}
}

// TestStaleEdgesAreRefreshed: edges older than tierEdgesTTL are still used (any edges are
// correct) while one lookup refreshes them; fresh ones are used as they are.
func TestStaleEdgesAreRefreshed(t *testing.T) {
	t.Parallel()
	s, _ := tieredStore(t, 300, 20, 4)
	ctx := t.Context()
	clock := time.Now()
	s.tiers.mu.Lock()
	s.tiers.now = func() time.Time { return clock }
	s.tiers.mu.Unlock()
	stale := []time.Time{time.Unix(0, 0)}
	s.storeTierEdges(4, tierEdges{at: clock.Add(-2 * tierEdgesTTL), edges: stale})
	got, err := s.tierEdgesFor(ctx, 4)
	if err != nil || !slices.Equal(got, stale) {
		t.Fatalf("tierEdgesFor with stale edges = %v, %v; want the stale ones while they are refreshed", got, err)
	}
	want, err := s.lookupTierEdges(ctx, 4)
	if err != nil || len(want) != 3 {
		t.Fatal(want, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err = s.tierEdgesFor(ctx, 4)
		if err == nil && slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tierEdgesFor = %v, %v 10 s after the stale edges were used; want %v", got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tieredPlanNode is a node of EXPLAIN (ANALYZE, FORMAT JSON), with the rows its filters dropped.
type tieredPlanNode struct {
	NodeType    string           `json:"Node Type"`
	Relation    string           `json:"Relation Name"`
	ActualRows  float64          `json:"Actual Rows"`
	ActualLoops float64          `json:"Actual Loops"`
	Filtered    float64          `json:"Rows Removed by Filter"`
	Rechecked   float64          `json:"Rows Removed by Index Recheck"`
	Plans       []tieredPlanNode `json:"Plans"`
}

// papersRead sums the rows of papers that heap scans of it read (rows they returned or
// dropped, × loops); index-only scans (the edges' walk) are not counted.
func papersRead(n tieredPlanNode) float64 {
	sum := 0.0
	if n.Relation == "papers" && n.NodeType != "Index Only Scan" {
		sum += (n.ActualRows + n.Filtered + n.Rechecked) * n.ActualLoops
	}
	for _, c := range n.Plans {
		sum += papersRead(c)
	}
	return sum
}

// explainRead runs EXPLAIN (ANALYZE) of sql as the searches run it (searchRows) and returns the
// papers it read (papersRead) and its plan as text.
func explainRead(t *testing.T, s *Store, sql string, args []any) (float64, string) {
	t.Helper()
	out, err := searchRows(t.Context(), s, DefaultEFSearch(s.index), "EXPLAIN (ANALYZE, FORMAT JSON) "+sql, args, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	var root []struct{ Plan tieredPlanNode }
	if err := json.Unmarshal(out[0], &root); err != nil {
		t.Fatal(err)
	}
	text, err := searchRows(t.Context(), s, DefaultEFSearch(s.index), "EXPLAIN (ANALYZE) "+sql, args, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return papersRead(root[0].Plan), strings.Join(text, "\n")
}

// TestAWordOnlyOldPapersHaveIsNotWalkedTo: a word that only the oldest 10% of
// 8,000 papers have is not looked for through the newer papers, which the plain statement
// walked, testing each (the planner expects the matches spread over the dates): keyword and
// hybrid search read at most the 64 × limit newest papers and the matches (here fewer, as the
// planner reads the windows from the GIN index).
func TestAWordOnlyOldPapersHaveIsNotWalkedTo(t *testing.T) {
	t.Parallel()
	const n, old, limit = 8000, 800, 20
	s, spaceID := tieredStore(t, n, old, limit)
	ctx := t.Context()
	bound := float64(64*limit + old + limit + 1)

	args := []any{"quokka", 10, limit}
	edges, err := s.keywordEdges(ctx, "quokka", &args)
	if err != nil {
		t.Fatal(err)
	}
	if read, plan := explainRead(t, s, keywordSQL(tsQuery, edges), args); read > bound {
		t.Errorf("a keyword search of a word the oldest %d of %d papers have read %.0f papers; want at most %.0f:\n%s", old, n, read, bound, plan)
	}
	sp, err := s.space(ctx, spaceID)
	if err != nil {
		t.Fatal(err)
	}
	sql, _, hargs, err := s.hybridStatement(ctx, sp, "quokka", []float32{1, 0, 0}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if read, plan := explainRead(t, s, sql, hargs); read > bound {
		t.Errorf("a hybrid search of a word the oldest %d of %d papers have read %.0f papers; want at most %.0f:\n%s", old, n, read, bound, plan)
	}

}

// TestOnlyWalksAreCutIntoWindows: a ranking the planner answers from the GIN index (a rare
// word, as emu, 40 of 8,000 papers) has no windows, which would only read the GIN index once
// per window and intersect it with each window's range of papers_created_at_id; one it walks
// papers_created_at_id for (a word every paper has, and one only the oldest have) has them.
func TestOnlyWalksAreCutIntoWindows(t *testing.T) {
	t.Parallel()
	s, _ := tieredStore(t, 8000, 800, 20)
	ctx := t.Context()
	for q, want := range map[string]bool{"emu": false, "routing": true, "quokka": true, "kiwi or -wombat": true} {
		args := []any{q, 10, 20}
		edges, err := s.keywordEdges(ctx, q, &args)
		if err != nil || (len(edges) > 0) != want {
			t.Errorf("keywordEdges(%q) = %v, %v; want windows: %v", q, edges, err, want)
		}
	}
}
