package store_test

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pgvector/pgvector-go"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// TestHalfvecSpaceIndexesHalfPrecisionCopies: a space created as hnsw-halfvec gets an HNSW index
// on halfvec up to 4,000 dimensions and none above; an existing space keeps its kind.
func TestHalfvecSpaceIndexesHalfPrecisionCopies(t *testing.T) {
	t.Parallel()
	half, plain := setupKind(t, store.IndexHNSWHalfvec)
	ctx := t.Context()
	old := space(t, plain, "old", 3)
	if again := space(t, half, "old", 3); again.ID != old.ID {
		t.Fatalf("EnsureSpace of an existing space made another: %d, %d", again.ID, old.ID)
	}
	small := space(t, half, "small", 3)
	wide := space(t, half, "wide", 3000) // above vector's 2,000-dimension HNSW limit
	huge := space(t, half, "huge", 5000) // above halfvec's
	byID := spacesByID(t, half)
	if got := byID[old.ID].Index; got != store.IndexHNSW {
		t.Errorf("existing space's index kind = %q, want hnsw", got)
	}
	for _, sp := range []paper.Space{small, wide} {
		si := byID[sp.ID]
		var def string
		err := half.Pool().QueryRow(ctx, "SELECT coalesce(pg_get_indexdef(to_regclass($1)), '')", si.IndexName).Scan(&def)
		want := "(embedding)::halfvec(" + strconv.Itoa(sp.Dimensions) + ")"
		if si.Index != store.IndexHNSWHalfvec || err != nil || !strings.Contains(def, want) || !strings.Contains(def, "halfvec_cosine_ops") {
			t.Errorf("space %s: kind %q, index %q (%v); want hnsw-halfvec with an HNSW index on %s, halfvec_cosine_ops",
				sp.Name(), si.Index, def, err, want)
		}
	}
	if si := byID[huge.ID]; si.Index != store.IndexHNSWHalfvec || si.IndexName != "" {
		t.Errorf("5,000-dimension space = %+v, want hnsw-halfvec without an index", si)
	}
}

// TestHalfvecSpaceRanksAndScoresByExactCosine: the index orders rows by their half-precision
// distance, but the results' order and scores are the exact cosine ones. The vectors'
// coordinates are not representable in 16 bits, so a score computed from the halfvec copies
// would be off by about 1e-4. (Random vectors seldom tie within the rounding, so the order is
// tested where they do: TestHalfvecSpaceDecidesNearTiesExactly.)
func TestHalfvecSpaceRanksAndScoresByExactCosine(t *testing.T) {
	t.Parallel()
	half, _ := setupKind(t, store.IndexHNSWHalfvec)
	ctx := t.Context()
	const n, dims = 300, 24
	sp, ps, embs := randomSpace(t, half, "exact", n, dims, 11)
	checkPlansScanIndex(t, half, sp, ps, embs, "halfvec")
	var worst float64
	recall := relatedRecall(t, half, sp, ps, embs, 20, func(qi int, hits []paper.Hit) {
		for i, h := range hits {
			j := slices.IndexFunc(embs, func(e paper.Embedding) bool { return e.PaperID == h.ID })
			worst = max(worst, math.Abs(h.Score-cosine(embs[qi].Vector, embs[j].Vector)))
			if i > 0 && h.Score > hits[i-1].Score {
				t.Errorf("Related(%s) is not in order of exact similarity at %d", ps[qi].ID, i)
			}
		}
	})
	if worst > 1e-6 {
		t.Errorf("scores differ from the exact cosine by up to %.2g, want at most 1e-6", worst)
	}
	if recall < 0.9 {
		t.Errorf("recall@10 of Related on the halfvec index = %.2f, want at least 0.9", recall)
	}
	q := embs[5].Vector
	hits, err := half.Search(ctx, sp.ID, q, 3)
	if err != nil || len(hits) != 3 || hits[0].ID != ps[5].ID || math.Abs(hits[0].Score-1) > 1e-6 {
		t.Errorf("Search for paper 5's own vector = %+v, %v; want it first with score 1", hits, err)
	}
}

// TestNewSpacesAreHalfvecByDefault: a store opened without Config.VectorIndex creates
// hnsw-halfvec spaces.
func TestNewSpacesAreHalfvecByDefault(t *testing.T) {
	t.Parallel()
	s := setup(t)
	sp := space(t, s, "default", 8)
	infos, err := s.Spaces(t.Context())
	if err != nil || len(infos) != 1 || infos[0].ID != sp.ID {
		t.Fatalf("Spaces = %+v, %v", infos, err)
	}
	if infos[0].Index != store.IndexHNSWHalfvec || infos[0].IndexName == "" {
		t.Errorf("a new space's index = %q %q, want an hnsw-halfvec index", infos[0].Index, infos[0].IndexName)
	}
}

