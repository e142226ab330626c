package store

import "testing"

// TestLastRemovalReadsOneEntry: the latest removal, which every worker reads about once a
// second, is read from an index of removed_papers' dates, not by scanning the table, which
// keeps every id ever removed (a wrong file of a million papers removed: a million rows, for
// good, unless they are ingested again).
func TestLastRemovalReadsOneEntry(t *testing.T) {
	t.Parallel()
	s := migratedStore(t)
	const removed = 50000
	for _, q := range []string{
		`INSERT INTO removed_papers (id, removed_at)
			SELECT 'gone' || g, now() - g * interval '1 second' FROM generate_series(1, ` + itoa(removed) + `) g`,
		`VACUUM ANALYZE removed_papers`,
	} {
		if _, err := s.pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	plan := explain(t, s, lastRemovalSQL)
	if got := rowsRead(plan, "removed_papers") + rowsRead(plan, "removed_papers_removed_at"); got > 10 {
		t.Errorf("the latest of %d removals read %.0f rows of removed_papers; want a few, from an index of removed_at", removed, got)
	}
	at, err := s.LastRemoval(t.Context())
	if err != nil || at.IsZero() {
		t.Fatalf("LastRemoval = %v, %v", at, err)
	}
}
