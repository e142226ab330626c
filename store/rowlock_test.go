package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// testRowLockTimeout is the RowLockTimeout of the stores under test here.
const testRowLockTimeout = 200 * time.Millisecond

// lockRows starts a transaction of another session that runs sql (which locks something) and
// stays open until the returned function (or the test's end) rolls it back.
func lockRows(t *testing.T, s *store.Store, sql string, args ...any) (release func()) {
	t.Helper()
	tx, err := s.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	release = func() { _ = tx.Rollback(context.Background()) }
	t.Cleanup(release)
	if _, err := tx.Exec(t.Context(), sql, args...); err != nil {
		t.Fatal(err)
	}
	return release
}

// TestWorkerWritesFailOnlyThePapersWhoseRowsAreLocked: a paper's row held locked by another
// session (a transaction left open) makes a worker's write that needs it fail with
// paper.ErrLocked after RowLockTimeout, instead of waiting for as long as the lock lasts; a
// save names the locked papers (paper.LockedError) and writes nothing, and the others can be
// saved at once.
func TestWorkerWritesFailOnlyThePapersWhoseRowsAreLocked(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	ps := abstracts(3)
	if _, err := s.UpsertPapers(ctx, ps, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	w, _ := openWatchedWith(t, s, "locked-rows", store.Config{RowLockTimeout: testRowLockTimeout})
	release := lockRows(t, s, "SELECT FROM papers WHERE id = $1 FOR UPDATE", ps[1].ID)

	var sums []paper.Summary
	var embs []paper.Embedding
	for _, p := range ps {
		sums = append(sums, summaryOf(p, "chat", "v1", "A TL;DR."))
		embs = append(embs, paper.Embedding{PaperID: p.ID, ContentHash: p.ContentHash(), Vector: []float32{1, 2, 3}})
	}
	checkLocked := func(what string, err error) {
		t.Helper()
		var le *paper.LockedError
		switch {
		case !errors.Is(err, paper.ErrLocked):
			t.Errorf("%s with paper %s's row locked: %v, want paper.ErrLocked", what, ps[1].ID, err)
		case !errors.As(err, &le) || !slices.Equal(le.IDs, []string{ps[1].ID}):
			t.Errorf("%s with paper %s's row locked: %v, want a paper.LockedError naming it alone", what, ps[1].ID, err)
		}
	}
	_, err := w.SaveSummaries(ctx, sums)
	checkLocked("SaveSummaries", err)
	_, err = w.SaveEmbeddings(ctx, sp.ID, embs)
	checkLocked("SaveEmbeddings", err)
	changed := ps[1]
	changed.Abstract += " Revised."
	if _, err := w.UpsertPapers(ctx, []paper.Abstract{ps[0], changed, ps[2]}, paper.Work{}); !errors.Is(err, paper.ErrLocked) {
		t.Errorf("UpsertPapers of a changed paper whose row is locked: %v, want paper.ErrLocked", err)
	}
	c, err := s.Counts(ctx, paper.Work{Model: "chat", PromptVersion: "v1", SpaceID: sp.ID})
	if err != nil {
		t.Fatal(err)
	}
	if c.WithTLDR != 0 || c.WithEmbedding != 0 {
		t.Errorf("failed saves wrote %d TL;DRs and %d vectors, want none", c.WithTLDR, c.WithEmbedding)
	}
	// The others are saved at once, the lock still held.
	if n, err := w.SaveSummaries(ctx, []paper.Summary{sums[0], sums[2]}); err != nil || n != 2 {
		t.Errorf("SaveSummaries of the papers not locked: %d, %v; want 2 saved", n, err)
	}
	release()
	if n, err := w.SaveSummaries(ctx, sums[1:2]); err != nil || n != 1 {
		t.Errorf("SaveSummaries once the lock is gone: %d, %v; want 1 saved", n, err)
	}
}

// TestWorkerWritesWaitOutTableLocks: RowLockTimeout bounds the wait for a row, not for a
// table. A plain CREATE INDEX (a new space's index) holds every write to embeddings for its
// scan, DropSpace's DROP INDEX every read of it and its space's row, a migration its table:
// a worker's write waits for them as long as its context allows, and then succeeds.
func TestWorkerWritesWaitOutTableLocks(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	ps := abstracts(2)
	if _, err := s.UpsertPapers(ctx, ps[:1], paper.Work{}); err != nil {
		t.Fatal(err)
	}
	w, app := openWatchedWith(t, s, "table-locks", store.Config{RowLockTimeout: testRowLockTimeout})
	work := paper.Work{Model: "chat", PromptVersion: "v1", SpaceID: sp.ID}
	saveSummary := func(ctx context.Context) error {
		_, err := w.SaveSummaries(ctx, []paper.Summary{summaryOf(ps[0], "chat", "v1", "A TL;DR.")})
		return err
	}
	saveVector := func(ctx context.Context) error {
		_, err := w.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{{PaperID: ps[0].ID, ContentHash: ps[0].ContentHash(), Vector: []float32{1, 2, 3}}})
		return err
	}
	upsert := func(ctx context.Context) error {
		_, err := w.UpsertPapers(ctx, ps, work)
		return err
	}
	for _, tc := range []struct {
		name, lock string
		write      func(context.Context) error
	}{
		{"an index build's lock of embeddings, SaveEmbeddings", "LOCK TABLE embeddings IN SHARE MODE", saveVector},
		{"DROP INDEX's lock of embeddings, SaveEmbeddings", "LOCK TABLE embeddings IN ACCESS EXCLUSIVE MODE", saveVector},
		{"DROP INDEX's lock of embeddings, UpsertPapers", "LOCK TABLE embeddings IN ACCESS EXCLUSIVE MODE", upsert},
		{"DropSpace's lock of the space's row, SaveEmbeddings", "SELECT FROM embedding_spaces WHERE id = " + itoa(sp.ID) + " FOR UPDATE", saveVector},
		{"a lock of tldrs, SaveSummaries", "LOCK TABLE tldrs IN SHARE MODE", saveSummary},
		{"a lock of papers, UpsertPapers", "LOCK TABLE papers IN SHARE MODE", upsert},
		{"a lock of papers, SaveSummaries", "LOCK TABLE papers IN EXCLUSIVE MODE", saveSummary},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := lockRows(t, s, tc.lock)
			done := make(chan error, 1)
			go func() { done <- tc.write(ctx) }()
			waitForLock(t, s, app, done, "the write")
			select {
			case err := <-done:
				t.Fatalf("the write returned while the table was locked: %v", err)
			case <-time.After(3 * testRowLockTimeout):
			}
			release()
			if err := <-done; err != nil {
				t.Errorf("the write, once the table lock is gone: %v, want it to succeed", err)
			}
		})
	}
}