// TestHalfvecSpaceDecidesNearTiesExactly: papers a and b are nearly equidistant from the query;
// a is nearer exactly, b in half precision (checked below in SQL). The index's order puts b
// first, so a query that kept the first k rows of it would answer b; the store re-ranks 2k.
func TestHalfvecSpaceDecidesNearTiesExactly(t *testing.T) {
	t.Parallel()
	half, _ := setupKind(t, store.IndexHNSWHalfvec)
	ctx := t.Context()
	sp := space(t, half, "ties", 3)
	ps := abstracts(4)
	upsert(t, half, ps, store.Work{})
	q := []float32{0.3, 0.7, 0.5}
	a := []float32{0.70892817, 0.26206973, 0.9642039}
	b := []float32{0.7092969, 0.2620896, 0.9649223}
	embs := []paper.Embedding{embeddingOf(ps[0], a...), embeddingOf(ps[1], b...),
		embeddingOf(ps[2], -0.3, 0.1, 0.2), embeddingOf(ps[3], 0.9, -0.5, 0.1)}
	if _, err := half.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	var exactA, halfB bool
	if err := half.Pool().QueryRow(ctx, `SELECT $1::vector <=> $2::vector < $1::vector <=> $3::vector,
		$1::vector::halfvec <=> $3::vector::halfvec < $1::vector::halfvec <=> $2::vector::halfvec`,
		pgvector.NewVector(q), pgvector.NewVector(a), pgvector.NewVector(b)).Scan(&exactA, &halfB); err != nil {
		t.Fatal(err)
	}
	if !exactA || !halfB {
		t.Fatalf("the test's vectors: a nearer exactly %v, b nearer in half precision %v; want both", exactA, halfB)
	}
	hits, err := half.Search(ctx, sp.ID, q, 1)
	if err != nil || len(hits) != 1 || hits[0].ID != ps[0].ID {
		t.Errorf("Search k=1 = %+v, %v; want %s, the exact nearest", hits, err, ps[0].ID)
	}
	if want := cosine(q, a); len(hits) == 1 && math.Abs(hits[0].Score-want) > 1e-6 {
		t.Errorf("score %.7f, want the exact cosine %.7f", hits[0].Score, want)
	}
	// Both of them: in the exact order, a before b.
	hits, err = half.Search(ctx, sp.ID, q, 2)
	if err != nil || !slices.Equal(hitIDs(hits), []string{ps[0].ID, ps[1].ID}) {
		t.Errorf("Search k=2 = %v, %v; want [%s %s], the exact order", hitIDs(hits), err, ps[0].ID, ps[1].ID)
	}
}

// TestHalfvecIndexedSpaceRefusesValuesBeyondHalfPrecisionAsInvalid: a component beyond ±65504
// cannot be cast to halfvec, which a halfvec-indexed space's index and queries do. Such a
// vector is refused as paper.ErrInvalid before anything is written (a worker then drops that
// paper, not its batch, and does not retry), and a query made of one too; spaces indexed
// otherwise take it.
func TestHalfvecIndexedSpaceRefusesValuesBeyondHalfPrecisionAsInvalid(t *testing.T) {
	t.Parallel()
	half, plain := setupKind(t, store.IndexHNSWHalfvec)
	binary := openKind(t, plain.Pool().Config().ConnString(), store.IndexHNSWBinary)
	ctx := t.Context()
	ps := abstracts(2)
	upsert(t, plain, ps, store.Work{})
	wide := func(x float32) []float32 { v := make([]float32, 2048); v[0], v[1] = x, 1; return v }
	for _, tc := range []struct {
		name  string
		sp    paper.Space
		vec   func(x float32) []float32
		fails bool
	}{
		{"hnsw-halfvec", space(t, half, "half", 3), func(x float32) []float32 { return []float32{x, 1, 0} }, true},
		{"hnsw above 2,000 dimensions (on halfvec)", space(t, plain, "wide", 2048), wide, true},
		{"hnsw", space(t, plain, "plain", 3), func(x float32) []float32 { return []float32{x, 1, 0} }, false},
		{"hnsw-binary", space(t, binary, "binary", 3), func(x float32) []float32 { return []float32{x, 1, 0} }, false},
	} {
		big := []paper.Embedding{embeddingOf(ps[0], tc.vec(1)...), embeddingOf(ps[1], tc.vec(-70000)...)}
		_, saveErr := half.SaveEmbeddings(ctx, tc.sp.ID, big)
		_, loadErr := half.LoadEmbeddings(ctx, tc.sp.ID, big)
		_, searchErr := half.Search(ctx, tc.sp.ID, tc.vec(70000), 1)
		_, hybridErr := half.HybridSearch(ctx, tc.sp.ID, "problem", tc.vec(70000), 1)
		for what, err := range map[string]error{"SaveEmbeddings": saveErr, "LoadEmbeddings": loadErr, "Search": searchErr, "HybridSearch": hybridErr} {
			if tc.fails && !errors.Is(err, paper.ErrInvalid) {
				t.Errorf("%s space: %s with a value of ±70000: %v, want ErrInvalid", tc.name, what, err)
			}
			if !tc.fails && err != nil {
				t.Errorf("%s space: %s with a value of ±70000: %v, want it taken", tc.name, what, err)
			}
		}
		if _, err := half.SaveEmbeddings(ctx, tc.sp.ID, []paper.Embedding{embeddingOf(ps[0], tc.vec(65504)...)}); err != nil {
			t.Errorf("%s space: a value of 65504, half precision's largest: %v", tc.name, err)
		}
	}
	if n := countRows(t, plain, "embeddings e JOIN embedding_spaces s ON s.id = e.space_id WHERE s.model IN ('half', 'wide') AND e.paper_id = '"+ps[1].ID+"'"); n != 0 {
		t.Errorf("%d out-of-range vectors stored in the halfvec-indexed spaces", n)
	}
}

