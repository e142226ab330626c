package store_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// setupBinary returns a migrated store whose new spaces get binary-code indexes, and a second
// store on the same schema that creates plain HNSW spaces.
func setupBinary(t *testing.T) (bin, plain *store.Store) {
	t.Helper()
	return setupKind(t, store.IndexHNSWBinary)
}

// setupKind returns a migrated store whose new spaces get indexes of kind, and a second store
// on the same schema that creates plain HNSW spaces (IndexHNSW).
func setupKind(t *testing.T, kind store.IndexKind) (s, plain *store.Store) {
	t.Helper()
	u := pgtest.URL(t)
	plain = openKind(t, u, store.IndexHNSW)
	if err := plain.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return openKind(t, u, kind), plain
}

// openKind opens a store on url whose new spaces get indexes of kind.
func openKind(t *testing.T, url string, kind store.IndexKind) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), store.Config{URL: url, VectorIndex: kind})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// saveRandomVectors stores, for each paper, a vector of dims coordinates uniform in [-1, 1)
// (drawn from seed) in space spaceID, and returns the embeddings.
func saveRandomVectors(t *testing.T, s *store.Store, spaceID int64, ps []paper.Abstract, dims int, seed uint64) []paper.Embedding {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed+1))
	embs := make([]paper.Embedding, len(ps))
	for i := range embs {
		v := make([]float32, dims)
		for j := range v {
			v[j] = r.Float32()*2 - 1
		}
		embs[i] = embeddingOf(ps[i], v...)
	}
	if _, err := s.SaveEmbeddings(t.Context(), spaceID, embs); err != nil {
		t.Fatal(err)
	}
	return embs
}

// randomSpace makes space model of dims dimensions, n papers (abstracts(n)) and a random vector
// for each (saveRandomVectors with seed).
func randomSpace(t *testing.T, s *store.Store, model string, n, dims int, seed uint64) (paper.Space, []paper.Abstract, []paper.Embedding) {
	t.Helper()
	sp := space(t, s, model, dims)
	ps := abstracts(n)
	upsert(t, s, ps, store.Work{})
	return sp, ps, saveRandomVectors(t, s, sp.ID, ps, dims, seed)
}

// exactNearest returns the ids of the k embeddings nearest to q by cosine similarity, nearest
// first (ties in the embeddings' order), leaving out paper exclude: the answer an exact search
// gives.
func exactNearest(embs []paper.Embedding, q []float32, exclude string, k int) []string {
	var others []paper.Embedding
	for _, e := range embs {
		if e.PaperID != exclude {
			others = append(others, e)
		}
	}
	sort.SliceStable(others, func(a, b int) bool { return cosine(q, others[a].Vector) > cosine(q, others[b].Vector) })
	ids := make([]string, 0, k)
	for _, e := range others[:min(k, len(others))] {
		ids = append(ids, e.PaperID)
	}
	return ids
}

func TestParseIndexKind(t *testing.T) {
	for _, s := range []string{"hnsw", "hnsw-binary", "hnsw-halfvec"} {
		if k, err := store.ParseIndexKind(s); err != nil || string(k) != s {
			t.Errorf("ParseIndexKind(%q) = %q, %v", s, k, err)
		}
	}
	for _, s := range []string{"", "HNSW", "ivfflat", "binary", "halfvec"} {
		if _, err := store.ParseIndexKind(s); err == nil {
			t.Errorf("ParseIndexKind(%q) succeeded", s)
		}
	}
	if _, err := store.Open(t.Context(), store.Config{URL: "postgres://x@127.0.0.1:1/x", VectorIndex: "ivfflat"}); err == nil ||
		!strings.Contains(err.Error(), "VectorIndex") {
		t.Errorf("Open with VectorIndex ivfflat = %v, want an error naming VectorIndex", err)
	}
}

