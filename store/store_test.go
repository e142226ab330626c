package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// setup returns a store on a fresh schema of the test database, migrated.
func setup(t *testing.T) *store.Store {
	t.Helper()
	s := open(t, pgtest.URL(t))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func open(t testing.TB, url string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), store.Config{URL: url})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// abstracts makes n distinct papers with ids arxiv:2401.00001 … and titles "Paper 1" ….
func abstracts(n int) []paper.Abstract {
	out := make([]paper.Abstract, n)
	for i := range out {
		out[i] = paper.Abstract{
			ID:       fmt.Sprintf("arxiv:2401.%05d", i+1),
			Title:    fmt.Sprintf("Paper %d", i+1),
			Abstract: fmt.Sprintf("We study problem number %d and report results.", i+1),
			Authors:  []string{"A. Author", fmt.Sprintf("B. Author %d", i)},
		}
	}
	return out
}

// upsert stores papers and fails the test on error.
func upsert(t *testing.T, s *store.Store, papers []paper.Abstract, w store.Work) []store.Pending {
	t.Helper()
	p, err := s.UpsertPapers(t.Context(), papers, w)
	if err != nil {
		t.Fatalf("UpsertPapers: %v", err)
	}
	if len(p) != len(papers) {
		t.Fatalf("UpsertPapers returned %d pendings for %d papers", len(p), len(papers))
	}
	return p
}

func countRows(t *testing.T, s *store.Store, table string) int64 {
	t.Helper()
	var n int64
	if err := s.Pool().QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	st, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	if len(st) == 0 || st[0].Name != "00001_init.sql" || st[0].Version != 1 {
		t.Fatalf("MigrationStatus = %+v, want 00001_init.sql first", st)
	}
	for _, m := range st {
		if !m.Applied || m.AppliedAt.IsZero() {
			t.Errorf("migration %s not applied: %+v", m.Name, m)
		}
	}
	// goose's table lives in the test schema, beside the tables it versions.
	var schema, gooseSchema string
	err = s.Pool().QueryRow(ctx, `SELECT current_schema(),
		coalesce((SELECT schemaname FROM pg_tables WHERE tablename = 'goose_db_version' AND schemaname = current_schema()), '')`).
		Scan(&schema, &gooseSchema)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(schema, "t_") || gooseSchema != schema {
		t.Errorf("current schema %q, goose table in %q", schema, gooseSchema)
	}
}

func TestMigrationStatusBeforeMigrate(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.URL(t))
	st, err := s.MigrationStatus(t.Context())
	if err != nil {
		t.Fatalf("MigrationStatus: %v", err)
	}
	if len(st) == 0 {
		t.Fatal("no migrations listed")
	}
	for _, m := range st {
		if m.Applied {
			t.Errorf("%s applied on a fresh schema", m.Name)
		}
	}
}

// TestCheckSchemaNamesWhatIsMissingAndAppliesNothing: the check of a read replica
// passes only on a schema with every migration, and never migrates itself.
func TestCheckSchemaNamesWhatIsMissingAndAppliesNothing(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.URL(t))
	ctx := t.Context()
	err := s.CheckSchema(ctx)
	if !errors.Is(err, store.ErrSchemaBehind) || !strings.Contains(err.Error(), "no migration yet") {
		t.Fatalf("CheckSchema of an empty schema = %v, want ErrSchemaBehind saying it has no migration", err)
	}
	if n := countRows(t, s, "pg_tables WHERE tablename = 'goose_db_version' AND schemaname = current_schema()"); n != 0 {
		t.Fatal("CheckSchema created goose's table (a standby refuses that)")
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema after Migrate: %v", err)
	}
	st, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := st[len(st)-1]
	if _, err := s.Pool().Exec(ctx, "DELETE FROM goose_db_version WHERE version_id = $1", last.Version); err != nil {
		t.Fatal(err)
	}
	err = s.CheckSchema(ctx)
	if !errors.Is(err, store.ErrSchemaBehind) || !strings.Contains(err.Error(), last.Name) {
		t.Fatalf("CheckSchema of a schema without its last migration = %v, want ErrSchemaBehind naming %s", err, last.Name)
	}
	if applied, err := s.MigrationStatus(ctx); err != nil || applied[len(applied)-1].Applied {
		t.Fatalf("CheckSchema applied %s (%v)", last.Name, err)
	}
}