// spaceBeyondHalf is a store's space "plain", indexed on vectors (hnsw), holding a component
// (70000) beyond half precision's ±65504.
func spaceBeyondHalf(t *testing.T) (*store.Store, paper.Space) {
	t.Helper()
	_, plain := setupKind(t, store.IndexHNSWHalfvec)
	ps := abstracts(2)
	upsert(t, plain, ps, store.Work{})
	sp := space(t, plain, "plain", 3)
	if _, err := plain.SaveEmbeddings(t.Context(), sp.ID, []paper.Embedding{embeddingOf(ps[0], 70000, 1, 0), embeddingOf(ps[1], 0, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	return plain, sp
}

// TestReindexToHalfvecOfASpaceHoldingValuesBeyondHalfPrecisionIsInvalid: a space indexed on
// vectors (hnsw) may hold components beyond ±65504, which the half-precision copies of an
// hnsw-halfvec index cannot hold. Reindexing it so is refused as paper.ErrInvalid, saying
// which values the kind cannot hold (not a raw SQLSTATE 22003), and the space keeps its kind
// and its index.
func TestReindexToHalfvecOfASpaceHoldingValuesBeyondHalfPrecisionIsInvalid(t *testing.T) {
	t.Parallel()
	plain, sp := spaceBeyondHalf(t)
	ctx := t.Context()
	changed, err := plain.Reindex(ctx, sp.ID, store.IndexHNSWHalfvec, store.IndexSettings{})
	if changed || !errors.Is(err, paper.ErrInvalid) || !strings.Contains(err.Error(), "beyond ±65504") {
		t.Errorf("Reindex to hnsw-halfvec of a space holding 70000 = %v, %v; want paper.ErrInvalid saying the values beyond ±65504", changed, err)
	}
	if si := spacesByID(t, plain)[sp.ID]; si.Index != store.IndexHNSW || si.IndexName == "" {
		t.Errorf("after the refused reindex the space is %+v; want hnsw with its index", si)
	}
}

// TestFailedReindexDropsItsUnfinishedIndex: a reindex whose CREATE INDEX CONCURRENTLY fails —
// on a full disk (SQLSTATE 53100), or, here, on values the new kind cannot hold — left the
// invalid index it was building, and the disk space that build had taken, until another
// reindex dropped it: after a full disk the disk stayed full, every worker paused. The failed
// reindex drops it, and says nothing of a leftover.
func TestFailedReindexDropsItsUnfinishedIndex(t *testing.T) {
	t.Parallel()
	plain, sp := spaceBeyondHalf(t)
	ctx := t.Context()
	if _, err := plain.Reindex(ctx, sp.ID, store.IndexHNSWHalfvec, store.IndexSettings{}); err == nil {
		t.Fatal("Reindex to hnsw-halfvec of a space holding 70000 succeeded; want it to fail")
	} else if strings.Contains(err.Error(), "unfinished index") {
		t.Errorf("Reindex's error says a leftover is left: %v", err)
	}
	name := spacesByID(t, plain)[sp.ID].IndexName + "_new"
	var left bool
	if err := plain.Pool().QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left {
		t.Errorf("the failed reindex left its unfinished index %s", name)
	}
}