// TestSaveIntoASpaceBeingDroppedWaitsForTheDrop: a save into a space DropSpace is dropping
// waits for the drop (the space row's lock), then fails with paper.ErrSpaceDropped. It must not
// hold embeddings meanwhile: the drop's DROP INDEX (ACCESS EXCLUSIVE on embeddings) would wait
// for the save, a deadlock, and PostgreSQL aborted the drop.
func TestSaveIntoASpaceBeingDroppedWaitsForTheDrop(t *testing.T) {
	t.Parallel()
	// The save's store has the space cached (a worker that resolved it at its start).
	testWriteIntoASpaceBeingDropped(t, "save", "SaveEmbeddings", func(ctx context.Context, st *store.Store, spaceID int64, es []paper.Embedding) error {
		_, err := st.SaveEmbeddings(ctx, spaceID, es)
		return err
	})
}

// TestLoadIntoASpaceBeingDroppedWaitsForTheDrop is TestSaveIntoASpaceBeingDroppedWaitsForTheDrop
// for LoadEmbeddings (import-embeddings): a chunk loaded into a space DropSpace is dropping held
// the embeddings table while its foreign key check waited for the space's row, and the drop's
// DROP INDEX deadlocked with it: PostgreSQL aborted the drop ("deadlock detected") and the
// chunk was stored. The load waits for the drop, then fails with paper.ErrSpaceDropped.
func TestLoadIntoASpaceBeingDroppedWaitsForTheDrop(t *testing.T) {
	t.Parallel()
	// The import's store has the space: it loaded a chunk into it already.
	testWriteIntoASpaceBeingDropped(t, "load", "LoadEmbeddings", func(ctx context.Context, st *store.Store, spaceID int64, es []paper.Embedding) error {
		_, err := st.LoadEmbeddings(ctx, spaceID, es)
		return err
	})
}

