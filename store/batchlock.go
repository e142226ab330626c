package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
// item's content hash), of papers still stored (not removed since), are recorded, so two processes that selected the same stale papers at
// the same time never both record them, even when one records its job after the other's has
// been collected and closed: the check and the insert run in one transaction under a
// transaction advisory lock of the target. The returned job's Total counts the items kept; when none is left it records
// nothing and returns a job with ID 0.
//
// The returned job is locked (see LockBatchJob) on a connection of its own until the lock is
// released, so no other process resumes it while the caller prepares it. The lock is never nil
// and may be released more than once; it also ends with the connection (see JobLock.Confirm).
func (s *Store) ClaimBatchJob(ctx context.Context, j BatchJob, items []BatchItem) (job BatchJob, release *JobLock, err error) {
	defer func() { err = unavailable(ctx, err) }()
	release = &JobLock{}
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
		// The papers removed (RemovePapers) since the caller selected them are left out too;
		// those left are key-share locked, so that a removal running now waits for the claim
		// and then takes their items with them, rather than failing the claim.
		rows, err = tx.Query(ctx, `SELECT id FROM papers WHERE id = ANY($1) ORDER BY id FOR KEY SHARE`, ids)
		if err != nil {
			return fmt.Errorf("lock the papers: %w", err)
		}
		stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("lock the papers: %w", err)
		}
		present := make(map[string]bool, len(stored))
		for _, id := range stored {
			present[id] = true
		}
		kept := make([]BatchItem, 0, len(items))
		for _, it := range items {
			if present[it.PaperID] && !skip[BatchItem{PaperID: it.PaperID, ContentHash: it.ContentHash}] {
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
	return job, &JobLock{id: job.ID, pool: s.pool, conn: conn, ctx: ctx}, nil
}

// LockBatchJob takes the lock of job id (see ClaimBatchJob) on a connection of its own, and
// returns the job as stored once the lock is held, so a status read before the call may be
// out of date. It returns an error wrapping ErrBatchJobBusy when another session holds the
// lock (a live process is preparing the job), and paper.ErrNotFound when there is no such
// job. The lock is never nil and may be released more than once; it also ends with the
// connection (see JobLock.Confirm).
func (s *Store) LockBatchJob(ctx context.Context, id int64) (job BatchJob, release *JobLock, err error) {
	defer func() { err = unavailable(ctx, err) }()
	release = &JobLock{}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return BatchJob{}, release, fmt.Errorf("lock batch job %d: %w", id, err)
	}
	ok, err := tryBatchJobLock(ctx, conn, id)
	if err != nil {
		// Whether the lock was taken is unknown: close the connection, which ends it.
		discard(conn)
		return BatchJob{}, release, fmt.Errorf("lock batch job %d: %w", id, err)
	}
	if !ok {
		conn.Release()
		return BatchJob{}, release, fmt.Errorf("lock batch job %d: %w", id, ErrBatchJobBusy)
	}
	if job, err = readBatchJob(ctx, conn, id); err != nil {
		unlockBatchJob(ctx, conn, id)
		return BatchJob{}, release, fmt.Errorf("lock batch job %d: %w", id, err)
	}
	return job, &JobLock{id: id, pool: s.pool, conn: conn, ctx: ctx}, nil
}

// ErrBatchJobLockLost means a batch job's lock was lost: the database ended the session that
// held it (a restart, a pg_terminate_backend, idle_session_timeout, its connection cut off),
// and another process holds it now, or took the job meanwhile.
var ErrBatchJobLockLost = errors.New("lost the batch job's lock: the database ended the session that held it, and another process took the job")

// jobLockCheckTimeout bounds Confirm's look at the lock's session: a connection cut off
// answers nothing.
const jobLockCheckTimeout = 15 * time.Second

// JobLock is the lock of a batch job (ClaimBatchJob, LockBatchJob), held by a session of its
// own. Its methods are safe for concurrent use.
type JobLock struct {
	id   int64
	pool *pgxpool.Pool
	ctx  context.Context // the caller's, for the unlock (without its cancellation)
	mu   sync.Mutex
	conn *pgxpool.Conn // nil: released, or its session given up and the lock not taken again
}

// Confirm reports whether the lock is still held, before a step no two processes may take (an
// upload recorded, a batch created: paid for). The lock's session sits idle while its holder
// talks to the API, and the database may end it meanwhile; another process may then have
// locked the job, prepared it, and released it again. So Confirm asks the lock's session, and
// when it is gone takes the lock again on a new one: it returns the job as stored now, which
// the caller compares with what it knows (another process's work shows there), or an error
// wrapping ErrBatchJobLockLost when another session holds the lock. Another error means the
// database could not tell.
func (l *JobLock) Confirm(ctx context.Context) (BatchJob, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pool == nil {
		return BatchJob{}, fmt.Errorf("confirm the lock of batch job %d: not locked", l.id)
	}
	ctx, cancel := context.WithTimeout(ctx, jobLockCheckTimeout)
	defer cancel()
	read := func(conn *pgxpool.Conn) (BatchJob, error) {
		job, err := readBatchJob(ctx, conn, l.id)
		if err != nil {
			err = fmt.Errorf("read batch job %d: %w", l.id, err)
		}
		return job, unavailable(ctx, err)
	}
	if l.conn != nil {
		var held bool
		err := l.conn.QueryRow(ctx, `SELECT `+sessionHoldsLockSQL(batchJobLock), l.id).Scan(&held)
		if err == nil && held {
			return read(l.conn)
		}
		discard(l.conn) // gone, or no use: closed, its session ends on the server too
		l.conn = nil
	}
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return BatchJob{}, unavailable(ctx, fmt.Errorf("lock batch job %d again: %w", l.id, err))
	}
	ok, err := tryBatchJobLock(ctx, conn, l.id)
	if err != nil {
		discard(conn)
		return BatchJob{}, unavailable(ctx, fmt.Errorf("lock batch job %d again: %w", l.id, err))
	}
	if !ok {
		conn.Release()
		return BatchJob{}, fmt.Errorf("batch job %d: %w", l.id, ErrBatchJobLockLost)
	}
	l.conn = conn
	return read(conn)
}

// readBatchJob reads job id (paper.ErrNotFound when there is none); the caller says which job.
func readBatchJob(ctx context.Context, conn *pgxpool.Conn, id int64) (BatchJob, error) {
	rows, err := conn.Query(ctx, `SELECT `+batchJobColumns+` FROM batch_jobs WHERE id = $1`, id)
	if err != nil {
		return BatchJob{}, err
	}
	job, err := pgx.CollectExactlyOneRow(rows, scanBatchJob)
	if errors.Is(err, pgx.ErrNoRows) {
		err = paper.ErrNotFound
	}
	return job, err
}

// Release releases the lock (one lost: nothing). It is safe to call more than once.
func (l *JobLock) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	unlockBatchJob(l.ctx, l.conn, l.id)
	l.conn = nil
}

// tryBatchJobLock tries the lock of job id on conn.
func tryBatchJobLock(ctx context.Context, conn *pgxpool.Conn, id int64) (bool, error) {
	var ok *bool
	if err := conn.QueryRow(ctx, `SELECT `+trySessionLockSQL(batchJobLock), id).Scan(&ok); err != nil {
		return false, err
	}
	return sessionLockTaken(ok)
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
