package store_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// A removed paper goes with everything derived from it: its TL;DRs of every model and prompt,
// its vectors in every space, its items in Batch API jobs; the read paths (show, list,
// related, search, counts, coverage) no longer find it, and the other papers keep theirs.
func TestRemovePapersTakesEverythingDerivedFromThem(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	a, b := space(t, s, "a", 3), space(t, s, "b", 3)
	if err := s.Activate(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	w := store.Work{Model: "m", PromptVersion: "v1", SpaceID: a.ID}
	papers := abstracts(4)
	upsert(t, s, papers, w)
	var sums []paper.Summary
	for i, p := range papers {
		sums = append(sums, summaryOf(p, "m", "v1", "A TL;DR."), summaryOf(p, "m", "v0", "An old TL;DR."))
		for _, sp := range []paper.Space{a, b} {
			if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(p, 1, float32(i), 0)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.SaveSummaries(ctx, sums); err != nil {
		t.Fatal(err)
	}
	_, release, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: "v2"},
		[]store.BatchItem{{PaperID: papers[0].ID, ContentHash: papers[0].ContentHash()}, {PaperID: papers[2].ID, ContentHash: papers[2].ContentHash()}})
	if err != nil {
		t.Fatal(err)
	}
	release.Release()

	gone := []string{papers[0].ID, papers[1].ID}
	// A dry run says what would go and writes nothing.
	var listed []store.RemovedPaper
	tot, err := s.RemovePapers(ctx, []string{gone[0], "id:nothing", gone[1], gone[0]}, true, func(p []store.RemovedPaper) error {
		listed = append(listed, p...)
		return nil
	})
	want := store.RemoveTotals{Papers: 2, TLDRs: 4, Embeddings: 4, BatchItems: 1, NotStored: 1}
	if err != nil || tot != want {
		t.Fatalf("dry run: %+v, %v; want %+v", tot, err, want)
	}
	if len(listed) != 2 || listed[0] != (store.RemovedPaper{ID: gone[0], Title: papers[0].Title, TLDRs: 2, Embeddings: 2, BatchItems: 1}) {
		t.Errorf("dry run listed %+v", listed)
	}
	if n := countRows(t, s, "papers"); n != 4 {
		t.Fatalf("a dry run left %d papers of 4", n)
	}

	tot, err = s.RemovePapers(ctx, []string{gone[0], "id:nothing", gone[1], gone[0]}, false, nil)
	if err != nil || tot != want {
		t.Fatalf("RemovePapers: %+v, %v; want %+v", tot, err, want)
	}
	for _, id := range gone {
		if _, err := s.Paper(ctx, id); !errors.Is(err, paper.ErrNotFound) {
			t.Errorf("Paper(%s) after its removal: %v; want ErrNotFound", id, err)
		}
	}
	for table, n := range map[string]int64{"papers": 2, "tldrs": 4, "embeddings": 4, "batch_items": 1} {
		if got := countRows(t, s, table); got != n {
			t.Errorf("%s: %d rows left, want %d", table, got, n)
		}
	}
	c, err := s.Counts(ctx, w)
	if err != nil || c.Papers != 2 || c.WithTLDR != 2 || c.WithEmbedding != 2 || c.TLDRsTotal != 4 {
		t.Errorf("Counts: %+v, %v; want 2 papers, each with its TL;DR and vector", c, err)
	}
	infos, err := s.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if in.Papers != 2 || in.Embedded != 2 {
			t.Errorf("space %s: %d of %d embedded; want 2 of 2", in.Name(), in.Embedded, in.Papers)
		}
	}
	hits, err := s.Related(ctx, a.ID, papers[2].ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].ID != papers[3].ID {
		t.Errorf("related to paper 3: %v; want paper 4 only", hits)
	}
	if hits, err := s.KeywordSearch(ctx, "problem", 10); err != nil || len(hits) != 2 {
		t.Errorf("keyword search: %v, %v; want the 2 papers left", hits, err)
	}
	recs, _, err := s.List(ctx, 10, nil)
	if err != nil || len(recs) != 2 {
		t.Errorf("List: %d papers, %v; want 2", len(recs), err)
	}
	// Removing them again finds nothing stored.
	if tot, err := s.RemovePapers(ctx, gone, false, nil); err != nil || tot != (store.RemoveTotals{NotStored: 2}) {
		t.Errorf("removed again: %+v, %v; want 2 not stored", tot, err)
	}
}

