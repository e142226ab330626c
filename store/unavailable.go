package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paperpipe/paperpipe/paper"
)

// unavailable marks err with paper.ErrUnavailable when it says the database could not be
// reached or could not do the work, whatever the records (see dbUnavailable); the caller (a
// worker) can then wait for the database instead of counting the failure against the records.
// An error of a ctx that ended is left as it is: the caller knows its own deadline; so is one
// marked already (a call made of others).
//
// A statement cancelled by the session's statement_timeout gets an error that names the
// setting (see statementTimedOut).
func unavailable(ctx context.Context, err error) error {
	err = statementTimedOut(err)
	if err == nil || ctx.Err() != nil || errors.Is(err, paper.ErrInvalid) || errors.Is(err, paper.ErrUnavailable) || !dbUnavailable(err) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "53100" {
		// A full disk: it answers, and cannot write, while a statement that writes nothing (an
		// intake of papers stored already) still succeeds. (A read-only standby, 25006, refuses
		// any INSERT, even of no rows: an intake that succeeds proves it writes again.)
		return fmt.Errorf("%w: %w: %w", paper.ErrUnavailable, paper.ErrCannotWrite, err)
	}
	return fmt.Errorf("%w: %w", paper.ErrUnavailable, err)
}

// dbUnavailable reports whether err is the database's state rather than the statement's or its
// data's: a connection that could not be made (refused, no route, a server shutting down, still
// starting, or refusing the login), one lost mid-statement (reset, EOF), or an answer of SQLSTATE
// class 08 (connection exception), 53 (insufficient resources: a full disk, out of memory, too
// many connections), 57P01–57P03 (the server shut down, crashed, or cannot take connections
// yet) or 25006 (a read-only transaction: a standby, after a failover that has not moved the
// address yet).
func dbUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch c := pgErr.Code; {
		case strings.HasPrefix(c, "08"), strings.HasPrefix(c, "53"),
			c == "57P01", c == "57P02", c == "57P03", c == "25006":
			return true
		}
	}
	// A ConnectError also holds a login refused (a PgError of class 28): the configuration's,
	// and no record's either, so marked too.
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err)
}

// errStatementTimeout is the note statementTimedOut adds.
var errStatementTimeout = errors.New("the statement ran longer than the statement_timeout of paperpipe's session, " +
	"set for the server, paperpipe's role or database, or in DATABASE_URL")

// statementTimedOut returns err with a note naming statement_timeout when the server cancelled
// the statement for it: PostgreSQL's "canceling statement due to statement timeout" names no
// setting, and paperpipe sets none on the request path (a search, a list, a lookup), which keeps
// the bound its DBA set. (Its maintenance statements, which run as long as the archive is big,
// turn it off for themselves: see buildIndex.)
func statementTimedOut(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || errors.Is(err, errStatementTimeout) || !errors.As(err, &pgErr) ||
		pgErr.Code != "57014" /* query_canceled */ || !strings.Contains(pgErr.Message, "statement timeout") {
		return err
	}
	return fmt.Errorf("%w: %w", errStatementTimeout, err)
}
