package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// roleTimeout is the statement_timeout the stores of these tests run under, as a DBA's
// `ALTER ROLE app SET statement_timeout` sets one (here a runtime parameter of the URL: the
// test database and its role are shared). Every statement of the tests is made to wait past it
// by a lock the test holds: nothing depends on how fast the machine is.
const roleTimeout = 500 * time.Millisecond

// withStatementTimeout is u with statement_timeout = roleTimeout as a runtime parameter.
func withStatementTimeout(t *testing.T, u string) string {
	t.Helper()
	return withParams(t, u, map[string]string{"statement_timeout": "500"})
}

// holdLock begins a transaction on a connection of its own that takes lock on table, and
// returns the connection; release ends the transaction.
func holdLock(t *testing.T, u, lock string) (conn *pgx.Conn, release func()) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(t.Context(), "BEGIN; "+lock); err != nil {
		t.Fatal(err)
	}
	return conn, func() {
		if _, err := conn.Exec(t.Context(), "COMMIT"); err != nil {
			t.Fatal(err)
		}
	}
}

// waitPastTimeout waits until a backend whose query starts with prefix has waited for a lock
// conn holds for more than twice roleTimeout (as the server measures it), and fails the test if
// done reports first (the statement ended: cancelled by the timeout). It returns done's error
// when the statement was cancelled, nil once it has waited past the timeout.
//
// conn is in the lock's transaction, in which PostgreSQL keeps the pg_stat_activity it read
// first until the transaction ends: each look clears it, or a statement that began to wait
// after the first look (its goroutine slow to start on a loaded machine) was never seen, and
// the test held its lock for ever. Only a backend conn blocks counts: another test's, or
// another process's, statement waiting on a lock of its own does not.
func waitPastTimeout(t *testing.T, conn *pgx.Conn, prefix string, done <-chan error) error {
	t.Helper()
	for {
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("%s… ended while the test held its lock", prefix)
			}
			return err
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := conn.Exec(t.Context(), "SELECT pg_stat_clear_snapshot()"); err != nil {
			t.Fatal(err)
		}
		var waited bool
		if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid()
				AND pg_backend_pid() = ANY (pg_blocking_pids(pid))
				AND query LIKE $1 || '%' AND wait_event_type = 'Lock' AND clock_timestamp() - query_start > $2::interval)`,
			prefix, (2 * roleTimeout).String()).Scan(&waited); err != nil {
			t.Fatal(err)
		}
		if waited {
			return nil
		}
	}
}

// TestIndexBuildOutlastsARoleStatementTimeout: a bulk load's index build (minutes at a million
// vectors) was cancelled by a statement_timeout set for paperpipe's role ("canceling statement
// due to statement timeout"): it runs with none, and the setting is back after it.
func TestIndexBuildOutlastsARoleStatementTimeout(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	setupOn(t, u)
	s := open(t, withStatementTimeout(t, u))
	ctx := t.Context()
	sp, _, err := s.EnsureSpaceForLoad(ctx, paper.Space{Model: "bulk", Dimensions: 3, Template: "title+abstract"})
	if err != nil {
		t.Fatal(err)
	}
	conn, release := holdLock(t, u, "LOCK TABLE embeddings IN EXCLUSIVE MODE")
	done := make(chan error, 1)
	go func() {
		_, err := s.BuildSpaceIndex(ctx, sp.ID, store.IndexSettings{})
		done <- err
	}()
	if err := waitPastTimeout(t, conn, "CREATE INDEX", done); err != nil {
		t.Fatalf("BuildSpaceIndex under a statement_timeout of %v, made to wait: %v", roleTimeout, err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("BuildSpaceIndex: %v", err)
	}
	assertTimeoutKept(t, s)
}

// TestDropSpaceOutlastsARoleStatementTimeout: `spaces drop`'s DELETE of a big space's vectors
// was cancelled by a role's statement_timeout.
func TestDropSpaceOutlastsARoleStatementTimeout(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	setupOn(t, u)
	s := open(t, withStatementTimeout(t, u))
	ctx := t.Context()
	if _, err := s.EnsureSpace(ctx, paper.Space{Model: "active", Dimensions: 3, Template: "title+abstract"}); err != nil {
		t.Fatal(err)
	}
	sp, err := s.EnsureSpace(ctx, paper.Space{Model: "old", Dimensions: 3, Template: "title+abstract"})
	if err != nil {
		t.Fatal(err)
	}
	conn, release := holdLock(t, u, "LOCK TABLE embeddings IN SHARE MODE")
	done := make(chan error, 1)
	go func() { done <- s.DropSpace(ctx, sp.ID, store.DropOptions{}) }()
	if err := waitPastTimeout(t, conn, "DELETE FROM embeddings", done); err != nil {
		t.Fatalf("DropSpace under a statement_timeout of %v, made to wait: %v", roleTimeout, err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("DropSpace: %v", err)
	}
	assertTimeoutKept(t, s)
}

// TestExportOutlastsARoleStatementTimeout: `export`'s one query, read by a writer as slow as
// it is, was cancelled by a role's statement_timeout.
func TestExportOutlastsARoleStatementTimeout(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	s0 := setupOn(t, u)
	upsert(t, s0, abstracts(3), store.Work{})
	s := open(t, withStatementTimeout(t, u))
	conn, release := holdLock(t, u, "LOCK TABLE papers IN ACCESS EXCLUSIVE MODE")
	done := make(chan error, 1)
	n := 0
	go func() {
		done <- s.Export(t.Context(), store.ExportSelection{}, nil, func(store.ExportedPaper) error { n++; return nil })
	}()
	if err := waitPastTimeout(t, conn, "SELECT p.id", done); err != nil {
		t.Fatalf("Export under a statement_timeout of %v, made to wait: %v", roleTimeout, err)
	}
	release()
	if err := <-done; err != nil || n != 3 {
		t.Fatalf("Export = %v, %d papers; want 3", err, n)
	}
	assertTimeoutKept(t, s)
}

// setupOn opens a store on u, without a timeout, and migrates it.
func setupOn(t *testing.T, u string) *store.Store {
	t.Helper()
	s := open(t, u)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// assertTimeoutKept checks that every connection of s still has the role's statement_timeout:
// the request path keeps the bound its DBA set.
func assertTimeoutKept(t *testing.T, s *store.Store) {
	t.Helper()
	var got string
	for range 8 {
		if err := s.Pool().QueryRow(t.Context(), "SHOW statement_timeout").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != "500ms" {
			t.Fatalf("statement_timeout of a pooled connection after the statement = %q, want the URL's 500ms", got)
		}
	}
}

// TestVacuumAfterALoadOutlastsARoleStatementTimeout: the VACUUM (ANALYZE) of the embeddings
// table after `import-embeddings` (its table is the archive's every vector) was cancelled by a
// role's statement_timeout, failing the import at its end.
func TestVacuumAfterALoadOutlastsARoleStatementTimeout(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	setupOn(t, u)
	s := open(t, withStatementTimeout(t, u))
	conn, release := holdLock(t, u, "LOCK TABLE embeddings IN SHARE UPDATE EXCLUSIVE MODE")
	done := make(chan error, 1)
	go func() { done <- s.VacuumEmbeddings(t.Context()) }()
	if err := waitPastTimeout(t, conn, "VACUUM", done); err != nil {
		t.Fatalf("VacuumEmbeddings under a statement_timeout of %v, made to wait: %v", roleTimeout, err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("VacuumEmbeddings: %v", err)
	}
	assertTimeoutKept(t, s)
}

// TestSearchPastARoleStatementTimeoutNamesTheSetting: the request path keeps the bound its
// DBA set, and a search it cancels says which setting did (PostgreSQL's own error says only
// "canceling statement due to statement timeout", which names no setting to look for).
func TestSearchPastARoleStatementTimeoutNamesTheSetting(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	setupOn(t, u)
	s := open(t, withStatementTimeout(t, u))
	sp, err := s.EnsureSpace(t.Context(), paper.Space{Model: "m", Dimensions: 3, Template: "title+abstract"})
	if err != nil {
		t.Fatal(err)
	}
	_, release := holdLock(t, u, "LOCK TABLE embeddings IN ACCESS EXCLUSIVE MODE")
	defer release()
	_, err = s.Search(t.Context(), sp.ID, []float32{1, 0, 0}, 5)
	if err == nil || !strings.Contains(err.Error(), "statement_timeout") || !strings.Contains(err.Error(), "role") {
		t.Fatalf("Search made to wait past the role's statement_timeout = %v; want an error naming statement_timeout and where it is set", err)
	}
}

// TestStatusCountsPastARoleStatementTimeoutNameTheSetting: `status`'s counts (seconds at
// hundreds of thousands of papers) keep the role's bound, and say which setting cancelled them.
func TestStatusCountsPastARoleStatementTimeoutNameTheSetting(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	setupOn(t, u)
	s := open(t, withStatementTimeout(t, u))
	_, release := holdLock(t, u, "LOCK TABLE papers IN ACCESS EXCLUSIVE MODE")
	defer release()
	if _, err := s.Counts(t.Context(), store.Work{}); err == nil || !strings.Contains(err.Error(), "statement_timeout") {
		t.Errorf("Counts made to wait past the role's statement_timeout = %v; want an error naming statement_timeout", err)
	}
	if _, err := s.CountStale(t.Context(), store.Selection{}); err == nil || !strings.Contains(err.Error(), "statement_timeout") {
		t.Errorf("CountStale made to wait past the role's statement_timeout = %v; want an error naming statement_timeout", err)
	}
}
