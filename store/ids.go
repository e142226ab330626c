package store

import (
	"context"
	"fmt"
)

// MissingPapers returns the ids among ids (canonical) that name no stored paper, each once, in
// the order given: what a run given a list of papers says it skipped.
func (s *Store) MissingPapers(ctx context.Context, ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT i.id FROM unnest($1::text[]) WITH ORDINALITY AS i (id, n)
		WHERE NOT EXISTS (SELECT 1 FROM papers p WHERE p.id = i.id)
		GROUP BY i.id ORDER BY min(i.n)`, ids)
	if err != nil {
		return nil, fmt.Errorf("look up papers: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("look up papers: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up papers: %w", err)
	}
	return out, nil
}
