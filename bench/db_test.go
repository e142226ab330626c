package bench

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
)

// testDB is the test database as the benchmarks' DB: its scenarios' schemas are made in it
// and dropped after.
func testDB(t *testing.T) *DB {
	t.Helper()
	u := pgtest.URL(t) // reachable, and set up
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	d := &DB{server: pgtest.BaseURL(), url: pgtest.BaseURL()}
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&d.Name); err != nil {
		t.Fatal(err)
	}
	return d
}

func testCorpus(t *testing.T) []paper.Abstract {
	t.Helper()
	c, err := LoadCorpus("../testdata/sample-papers.txt")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
