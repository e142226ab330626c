package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paperpipe/paperpipe/paper"
)

// TestUnavailableMarksTheDatabasesStateNotTheRecords: a worker pauses (and spends no delivery)
// for an error marked paper.ErrUnavailable, and counts any other against the message: the
// marking must take the database's state and only that.
func TestUnavailableMarksTheDatabasesStateNotTheRecords(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"connection refused", context.Background(), fmt.Errorf("upsert: %w", refused), true},
		{"connection lost mid-statement", context.Background(), fmt.Errorf("upsert 5 papers: %w", io.ErrUnexpectedEOF), true},
		{"server shutting down", context.Background(), &pgconn.PgError{Code: "57P01"}, true},
		{"server starting", context.Background(), &pgconn.PgError{Code: "57P03"}, true},
		{"read-only standby", context.Background(), &pgconn.PgError{Code: "25006"}, true},
		{"disk full", context.Background(), &pgconn.PgError{Code: "53100"}, true},
		{"too many connections", context.Background(), &pgconn.PgError{Code: "53300"}, true},
		{"out of memory", context.Background(), &pgconn.PgError{Code: "53200"}, true},
		{"connection failure", context.Background(), &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", context.Background(), &pgconn.PgError{Code: "23505"}, false},
		{"invalid text", context.Background(), &pgconn.PgError{Code: "22021"}, false},
		{"a bad record", context.Background(), fmt.Errorf("record 3: %w", paper.ErrInvalid), false},
		{"the caller's deadline", ended, fmt.Errorf("upsert: %w", refused), false},
		{"any other error", context.Background(), errors.New("boom"), false},
	} {
		got := errors.Is(unavailable(tc.ctx, tc.err), paper.ErrUnavailable)
		var pgErr *pgconn.PgError
		if errors.As(tc.err, &pgErr) && got {
			// Only a database that answered and could not write waits for a save to close the
			// worker's breaker; a refused login (too many connections) is a connection failure.
			wantWrite := pgErr.Code == "53100"
			if w := errors.Is(unavailable(tc.ctx, tc.err), paper.ErrCannotWrite); w != wantWrite {
				t.Errorf("%s: marked ErrCannotWrite %v, want %v", tc.name, w, wantWrite)
			}
		}
		if got != tc.want {
			t.Errorf("%s (%v): marked unavailable %v, want %v", tc.name, tc.err, got, tc.want)
		}
		if !errors.Is(unavailable(tc.ctx, tc.err), tc.err) {
			t.Errorf("%s: the marked error lost the original", tc.name)
		}
	}
	if unavailable(context.Background(), nil) != nil {
		t.Error("nil marked")
	}
}
