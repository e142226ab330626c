package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/paperpipe/paperpipe/internal/pgtest"
)

// Behind a connection pooler in transaction mode (PgBouncer's pool_mode=transaction), a client's
// statements run on whichever server session is free, and a session lock taken by one client
// stays on a session the pooler then hands to another: that client's pg_try_advisory_lock of
// the same key succeeds too (an advisory lock is re-entrant within a session), and two runs,
// index builds, batch preparations or migrations went on side by side, each "holding" the lock
// (measured behind PgBouncer 1.18: two HoldRun of one key both succeeded, at pool sizes 1 and
// 20). Each lock is taken here twice on one connection — one server session, as the pooler
// would have two clients share it — and the second take must be refused, naming the pooler.
func TestALockItsSessionAlreadyHoldsIsRefusedAsAPoolerSharingSessions(t *testing.T) {
	s, err := Open(t.Context(), Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer discard(conn) // ends the session, and every lock it holds

	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrSessionShared) {
			t.Errorf("%s on a session that already holds it: %v; want ErrSessionShared", what, err)
		}
	}

	// A re-processing run's lock.
	if ok, _, err := tryRunLock(t.Context(), conn, "k"); err != nil || !ok {
		t.Fatalf("run lock: %v %v", ok, err)
	}
	ok, _, err := tryRunLock(t.Context(), conn, "k")
	if ok {
		t.Errorf("the run lock was taken a second time on the session holding it")
	}
	refused("the run lock", err)

	// The index lock.
	if ok, err := tryIndexLock(t.Context(), conn); err != nil || !ok {
		t.Fatalf("index lock: %v %v", ok, err)
	}
	ok, err = tryIndexLock(t.Context(), conn)
	if ok {
		t.Errorf("the index lock was taken a second time on the session holding it")
	}
	refused("the index lock", err)

	// A batch job's lock.
	if ok, err := tryBatchJobLock(t.Context(), conn, 7); err != nil || !ok {
		t.Fatalf("batch job lock: %v %v", ok, err)
	}
	ok, err = tryBatchJobLock(t.Context(), conn, 7)
	if ok {
		t.Errorf("a batch job's lock was taken a second time on the session holding it")
	}
	refused("a batch job's lock", err)

	// The migration lock, on database/sql's connection as goose uses it.
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	sc, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	l, err := newMigrationLocker(42, "", slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SessionLock(t.Context(), sc); err != nil {
		t.Fatalf("migration lock: %v", err)
	}
	refused("the migration lock", l.SessionLock(t.Context(), sc))
	if err := l.SessionUnlock(t.Context(), sc); err != nil {
		t.Errorf("migration unlock: %v", err)
	}
}