// spacesByID returns s.Spaces by space id.
func spacesByID(t *testing.T, s *store.Store) map[int64]store.SpaceInfo {
	t.Helper()
	infos, err := s.Spaces(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	byID := make(map[int64]store.SpaceInfo, len(infos))
	for _, si := range infos {
		byID[si.ID] = si
	}
	return byID
}

// TestSpaceKeepsTheIndexKindItWasCreatedWith: the configured kind applies to new spaces only.
func TestSpaceKeepsTheIndexKindItWasCreatedWith(t *testing.T) {
	t.Parallel()
	bin, plain := setupBinary(t)
	ctx := t.Context()
	old := space(t, plain, "old", 3)
	if again := space(t, bin, "old", 3); again.ID != old.ID {
		t.Fatalf("EnsureSpace of an existing space made another: %d, %d", again.ID, old.ID)
	}
	codes := space(t, bin, "codes", 3)
	huge := space(t, bin, "enormous", 5000) // beyond HNSW on vectors, not on codes
	kinds := spacesByID(t, bin)
	if got := kinds[old.ID].Index; got != store.IndexHNSW {
		t.Errorf("existing space's index kind = %q, want hnsw", got)
	}
	for _, sp := range []paper.Space{codes, huge} {
		si := kinds[sp.ID]
		if si.Index != store.IndexHNSWBinary || si.IndexName == "" {
			t.Errorf("space %s = %+v, want an hnsw-binary index", sp.Name(), si)
			continue
		}
		var def string
		err := bin.Pool().QueryRow(ctx, "SELECT pg_get_indexdef(to_regclass($1))", si.IndexName).Scan(&def)
		want := fmt.Sprintf("binary_quantize(embedding))::bit(%d)", sp.Dimensions)
		if err != nil || !strings.Contains(def, want) || !strings.Contains(def, "bit_hamming_ops") ||
			!strings.Contains(def, "ef_construction='128'") {
			t.Errorf("index of %s = %q, %v; want HNSW on %s with bit_hamming_ops, ef_construction 128", sp.Name(), def, err, want)
		}
	}
}

// TestBinaryIndexResultsAreRankedByExactCosine: every vector below has the same binary code
// (all coordinates positive), so the index cannot tell them apart; the results' order and
// scores must still be the exact cosine ones.
func TestBinaryIndexResultsAreRankedByExactCosine(t *testing.T) {
	t.Parallel()
	bin, _ := setupBinary(t)
	ctx := t.Context()
	sp := space(t, bin, "codes", 3)
	ps := abstracts(5)
	upsert(t, bin, ps, store.Work{})
	vecs := [][]float32{{1, 0.1, 0.1}, {0.9, 0.3, 0.1}, {0.5, 0.5, 0.1}, {0.1, 0.2, 1}, {0.1, 1, 0.1}}
	var embs []paper.Embedding
	for i, v := range vecs {
		embs = append(embs, embeddingOf(ps[i], v...))
	}
	if _, err := bin.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	hits, err := bin.Related(ctx, sp.ID, ps[0].ID, 4)
	if err != nil {
		t.Fatalf("Related: %v", err)
	}
	if got, want := hitIDs(hits), exactNearest(embs, vecs[0], ps[0].ID, 4); !slices.Equal(got, want) {
		t.Errorf("Related = %v, want exact cosine order %v", got, want)
	}
	for _, h := range hits {
		i := slices.IndexFunc(ps, func(p paper.Abstract) bool { return p.ID == h.ID })
		if want := cosine(vecs[0], vecs[i]); math.Abs(h.Score-want) > 1e-5 {
			t.Errorf("hit %s score %.6f, want cosine %.6f", h.ID, h.Score, want)
		}
	}
	q := []float32{0.2, 0.9, 0.3}
	hits, err = bin.Search(ctx, sp.ID, q, 2)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if got, want := hitIDs(hits), exactNearest(embs, q, "", 2); !slices.Equal(got, want) {
		t.Errorf("Search = %v, want %v", got, want)
	}
	hits, err = bin.HybridSearch(ctx, sp.ID, "problem", q, 3)
	if err != nil || len(hits) != 3 {
		t.Errorf("HybridSearch = %v, %v; want 3 hits", hitIDs(hits), err)
	}
}

// TestBinaryIndexReranksMoreCandidatesThanK: ten decoys share the query's binary code exactly
// (Hamming distance 0) but are far from it by cosine; the two true neighbours differ from it
// in three signs. Taking k rows by Hamming distance would return decoys; re-ranking ef_search
// candidates returns the neighbours.
func TestBinaryIndexReranksMoreCandidatesThanK(t *testing.T) {
	t.Parallel()
	bin, _ := setupBinary(t)
	ctx := t.Context()
	const dims = 64
	sp := space(t, bin, "codes", dims)
	ps := abstracts(12)
	upsert(t, bin, ps, store.Work{})
	query := make([]float32, dims)
	for i := range query {
		query[i] = 1
	}
	var embs []paper.Embedding
	for i := range 10 { // decoys: one large coordinate, the rest tiny but positive
		v := make([]float32, dims)
		for j := range v {
			v[j] = 0.01
		}
		v[i] = 1
		embs = append(embs, embeddingOf(ps[i], v...))
	}
	for i := 10; i < 12; i++ { // neighbours: the query with three coordinates just below zero
		v := slices.Clone(query)
		v[3*i%dims], v[(3*i+1)%dims], v[(3*i+2)%dims] = -0.01, -0.01, -0.01
		embs = append(embs, embeddingOf(ps[i], v...))
	}
	if _, err := bin.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	hits, err := bin.Search(ctx, sp.ID, query, 2)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	got := hitIDs(hits)
	slices.Sort(got)
	if want := []string{ps[10].ID, ps[11].ID}; !slices.Equal(got, want) {
		t.Errorf("Search = %v, want the two true neighbours %v", got, want)
	}
}

// TestBinarySpaceQueriesUseItsIndex checks the plans of Related and hybrid search on a space
// with a binary-code index, 1,000 vectors and statistics gathered.
func TestBinarySpaceQueriesUseItsIndex(t *testing.T) {
	t.Parallel()
	bin, _ := setupBinary(t)
	const n, dims = 1000, 32
	sp, ps, embs := randomSpace(t, bin, "planned", n, dims, 5)
	checkPlansScanIndex(t, bin, sp, ps, embs, "<~>")
	// And the answers are the exact top 10 for most questions: 1,000 random 32-d vectors
	// keep enough of their order in 32 bits for 100 re-ranked candidates.
	if recall := relatedRecall(t, bin, sp, ps, embs, 20, nil); recall < 0.8 {
		t.Errorf("recall@10 of Related on the binary index = %.2f, want at least 0.8", recall)
	}
}

// checkPlansScanIndex gathers statistics and checks that Related (whose plan must also show
// marker, the index's distance), hybrid search and semantic search with an excluded word in space
// sp scan the space's HNSW index.
func checkPlansScanIndex(t *testing.T, s *store.Store, sp paper.Space, ps []paper.Abstract, embs []paper.Embedding, marker string) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.Pool().Exec(ctx, "ANALYZE papers; ANALYZE embeddings"); err != nil {
		t.Fatal(err)
	}
	want := "Index Scan using embeddings_hnsw_s" + strconv.FormatInt(sp.ID, 10) + " "
	plan, err := s.ExplainRelated(ctx, sp.ID, ps[0].ID, 10)
	if err != nil || !strings.Contains(plan, want) || !strings.Contains(plan, marker) {
		t.Errorf("Related does not scan the space's index with %s (%v); plan:\n%s", marker, err, plan)
	}
	plan, err = s.ExplainHybrid(ctx, sp.ID, "problem", embs[0].Vector, 10)
	if err != nil || !strings.Contains(plan, want) {
		t.Errorf("hybrid search does not scan the space's index (%v); plan:\n%s", err, plan)
	}
	plan, err = s.ExplainSemantic(ctx, sp.ID, "problem -quasicrystals", embs[0].Vector, 10)
	if err != nil || !strings.Contains(plan, want) {
		t.Errorf("semantic search with an excluded word does not scan the space's index (%v); plan:\n%s", err, plan)
	}
}