// TestMigrateOnAReadOnlyDatabaseSaysMigrationsGoToThePrimary: on a hot standby (here a
// session whose transactions are read-only, as a standby's are) pending migrations cannot be
// applied; the error says why instead of only PostgreSQL's "read-only transaction".
func TestMigrateOnAReadOnlyDatabaseSaysMigrationsGoToThePrimary(t *testing.T) {
	t.Parallel()
	s := open(t, withParams(t, pgtest.URL(t), map[string]string{"default_transaction_read_only": "on"}))
	err := s.Migrate(t.Context())
	if err == nil || !strings.Contains(err.Error(), "read-only") || !strings.Contains(err.Error(), "applied on the primary") {
		t.Fatalf("Migrate on a read-only database = %v, want it to say migrations are applied on the primary", err)
	}
}

// TestOpenRefusedNamesTheTargetAndHidesPassword: a refused connection names the server and
// database, never the password; it suggested `make services` whatever the address, which
// serves only 127.0.0.1:55432 (wrong for a remote host, another port, a production probe): the
// hint is for that address only.
func TestOpenRefusedNamesTheTargetAndHidesPassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there.
	_, err := store.Open(ctx, store.Config{URL: "postgres://someone:s3cretpw@127.0.0.1:1/nodb?sslmode=disable&connect_timeout=5"})
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	msg := err.Error()
	if strings.Contains(msg, "s3cretpw") {
		t.Errorf("error reveals the password: %s", msg)
	}
	for _, want := range []string{"nothing is listening there", "127.0.0.1:1", "nodb"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "make services") {
		t.Errorf("error %q suggests `make services` for an address it does not serve", msg)
	}
}

// silentServer listens on a loopback port that accepts connections and never answers: another
// service's port that waits for its client to speak, a port-forward or a load balancer whose
// database is gone.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		held []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accepted, never answered
			mu.Unlock()
		}
	}()
	return ln.Addr().String()
}

// TestOpenSilentServerFailsAndSaysSo: DATABASE_URL naming a port that accepts connections but
// never answers made every command hang at start for ever (no connect timeout, a ping without
// deadline), where README promises that a process started while the database cannot be used
// exits 1 at once, naming it. Open gives up after DefaultConnectTimeout, or the URL's own
// connect_timeout, and says what the address did.
func TestOpenSilentServerFailsAndSaysSo(t *testing.T) {
	t.Parallel()
	addr := silentServer(t)
	closed := freeAddr(t)
	for _, tc := range []struct {
		hosts, query, within string
	}{
		{addr, "sslmode=disable", store.DefaultConnectTimeout.String()},
		{addr, "connect_timeout=1", "1s"}, // sslmode=prefer: its TLS request waits for an answer too
		// Of several hosts, the message names the one that went silent, not the first.
		{closed + "," + addr, "sslmode=disable&connect_timeout=1", "1s"},
	} {
		// The test's own limit: well above what Open should take, well below "for ever".
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		st, err := store.Open(ctx, store.Config{URL: "postgres://paperpipe@" + tc.hosts + "/x?" + tc.query})
		ctxErr := ctx.Err()
		cancel()
		if err == nil {
			st.Close()
			t.Fatalf("%s: Open succeeded against a server that never answers", tc.query)
		}
		if ctxErr != nil {
			t.Fatalf("%s: Open returned only when the caller's context ended: %v", tc.query, err)
		}
		for _, want := range []string{addr + " accepted the connection but did not answer as PostgreSQL within " + tc.within, "connect_timeout"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: Open: %v; want it to say %q", tc.query, err, want)
			}
		}
	}
}

