package store

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrSessionShared means the database session a connection reached already held the session
// lock the store was to take: another client took it there. A connection pooler that hands one
// server session to several clients, one transaction or statement at a time (PgBouncer's
// pool_mode=transaction or statement), does that; an advisory lock is re-entrant within its
// session, so pg_try_advisory_lock would have granted it again, and two runs, index builds,
// batch preparations or migrations would have gone on side by side, each holding "the" lock.
var ErrSessionShared = errors.New("the database session this connection reached already holds that lock, for another client: " +
	"DATABASE_URL leads to a connection pooler that shares server sessions between clients (PgBouncer's pool_mode=transaction or statement), " +
	"under which paperpipe's session locks hold nothing; give paperpipe's database pool_mode=session in the pooler, or connect to PostgreSQL directly")

// trySessionLockSQL is an SQL expression that tries the session advisory lock keySQL (an int8
// expression) as pg_try_advisory_lock does — true when taken, false when another session holds
// it — and is NULL, without taking it again, when this session already holds it: the store
// never takes a lock twice on one session, so another client took it there (ErrSessionShared).
func trySessionLockSQL(keySQL string) string {
	return `CASE WHEN ` + sessionHoldsLockSQL(keySQL) + ` THEN NULL ELSE pg_try_advisory_lock(` + keySQL + `) END`
}

// sessionHoldsLockSQL is an SQL condition: this session holds the session advisory lock keySQL
// (an int8 expression; pg_locks shows a bigint key as its high and low halves).
func sessionHoldsLockSQL(keySQL string) string {
	return `EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
			AND objsubid = 1 AND ((classid::int8 << 32) | objid::int8) = (` + keySQL + `))`
}

// sessionLockTaken is the answer of trySessionLockSQL: whether the lock was taken, or
// ErrSessionShared.
func sessionLockTaken(ok *bool) (bool, error) {
	if ok == nil {
		return false, ErrSessionShared
	}
	return *ok, nil
}

// afterConnectError is err, an error of a new connection's set-up (AfterConnect), as Open and
// every later connection report it: a prepared statement of pgx's cache (stmtcache_…) that a
// new session already has, or lacks, is a session other clients use too, handed out by a
// pooler in transaction or statement mode, and the error says so.
func afterConnectError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "42P05" || pe.Code == "26000") && strings.Contains(pe.Message, "stmtcache_") {
		return fmt.Errorf("%w (a prepared statement of this client's on a new connection: "+
			"DATABASE_URL leads to a connection pooler that shares server sessions between clients, PgBouncer's pool_mode=transaction or statement; "+
			"paperpipe keeps prepared statements and locks in its sessions: give its database pool_mode=session in the pooler, or connect to PostgreSQL directly)", err)
	}
	if errors.As(err, &pe) && pe.Code == "08P01" && pe.Message == "query_wait_timeout" {
		// PgBouncer's: no server connection of the pool came free for the new client in time.
		return fmt.Errorf("%w (PgBouncer's queue: no server connection of its pool came free for this one in time; in session mode each of "+
			"paperpipe's connections holds one for as long as it lives: give the pool, default_pool_size or the database's pool_size, "+
			"at least the sum of the processes' pool_max_conns, plus one each)", err)
	}
	return err
}
