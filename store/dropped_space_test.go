package store_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// A worker's space dropped by another process (`paperpipe spaces drop` while workers still run
// on the old model): the store asks for no vector of it — none could be stored — but still for
// TL;DRs, says the space is gone, and a save of vectors bought before the drop fails with
// paper.ErrSpaceDropped (not retried by the worker), whether or not the process had the space
// cached.
func TestWorkOfADroppedSpaceAsksForNoVector(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	space(t, s, "active", 3)
	old := space(t, s, "old", 3)
	w := store.Work{Model: testModel, PromptVersion: testPrompt, SpaceID: old.ID}
	ps := abstracts(3)
	if p := upsert(t, s, ps[:1], w)[0]; !p.NeedEmbedding || p.NoSpace {
		t.Fatalf("before the drop: %+v; want a vector asked for", p)
	}
	if _, err := s.SaveEmbeddings(ctx, old.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0, 0)}); err != nil {
		t.Fatal(err) // s now has the space cached
	}
	other := open(t, s.Pool().Config().ConnString())
	if err := other.DropSpace(ctx, old.ID, store.DropOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, p := range upsert(t, s, ps[1:], w) {
		if p.NeedEmbedding || !p.NoSpace || !p.NeedTLDR {
			t.Errorf("UpsertPapers after the drop: %+v; want no vector asked for, NoSpace, and the TL;DR", p)
		}
	}
	pending, err := s.PendingFor(ctx, ps[1:], w)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pending {
		if p.NeedEmbedding || !p.NoSpace || !p.NeedTLDR {
			t.Errorf("PendingFor after the drop: %+v; want no vector asked for, NoSpace, and the TL;DR", p)
		}
	}
	if p := upsert(t, s, ps[1:2], store.Work{Model: testModel, PromptVersion: testPrompt})[0]; p.NoSpace {
		t.Errorf("work without a space: %+v, want NoSpace false", p)
	}
	for name, st := range map[string]*store.Store{"cached": s, "not cached": other} {
		_, err := st.SaveEmbeddings(ctx, old.ID, []paper.Embedding{embeddingOf(ps[1], 1, 0, 0)})
		if !errors.Is(err, paper.ErrSpaceDropped) || !errors.Is(err, paper.ErrNotFound) {
			t.Errorf("SaveEmbeddings into the dropped space (%s) = %v; want ErrSpaceDropped and ErrNotFound", name, err)
		}
	}
}

// `spaces drop` of a space a `reprocess` is filling (it holds the space's run lock) would
// throw away the vectors the run goes on buying: it is refused, naming the run, until the run
// ends.
func TestDropSpaceRefusesASpaceAReprocessIsFilling(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	space(t, s, "active", 3)
	old := space(t, s, "old", 3)
	run, unlock := fillingRun(t, s, old.ID)
	err := s.DropSpace(ctx, old.ID, store.DropOptions{DiscardBatchJobs: true})
	if !errors.Is(err, store.ErrRunInProgress) || !strings.Contains(err.Error(), "paperpipe reprocess") {
		t.Fatalf("DropSpace of a space a run is filling: %v; want a refusal naming the reprocess (ErrRunInProgress)", err)
	}
	if _, ok := spacesByID(t, s)[old.ID]; !ok {
		t.Fatal("the refused drop dropped the space")
	}
	unlock()
	if err := s.DropSpace(ctx, old.ID, store.DropOptions{}); err != nil {
		t.Fatalf("DropSpace after the run ended: %v", err)
	}
	// The drop released the lock with its transaction: a run can start again.
	locked, err := run.LockRun(ctx, store.SpaceRunKey(old.ID))
	if err != nil {
		t.Fatalf("LockRun after the drop: %v", err)
	}
	locked()
}

