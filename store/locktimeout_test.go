package store_test

import (
	"testing"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// withLockTimeout is u with lock_timeout = roleTimeout as a runtime parameter, as a DBA's
// `ALTER ROLE app SET lock_timeout` sets one (the test database and its role are shared).
func withLockTimeout(t *testing.T, u string) string {
	t.Helper()
	return withParams(t, u, map[string]string{"lock_timeout": "500"})
}

// olderSnapshot is a transaction, on a connection of its own, with a snapshot taken before
// what the test does next: a CREATE INDEX CONCURRENTLY waits for it to end (a pg_dump, a long
// search, an export), and that wait is a lock wait.
const olderSnapshot = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM papers"

// assertLockTimeoutKept checks that every connection of s still has the role's lock_timeout.
func assertLockTimeoutKept(t *testing.T, s *store.Store) {
	t.Helper()
	var got string
	for range 8 {
		if err := s.Pool().QueryRow(t.Context(), "SHOW lock_timeout").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != "500ms" {
			t.Fatalf("lock_timeout of a pooled connection after the build = %q, want the URL's 500ms", got)
		}
	}
}

// A space's index build (a fill's, an import's) waits for every transaction older than it, as
// CREATE INDEX CONCURRENTLY does, and that wait is a lock wait: a lock_timeout set for
// paperpipe's role cancelled the build ("canceling statement due to lock timeout") whenever a
// transaction outlived it, leaving the space without its index. It runs with none, and the
// setting is back after it.
func TestIndexBuildOutlastsARoleLockTimeout(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	setupOn(t, u)
	s := open(t, withLockTimeout(t, u))
	ctx := t.Context()
	sp, _, err := s.EnsureSpaceForLoad(ctx, paper.Space{Model: "bulk", Dimensions: 3, Template: "title+abstract"})
	if err != nil {
		t.Fatal(err)
	}
	conn, release := holdLock(t, u, olderSnapshot)
	done := make(chan error, 1)
	go func() {
		_, err := s.BuildSpaceIndex(ctx, sp.ID, store.IndexSettings{})
		done <- err
	}()
	if err := waitPastTimeout(t, conn, "CREATE INDEX", done); err != nil {
		t.Fatalf("BuildSpaceIndex under a lock_timeout of %v, made to wait for an older transaction: %v", roleTimeout, err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("BuildSpaceIndex: %v", err)
	}
	assertLockTimeoutKept(t, s)
}

// `spaces reindex` builds the new index as a space's build does, and was cancelled so too.
func TestReindexOutlastsARoleLockTimeout(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	setupOn(t, u)
	s := open(t, withLockTimeout(t, u))
	ctx := t.Context()
	sp, err := s.EnsureSpace(ctx, paper.Space{Model: "m", Dimensions: 3, Template: "title+abstract"})
	if err != nil {
		t.Fatal(err)
	}
	conn, release := holdLock(t, u, olderSnapshot)
	done := make(chan error, 1)
	go func() {
		_, err := s.Reindex(ctx, sp.ID, store.IndexHNSWBinary, store.IndexSettings{})
		done <- err
	}()
	if err := waitPastTimeout(t, conn, "CREATE INDEX", done); err != nil {
		t.Fatalf("Reindex under a lock_timeout of %v, made to wait for an older transaction: %v", roleTimeout, err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("Reindex: %v", err)
	}
	assertLockTimeoutKept(t, s)
}

// The VACUUM after a load waits for the table's SHARE UPDATE EXCLUSIVE lock (autovacuum's, an
// index build's), and a role's lock_timeout failed the load at its end.
func TestVacuumAfterALoadOutlastsARoleLockTimeout(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	setupOn(t, u)
	s := open(t, withLockTimeout(t, u))
	conn, release := holdLock(t, u, "LOCK TABLE embeddings IN SHARE UPDATE EXCLUSIVE MODE")
	done := make(chan error, 1)
	go func() { done <- s.VacuumEmbeddings(t.Context()) }()
	if err := waitPastTimeout(t, conn, "VACUUM", done); err != nil {
		t.Fatalf("VacuumEmbeddings under a lock_timeout of %v, made to wait: %v", roleTimeout, err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("VacuumEmbeddings: %v", err)
	}
	assertLockTimeoutKept(t, s)
}