// testWriteIntoASpaceBeingDropped is the race of the two tests above: a store that wrote into
// a space (with write, the method named method, a what) writes into it again while DropSpace,
// on another store, is dropping it; the drop succeeds and the write fails with
// paper.ErrSpaceDropped.
func testWriteIntoASpaceBeingDropped(t *testing.T, what, method string, write func(ctx context.Context, st *store.Store, spaceID int64, es []paper.Embedding) error) {
	s := setup(t)
	ctx := t.Context()
	_ = space(t, s, "active", 3) // the first space is the active one
	gone := space(t, s, "gone", 3)
	ps := abstracts(2)
	if _, err := s.UpsertPapers(ctx, ps, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	d, dropApp := openWatchedWith(t, s, "dropper", store.Config{})
	w, writeApp := openWatchedWith(t, s, what+"r", store.Config{})
	if err := write(ctx, w, gone.ID, []paper.Embedding{embeddingOf(ps[0], 1, 2, 3)}); err != nil {
		t.Fatal(err)
	}
	// A vector of the space held by another session: the drop's DELETE of the space's vectors
	// takes a while (a big space).
	release := lockRows(t, s, "SELECT FROM embeddings WHERE space_id = $1 FOR UPDATE", gone.ID)
	dropped := make(chan error, 1)
	go func() { dropped <- d.DropSpace(ctx, gone.ID, store.DropOptions{}) }()
	waitForLock(t, s, dropApp, dropped, "the drop")
	written := make(chan error, 1)
	go func() { written <- write(ctx, w, gone.ID, []paper.Embedding{embeddingOf(ps[1], 4, 5, 6)}) }()
	waitForLock(t, s, writeApp, written, "the "+what)
	time.Sleep(1500 * time.Millisecond) // past deadlock_timeout
	release()
	if err := <-dropped; err != nil {
		t.Errorf("DropSpace with a %s into the space waiting: %v, want it to succeed", what, err)
	}
	if err := <-written; !errors.Is(err, paper.ErrSpaceDropped) {
		t.Errorf("%s into the space being dropped: %v, want paper.ErrSpaceDropped", method, err)
	}
}

// upsertWaitingOnALock starts an upsert of a changed paper (old, whose row another session
// holds locked) and a new one (fresh), waits until the upsert waits for the lock, and returns
// the time then (clock_timestamp(): a poll or a run made during the wait) and finish, which
// releases the lock and waits for the upsert.
func upsertWaitingOnALock(t *testing.T, s *store.Store, name string) (old, fresh paper.Abstract, mark time.Time, finish func()) {
	t.Helper()
	ctx := t.Context()
	w, app := openWatched(t, s, name)
	old = topic(1, "An old paper", "Its text will change.")
	upsert(t, s, []paper.Abstract{old}, store.Work{})
	release := lockRows(t, s, "SELECT FROM papers WHERE id = $1 FOR SHARE", old.ID)
	changed := old
	changed.Abstract += " Revised."
	fresh = topic(2, "A new paper", "It arrives with the revision.")
	done := make(chan error, 1)
	go func() {
		_, err := w.UpsertPapers(ctx, []paper.Abstract{changed, fresh}, store.Work{})
		done <- err
	}()
	waitForLock(t, s, app, done, "the upsert")
	if err := s.Pool().QueryRow(ctx, "SELECT clock_timestamp()").Scan(&mark); err != nil {
		t.Fatal(err)
	}
	return old, fresh, mark, func() {
		t.Helper()
		release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestSinceFindsAPaperStoredAfterAPollThatWaitedOnALock: a poller of ListFilter.Since must
// find every paper that became visible after its poll. An upsert that waits on a locked row (a
// worker's save holds a changed paper's row; RowLockTimeout allows 5 s) inserts the new papers
// after its wait, and stamped them with the transaction's start (now()), before a poll made
// during the wait, which could not see them: every later poll from that time skipped them.
func TestSinceFindsAPaperStoredAfterAPollThatWaitedOnALock(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	_, fresh, poll, finish := upsertWaitingOnALock(t, s, "since-upsert")
	if recs, _, err := s.ListFiltered(ctx, store.ListFilter{Since: poll}, 100, nil); err != nil || len(recs) != 0 {
		t.Fatalf("the poll during the upsert's wait = %d papers, %v; want none", len(recs), err)
	}
	finish()
	recs, _, err := s.ListFiltered(ctx, store.ListFilter{Since: poll}, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].ID != fresh.ID {
		stored, _ := s.Paper(ctx, fresh.ID)
		t.Errorf("papers since the poll = %d, want %s alone (stored after it; its created_at %s is %s before the poll)",
			len(recs), fresh.ID, stored.CreatedAt.Format(time.RFC3339Nano), poll.Sub(stored.CreatedAt))
	}
}

// A reprocess --since the start of the previous run must select every paper whose change that
// run could not see. An upsert that waits on a locked row (up to RowLockTimeout per row) writes
// the changed and the new papers after its wait, and stamped their updated_at with its
// transaction's start (now()): before a run started during the wait, which could not see them,
// so a later run --since that run's start skipped them.
func TestStalePapersSinceFindsAPaperChangedAfterARunThatWaitedOnALock(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	old, fresh, run, finish := upsertWaitingOnALock(t, s, "since-stale")
	stale := func() []string {
		t.Helper()
		var ids []string
		err := s.StalePapers(ctx, store.Selection{Work: store.Work{Model: testModel, PromptVersion: testPrompt}, Since: run}, 0,
			func(page []store.StalePaper) error {
				for _, p := range page {
					ids = append(ids, p.ID)
				}
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if ids := stale(); len(ids) != 0 {
		t.Fatalf("a run during the upsert's wait selects %v; want none", ids)
	}
	finish()
	if ids := stale(); !slices.Equal(ids, []string{old.ID, fresh.ID}) {
		t.Errorf("stale papers since the run that could not see them = %v, want %s and %s (changed and stored after it)", ids, old.ID, fresh.ID)
	}
}
