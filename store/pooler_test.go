package store_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/paperpipe/paperpipe/store"
)

// refusingPooler listens on loopback and answers every connection's start-up message as
// PgBouncer does one with a parameter it does not know (search_path, options in DATABASE_URL):
// FATAL unsupported startup parameter, SQLSTATE 08P01 (PgBouncer 1.18, measured).
func refusingPooler(t *testing.T, message string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				b := pgproto3.NewBackend(c, c)
				if _, err := b.ReceiveStartupMessage(); err != nil {
					return
				}
				b.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "08P01",
					Message: message})
				_ = b.Flush()
			}()
		}
	}()
	return ln.Addr().String()
}

// Behind PgBouncer, a search_path in DATABASE_URL (as the README's copy of an archive, or
// extensions in a schema of their own, have it) is refused by the pooler: every command stopped
// with its "unsupported startup parameter: search_path", which said neither that a pooler
// refused it nor how to set the search_path instead (for the role: README).
func TestOpenSaysHowToSetAParameterAPoolerRefuses(t *testing.T) {
	t.Parallel()
	for _, param := range []string{"search_path", "options"} {
		addr := refusingPooler(t, "unsupported startup parameter: "+param)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		st, err := store.Open(ctx, store.Config{URL: "postgres://paperpipe@" + addr + "/x?sslmode=disable&search_path=lab1,extensions"})
		cancel()
		if err == nil {
			st.Close()
			t.Fatalf("%s: Open succeeded against a pooler that refuses the connection", param)
		}
		for _, want := range []string{"unsupported startup parameter: " + param, "connection pooler", "ALTER ROLE", "SET search_path"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: Open: %v\nwant it to say %q", param, err, want)
			}
		}
	}
}

// PgBouncer 1.20 and later pass on an options=-c … of the parameters they track, and refuse one
// of the others by its name inside options (PgBouncer's client.c; so do Supavisor and Neon's
// pooler): "unsupported startup parameter in options: search_path". That form was not read:
// the error told to leave "unsupported startup parameter in options: search_path" out of
// DATABASE_URL and to run "ALTER ROLE … SET unsupported startup parameter in options:
// search_path = …".
func TestOpenSaysHowToSetAParameterAPoolerRefusesInOptions(t *testing.T) {
	t.Parallel()
	addr := refusingPooler(t, "unsupported startup parameter in options: search_path")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Config{URL: "postgres://paperpipe@" + addr + "/x?sslmode=disable&options=-c%20search_path%3Dlab1,extensions"})
	if err == nil {
		st.Close()
		t.Fatal("Open succeeded against a pooler that refuses the connection")
	}
	for _, want := range []string{"unsupported startup parameter in options: search_path", "connection pooler",
		"leave search_path (in options) out of DATABASE_URL", "ALTER ROLE … SET search_path = …"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %v\nwant it to say %q", err, want)
		}
	}
}
