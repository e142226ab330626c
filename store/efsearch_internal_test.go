package store

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
)

func TestSearchTransactionsUseConfiguredEFSearch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg, k int
		want   string
	}{
		{0, 10, "100"},   // default
		{250, 10, "250"}, // configured
		{40, 120, "120"}, // never below k
	} {
		s, err := Open(t.Context(), Config{URL: pgtest.URL(t), EFSearch: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = s.inSearchTx(t.Context(), tc.k, func(tx pgx.Tx, _ int) error {
			return tx.QueryRow(t.Context(), "SELECT current_setting('hnsw.ef_search')").Scan(&got)
		})
		s.Close()
		if err != nil || got != tc.want {
			t.Errorf("EFSearch %d, k %d: hnsw.ef_search = %q, %v; want %s", tc.cfg, tc.k, got, err, tc.want)
		}
	}
}