// A run's lock whose connection, asked whether it still holds the lock, answers from another
// server session than the one it took the lock on — a pooler in transaction mode routing its
// statements to whichever session is free — is lost, naming the pooler: before, the lock was
// judged gone with its session, and taken again after ending (pg_terminate_backend) the session
// that held it, which the pooler had meanwhile handed to another client, mid-transaction.
func TestARunLockWhoseConnectionReachesAnotherSessionIsLostNamingThePooler(t *testing.T) {
	s, err := Open(t.Context(), Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	l, err := s.HoldRun(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	l.StopWatching()
	// The lock was taken on another session than the one its connection reaches now.
	l.mu.Lock()
	l.sess.pid++
	l.mu.Unlock()
	err = l.Check()
	if !errors.Is(err, ErrLockLost) || !errors.Is(err, ErrSessionShared) {
		t.Errorf("Check of a lock whose connection reaches another session: %v; want ErrLockLost and ErrSessionShared", err)
	}
	if cause := context.Cause(l.Context()); !errors.Is(cause, ErrSessionShared) {
		t.Errorf("the lock's Context ended with %v; want ErrSessionShared", cause)
	}
}

// Behind a pooler in transaction mode, pgx's prepared statements (named stmtcache_…, kept per
// connection) land on server sessions other clients use: the second process to start failed
// with `register pgvector types: ERROR: prepared statement "stmtcache_d320…" already exists
// (SQLSTATE 42P05)` (PgBouncer 1.18), saying nothing of the pooler, and later statements at
// random with "does not exist" (26000). A new connection's error names the pooler and the fix.
func TestAPreparedStatementClashOfANewConnectionNamesThePooler(t *testing.T) {
	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for _, sql := range []string{"PREPARE stmtcache_0123 AS SELECT 1", "PREPARE stmtcache_0123 AS SELECT 1", "EXECUTE stmtcache_4567"} {
		_, err := conn.Exec(t.Context(), sql, pgx.QueryExecModeSimpleProtocol)
		if sql == "PREPARE stmtcache_0123 AS SELECT 1" && err == nil {
			continue // the first
		}
		err = afterConnectError(fmt.Errorf("register pgvector types: %w", err))
		if !strings.Contains(err.Error(), "pool_mode=session") || !strings.Contains(err.Error(), "SQLSTATE") {
			t.Errorf("%s: %v; want the server's error and a word of the pooler's pool_mode", sql, err)
		}
	}
	if err := afterConnectError(errors.New("register pgvector types: boom")); strings.Contains(err.Error(), "pool_mode") {
		t.Errorf("another error: %v; want no word of a pooler", err)
	}
}

// Behind PgBouncer in session mode, a pool (default_pool_size) smaller than the connections
// paperpipe's processes hold leaves a new connection in PgBouncer's queue until its
// query_wait_timeout, and the command then stopped with `list embedding spaces: set
// idle_in_transaction_session_timeout and tcp_keepalives: FATAL: query_wait_timeout (SQLSTATE
// 08P01)` (PgBouncer 1.18, a pool of 2, `reprocess`): a set-up statement of paperpipe's named,
// the pool not. The error a new connection gets from PgBouncer's queue names the pool.
func TestAPoolersQueueTimeoutOfANewConnectionNamesThePool(t *testing.T) {
	// PgBouncer's answer, as pgconn reports it (08P01: protocol_violation, its code for it).
	err := afterConnectError(fmt.Errorf("set idle_in_transaction_session_timeout and tcp_keepalives: %w",
		&pgconn.PgError{Severity: "FATAL", Code: "08P01", Message: "query_wait_timeout"}))
	if !strings.Contains(err.Error(), "query_wait_timeout (SQLSTATE 08P01)") || !strings.Contains(err.Error(), "default_pool_size") {
		t.Errorf("PgBouncer's queue timeout: %v; want its error and a word of its default_pool_size", err)
	}
}

// The migration lock's wait: a process that finds another migrating tries the lock again every
// second, and behind a pooler in transaction mode a later try may reach the server session the
// holder took it on, which grants it again (re-entrant): goose's loop tried with a plain
// pg_try_advisory_lock, and two processes migrated side by side. Here the waiting connection's
// own session takes the lock, as the holder would through the pooler, and the holder's first
// session lets it go: the wait must end refused, naming the pooler, not holding the lock.
func TestTheMigrationLocksWaitRefusesASessionAlreadyHoldingIt(t *testing.T) {
	t.Parallel()
	s, err := Open(t.Context(), Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := t.Context()
	const id = 4243
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	holder, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	waiter, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	if _, err := holder.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(id)); err != nil {
		t.Fatal(err)
	}
	var pid int32
	if err := waiter.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	l, err := newMigrationLocker(id, "", slog.New(slog.NewTextHandler(logs, nil)), "test")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.SessionLock(ctx, waiter) }()
	for !strings.Contains(logs.String(), "waiting for another process's migrations") {
		select {
		case err := <-done:
			t.Fatalf("the lock held by another session: SessionLock returned %v without waiting", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The holder's lock moves to the waiter's session (the pooler handed it that session): it
	// asks there, and gets it once the holder's first session lets it go. The wait's tries on
	// that connection come before or after, never between.
	taken := make(chan error, 1)
	go func() {
		_, err := waiter.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(id))
		taken <- err
	}()
	for waiting := false; !waiting; {
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND NOT granted)`,
			pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := holder.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", int64(id)); err != nil {
		t.Fatal(err)
	}
	if err := <-taken; err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrSessionShared) {
		t.Errorf("the wait reached a session already holding the lock: %v; want ErrSessionShared", err)
	}
	_, _ = waiter.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock_all()")
}
