package store

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paperpipe/paperpipe/internal/pgtest"
)

// A vector query runs with the configured hnsw.ef_search (never below k), custom plans, and
// read-only; the options end with the query, on a connection the next caller reuses.
func TestSearchQueriesRunWithTheirOptionsAndOnlyThey(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	for _, tc := range []struct {
		cfg  int
		kind IndexKind
		k    int
		want string
	}{
		{0, IndexHNSW, 10, "160"},         // default
		{0, IndexHNSWHalfvec, 10, "160"},  // default
		{0, IndexHNSWBinary, 10, "160"},   // the binary kind's default: more candidates to re-rank
		{250, IndexHNSWBinary, 10, "250"}, // configured
		{40, IndexHNSW, 120, "120"},       // never below k
	} {
		s, err := Open(t.Context(), Config{URL: u, EFSearch: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		// One connection (below what Open accepts): the next statement reuses it.
		pcfg := s.pool.Config()
		pcfg.MaxConns = 1
		s.pool.Close()
		if s.pool, err = pgxpool.NewWithConfig(t.Context(), pcfg); err != nil {
			t.Fatal(err)
		}
		got, err := searchRows(t.Context(), s, s.efFor(spaceRow{index: tc.kind}, tc.k), `SELECT current_setting('hnsw.ef_search') || ' '
			|| current_setting('plan_cache_mode') || ' ' || current_setting('transaction_read_only')`, nil, pgx.RowTo[string])
		if want := tc.want + " force_custom_plan on"; err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("EFSearch %d, %s, k %d: options %q, %v; want %q", tc.cfg, tc.kind, tc.k, got, err, want)
		}
		var ef, plans, readOnly string
		err = s.pool.QueryRow(t.Context(), `SELECT coalesce(current_setting('hnsw.ef_search', true), ''),
			current_setting('plan_cache_mode'), current_setting('transaction_read_only')`).Scan(&ef, &plans, &readOnly)
		if err != nil || ef == tc.want || plans != "auto" || readOnly != "off" {
			t.Errorf("after the query its connection runs with ef_search %q, plan_cache_mode %q, read-only %q (%v): the options outlived the query",
				ef, plans, readOnly, err)
		}
		_, err = searchRows(t.Context(), s, 100, "CREATE TABLE written_by_a_search (x int)", nil, pgx.RowTo[string])
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "25006" { // read_only_sql_transaction
			t.Errorf("a search statement that writes: %v, want a read-only transaction error", err)
		}
		s.Close()
	}
}
