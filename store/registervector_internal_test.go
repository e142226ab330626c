package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
)

// A standby replaying the primary's CREATE EXTENSION vector, or another session creating it, can
// make the type appear between pgvector-go's look for it and registerVector's own: the type was
// there by the second look, and Open failed with "register pgvector types: vector type not found
// in the database" — not ErrSchemaBehind, not anything a retry would wait out (seen in CI, on a
// standby resuming replay). The first look is made to miss here, as it did then.
func TestATypeThatAppearsBetweenTwoLooksIsRegistered(t *testing.T) {
	var looks atomic.Int32
	real := registerTypes
	registerTypes = func(ctx context.Context, conn *pgx.Conn) error {
		if looks.Add(1) == 1 {
			return errors.New("vector type not found in the database") // pgvector-go's words
		}
		return real(ctx, conn)
	}
	t.Cleanup(func() { registerTypes = real })

	s, err := Open(t.Context(), Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatalf("Open, the vector type appearing after the first look: %v; want it registered on the second", err)
	}
	t.Cleanup(s.Close)
	if looks.Load() < 2 {
		t.Fatalf("registerTypes was called %d times; the test did not reach the second look", looks.Load())
	}
	conn, err := s.pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, ok := conn.Conn().TypeMap().TypeForName("vector"); !ok {
		t.Errorf("the pool's connection does not know the vector type")
	}
}
