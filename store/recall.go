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
	// Recall is the mean share of each paper's exact k nearest neighbours that Related found.
	Recall float64 `json:"recall"`
	// IndexedMillis and ExactMillis are the mean times of one indexed query (Related) and one
	// exact one (a scan of every vector of the space).
	IndexedMillis float64 `json:"indexed_ms"`
	ExactMillis   float64 `json:"exact_ms"`
}

// CheckRecall measures recall@k of space spaceID's index on the space's own vectors: for a
// fixed sample of up to sample papers of the space (ordered by the MD5 of their ids, so the
// same papers each time while the space does not change) it compares Related's answer with
// the exact k nearest papers by cosine distance, found by scanning every vector of the space.
// It is what to run before trusting an index kind or an ef_search with a model's vectors; the
// exact queries cost a scan each, seconds per question at a million vectors. sample and k must
// be 1 to 1000.
func (s *Store) CheckRecall(ctx context.Context, spaceID int64, sample, k int) (RecallCheck, error) {
	if err := checkK(k); err != nil {
		return RecallCheck{}, fmt.Errorf("check recall: %w", err)
	}
	if sample < 1 || sample > maxK {
		return RecallCheck{}, fmt.Errorf("check recall: sample is %d, want 1 to %d: %w", sample, maxK, paper.ErrInvalid)
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
	// The plain column matches no index (they are on expressions of it): a scan, exact.
	exactSQL := `SELECT paper_id FROM embeddings WHERE space_id = ` + itoa(sp.ID) + ` AND paper_id <> $2
		ORDER BY embedding <=> $1, paper_id LIMIT $3`
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
		want, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return out, fmt.Errorf("check recall of space %s: exact neighbours of %s: %w", sp.Name(), q.id, err)
		}
		exact += time.Since(t)
		if len(want) == 0 {
			sum++ // a space of one paper: nothing to find, nothing missed
			continue
		}
		got := make(map[string]bool, len(hits))
		for _, h := range hits {
			got[h.ID] = true
		}
		found := 0
		for _, id := range want {
			if got[id] {
				found++
			}
		}
		sum += float64(found) / float64(len(want))
	}
	out.Questions = len(qs)
	if n := len(qs); n > 0 {
		out.Recall = sum / float64(n)
		out.IndexedMillis = float64(indexed.Microseconds()) / 1000 / float64(n)
		out.ExactMillis = float64(exact.Microseconds()) / 1000 / float64(n)
	}
	return out, nil
}
