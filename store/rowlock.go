package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paperpipe/paperpipe/paper"
)

// DefaultRowLockTimeout is Config.RowLockTimeout's default.
const DefaultRowLockTimeout = 5 * time.Second

// writeTx runs fn, one of the writes a worker makes (UpsertPapers, SaveSummaries,
// SaveEmbeddings), in a transaction that first takes, in one round trip, the locks of the
// tables its statement reads and writes (prelock: LOCK TABLE statements in the modes the
// statement takes anyway, and any row lock it must wait for as long as ctx allows), then bounds
// every other lock wait by the store's RowLockTimeout (lock_timeout).
//
// Like every transaction of the store, it is ended by the server when it sits idle between
// its round trips for IdleInTransactionTimeout (a client gone without a word: its host died or
// lost its network for good), so that the rows it wrote are not held locked until the server's
// TCP keepalive gives up, every later write of those papers running out of RowLockTimeout.
//
// A wait for a table is legitimate and waited out, as before: a plain CREATE INDEX of a new
// space's index holds every write to embeddings for its scan, DropSpace's DROP INDEX every read
// of it. What is left to wait for is a row another session holds locked: a transaction left
// open by an operator or another tool, a long import. Without a bound the write waited for as
// long as the lock lasted, and so did every paper written with the locked one (a worker's
// micro-batch, a TL;DR group commit, an embedding batch — paid for, and bought again). A lock
// wait that ran out returns an error wrapping paper.ErrLocked.
func (s *Store) writeTx(ctx context.Context, prelock string, fn func(pgx.Tx) error) error {
	// One round trip begins, locks and sets (a query without arguments goes as a simple query,
	// which may hold several statements). A failure after BEGIN leaves the connection in a
	// transaction, and the pool closes it rather than reuse it.
	begin := "BEGIN; " + prelock + "; SET LOCAL lock_timeout = " + strconv.FormatInt(s.rowLockTimeout.Milliseconds(), 10)
	return s.rowLockTimedOut(pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: begin}, fn))
}

// rowLockTimedOut is err wrapping paper.ErrLocked when it is a lock wait that ran out of the
// RowLockTimeout (lock_not_available), and err as it is otherwise.
func (s *Store) rowLockTimedOut(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available: the lock_timeout
		return fmt.Errorf("%w for longer than %s: %w", paper.ErrLocked, s.rowLockTimeout, err)
	}
	return err
}

// lockedError is err, a save of the records of papers ids that ran out of RowLockTimeout
// (paper.ErrLocked), as a *paper.LockedError naming the papers whose rows another session
// holds locked (against the share lock a save takes), so that the caller can save the others
// at once. When the store cannot tell which (the lock is gone, or is on an output's row rather
// than its paper's), err is returned as it is; a save of one paper names it.
func (s *Store) lockedError(ctx context.Context, ids []string, err error) error {
	if !errors.Is(err, paper.ErrLocked) || ctx.Err() != nil {
		return err
	}
	if len(ids) == 1 {
		return &paper.LockedError{IDs: ids, Err: err}
	}
	rows, qerr := s.pool.Query(ctx, `
		WITH free AS MATERIALIZED (SELECT id FROM papers WHERE id = ANY($1) FOR SHARE SKIP LOCKED)
		SELECT i.id FROM unnest($1::text[]) WITH ORDINALITY AS i(id, n)
		WHERE EXISTS (SELECT 1 FROM papers p WHERE p.id = i.id) AND i.id NOT IN (SELECT id FROM free)
		ORDER BY i.n`, ids)
	if qerr != nil {
		return err
	}
	locked, qerr := pgx.CollectRows(rows, pgx.RowTo[string])
	if qerr != nil || len(locked) == 0 {
		return err
	}
	return &paper.LockedError{IDs: locked, Err: err}
}
