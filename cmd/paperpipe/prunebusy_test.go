package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/store"
)

// A reprocess of the TL;DRs a `tldrs prune` is removing is refused (the prune holds the
// version's run lock in each of its transactions), and says so: it said "another run (a
// `paperpipe reprocess` or `fit`) is writing the TL;DRs", and the user looked for a run that
// did not exist.
func TestReprocessOfTLDRsAPruneIsRemovingSaysSo(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{tldrOnly: true}) // gpt-4o-mini's TL;DRs

	// A TL;DR row another session holds: the prune waits for it inside its transaction.
	tx, err := e.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT FROM tldrs WHERE model = 'gpt-4o-mini' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	// The prune's store waits a minute for a locked row (5 s by default, then tries again,
	// letting go of the lock between its tries).
	pst, err := store.Open(ctx, store.Config{URL: e.c.DatabaseURL, RowLockTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer pst.Close()
	pruned := make(chan error, 1)
	go func() {
		// Run with another chat model configured, as a prune from a shell without the workers' settings.
		_, err := pst.PruneTLDRs(ctx, store.PruneOptions{Current: store.TLDRKeep{Model: "gpt-4.1-mini", PromptVersion: "tldr-v1"}, Force: true})
		pruned <- err
	}()
	waitFor(t, "the prune to wait for the locked TL;DR", func() bool {
		var n int
		err := e.st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%DELETE FROM tldrs%'`).Scan(&n)
		return err == nil && n > 0
	})
	_, err = runReprocess(ctx, e.c, reprocessOptions{tldrOnly: true}, io.Discard, io.Discard)
	if !errors.Is(err, store.ErrRunInProgress) || !strings.Contains(err.Error(), "tldrs prune") {
		t.Errorf("reprocess while a prune removes its TL;DRs: %v; want it refused naming `paperpipe tldrs prune`", err)
	}
	if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		t.Fatal(err)
	}
	if err := <-pruned; err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, `SELECT count(*) FROM tldrs`); n != 0 {
		t.Errorf("%d TL;DRs left after the forced prune, want 0", n)
	}
}