// An import-embeddings that created a space and loaded nothing drops it again
// (DropEmptySpace), but a `reprocess` into the same model may have found the space meanwhile
// and started filling it (it holds the space's run lock): the drop would pull the space from
// under the run, which then buys vectors no space can keep. The space is kept for the run.
func TestDropEmptySpaceKeepsASpaceAReprocessIsFilling(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := newLoadSpace(t, s)
	run, unlock := fillingRun(t, s, sp.ID)
	dropped, err := s.DropEmptySpace(ctx, sp.ID)
	if err != nil || dropped {
		t.Fatalf("DropEmptySpace of a space a run is filling: dropped=%v, %v; want it kept", dropped, err)
	}
	if _, ok := spacesByID(t, s)[sp.ID]; !ok {
		t.Fatal("the space a run is filling is gone")
	}
	unlock()
	// With no run, the empty space is dropped, and the lock released with the transaction.
	if dropped, err := s.DropEmptySpace(ctx, sp.ID); err != nil || !dropped {
		t.Fatalf("DropEmptySpace after the run ended: dropped=%v, %v; want dropped", dropped, err)
	}
	locked, err := run.LockRun(ctx, store.SpaceRunKey(sp.ID))
	if err != nil {
		t.Fatalf("LockRun after the drop: %v", err)
	}
	locked()
}

// fillingRun has another process, a `reprocess`, hold the run lock of space id (LockRun of
// SpaceRunKey), and returns that process's store and the lock's release, which may be called
// more than once (and is at the test's end).
func fillingRun(t *testing.T, s *store.Store, id int64) (*store.Store, func()) {
	t.Helper()
	run := open(t, s.Pool().Config().ConnString())
	locked, err := run.LockRun(t.Context(), store.SpaceRunKey(id))
	if err != nil {
		t.Fatal(err)
	}
	unlock := sync.OnceFunc(locked) // before run closes: its pool waits for the lock's connection
	t.Cleanup(unlock)
	return run, unlock
}

// TestDropEmptySpaceKeepsASpaceBatchJobsEmbedInto: a space with no vector yet, that a batch
// job submitted by `reprocess --batch-api` embeds into, is kept by a load that stored nothing
// in it: dropping it would delete the job with it (ON DELETE CASCADE), and the batch, paid
// for, would never be collected.
func TestDropEmptySpaceKeepsASpaceBatchJobsEmbedInto(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := newLoadSpace(t, s)
	p := abstracts(1)[0]
	upsert(t, s, []paper.Abstract{p}, store.Work{})
	job, release, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindEmbedding, Model: sp.Model, SpaceID: sp.ID,
		Target: store.BatchTarget(paper.KindEmbedding, sp.Model, "", sp.ID)}, []store.BatchItem{{PaperID: p.ID, ContentHash: p.ContentHash()}})
	release.Release()
	if err != nil || job.ID == 0 {
		t.Fatalf("ClaimBatchJob = %+v, %v", job, err)
	}
	job.Status, job.OpenAIID = store.BatchSubmitted, "batch_abc123"
	if err := s.UpdateBatchJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if dropped, err := s.DropEmptySpace(ctx, sp.ID); err != nil || dropped {
		t.Fatalf("DropEmptySpace of a space a batch job embeds into: dropped=%v, %v; want it kept", dropped, err)
	}
	if _, ok := spacesByID(t, s)[sp.ID]; !ok || countRows(t, s, "batch_jobs") != 1 {
		t.Fatal("the space or its batch job is gone")
	}
}

// newLoadSpace is the space an import-embeddings creates in s for a model s has no space for
// (EnsureSpaceForLoad), holding no vector yet.
func newLoadSpace(t *testing.T, s *store.Store) paper.Space {
	t.Helper()
	sp, created, err := s.EnsureSpaceForLoad(t.Context(), paper.Space{Model: "import-model", Dimensions: 3, Template: "title+abstract"})
	if err != nil || !created {
		t.Fatalf("EnsureSpaceForLoad: %v %v", created, err)
	}
	return sp
}
