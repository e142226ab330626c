package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paperpipe/paperpipe/paper"
)

// Advisory lock keys of the batch ledger, per schema like LockRun's: batchTargetLock ($1 a
// target) serialises the creation of jobs of one target; batchJobLock ($1 a job id) is held
// by the process preparing a job (uploading its input, creating its batch).
const (
	batchTargetLock = `hashtextextended('paperpipe.batch.target.' || current_schema() || '.' || $1::text, 0)`
	batchJobLock    = `hashtextextended('paperpipe.batch.job.' || current_schema() || '.' || $1::bigint, 0)`
)

// ErrBatchJobBusy means another session holds a batch job's lock: a live process is preparing
// it.
var ErrBatchJobBusy = errors.New("batch job is being prepared by another process")

// ClaimBatchJob records a new job in status BatchPreparing with its items, and returns it with
// its ID; from the commit on, the items' papers are excluded from new work for the job's
// target (see StalePapers) until the job is done or failed. Only the items that are neither
// already in an open job of its target nor done for it (its TL;DR or vector stored at the
// item's content hash) are recorded, so two processes that selected the same stale papers at
// the same time never both record them, even when one records its job after the other's has
// been collected and closed: the check and the insert run in one transaction under a
// transaction advisory lock of the target. The returned job's Total counts the items kept; when none is left it records
// nothing and returns a job with ID 0.
//
// The returned job is locked (see LockBatchJob) on a connection of its own until release is
// called, so no other process resumes it while the caller prepares it. release is never nil
// and may be called more than once; the lock also ends with the connection.
func (s *Store) ClaimBatchJob(ctx context.Context, j BatchJob, items []BatchItem) (job BatchJob, release func(), err error) {
	defer func() { err = unavailable(ctx, err) }()
	release = func() {}
	if j.Kind != paper.KindChat && j.Kind != paper.KindEmbedding {
		return BatchJob{}, release, fmt.Errorf("claim batch job: kind %q: %w", j.Kind, paper.ErrInvalid)
	}
	if len(items) == 0 {
		return BatchJob{}, release, fmt.Errorf("claim batch job: no items: %w", paper.ErrInvalid)
	}
	j.Target = BatchTarget(j.Kind, j.Model, j.PromptVersion, j.SpaceID)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return BatchJob{}, release, fmt.Errorf("claim %s batch job: %w", j.Target, err)
	}
	locked := false // the session lock of the job
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(`+batchTargetLock+`)`, j.Target); err != nil {
			return fmt.Errorf("lock target: %w", err)
		}
		ids := make([]string, len(items))
		for i, it := range items {
			ids[i] = it.PaperID
		}
		// The items left out: those in an open job of the target, and those whose output for
		// the target is stored at the item's text, which are not stale any more (another job of
		// the target, closed since the caller selected the paper, or the worker bought it, and
		// a job would pay for it again). Read after the lock is granted: a statement's snapshot
		// then holds every job of the target committed before, under READ COMMITTED.
		done := `SELECT paper_id, content_hash FROM tldrs WHERE model = $3 AND prompt_version = $4 AND paper_id = ANY($2)`
		args := []any{j.Target, ids, j.Model, j.PromptVersion}
		if j.Kind == paper.KindEmbedding {
			done = `SELECT paper_id, content_hash FROM embeddings WHERE space_id = $3 AND paper_id = ANY($2)`
			args = []any{j.Target, ids, j.SpaceID}
		}
		rows, err := tx.Query(ctx, `SELECT bi.paper_id, bi.content_hash
			FROM batch_items bi JOIN batch_jobs j ON j.id = bi.job_id
			WHERE j.target = $1 AND j.status IN `+openJobStatuses+` AND bi.paper_id = ANY($2)
			UNION ALL `+done, args...)
		if err != nil {
			return fmt.Errorf("read open items and stored outputs: %w", err)
		}
		skip := map[BatchItem]bool{}
		var it BatchItem
		_, err = pgx.ForEachRow(rows, []any{&it.PaperID, &it.ContentHash}, func() error {
			skip[BatchItem{PaperID: it.PaperID, ContentHash: it.ContentHash}] = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("read open items and stored outputs: %w", err)
		}
		kept := make([]BatchItem, 0, len(items))
		for _, it := range items {
			if !skip[BatchItem{PaperID: it.PaperID, ContentHash: it.ContentHash}] {
				kept = append(kept, it)
			}
		}
		if len(kept) == 0 {
			return nil
		}
		var space *int64
		if j.Kind == paper.KindEmbedding {
			space = &j.SpaceID
		}
		rows, err = tx.Query(ctx, `INSERT INTO batch_jobs (kind, target, model, prompt_version, space_id, status, total)
			VALUES ($1, $2, $3, $4, $5, 'preparing', $6) RETURNING `+batchJobColumns,
			j.Kind, j.Target, j.Model, j.PromptVersion, space, len(kept))
		if err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		job, err = pgx.CollectExactlyOneRow(rows, scanBatchJob)
		if err != nil {
			return fmt.Errorf("insert job: %w", err)
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"batch_items"}, []string{"job_id", "paper_id", "content_hash", "truncated"},
			pgx.CopyFromSlice(len(kept), func(i int) ([]any, error) {
				return []any{job.ID, kept[i].PaperID, kept[i].ContentHash, kept[i].Truncated}, nil
			}))
		if err != nil {
			return fmt.Errorf("insert items: %w", err)
		}
		// A session lock taken before the commit: no other session can see the job unlocked.
		// It outlives the transaction (and a rollback), so every error path below unlocks.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_lock(`+batchJobLock+`)`, job.ID); err != nil {
			return fmt.Errorf("lock job: %w", err)
		}
		locked = true
		return nil
	})
	if err != nil {
		if locked {
			unlockBatchJob(ctx, conn, job.ID)
		} else {
			conn.Release()
		}
		return BatchJob{}, release, fmt.Errorf("claim %s batch job of %s: %w", j.Target, papersN(len(items)), err)
	}
	if job.ID == 0 {
		conn.Release()
		return BatchJob{}, release, nil
	}
	return job, sync.OnceFunc(func() { unlockBatchJob(ctx, conn, job.ID) }), nil
}