// A message of a removed paper read before the removal — queued, in a worker's hands, a dead
// letter replayed — does not store it again; one read after it (ingested again) does, as new.
func TestAMessageOfARemovedPaperReadBeforeItsRemovalIsNotStored(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	w := store.Work{Model: "m", PromptVersion: "v1"}
	papers := abstracts(3)
	queued := slices.Clone(papers)
	for i := range queued {
		queued[i].TextAt = time.Now().Add(-time.Minute) // when the queue stored its message
	}
	upsert(t, s, papers[:2], w)
	// papers[2] was never stored: still queued when the file that brought it is removed.
	if _, err := s.RemovePapers(ctx, []string{papers[0].ID, papers[1].ID, papers[2].ID}, false, nil); err != nil {
		t.Fatal(err)
	}
	got := upsert(t, s, queued, w)
	for i, p := range got {
		if want := (store.Pending{ID: papers[i].ID, ContentHash: papers[i].ContentHash(), Removed: true}); p != want {
			t.Errorf("message of removed paper %d, read before the removal: %+v; want %+v", i+1, p, want)
		}
	}
	if n := countRows(t, s, "papers"); n != 0 {
		t.Fatalf("messages read before the removal stored %d papers again", n)
	}
	// No TL;DR is saved for it either: an answer bought before the removal.
	if n, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(papers[0], "m", "v1", "A TL;DR.")}); err != nil || n != 0 {
		t.Errorf("SaveSummaries of a removed paper: %d, %v; want nothing saved", n, err)
	}

	// Ingested again: a newer message stores it, as a new paper, and the removal is forgotten.
	again := papers[0]
	again.TextAt = time.Now().Add(time.Second)
	again2 := queued[0] // an older message of it after that: its text is the stored one
	got = upsert(t, s, []paper.Abstract{again}, w)
	if !got[0].New || !got[0].NeedTLDR || got[0].Removed {
		t.Errorf("the paper ingested again after its removal: %+v; want it stored, new", got[0])
	}
	if n := countRows(t, s, "removed_papers"); n != 2 {
		t.Errorf("%d removals recorded, want 2 (the paper stored again forgotten)", n)
	}
	got = upsert(t, s, []paper.Abstract{again2}, w)
	if got[0].New || got[0].Removed {
		t.Errorf("an older message after the paper came back: %+v; want it read as a repeat", got[0])
	}
	// A copy with no date (POST /api/papers) is now: after any removal.
	nodate := papers[1]
	if got := upsert(t, s, []paper.Abstract{nodate}, w); !got[0].New {
		t.Errorf("a paper posted after its removal: %+v; want it stored", got[0])
	}
	// In one call, copies from before and after the removal: the later one is stored.
	late := papers[2]
	late.TextAt = time.Now().Add(time.Second)
	got = upsert(t, s, []paper.Abstract{queued[2], late}, w)
	if !got[0].Removed || got[1].Removed || !got[1].New {
		t.Errorf("copies before and after the removal in one call: %+v", got)
	}
}

// A worker's upsert that runs while a removal does is either removed by it or waits for it
// and reads it: a paper inserted by a transaction that commits while the removal runs is
// removed, not left behind by a DELETE that did not see it.
func TestAPaperStoredWhileItsRemovalRunsIsRemoved(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	p := abstracts(1)[0]
	// A worker's upsert in progress: it holds the papers table as UpsertPapers does and has
	// inserted the paper, not yet committed.
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE papers IN ROW EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO papers (id, title, abstract, content_hash) VALUES ($1, $2, $3, $4)`,
		p.ID, p.Title, p.Abstract, p.ContentHash()); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.RemovePapers(ctx, []string{p.ID}, false, nil)
		done <- err
	}()
	// Commit once the removal waits for the upsert; a removal that does not wait ends first,
	// and the paper its DELETE did not see stays.
	var (
		ended    bool
		endedErr error
	)
	for !ended {
		var waiting bool
		if err := s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)))`, pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case endedErr = <-done:
			ended = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !ended {
		endedErr = <-done
	}
	if endedErr != nil {
		t.Fatal(endedErr)
	}
	if n := countRows(t, s, "papers"); n != 0 {
		t.Errorf("the paper a worker stored while its removal ran is still there")
	}
}

