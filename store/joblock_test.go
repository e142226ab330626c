package store_test

import (
	"errors"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// A batch job's lock whose session the database ended is confirmed by taking it again when it
// is free, with the job as stored; when another process has locked the job since, Confirm says
// the lock is lost (ErrBatchJobLockLost), and releasing the lost lock leaves the other's alone.
func TestJobLockConfirmTakesALostLockAgainOrSaysAnotherHoldsIt(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(2)
	upsert(t, s, papers, store.Work{})
	job, lock, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: "v1"},
		[]store.BatchItem{{PaperID: papers[0].ID, ContentHash: papers[0].ContentHash()}})
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	endLockSessions := func() int {
		var n int
		if err := s.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(l.pid, 10000))
			FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
				AND ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended('paperpipe.batch.job.' || current_schema() || '.' || $1::bigint, 0)`,
			job.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if cur, err := lock.Confirm(ctx); err != nil || cur.ID != job.ID || cur.Status != store.BatchPreparing {
		t.Fatalf("Confirm of a held lock = %+v, %v; want the job, preparing", cur, err)
	}
	if n := endLockSessions(); n != 1 {
		t.Fatalf("ended %d sessions holding the lock, want 1", n)
	}
	if cur, err := lock.Confirm(ctx); err != nil || cur.ID != job.ID {
		t.Fatalf("Confirm of a lock whose session ended, free = %+v, %v; want it taken again", cur, err)
	}
	if _, _, err := s.LockBatchJob(ctx, job.ID); !errors.Is(err, store.ErrBatchJobBusy) {
		t.Fatalf("LockBatchJob beside the lock taken again: %v; want ErrBatchJobBusy", err)
	}

	if n := endLockSessions(); n != 1 {
		t.Fatalf("ended %d sessions holding the lock, want 1", n)
	}
	_, other, err := s.LockBatchJob(ctx, job.ID)
	if err != nil {
		t.Fatalf("LockBatchJob once the lock's session ended: %v", err)
	}
	defer other.Release()
	if _, err := lock.Confirm(ctx); !errors.Is(err, store.ErrBatchJobLockLost) {
		t.Errorf("Confirm of a lock another session took: %v; want ErrBatchJobLockLost", err)
	}
	lock.Release()
	if _, _, err := s.LockBatchJob(ctx, job.ID); !errors.Is(err, store.ErrBatchJobBusy) {
		t.Errorf("LockBatchJob after the lost lock's release: %v; want ErrBatchJobBusy (the other holds it)", err)
	}
}
