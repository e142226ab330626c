package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/paperpipe/paperpipe/paper"
)

// RecallCheck is how well a space's index answers related-paper questions: CheckRecall's result.
type RecallCheck struct {
	Space paper.Space `json:"space"`
	Index IndexKind   `json:"index"`
	// EFSearch is the hnsw.ef_search the indexed queries ran with.
	EFSearch int `json:"ef_search"`
	K        int `json:"k"`
	// Questions is how many papers were asked about.
	Questions int `json:"questions"`
	// Recall is the mean share of each paper's exact k nearest neighbours that Related found,
	// where a paper as near as the exact k-th counts as found (see tiedRecall).
	Recall float64 `json:"recall"`
	// IndexedMillis and ExactMillis are the mean times of one indexed query (Related) and one
	// exact one (a scan of every vector of the space).
	IndexedMillis float64 `json:"indexed_ms"`
	ExactMillis   float64 `json:"exact_ms"`
}

// CheckRecall measures recall@k of space spaceID's index on the space's own vectors: for a
// fixed sample of up to sample papers of the space (ordered by the MD5 of their ids, so the
// same papers each time while the space does not change) it compares Related's answer with
// the exact k nearest papers by cosine distance, found by scanning every vector of the space
// (papers at the k-th distance are equally right answers: see tiedRecall).
// It is what to run before trusting an index kind or an ef_search with a model's vectors; the
// exact queries cost a scan each, seconds per question at a million vectors. sample and k must
// be 1 to 1000. A space without a vector is an error wrapping paper.ErrNotFound: there is
// nothing to ask about.
func (s *Store) CheckRecall(ctx context.Context, spaceID int64, sample, k int) (RecallCheck, error) {
	if err := checkK(k); err != nil {
		return RecallCheck{}, fmt.Errorf("check recall: %w", err)
	}
	if sample < 1 || sample > MaxK {
		return RecallCheck{}, fmt.Errorf("check recall: sample is %d, want 1 to %d: %w", sample, MaxK, paper.ErrInvalid)
	}
	sp, err := s.space(ctx, spaceID)
	if err != nil {
		return RecallCheck{}, fmt.Errorf("check recall: %w", err)
	}
	out := RecallCheck{Space: sp.Space, Index: sp.index, EFSearch: s.efFor(sp, k), K: k}
	rows, err := s.pool.Query(ctx, `SELECT paper_id, embedding FROM embeddings WHERE space_id = $1
		ORDER BY md5(paper_id), paper_id LIMIT $2`, spaceID, sample)
	if err != nil {
		return out, fmt.Errorf("check recall of space %s: sample: %w", sp.Name(), err)
	}
	type question struct {
		id  string
		vec pgvector.Vector
	}
	qs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (question, error) {
		var q question
		err := r.Scan(&q.id, &q.vec)
		return q, err
	})
	if err != nil {
		return out, fmt.Errorf("check recall of space %s: sample: %w", sp.Name(), err)
	}
	if len(qs) == 0 {
		// No question, no recall: 0 would read as an index that finds nothing.
		return out, fmt.Errorf("check recall of space %s: it holds no vector to ask about (fill it first: `paperpipe reprocess`): %w",
			sp.Name(), paper.ErrNotFound)
	}
	// The plain column matches no index (they are on expressions of it): a scan, exact.
	exactSQL := `SELECT embedding <=> $1 FROM embeddings WHERE space_id = ` + itoa(sp.ID) + ` AND paper_id <> $2
		ORDER BY 1, paper_id LIMIT $3`
	hitSQL := `SELECT embedding <=> $1 FROM embeddings WHERE space_id = ` + itoa(sp.ID) + ` AND paper_id = ANY($2)`
	var indexed, exact time.Duration
	var sum float64
	for _, q := range qs {
		t := time.Now()
		hits, err := s.knn(ctx, sp, q.vec, q.id, k)
		if err != nil {
			return out, fmt.Errorf("check recall of space %s: related to %s: %w", sp.Name(), q.id, err)
		}
		indexed += time.Since(t)
		t = time.Now()
		rows, err := s.pool.Query(ctx, exactSQL, q.vec, q.id, k)
		if err != nil {
			return out, fmt.Errorf("check recall of space %s: exact neighbours of %s: %w", sp.Name(), q.id, err)
		}
		want, err := pgx.CollectRows(rows, pgx.RowTo[float64])
		if err != nil {
			return out, fmt.Errorf("check recall of space %s: exact neighbours of %s: %w", sp.Name(), q.id, err)
		}
		exact += time.Since(t)
		// The hits' distances, computed here rather than taken from their scores: the check does
		// not trust the code it checks.
		ids := make([]string, len(hits))
		for i, h := range hits {
			ids[i] = h.ID
		}
		rows, err = s.pool.Query(ctx, hitSQL, q.vec, ids)
		if err != nil {
			return out, fmt.Errorf("check recall of space %s: distances of the papers related to %s: %w", sp.Name(), q.id, err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[float64])
		if err != nil {
			return out, fmt.Errorf("check recall of space %s: distances of the papers related to %s: %w", sp.Name(), q.id, err)
		}
		sum += tiedRecall(got, want)
	}
	n := len(qs)
	out.Questions = n
	out.Recall = sum / float64(n)
	out.IndexedMillis = float64(indexed.Microseconds()) / 1000 / float64(n)
	out.ExactMillis = float64(exact.Microseconds()) / 1000 / float64(n)
	return out, nil
}

// tiedRecall is the share of the exact answer a search found, given the exact distances of the
// distinct papers the search returned (any order) and the exact k nearest distances in order.
// Among papers at the k-th distance (one text stored twice, the many "withdrawn" abstracts of
// arXiv) the exact answer keeps the lowest ids and an index scan any of them, equally right: a
// returned paper nearer than the k-th is found, and returned papers at the k-th distance fill
// the exact answer's places at that distance. With no exact neighbours (a space of one paper)
// nothing was missed: 1. Both distances come from the same operator on the same vectors, so a tie
// is equality.
func tiedRecall(got, exactDist []float64) float64 {
	k := len(exactDist)
	if k == 0 {
		return 1
	}
	kth := exactDist[k-1]
	nearer := 0 // places of the exact answer nearer than the k-th distance
	for _, d := range exactDist {
		if d < kth {
			nearer++
		}
	}
	found, tied := 0, 0
	for _, d := range got {
		switch {
		case d < kth:
			found++
		case d == kth:
			tied++
		}
	}
	return float64(found+min(tied, k-nearer)) / float64(k)
}