// A Batch API job claimed for papers of which one was removed since they were selected
// (StalePapers, then ClaimBatchJob, while `paperpipe remove` ran) is claimed for the others.
func TestABatchJobClaimedForARemovedPaperLeavesItOut(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(3)
	upsert(t, s, papers, store.Work{})
	if _, err := s.RemovePapers(ctx, []string{papers[1].ID}, false, nil); err != nil {
		t.Fatal(err)
	}
	var items []store.BatchItem
	for _, p := range papers {
		items = append(items, store.BatchItem{PaperID: p.ID, ContentHash: p.ContentHash()})
	}
	job, release, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: "v1"}, items)
	if err != nil {
		t.Fatalf("ClaimBatchJob with a paper removed since it was selected: %v", err)
	}
	release.Release()
	if job.ID == 0 || job.Total != 2 {
		t.Errorf("job %+v; want one of 2 items", job)
	}
	if n := countRows(t, s, "batch_items"); n != 2 {
		t.Errorf("%d items recorded, want 2", n)
	}
	// Of a removed paper alone: no job.
	job, release, err = s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: "v2"}, items[1:2])
	release.Release()
	if err != nil || job.ID != 0 {
		t.Errorf("a job of a removed paper alone: %+v, %v; want none recorded", job, err)
	}
}

// Vector queries read past the removed vectors still in a space's HNSW index (until a vacuum
// repairs it): the papers related to one whose whole neighbourhood was removed are the exact
// nearest of those left, k of them.
func TestRelatedAfterRemovingTheNeighbourhoodFindsThoseLeft(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp, ps, embs := randomSpace(t, s, "r", 2000, 16, 7)
	near := exactNearest(embs, embs[0].Vector, ps[0].ID, 1800)
	if _, err := s.RemovePapers(ctx, near, false, nil); err != nil {
		t.Fatal(err)
	}
	var left []paper.Embedding
	for _, e := range embs {
		if !slices.Contains(near, e.PaperID) {
			left = append(left, e)
		}
	}
	want := exactNearest(left, embs[0].Vector, ps[0].ID, 10)
	hits, err := s.Related(ctx, sp.ID, ps[0].ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hits {
		got = append(got, h.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("related after removing its 1,800 nearest:\n got %v\nwant %v", got, want)
	}
}

// A removal that deadlocks with another transaction writing the papers' outputs (a prune of
// TL;DRs, or a save, which lock rows of tldrs in their own order) is tried again, as one that
// timed out waiting for a lock is: the batch it was removing changed nothing.
func TestARemovalThatDeadlocksIsTriedAgain(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(2)
	upsert(t, s, papers, store.Work{})
	if _, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(papers[0], "m", "v0", "A TL;DR."),
		summaryOf(papers[1], "m", "v0", "A TL;DR.")}); err != nil {
		t.Fatal(err)
	}
	// The other transaction holds the second paper's TL;DR, and checks for a deadlock only long
	// after the removal does, so that the removal is the one PostgreSQL aborts.
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var pid int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid() FROM (SELECT set_config('deadlock_timeout', '1min', true)) c,
		(SELECT FROM tldrs WHERE paper_id = $1 FOR UPDATE) l`, papers[1].ID).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.RemovePapers(ctx, []string{papers[0].ID, papers[1].ID}, false, nil)
		done <- err
	}()
	// Once the removal, having taken the first paper's TL;DR, waits for the second, the other
	// transaction takes the first: a deadlock.
	for {
		var waiting bool
		if err := s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)))`, pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the removal ended without waiting for the other transaction: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM tldrs WHERE paper_id = $1`, papers[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the removal failed: %v", err)
	}
	if n := countRows(t, s, "papers"); n != 0 {
		t.Errorf("%d papers left after their removal", n)
	}
}

// An id PostgreSQL cannot hold (bytes that are not UTF-8, a NUL) among the ids of a removal is
// refused as invalid input, naming it, before anything is removed: it failed in PostgreSQL
// (22021) at its batch, after the batches of RemoveBatch ids before it were removed — a
// removal cut short at a point the user could not tell from the error.
func TestRemovePapersRefusesAnIdPostgreSQLCannotHoldBeforeRemovingAny(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(2)
	upsert(t, s, papers, store.Work{})
	for _, bad := range []string{"id:\xff", "id:a\x00b"} {
		ids := []string{papers[0].ID}
		for i := range store.RemoveBatch {
			ids = append(ids, fmt.Sprintf("id:none-%d", i))
		}
		ids = append(ids, bad, papers[1].ID)
		tot, err := s.RemovePapers(ctx, ids, false, nil)
		if !errors.Is(err, paper.ErrInvalid) || tot != (store.RemoveTotals{}) {
			t.Errorf("removal with the id %q: %+v, %v; want nothing removed and paper.ErrInvalid", bad, tot, err)
		}
		if n := countRows(t, s, "papers"); n != 2 {
			t.Errorf("removal with the id %q refused: %d papers left, want 2", bad, n)
		}
	}
}
