package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

func threeDimSpace() paper.Space { return paper.Space{Model: "m", Dimensions: 3, Template: "t"} }

// oldWordStore: n papers, created_at one minute apart (g=1 the newest), each with an abstract of
// ~40 distinct tokens (so its tsv is a realistic ~1-2 kB), and the word "quokka" in the oldest
// `old` papers only, "wombat" in the newest `old` papers only. Analyzed.
func oldWordStore(t *testing.T, n, old int) *Store {
	t.Helper()
	s := migratedStore(t)
	ctx := t.Context()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO papers (id, title, abstract, categories, content_hash, created_at, updated_at)
			SELECT 'p' || lpad(g::text, 6, '0'), 'title ' || g,
				'an abstract about routing ' || (SELECT string_agg(md5(g::text || '-' || i::text), ' ') FROM generate_series(1, 40) i)
				|| CASE WHEN g > %[1]d - %[2]d THEN ' quokka' ELSE '' END
				|| CASE WHEN g <= %[2]d THEN ' wombat' ELSE '' END,
				ARRAY['cs.LG'], 'h' || g,
				now() - g * interval '1 minute', now() - g * interval '1 minute'
			FROM generate_series(1, %[1]d) g`, n, old),
		`VACUUM ANALYZE papers`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return s
}

func explainText(t *testing.T, s *Store, settings []string, sql string, args ...any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, st := range append([]string{"SET LOCAL plan_cache_mode = force_custom_plan"}, settings...) {
		if _, err := tx.Exec(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// TestKeywordSearchOfAWordOnlyOldPapersHaveReadsOnlyItsMatches: a word in 12% of 5,000 papers, all of them older
// than the rest (a topic that went out of fashion), with a limit of 100 (2%, as 10,000 of
// 500,000): the statement should read about its 600 matches (the GIN index), as the unbounded
// ranking did; it walks the created_at index through the 4,400 newer papers instead, testing
// each one's tsv (it did, before keywordWalk bounded the walk). Keyword and hybrid.
func TestKeywordSearchOfAWordOnlyOldPapersHaveReadsOnlyItsMatches(t *testing.T) {
	const n, limit, old = 5000, 100, 600
	s := oldWordStore(t, n, old)
	s.keywordLimit = limit
	ps, _, err := s.EnsureSpaceForLoad(t.Context(), threeDimSpace())
	if err != nil {
		t.Fatal(err)
	}
	sp, err := s.space(t.Context(), ps.ID)
	if err != nil {
		t.Fatal(err)
	}
	hsql, _, hargs := s.hybridStatement(sp, "quokka", []float32{1, 0, 0}, 10)
	for name, st := range map[string]struct {
		sql  string
		args []any
	}{"keyword": {keywordSQL(tsQuery), []any{"quokka", 10, limit}}, "hybrid": {hsql, hargs}} {
		plan := explainText(t, s, nil, st.sql, st.args...)
		if removed := rowsRemoved(plan); removed > old {
			t.Errorf("%s search for a word of the %d oldest of %d papers read %d papers that do not match it (walking papers_created_at_id), to rank %d:\n%s",
				name, old, n, removed, limit, plan)
		}
	}
}

func rowsRemoved(plan string) int {
	sum := 0
	for _, l := range strings.Split(plan, "\n") {
		if _, after, ok := strings.Cut(l, "Rows Removed by Filter: "); ok {
			var v int
			fmt.Sscan(after, &v)
			sum += v
		}
	}
	return sum
}
