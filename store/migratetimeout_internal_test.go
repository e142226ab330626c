package store

import (
	"context"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/pgtest"
)

// A statement_timeout set for paperpipe's role (as hosted services and careful DBAs do, README:
// 30s) bounded the migrations too: 00014 and 00017 index the stored papers again in one
// statement that commits batch after batch (2 min 23 s and 42 s at 300,000 papers), and an
// upgrade stopped at them, "canceling statement due to statement timeout", started again, and
// stopped again. Migrations run as long as the archive is big, as index builds do, and run
// without it; the session returns to the pool with the setting it had. Here the statement
// outlasts a 500 ms statement_timeout waiting for a paper a worker holds (each wait a second).
func TestMigrationsRunWithoutTheRolesStatementTimeout(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	u, err := pgtest.WithSetting(pgtest.URL(t), "statement_timeout", "500")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	migrateUpTo(t, s, 12)
	if _, err := s.pool.Exec(ctx, `INSERT INTO papers (id, title, abstract, content_hash)
		VALUES ('arxiv:2401.00001', 'Nyström features', 'Kernels, approximated.', 'h')`); err != nil {
		t.Fatal(err)
	}
	migrateUpTo(t, s, 13)
	holder, err := s.pool.Begin(ctx) // a worker's write
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	if _, err := holder.Exec(ctx, "SELECT 1 FROM papers WHERE id = 'arxiv:2401.00001' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	s.ddlWait = ddlWait{timeout: "50ms", tries: 2, pause: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- s.Migrate(ctx) }()
	// Past the statement_timeout: the batch waited out its lock_timeout, slept a second, and
	// waits for the paper again.
	for sleeps := 0; sleeps < 2; {
		select {
		case err := <-done:
			t.Fatalf("Migrate while a paper to index again is locked: %v; want it to wait for the paper, whatever the role's statement_timeout", err)
		default:
		}
		var sleeping bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE wait_event = 'PgSleep' AND query LIKE '%papers_tsv_of%')`).Scan(&sleeping); err != nil {
			t.Fatal(err)
		}
		if sleeping {
			sleeps++
			time.Sleep(time.Second) // to the next wait
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Migrate once the paper is free: %v", err)
	}
	conns := s.pool.AcquireAllIdle(ctx)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for _, c := range conns {
		var timeout string
		if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&timeout); err != nil || timeout != "500ms" {
			t.Errorf("a pooled connection's statement_timeout after Migrate: %q (%v), want the URL's 500ms", timeout, err)
		}
	}
}