// relatedRecall asks Related for the 10 papers nearest to each of the first n papers of ps
// (embs their vectors, in order) and returns the share of the exact top 10 found; each answer is
// passed to check when it is not nil.
func relatedRecall(t *testing.T, s *store.Store, sp paper.Space, ps []paper.Abstract, embs []paper.Embedding, n int,
	check func(qi int, hits []paper.Hit)) float64 {
	t.Helper()
	var found, total int
	for qi := range n {
		hits, err := s.Related(t.Context(), sp.ID, ps[qi].ID, 10)
		if err != nil || len(hits) != 10 {
			t.Fatalf("Related(%s) = %v, %v; want 10 papers", ps[qi].ID, hitIDs(hits), err)
		}
		if check != nil {
			check(qi, hits)
		}
		for _, id := range exactNearest(embs, embs[qi].Vector, ps[qi].ID, 10) {
			total++
			if slices.Contains(hitIDs(hits), id) {
				found++
			}
		}
	}
	return float64(found) / float64(total)
}

// TestCheckRecallSeesWhatTooFewCandidatesMiss: the decoy archive of
// TestBinaryIndexReranksMoreCandidatesThanK, stored as papers. Asked about the query-like
// paper, a binary index re-ranking only k candidates returns decoys; CheckRecall must see the
// loss, and none with the default ef_search.
func TestCheckRecallSeesWhatTooFewCandidatesMiss(t *testing.T) {
	t.Parallel()
	bin, _ := setupBinary(t)
	ctx := t.Context()
	const dims = 64
	sp := space(t, bin, "codes", dims)
	ps := abstracts(13)
	upsert(t, bin, ps, store.Work{})
	var embs []paper.Embedding
	ones := make([]float32, dims)
	for i := range ones {
		ones[i] = 1
	}
	embs = append(embs, embeddingOf(ps[0], ones...))
	for i := 1; i <= 10; i++ {
		v := make([]float32, dims)
		for j := range v {
			v[j] = 0.01
		}
		v[i] = 1
		embs = append(embs, embeddingOf(ps[i], v...))
	}
	for i := 11; i <= 12; i++ {
		v := slices.Clone(ones)
		v[3*i%dims], v[(3*i+1)%dims], v[(3*i+2)%dims] = -0.01, -0.01, -0.01
		embs = append(embs, embeddingOf(ps[i], v...))
	}
	if _, err := bin.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	got, err := bin.CheckRecall(ctx, sp.ID, 100, 2)
	if err != nil {
		t.Fatalf("CheckRecall: %v", err)
	}
	if got.Questions != 13 || got.Recall != 1 || got.Index != store.IndexHNSWBinary || got.EFSearch != 160 || got.K != 2 {
		t.Errorf("CheckRecall at the default ef_search = %+v, want 13 questions, recall 1, the binary kind's ef_search 160", got)
	}
	narrow, err := store.Open(ctx, store.Config{URL: bin.Pool().Config().ConnString(), EFSearch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer narrow.Close()
	got, err = narrow.CheckRecall(ctx, sp.ID, 100, 2)
	if err != nil {
		t.Fatalf("CheckRecall: %v", err)
	}
	if got.Questions != 13 || got.Recall >= 1 || got.EFSearch != 2 {
		t.Errorf("CheckRecall re-ranking 2 candidates = %+v, want recall below 1", got)
	}
	if _, err := bin.CheckRecall(ctx, sp.ID, 0, 2); err == nil {
		t.Error("CheckRecall with sample 0 succeeded")
	}
}

// TestReindexSwitchesAnExistingSpace: a filled hnsw space gets a binary-code index in place
// and back; a process that cached the old kind still answers correctly (by a scan).
func TestReindexSwitchesAnExistingSpace(t *testing.T) {
	t.Parallel()
	bin, plain := setupBinary(t)
	ctx := t.Context()
	const n, dims = 200, 16
	sp, ps, embs := randomSpace(t, plain, "switch", n, dims, 7)
	if _, err := bin.Related(ctx, sp.ID, ps[0].ID, 5); err != nil { // bin caches the kind: hnsw
		t.Fatal(err)
	}
	indexDef := func() string {
		var def string
		if err := plain.Pool().QueryRow(ctx, "SELECT coalesce(pg_get_indexdef(to_regclass($1)), '')",
			"embeddings_hnsw_s"+strconv.FormatInt(sp.ID, 10)).Scan(&def); err != nil {
			t.Fatal(err)
		}
		return def
	}
	kindOf := func() store.IndexKind {
		infos, err := plain.Spaces(ctx)
		if err != nil || len(infos) != 1 {
			t.Fatalf("Spaces = %+v, %v", infos, err)
		}
		return infos[0].Index
	}

	changed, err := plain.Reindex(ctx, sp.ID, store.IndexHNSWBinary, store.IndexSettings{})
	if err != nil || !changed {
		t.Fatalf("Reindex to hnsw-binary = %v, %v", changed, err)
	}
	if def := indexDef(); kindOf() != store.IndexHNSWBinary || !strings.Contains(def, "bit_hamming_ops") {
		t.Errorf("after Reindex: kind %s, index %q", kindOf(), def)
	}
	var leftovers int
	if err := plain.Pool().QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relname LIKE '%\\_new' AND relnamespace = current_schema()::regnamespace").Scan(&leftovers); err != nil || leftovers != 0 {
		t.Errorf("%d indexes named *_new left (%v)", leftovers, err)
	}
	if changed, err := plain.Reindex(ctx, sp.ID, store.IndexHNSWBinary, store.IndexSettings{}); err != nil || changed {
		t.Errorf("Reindex to the kind it has = %v, %v; want nothing done", changed, err)
	}
	hits, err := plain.Related(ctx, sp.ID, ps[0].ID, 5)
	if err != nil || len(hits) != 5 {
		t.Errorf("Related after Reindex = %v, %v", hitIDs(hits), err)
	}
	// bin still believes the space is hnsw: its statement matches no index, so it scans — exact.
	want := exactNearest(embs, embs[0].Vector, ps[0].ID, 5)
	if hits, err := bin.Related(ctx, sp.ID, ps[0].ID, 5); err != nil || !slices.Equal(hitIDs(hits), want) {
		t.Errorf("Related from a process with the old kind cached = %v, %v; want the exact %v", hitIDs(hits), err, want)
	}

	if changed, err := plain.Reindex(ctx, sp.ID, store.IndexHNSWHalfvec, store.IndexSettings{}); err != nil || !changed {
		t.Fatalf("Reindex to hnsw-halfvec = %v, %v", changed, err)
	}
	if def := indexDef(); kindOf() != store.IndexHNSWHalfvec || !strings.Contains(def, "halfvec_cosine_ops") {
		t.Errorf("after Reindex to hnsw-halfvec: kind %s, index %q", kindOf(), def)
	}
	if hits, err := plain.Related(ctx, sp.ID, ps[0].ID, 5); err != nil || len(hits) != 5 {
		t.Errorf("Related after Reindex to hnsw-halfvec = %v, %v", hitIDs(hits), err)
	}
	if changed, err := plain.Reindex(ctx, sp.ID, store.IndexHNSW, store.IndexSettings{}); err != nil || !changed {
		t.Fatalf("Reindex back to hnsw = %v, %v", changed, err)
	}
	if def := indexDef(); kindOf() != store.IndexHNSW || !strings.Contains(def, "vector_cosine_ops") {
		t.Errorf("after Reindex back: kind %s, index %q", kindOf(), def)
	}
	if _, err := plain.Reindex(ctx, sp.ID, "ivfflat", store.IndexSettings{}); err == nil {
		t.Error("Reindex to ivfflat succeeded")
	}
}

// TestCheckRecallOfAnEmptySpaceSaysSo: a space without a vector (created, not filled yet) has
// no paper to ask about. CheckRecall answered recall 0 over 0 questions, which `spaces check`
// printed as "recall@10 0.000 over 0 papers": an index that finds nothing, not a space with
// nothing to check.
func TestCheckRecallOfAnEmptySpaceSaysSo(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "empty", 8)
	got, err := s.CheckRecall(ctx, sp.ID, 20, 10)
	if err == nil {
		t.Fatalf("CheckRecall of an empty space = %+v, want an error saying it holds no vector", got)
	}
	if !errors.Is(err, paper.ErrNotFound) || !strings.Contains(err.Error(), "no vector") {
		t.Errorf("CheckRecall of an empty space: %v; want paper.ErrNotFound, saying it holds no vector", err)
	}
}