// freeAddr is a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestOpenBadURLHidesPassword(t *testing.T) {
	t.Parallel()
	_, err := store.Open(t.Context(), store.Config{URL: "postgres://someone:s3cretpw@127.0.0.1:notaport/db"})
	if err == nil {
		t.Fatal("Open accepted a malformed URL")
	}
	if strings.Contains(err.Error(), "s3cretpw") {
		t.Errorf("error reveals the password: %v", err)
	}
	// Shapes pgx's own redaction misses: an "@" in a URL's password (the rest of it becomes
	// the host), an escaped space in a key/value password, an unescaped one (pgconn's error
	// quotes the word after it), an invalid escape (url.Parse's error quotes the URL whole).
	for _, u := range []string{
		"postgres://someone:p@ssS3cretpw@127.0.0.1:1/db",
		`host=127.0.0.1 user=someone password=my\ S3cretpw port=x`,
		`host=127.0.0.1 user=someone password=my S3cretpw dbname=db`,
		"postgres://someone:S3cret%zzpw@127.0.0.1:1/db",
	} {
		_, err := store.Open(t.Context(), store.Config{URL: u})
		if err == nil || strings.Contains(err.Error(), "S3cret") || strings.Contains(err.Error(), "cretpw") {
			t.Errorf("Open(%q): %v, want an error that does not show the password", u, err)
		}
	}
	if _, err := store.Open(t.Context(), store.Config{URL: "postgres://someone:p@ss@127.0.0.1:1/db"}); err == nil || !strings.Contains(err.Error(), "%40") {
		t.Errorf("Open with an \"@\" in the password: %v, want the advice to write it %%40", err)
	}
	if _, err := store.Open(t.Context(), store.Config{}); err == nil || !strings.Contains(err.Error(), "URL") {
		t.Errorf("Open with no URL: %v, want an error naming URL", err)
	}
}

// TestOpenURLOfAnotherShapeSaysWhatIsWanted: a DATABASE_URL with another scheme than pgx
// reads (mysql://, POSTGRES://, a JDBC URL) or none at all (host:port/db) was reported as a
// failed parse of "keyword/value" settings — words that name neither the mistake nor the fix.
func TestOpenURLOfAnotherShapeSaysWhatIsWanted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"mysql://someone:S3cretpw@127.0.0.1:5432/db", `its scheme is "mysql"`},
		{"POSTGRES://someone@127.0.0.1:5432/db", `its scheme is "POSTGRES"`},
		{"jdbc:postgresql://127.0.0.1:5432/db", `its scheme is "jdbc:postgresql"`},
		{"someone:S3cretpw@127.0.0.1:5432/db", "no scheme"},
		// A password with "://" in it: what precedes it is no scheme, and is not shown.
		{"someone:S3cret://pw@127.0.0.1:5432/db", "its scheme is not postgres"},
		{"127.0.0.1:5432/db", "no scheme"},
	} {
		_, err := store.Open(t.Context(), store.Config{URL: tc.url})
		if err == nil {
			t.Errorf("Open(%q) succeeded", tc.url)
			continue
		}
		msg := err.Error()
		for _, want := range []string{tc.want, "postgres://USER@HOST:PORT/DATABASE"} {
			if !strings.Contains(msg, want) {
				t.Errorf("Open(%q): %v; want it to say %q", tc.url, err, want)
			}
		}
		if strings.Contains(msg, "keyword/value") || strings.Contains(msg, "S3cret") {
			t.Errorf("Open(%q): %v; want no keyword/value parse error and no password", tc.url, err)
		}
		if !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("Open(%q): %v; want paper.ErrInvalid", tc.url, err)
		}
	}
	// Keyword/value settings stay what they are: their own error.
	if _, err := store.Open(t.Context(), store.Config{URL: "host=127.0.0.1 port=x"}); err == nil || strings.Contains(err.Error(), "scheme") {
		t.Errorf("Open of keyword/value settings with a bad port: %v, want their own error", err)
	}
}

