package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A migration refused for a full disk, out of memory or too many connections (class 53), a
// refused login (28) or a standby (25006) is said as it is, with PostgreSQL's own error — not
// "the connection to the database was lost while a migration was applied … start again once
// the database answers": what to do differs (free the disk, point DATABASE_URL at the
// primary). A server that ended the session (57P01) is a lost connection.
func TestAMigrationRefusedForResourcesOrALoginIsNotSaidToHaveLostItsConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, code := range []string{"53100", "53200", "53300", "28P01", "25006"} {
		err := fmt.Errorf("apply migration: %w", &pgconn.PgError{Code: code, Message: "refused"})
		if lost := migrationCut(ctx, err); lost != "" {
			t.Errorf("SQLSTATE %s: said %q; want it not taken for a lost connection", code, lost)
		}
	}
	err := fmt.Errorf("apply migration: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"})
	if lost := migrationCut(ctx, err); lost == "" {
		t.Errorf("SQLSTATE 57P01: not said to have lost the connection")
	}
}
