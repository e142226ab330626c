package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pressly/goose/v3/lock"
)

// MigrationLockWait is how long a process waits for another one's migrations of the same
// database (and schema) to end — the session advisory lock that lets one process at a time
// migrate — before it gives up: Migrate, and so every command's start. A deployment that
// probes its processes' health gives them this long to start (deploy/k8s: startupProbe).
const MigrationLockWait = 10 * time.Minute

// migrationLocker is the session lock of the migrations: tried every second for up to
// MigrationLockWait (wait), refused on a session that already holds it (ErrSessionShared),
// saying why a process waits for it and who holds it, and giving the session the migrations
// run on (goose runs them on the session it locks) the lock_timeout lockTimeout, and no
// statement_timeout, while it holds the lock. goose's SessionLocker unlocks it.
type migrationLocker struct {
	lock.SessionLocker
	id          int64
	lockTimeout string // a lock_timeout setting; "": the server's
	log         *slog.Logger
	target      string
}

func newMigrationLocker(id int64, lockTimeout string, log *slog.Logger, target string) (*migrationLocker, error) {
	l, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(id),
		lock.WithLockTimeout(1, uint64(MigrationLockWait/time.Second)),
	)
	if err != nil {
		return nil, err
	}
	return &migrationLocker{SessionLocker: l, id: id, lockTimeout: lockTimeout, log: log, target: target}, nil
}

func (l *migrationLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	var ok *bool
	if err := conn.QueryRowContext(ctx, "SELECT "+trySessionLockSQL("$1::int8"), l.id).Scan(&ok); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	locked, err := sessionLockTaken(ok)
	if err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	if !locked {
		l.log.InfoContext(ctx, "waiting for another process's migrations of the database to end",
			"database", l.target, "held_by", l.holder(ctx, conn), "wait_at_most", MigrationLockWait)
		start := time.Now()
		if err := l.wait(ctx, conn); err != nil {
			if errors.Is(err, ErrSessionShared) {
				return fmt.Errorf("take the migration lock: %w", err)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("wait for another process's migrations to end: %w", ctx.Err())
			}
			return fmt.Errorf("another session held the migration lock for %s (%s), this process waited no longer: "+
				"a migration of a large table, or one waiting for a table other sessions hold; start this process again once it has ended: %w",
				time.Since(start).Round(time.Second), l.holder(ctx, conn), err)
		}
	}
	if l.lockTimeout == "" {
		return nil
	}
	// A statement_timeout set for the role or the server bounds requests, not the migrations,
	// which run as long as the archive is big (00014 re-indexes every stored paper in one
	// statement, batch after batch): they run without it, as an index build does.
	if _, err := conn.ExecContext(ctx, "SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', '0', false)", l.lockTimeout); err != nil {
		return fmt.Errorf("set the migrations' lock_timeout and statement_timeout: %w", errors.Join(err, l.SessionLocker.SessionUnlock(context.WithoutCancel(ctx), conn)))
	}
	return nil
}

// wait tries the lock every second, as trySessionLockSQL does (goose's loop tried a plain
// pg_try_advisory_lock, which a session the holder took it on grants again: behind a pooler in
// transaction mode, a later try reaching that session had two processes migrate at once), until
// it is taken, for up to MigrationLockWait.
func (l *migrationLocker) wait(ctx context.Context, conn *sql.Conn) error {
	deadline := time.Now().Add(MigrationLockWait)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		var ok *bool
		if err := conn.QueryRowContext(ctx, "SELECT "+trySessionLockSQL("$1::int8"), l.id).Scan(&ok); err != nil {
			return err
		}
		if locked, err := sessionLockTaken(ok); err != nil || locked {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("the lock was not free within " + MigrationLockWait.String())
		}
	}
}

func (l *migrationLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if l.lockTimeout != "" {
		// The session returns to the store's pool.
		if _, err := conn.ExecContext(ctx, "RESET lock_timeout; RESET statement_timeout"); err != nil {
			return fmt.Errorf("reset the migrations' lock_timeout and statement_timeout: %w", errors.Join(err, l.SessionLocker.SessionUnlock(ctx, conn)))
		}
	}
	return l.SessionLocker.SessionUnlock(ctx, conn)
}

// holder describes the session that holds the migration lock: "pid 4242 from 10.0.3.7,
// active for 12s: ALTER TABLE …", or "another session" when it cannot be looked up.
func (l *migrationLocker) holder(ctx context.Context, conn *sql.Conn) string {
	var (
		pid         int32
		from, query string
		state       string
		since       int64
	)
	err := conn.QueryRowContext(ctx, `SELECT a.pid, coalesce(host(a.client_addr), 'a local socket'), coalesce(a.state, ''),
			coalesce(floor(extract(epoch FROM clock_timestamp() - a.state_change))::bigint, 0), left(coalesce(a.query, ''), 80)
		FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
		WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
			AND ((k.classid::bigint << 32) | k.objid::bigint) = $1
			AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())`, l.id).
		Scan(&pid, &from, &state, &since, &query)
	if err != nil {
		return "another session"
	}
	return fmt.Sprintf("pid %d from %s, %s for %s: %s", pid, from, state, time.Duration(since)*time.Second, strings.Join(strings.Fields(query), " "))
}