// freshDatabase creates a database of its own on the test server, named prefix and a number,
// without the vector extension, dropped at the test's end, and returns its URL.
func freshDatabase(t *testing.T, prefix string) string {
	t.Helper()
	base, err := url.Parse(pgtest.BaseURL())
	if err != nil {
		t.Fatalf("the test database URL is not a URL: %v", err)
	}
	admin, err := pgx.Connect(t.Context(), base.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	name := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
	if _, err := admin.Exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create a fresh database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	fresh := *base
	fresh.Path = "/" + name
	return fresh.String()
}

// TestOpenCreatesTheVectorExtensionOnAFreshDatabase: a new database on a server with pgvector
// installed needs no manual CREATE EXTENSION when its owner runs paperpipe (the connection's
// types need the extension before Migrate could create it).
func TestOpenCreatesTheVectorExtensionOnAFreshDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := store.Open(ctx, store.Config{URL: freshDatabase(t, "paperpipe_fresh")})
	if err != nil {
		t.Fatalf("Open on a database without the vector extension: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	var version string
	if err := s.Pool().QueryRow(ctx, "SELECT extversion FROM pg_extension WHERE extname = 'vector'").Scan(&version); err != nil {
		t.Errorf("the vector extension after Open: %v", err)
	}
	s.Close()
}

// TestOpenOnAFreshDatabaseWhileAnotherCreatesTheExtension: processes started together on a
// new database (`up` and `ingest`, the pods of a first deployment) each create the vector
// extension as they connect. The one whose CREATE EXTENSION IF NOT EXISTS ran while another
// session's was not yet committed got a unique violation once it was, and stopped saying the
// extension was not created and its role could not create it — to run CREATE EXTENSION as a
// superuser, though the extension was there. It uses the extension the other created.
func TestOpenOnAFreshDatabaseWhileAnotherCreatesTheExtension(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	fresh := freshDatabase(t, "paperpipe_fresh_race")
	other, err := pgx.Connect(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close(context.Background()) })
	watch, err := pgx.Connect(ctx, fresh) // outside the transaction, whose statistics would stand still
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watch.Close(context.Background()) })
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "CREATE EXTENSION vector"); err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	go func() {
		s, err := store.Open(ctx, store.Config{URL: fresh})
		if err == nil {
			s.Close()
		}
		opened <- err
	}()
	// Open's CREATE EXTENSION waits for the other session's: commit that once it does.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting bool
		if err := watch.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'CREATE EXTENSION%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case err := <-opened:
			t.Fatalf("Open on a database whose extension another session is creating did not wait for it: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Open's CREATE EXTENSION does not wait for the other session's after 30s")
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-opened:
		if err != nil {
			t.Errorf("Open while another session created the vector extension: %v; want it to use that extension", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Open still waits 30s after the other session committed")
	}
}

// TestOpenSaysWhereAVectorExtensionOffTheSearchPathIs: on a database whose vector extension
// lives in a schema that is not on the connection's search_path (hosted services create it in
// a schema of their own), Open must say which schema and how to add it, not that it created
// the extension and then found no type.
func TestOpenSaysWhereAVectorExtensionOffTheSearchPathIs(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(pgtest.URL(t)) // search_path: the test's schema, then public, the extension's
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema, _, _ := strings.Cut(q.Get("search_path"), ",")
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	s, err := store.Open(t.Context(), store.Config{URL: u.String()})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded without the vector type on the search_path")
	}
	for _, want := range []string{`schema "public"`, "not on the search_path (" + schema + ")", "search_path=" + schema + ",public"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %v\nwant it to say %q", err, want)
		}
	}
}

