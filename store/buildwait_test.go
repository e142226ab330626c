package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// Every space's index is built with CREATE INDEX CONCURRENTLY since 2026-12-07 — the first
// load of an archive's only space too (import-embeddings, import, a fill's end, activate) — and
// such a build waits for every transaction of the database that holds a snapshot older than
// it: another archive's, in a schema of its own (an export whose reader is slow, a pg_dump, a
// count). The build waited without a word for as long as that lasted — a command that hung,
// its log saying nothing after "loaded". It says which sessions it waits for.
func TestIndexBuildSaysWhichSessionsItWaitsFor(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t)
	only := spaceToBuild(t, s)

	// Another archive of the database, in its own schema: a pg_dump of it is running (a
	// session of its own: the store's sessions end a transaction left idle after 10 s).
	otherURL := pgtest.URL(t)
	if err := open(t, otherURL).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, otherURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	dump, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dump.Rollback(context.Background()) }()
	var pid int32
	if err := dump.QueryRow(ctx, "SELECT pg_backend_pid() FROM (SELECT count(*) FROM papers) n").Scan(&pid); err != nil {
		t.Fatal(err)
	}

	logs, done := buildUntilItSays(t, s, only.ID, "pid "+itoa(int64(pid)))
	if !strings.Contains(logs.String(), "waits for") {
		t.Errorf("the build's log does not say it waits:\n%s", logs.String())
	}
	if err := dump.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("BuildSpaceIndex once the snapshot is gone: %v", err)
	}
}

// A concurrent build waits for the older snapshots one after another, and it named only the
// first it waited for: that one is often a moment's (a worker's write, another test's count),
// and the long wait after it — the pg_dump the message is for — went unsaid (seen: this file's
// first test failing, its build having named another session first). Two older snapshots here:
// the build names the one it waits for, that one ends, and it names the other.
func TestIndexBuildNamesEachSessionItComesToWaitFor(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t)
	only := spaceToBuild(t, s)
	snapshots := map[int32]pgx.Tx{}
	for range 2 {
		conn, err := pgx.Connect(ctx, s.Pool().Config().ConnString())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(context.Background()) }()
		var pid int32
		if err := tx.QueryRow(ctx, "SELECT pg_backend_pid() FROM (SELECT count(*) FROM papers) n").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		snapshots[pid] = tx
	}

	var logs syncLog
	builder, err := store.Open(ctx, store.Config{URL: s.Pool().Config().ConnString(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer builder.Close()
	for _, tx := range snapshots { // before the builder's Close, which waits for the build
		defer func() { _ = tx.Rollback(context.Background()) }()
	}
	done := make(chan error, 1)
	go func() {
		_, err := builder.BuildSpaceIndex(ctx, only.ID, store.IndexSettings{})
		done <- err
	}()
	for len(snapshots) > 0 {
		var named int32
		for deadline := time.Now().Add(time.Minute); named == 0; time.Sleep(20 * time.Millisecond) {
			for pid := range snapshots {
				if strings.Contains(logs.String(), "pid "+itoa(int64(pid))+" ") {
					named = pid
				}
			}
			select {
			case err := <-done:
				t.Fatalf("BuildSpaceIndex returned (%v) while %d older snapshots were open; want it to wait for them\n%s", err, len(snapshots), logs.String())
			default:
			}
			if named == 0 && time.Now().After(deadline) { // a bound, not a measure: it says so within seconds
				t.Fatalf("the build waits for one of pids %v and names none of them in a minute:\n%s", keys(snapshots), logs.String())
			}
		}
		if err := snapshots[named].Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		delete(snapshots, named)
	}
	if err := <-done; err != nil {
		t.Fatalf("BuildSpaceIndex once the snapshots are gone: %v", err)
	}
}

func keys[K comparable, V any](m map[K]V) []K {
	var ks []K
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// The build names the sessions it waits for, and quoted each one's statement (pg_stat_activity's
// query). A session of another role — a DBA's psql, another application of the database — may
// have run one that holds a secret (ALTER ROLE … PASSWORD '…', a query naming a person), which
// paperpipe's role may read (a superuser, or a member of pg_read_all_stats) and which went to
// paperpipe's log, read by whoever reads that. Another role's session is named by its role and
// application, without its statement.
func TestIndexBuildWaitingForAnotherRolesSessionDoesNotQuoteItsStatement(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t)
	only := spaceToBuild(t, s)

	admin, err := pgx.Connect(ctx, pgtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	role := fmt.Sprintf("paperpipe_dba_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := context.Background()
		_, _ = admin.Exec(bg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
		if _, err := admin.Exec(bg, "DROP ROLE IF EXISTS "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	u, err := url.Parse(s.Pool().Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	q := u.Query()
	q.Set("application_name", "psql")
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	const secret = "s3cr3t-of-the-dba"
	var pid int32
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid(), length('"+secret+"')").Scan(&pid, new(int)); err != nil {
		t.Fatal(err)
	}

	logs, done := buildUntilItSays(t, s, only.ID, "pid "+itoa(int64(pid))+" ")
	if got := logs.String(); strings.Contains(got, secret) || !strings.Contains(got, "role "+role) || !strings.Contains(got, "psql") {
		t.Errorf("the build's log of the session of role %s: want it named by its role and application, without its statement:\n%s", role, got)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("BuildSpaceIndex once the snapshot is gone: %v", err)
	}
}

// buildUntilItSays builds the index of space spaceID with a store of its own, whose log it
// returns, once that log says said (the build naming a session it waits for); done gets the
// build's end. It fails the test if the build ends first, or says nothing of it in a minute (a
// bound, not a measure: it says so within seconds). The caller ends the snapshot the build
// waits for before the test ends: the store's Close, at cleanup, waits for the build.
func buildUntilItSays(t *testing.T, s *store.Store, spaceID int64, said string) (logs *syncLog, done <-chan error) {
	t.Helper()
	logs = new(syncLog)
	builder, err := store.Open(t.Context(), store.Config{URL: s.Pool().Config().ConnString(), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(builder.Close)
	ended := make(chan error, 1)
	go func() {
		_, err := builder.BuildSpaceIndex(t.Context(), spaceID, store.IndexSettings{})
		ended <- err
	}()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), said); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-ended:
			t.Fatalf("BuildSpaceIndex returned (%v) while an older snapshot was open; want it to wait for it\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the build waits for a snapshot and says nothing of %q in a minute:\n%s", said, logs.String())
		}
	}
	return logs, ended
}

// spaceToBuild makes the only embedding space of s, on two papers with a vector each, for a
// test of its index build.
func spaceToBuild(t *testing.T, s *store.Store) paper.Space {
	t.Helper()
	ctx := t.Context()
	ps := abstracts(2)
	upsert(t, s, ps, store.Work{})
	only, created, err := s.EnsureSpaceForLoad(ctx, paper.Space{Model: "only", Dimensions: 3, Template: "title+abstract"})
	if err != nil || !created {
		t.Fatalf("EnsureSpaceForLoad = %v, created %v", err, created)
	}
	if _, err := s.LoadEmbeddings(ctx, only.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0, 0), embeddingOf(ps[1], 0, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	return only
}