// LockBatchJob takes the lock of job id (see ClaimBatchJob) on a connection of its own, and
// returns the job as stored once the lock is held, so a status read before the call may be
// out of date. It returns an error wrapping ErrBatchJobBusy when another session holds the
// lock (a live process is preparing the job), and paper.ErrNotFound when there is no such
// job. release is never nil and may be called more than once; the lock also ends with the
// connection.
func (s *Store) LockBatchJob(ctx context.Context, id int64) (job BatchJob, release func(), err error) {
	defer func() { err = unavailable(ctx, err) }()
	release = func() {}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return BatchJob{}, release, fmt.Errorf("lock batch job %d: %w", id, err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+batchJobLock+`)`, id).Scan(&ok); err != nil {
		// Whether the lock was taken is unknown: close the connection, which ends it.
		discard(conn)
		return BatchJob{}, release, fmt.Errorf("lock batch job %d: %w", id, err)
	}
	if !ok {
		conn.Release()
		return BatchJob{}, release, fmt.Errorf("lock batch job %d: %w", id, ErrBatchJobBusy)
	}
	rows, err := conn.Query(ctx, `SELECT `+batchJobColumns+` FROM batch_jobs WHERE id = $1`, id)
	if err == nil {
		job, err = pgx.CollectExactlyOneRow(rows, scanBatchJob)
	}
	if err != nil {
		unlockBatchJob(ctx, conn, id)
		if errors.Is(err, pgx.ErrNoRows) {
			err = paper.ErrNotFound
		}
		return BatchJob{}, release, fmt.Errorf("lock batch job %d: %w", id, err)
	}
	return job, sync.OnceFunc(func() { unlockBatchJob(ctx, conn, id) }), nil
}

// unlockBatchJob releases the lock of job id held by conn and returns conn to the pool; when
// the unlock fails the connection is closed instead, which releases the lock too (a pooled
// connection must never keep it).
func unlockBatchJob(ctx context.Context, conn *pgxpool.Conn, id int64) {
	var ok bool
	err := conn.QueryRow(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(`+batchJobLock+`)`, id).Scan(&ok)
	if err != nil || !ok {
		discard(conn)
		return
	}
	conn.Release()
}

// discard closes a pooled connection and gives it back, so the pool drops it.
func discard(conn *pgxpool.Conn) {
	_ = conn.Conn().Close(context.Background())
	conn.Release()
}
