package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
)

// TestDropSpaceGivesUpWhileAnotherSessionHoldsTheTable: DropSpace's DROP INDEX needs the whole
// embeddings table, and every query and write of the table queues behind it while it waits.
// When another session holds the table (here a transaction that read it, as a pg_dump or a
// session idle in a transaction does), DropSpace must give up after its tries, change nothing and
// say why — not wait for as long as the other session runs — and succeed once it has ended.
func TestDropSpaceGivesUpWhileAnotherSessionHoldsTheTable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := migratedStore(t)
	s.ddlWait = ddlWait{timeout: "50ms", tries: 3, pause: 10 * time.Millisecond}
	a := paper.Abstract{ID: "arxiv:2401.00001", Title: "T", Abstract: "A."}
	if _, err := s.UpsertPapers(ctx, []paper.Abstract{a}, Work{}); err != nil {
		t.Fatal(err)
	}
	var old paper.Space
	for _, m := range []string{"active", "old"} {
		sp, err := s.EnsureSpace(ctx, paper.Space{Model: m, Dimensions: 2, Template: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{{PaperID: a.ID, ContentHash: a.ContentHash(), Vector: []float32{1, 0}}}); err != nil {
			t.Fatal(err)
		}
		old = sp
	}
	holder, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	if _, err := holder.Exec(ctx, "SELECT count(*) FROM embeddings"); err != nil {
		t.Fatal(err)
	}

	dropCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = s.DropSpace(dropCtx, old.ID, DropOptions{})
	if err == nil || !strings.Contains(err.Error(), "stayed locked by another session") || dropCtx.Err() != nil {
		t.Fatalf("DropSpace while another session holds the table: %v; want it to give up and say why", err)
	}
	var vectors int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM embeddings WHERE space_id = $1", old.ID).Scan(&vectors); err != nil || vectors != 1 {
		t.Errorf("the refused drop left %d vectors (%v), want 1: nothing changed", vectors, err)
	}
	if _, err := spaceByID(ctx, s.pool, old.ID); err != nil {
		t.Errorf("the refused drop removed the space: %v", err)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.DropSpace(ctx, old.ID, DropOptions{}); err != nil {
		t.Errorf("DropSpace once the table is free: %v", err)
	}
}

// TestLockedDDLWaitOutlastsTheDeadlockTimeout: each try of a DROP INDEX waits longer than the
// server's deadlock_timeout, after which the waiting backend's deadlock check cancels an
// autovacuum that holds the table (at a lock_timeout equal to it the lock timeout fires
// first, and the drop gives up behind the autovacuum); the tries together stay within about
// twenty seconds, two at least. (An autovacuum cannot be started on demand in a test; the
// behaviour is tested by TestDDLWaitsLongerThanTheDeadlockTimeout, which sees one wait last
// longer than deadlock_timeout.)
func TestLockedDDLWaitOutlastsTheDeadlockTimeout(t *testing.T) {
	t.Parallel()
	for _, deadlock := range []time.Duration{100 * time.Millisecond, time.Second, 1500 * time.Millisecond, 5 * time.Second, time.Minute} {
		w := lockedDDLWait(deadlock)
		timeout, err := time.ParseDuration(w.timeout)
		if err != nil {
			t.Fatalf("deadlock_timeout %v: lock_timeout %q does not parse: %v", deadlock, w.timeout, err)
		}
		total := time.Duration(w.tries)*timeout + time.Duration(w.tries-1)*w.pause
		if timeout <= deadlock || timeout < 2*time.Second || w.tries < 2 || (deadlock <= 2*time.Second && total > 20*time.Second) {
			t.Errorf("deadlock_timeout %v: %d tries of lock_timeout %v (%v in all); want each above deadlock_timeout and at least 2 s, "+
				"two tries at least, and about twenty seconds in all", deadlock, w.tries, timeout, total)
		}
	}
}

// TestDropSpaceRefusalNamesTheSessionsHoldingTheTable: what holds the embeddings table past
// DropSpace's tries is most often an ordinary transaction that read it and stays open (a
// pg_dump, a session idle in a transaction, a long report). The refusal must name it — its
// pid and state — so that the operator can find it, not blame an index build.
func TestDropSpaceRefusalNamesTheSessionsHoldingTheTable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := migratedStore(t)
	s.ddlWait = ddlWait{timeout: "50ms", tries: 2, pause: 10 * time.Millisecond}
	var old paper.Space
	for _, m := range []string{"active", "old"} {
		var err error
		if old, err = s.EnsureSpace(ctx, paper.Space{Model: m, Dimensions: 2, Template: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	holder, err := s.pool.Begin(ctx) // a report's transaction, left open
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	var pid int32
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid() FROM (SELECT count(*) FROM embeddings) e").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	err = s.DropSpace(ctx, old.ID, DropOptions{})
	if err == nil {
		t.Fatal("DropSpace succeeded while another transaction holds the table")
	}
	for _, want := range []string{fmt.Sprintf("pid %d (client backend, idle in transaction", pid), "FROM embeddings"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("DropSpace's refusal %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "an index build on it is running") {
		t.Errorf("DropSpace's refusal %q blames an index build", err)
	}
}

// migratedStore opens a store on a schema of its own, migrated, closed at the end of the test.
func migratedStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}
