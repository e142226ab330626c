// Package pgtest gives each test its own empty PostgreSQL schema in the test database, so tests
// against real PostgreSQL+pgvector run in parallel without seeing each other's rows.
//
// The database comes from PAPERPIPE_TEST_DATABASE_URL (default DefaultURL); `make services`
// starts one. A test whose database is unreachable fails: it is never skipped silently.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/redact"
)

// DefaultURL is the test database used when PAPERPIPE_TEST_DATABASE_URL is unset: the one
// `make services` starts.
const DefaultURL = "postgres://paperpipe@127.0.0.1:55432/paperpipe_test?sslmode=disable"

// Environment variables read by URL.
const (
	// EnvURL names the test database.
	EnvURL = "PAPERPIPE_TEST_DATABASE_URL"
	// EnvKeep, when set to anything, keeps each test's schema after the test for inspection.
	EnvKeep = "PAPERPIPE_KEEP_TEST_SCHEMA"
)

// setupTimeout bounds connecting and creating a schema.
const setupTimeout = 15 * time.Second

// setupOnce prepares the test database once per test process: it creates the vector extension
// in public (the advisory lock covers other test processes: go test runs packages in
// parallel), and checks that public holds no tables: every test's search_path ends with public,
// so tables there (paperpipe run against the test database itself migrates public) are seen by
// every test, and a test of an unmigrated or empty schema fails for no reason of its own. It is
// a package variable because it guards process-wide state, which is what a sync.Once is for.
var setupOnce = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	base := BaseURL()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('paperpipe.pgtest.vector'))"); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"); err != nil {
			return fmt.Errorf("create extension vector: %w", err)
		}
		// Migration 00013 creates unaccent where it is missing, in the first schema of the
		// search_path: a test's own, whose drop at the test's end would take with it every
		// other test's text search configuration.
		if _, err := tx.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public"); err != nil {
			return fmt.Errorf("create extension unaccent: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the vector or unaccent extension is missing in %s and could not be created: %w", Redact(base), err)
	}
	var tables []string
	err = conn.QueryRow(ctx, `SELECT coalesce(array_agg(c.relname::text ORDER BY c.relname), '{}')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')`).Scan(&tables)
	if err != nil {
		return fmt.Errorf("list the tables of the test database's public schema: %w", err)
	}
	if len(tables) > 0 {
		return fmt.Errorf("the test database %s has tables in its public schema (%s), which every test's search_path sees: "+
			"was paperpipe run against it? Drop them (DROP TABLE public.%s CASCADE), or point %s at a fresh database",
			Redact(base), strings.Join(tables, ", "), strings.Join(tables, ", public."), EnvURL)
	}
	return nil
})

// BaseURL returns the test database's URL: PAPERPIPE_TEST_DATABASE_URL, or DefaultURL.
func BaseURL() string {
	if u := strings.TrimSpace(os.Getenv(EnvURL)); u != "" {
		return u
	}
	return DefaultURL
}

// URL creates a fresh schema t_<test>_<random> in the test database and returns a connection
// URL whose search_path is that schema, then public (where the vector extension lives). The
// schema is dropped with everything in it when the test ends, unless PAPERPIPE_KEEP_TEST_SCHEMA
// is set. An unreachable database fails the test with a hint to run `make services`.
func URL(tb testing.TB) string {
	tb.Helper()
	base := BaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()

	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("pgtest: test database %s is unreachable: %v\n"+
			"start it with `make services` (or point %s at a PostgreSQL with pgvector)",
			Redact(base), err, EnvURL)
	}
	defer conn.Close(context.Background())

	if err := setupOnce(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}

	schema := schemaName(tb.Name())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		if os.Getenv(EnvKeep) != "" {
			tb.Logf("pgtest: kept schema %s (%s is set)", schema, EnvKeep)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			tb.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})

	u, err := WithSearchPath(base, schema+",public")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return u
}

// WithSearchPath returns the connection string conn with its search_path runtime parameter set
// to path. It accepts both URL (postgres://…) and keyword/value (host=… dbname=…) forms.
func WithSearchPath(conn, path string) (string, error) {
	return WithSetting(conn, "search_path", path)
}

// WithSetting returns the connection string conn with the setting name (a runtime parameter
// such as statement_timeout or application_name, or a connection setting) set to value. It
// accepts both URL (postgres://…) and keyword/value (host=… dbname=…) forms.
func WithSetting(conn, name, value string) (string, error) {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err != nil {
			return "", errors.New("parse database URL " + Redact(conn) + ": invalid URL")
		}
		q := u.Query()
		q.Set(name, value)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return conn + " " + name + "='" + strings.ReplaceAll(value, "'", `\'`) + "'", nil
}

// passwordSetting is a password of a keyword/value connection string — password, or
// sslpassword (the passphrase of the client's key) — : the keyword, spaces around = allowed,
// and a value that is a single-quoted string (with backslash escapes; an unterminated one runs
// to the end) or runs to the next space.
var passwordSetting = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'?|\S+)`)

// Redact returns conn with any password replaced by "xxxxx", for messages: the URL's
// user:password@, and the password and sslpassword settings, whether a URL's query parameters
// (pgx takes every setting there) or keyword/value.
func Redact(conn string) string {
	if u, err := url.Parse(conn); err == nil && u.Scheme != "" {
		if u.RawQuery != "" {
			params := strings.Split(u.RawQuery, "&")
			for i, kv := range params {
				k, _, _ := strings.Cut(kv, "=")
				if name, err := url.QueryUnescape(k); err == nil && isPasswordSetting(name) || isPasswordSetting(k) {
					params[i] = k + "=xxxxx"
				}
			}
			u.RawQuery = strings.Join(params, "&")
		}
		return u.Redacted()
	}
	if strings.Contains(conn, "://") {
		// A URL that does not parse (a password with a bare % or a space): masked by its shape.
		return redact.URL(conn)
	}
	return passwordSetting.ReplaceAllStringFunc(conn, func(m string) string {
		return strings.ToLower(passwordSetting.FindStringSubmatch(m)[1]) + "=xxxxx"
	})
}

// isPasswordSetting reports whether name is a connection setting that holds a secret.
func isPasswordSetting(name string) bool {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "password", "sslpassword":
		return true
	}
	return false
}

// schemaName makes a schema name from a test name: t_, up to 30 characters of the name
// (lower-case letters, digits and _), _, 8 random hex digits.
func schemaName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 30 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	return "t_" + b.String() + "_" + hex.EncodeToString(rnd[:])
}