// TestOpenHonoursTheURLsPoolMaxConns: DATABASE_URL's pool_max_conns bounds the pool unless
// Config.MaxConns says otherwise; without either the pool gets the store's default.
func TestOpenHonoursTheURLsPoolMaxConns(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	def := max(8, int32(4*runtime.GOMAXPROCS(0)))
	for _, tc := range []struct {
		url  string
		cfg  int32
		want int32
	}{
		{u + "&pool_max_conns=4", 0, 4},
		{u + "&pool_max_conns=4", 5, 5},
		{u + "&pool_max_conns=2", 6, 6}, // MaxConns decides
		{u, 0, def},
		{u, 5, 5},
	} {
		s, err := store.Open(t.Context(), store.Config{URL: tc.url, MaxConns: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Pool().Config().MaxConns; got != tc.want {
			t.Errorf("URL %s, MaxConns %d: the pool has MaxConns %d, want %d", pgtest.Redact(tc.url), tc.cfg, got, tc.want)
		}
		s.Close()
	}
}

// TestOpenRefusesAPoolTooSmallForTheStoresOwnLocks: a pool of fewer than store.MinConns
// connections hangs a batch run or a reprocess for ever (the store's session locks keep up to
// three connections while their holder's statements wait for another). Open refuses it, naming
// the setting and the minimum, as paper.ErrInvalid, before connecting.
func TestOpenRefusesAPoolTooSmallForTheStoresOwnLocks(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	for _, tc := range []struct {
		url     string
		cfg     int32
		setting string
	}{
		{u + "&pool_max_conns=1", 0, "pool_max_conns is 1"},
		{u + "&pool_max_conns=3", 0, "pool_max_conns is 3"},
		{u, 3, "MaxConns is 3"},
		{u + "&pool_max_conns=8", 2, "MaxConns is 2"},
	} {
		s, err := store.Open(t.Context(), store.Config{URL: tc.url, MaxConns: tc.cfg})
		if err == nil {
			s.Close()
		}
		if !errors.Is(err, paper.ErrInvalid) || !strings.Contains(err.Error(), tc.setting) ||
			!strings.Contains(err.Error(), "minimum of 4") {
			t.Errorf("Open with URL %s, MaxConns %d: %v; want paper.ErrInvalid saying %q and the minimum, 4",
				pgtest.Redact(tc.url), tc.cfg, err, tc.setting)
		}
	}
}

// TestCheckURLRefusesAPoolTooSmallAsOpenDoes: the paperpipe command checks DATABASE_URL with
// CheckURL before it connects, so its refusal of a pool_max_conns below the minimum is what the
// user reads; it said the minimum without why ("below the minimum of 4"), where Open's says
// what the connections are for. Both now give the same words, and say what to do.
func TestCheckURLRefusesAPoolTooSmallAsOpenDoes(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t) + "&pool_max_conns=3"
	checked := store.CheckURL(u)
	s, opened := store.Open(t.Context(), store.Config{URL: u})
	if opened == nil {
		s.Close()
	}
	if !errors.Is(checked, paper.ErrInvalid) || opened == nil || checked.Error() != opened.Error() {
		t.Errorf("CheckURL with pool_max_conns=3: %v\nOpen: %v\nwant the same refusal, paper.ErrInvalid", checked, opened)
	}
	// What to do, not only what is wrong.
	if checked == nil || !strings.Contains(checked.Error(), "raise it to 4 or more, or leave it out for the default") {
		t.Errorf("CheckURL with pool_max_conns=3: %v; want it to say to raise it or leave it out", checked)
	}
}

// TestMigrateWarnsOfADatabaseMigratedByANewerPaperpipe: a binary older than the database's
// schema (a rollback, an old binary left on a machine, a pod of the previous release) ran
// against it without a word: goose passes over applied versions it does not know. Migrate now
// warns, naming them, and MigrationStatus (`paperpipe migrate`) lists them.
func TestMigrateWarnsOfADatabaseMigratedByANewerPaperpipe(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	s := open(t, u)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	known, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range known {
		if m.Unknown {
			t.Fatalf("MigrationStatus of an up-to-date schema lists %+v as unknown", m)
		}
	}
	future := known[len(known)-1].Version + 1
	if _, err := s.Pool().Exec(ctx, "INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)", future); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	old, err := store.Open(ctx, store.Config{URL: u, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Migrate(ctx); err != nil {
		t.Fatalf("Migrate of a schema with a newer migration: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "newer than this paperpipe's") ||
		!strings.Contains(out, fmt.Sprintf("unknown_migrations=[%d]", future)) {
		t.Errorf("Migrate logged %q, want a warning naming migration %d", out, future)
	}
	st, err := old.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := st[len(st)-1]
	if len(st) != len(known)+1 || last.Version != future || !last.Unknown || !last.Applied || last.AppliedAt.IsZero() {
		t.Errorf("MigrationStatus ends with %+v (%d entries), want migration %d applied and unknown after the %d known", last, len(st), future, len(known))
	}
	if err := old.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema: %v", err)
	}
}

// TestPingAnswersWhileEveryPoolConnectionIsBusy: Ping is what readiness probes and a worker's
// "does the database answer?" ask. Slow searches holding every connection of the pool mean a
// busy process, not a database that does not answer: Ping must not wait for one of them (a
// probe's timeout would report the database failed, and take every replica out of the load
// balancer at once under load).
func TestPingAnswersWhileEveryPoolConnectionIsBusy(t *testing.T) {
	t.Parallel()
	s, err := store.Open(t.Context(), store.Config{URL: pgtest.URL(t), MaxConns: store.MinConns})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range store.MinConns {
		c, err := s.Pool().Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
	}
	if n, max := s.Pool().Stat().AcquiredConns(), s.Pool().Stat().MaxConns(); n != max {
		t.Fatalf("%d of %d connections held, want all", n, max)
	}
	for i := range 3 { // the probe's connection is kept, and serves the next ping
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := s.Ping(ctx)
		cancel()
		if err != nil {
			t.Fatalf("ping %d with every pool connection held: %v; want the database's answer", i+1, err)
		}
	}
}

// TestPingAnswersWhileTheServerTakesNoNewConnection: a server whose max_connections are used
// up (by other clients, a leak elsewhere) refuses new connections, and the pool's connections
// go on answering: the process serves its reads. Ping, readiness's check, pinged on a
// connection of its own, which it must make again now and then (a connection's lifetime, a
// restart) — refused, "too many connections", every replica left the load balancer at once
// though each could serve. Here the role's CONNECTION LIMIT, set to the connections it has,
// refuses the next one as a full server does (SQLSTATE 53300).
func TestPingAnswersWhileTheServerTakesNoNewConnection(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	conn := pgtest.URL(t)
	owner := open(t, conn)
	if err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, pgtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	role := fmt.Sprintf("paperpipe_full_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the store's Close (cleanups run last first)
		bg := context.Background()
		_, _ = admin.Exec(bg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
		if _, err := admin.Exec(bg, "DROP OWNED BY "+role+"; DROP ROLE IF EXISTS "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	var schema string
	if err := owner.Pool().QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Pool().Exec(ctx, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s",
		schema, role, schema, role)); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	s := open(t, u.String()) // its pool connects
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER ROLE %s CONNECTION LIMIT %d", role, n)); err != nil {
		t.Fatal(err)
	}
	if c, err := pgx.Connect(ctx, u.String()); err == nil {
		_ = c.Close(ctx)
		t.Fatalf("a new connection of %s was taken beyond its %d", role, n)
	}
	if _, err := s.ActiveSpace(ctx); err != nil && !errors.Is(err, paper.ErrNotFound) {
		t.Fatalf("a read on the pool's connection while the server takes no new one: %v", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Ping(pctx); err != nil {
		t.Errorf("Ping while the server takes no new connection and the pool's answer: %v; want the database's answer", err)
	}
}

// testRole creates a role of its own (NOLOGIN, dropped at the test's end) and returns its name,
// the test's own user, and a function that makes a connection string connect as that role: it
// connects as the test's user and takes on role (SET ROLE at the start of each session), so
// no password or pg_hba entry of its own is needed.
func testRole(t *testing.T) (role, superuser string, as func(conn string) string) {
	t.Helper()
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, pgtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	role = fmt.Sprintf("paperpipe_app_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" NOLOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the databases are dropped (cleanups run last first)
		if _, err := admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	if err := admin.QueryRow(ctx, "SELECT current_user").Scan(&superuser); err != nil {
		t.Fatal(err)
	}
	return role, superuser, func(conn string) string {
		u, err := url.Parse(conn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("role", role)
		u.RawQuery = q.Encode()
		return u.String()
	}
}

// TestMigrateRefusedAPrivilegeSaysWhatTheRoleLacks: a dump restored by an administrator leaves
// the tables to the administrator, and a role that does not own a database may not create
// tables in its public schema (PostgreSQL 15 on); paperpipe's role, which is neither a
// superuser nor their owner, was told only "permission denied for table goose_db_version" (or
// "for schema public"). The error now says whose the tables are and what to run.
func TestMigrateRefusedAPrivilegeSaysWhatTheRoleLacks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	role, superuser, as := testRole(t)

	restored := freshDatabase(t, "paperpipe_admin_restore")
	owner := open(t, restored) // the administrator: creates the extension and the tables
	if err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	err := open(t, as(restored)).Migrate(ctx)
	if err == nil {
		t.Fatal("Migrate by a role that owns no table succeeded")
	}
	for _, want := range []string{"permission denied", "belong to " + superuser, "not to " + role, "--no-owner --role=" + role, "OWNER TO " + role} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate on another role's tables: %v\nwant it to say %q", err, want)
		}
	}

	notOwned := freshDatabase(t, "paperpipe_not_owned")
	if _, err := open(t, notOwned).Pool().Exec(ctx, "SELECT 1"); err != nil { // creates the extension, as an administrator would
		t.Fatal(err)
	}
	err = open(t, as(notOwned)).Migrate(ctx)
	if err == nil {
		t.Fatal("Migrate by a role that may not create tables succeeded")
	}
	for _, want := range []string{"may not create tables in schema public", "OWNER TO " + role, "GRANT CREATE ON SCHEMA public TO " + role} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate in a database the role does not own: %v\nwant it to say %q", err, want)
		}
	}
}

// TestMigrateRefusesARoleThatDoesNotOwnTheTables: a role granted every right on the tables
// without owning them migrated (with nothing to apply) and went to work, and failed only when a
// new space's index was built — minutes into a `reprocess`, or a worker's start with a new
// model — with PostgreSQL's bare "must be owner of table embeddings" (and so would the next
// release's migrations). It is refused at start, saying who owns the tables and what to run; a
// role that has the owner's rights (a member of it) is not.
func TestMigrateRefusesARoleThatDoesNotOwnTheTables(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	role, superuser, as := testRole(t)
	db := freshDatabase(t, "paperpipe_granted")
	owner := open(t, db)
	if err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Pool().Exec(ctx, "GRANT ALL ON ALL TABLES IN SCHEMA public TO "+role+
		"; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO "+role+"; GRANT CREATE ON SCHEMA public TO "+role); err != nil {
		t.Fatal(err)
	}
	granted := open(t, as(db))
	err := granted.Migrate(ctx)
	if err == nil {
		_, err = granted.EnsureSpace(ctx, paper.Space{Model: "m", Dimensions: 3, Template: "title+abstract"})
		t.Fatalf("Migrate by a role that owns none of the tables succeeded; a new space then: %v", err)
	}
	for _, want := range []string{"belong to " + superuser, "not to " + role, "index", "OWNER TO " + role} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate by a role granted rights on another role's tables: %v\nwant it to say %q", err, want)
		}
	}

	if _, err := owner.Pool().Exec(ctx, "GRANT "+superuser+" TO "+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = owner.Pool().Exec(context.Background(), "REVOKE "+superuser+" FROM "+role) })
	member := open(t, as(db))
	if err := member.Migrate(ctx); err != nil {
		t.Fatalf("Migrate by a member of the tables' owner: %v", err)
	}
	if _, err := member.EnsureSpace(ctx, paper.Space{Model: "m", Dimensions: 3, Template: "title+abstract"}); err != nil {
		t.Fatalf("a new space by a member of the tables' owner: %v", err)
	}
}

// A URL that names no database connects to the one named after its user (PostgreSQL's rule):
// with postgres://paperpipe@host/ that is an archive's own database, which then got the
// migrations of a command meant for another (two helpers did so by mistake). Open says which
// database it goes to; a misspelt sslmode is told with the values it may take.
func TestOpenSaysWhenTheURLNamesNoDatabase(t *testing.T) {
	t.Setenv("PGDATABASE", "") // it would name one
	for _, tc := range []struct {
		url  string
		warn bool
	}{
		{"postgres://nobody@127.0.0.1:1/?connect_timeout=1", true},
		{"postgres://nobody@127.0.0.1:1?connect_timeout=1", true},
		{"host=127.0.0.1 port=1 user=nobody connect_timeout=1", true},
		{"postgres://nobody@127.0.0.1:1/db?connect_timeout=1", false},
		{"host=127.0.0.1 port=1 user=nobody dbname=db connect_timeout=1", false},
	} {
		var buf bytes.Buffer
		st, err := store.Open(t.Context(), store.Config{URL: tc.url, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err == nil {
			st.Close()
		}
		got := strings.Contains(buf.String(), "names no database")
		if got != tc.warn || (got && !strings.Contains(buf.String(), "database=nobody")) {
			t.Errorf("Open(%q) logged %q; want a warning naming database nobody: %v", tc.url, buf.String(), tc.warn)
		}
	}
	_, err := store.Open(t.Context(), store.Config{URL: "postgres://nobody@127.0.0.1:1/db?sslmode=disabled"})
	if err == nil || !strings.Contains(err.Error(), "verify-full") {
		t.Errorf("Open with sslmode=disabled: %v; want the values sslmode may take", err)
	}
}
