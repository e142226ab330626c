package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/store"
)

// TestServeReadsFromAHotStandbyAndWritesUsageToThePrimary runs `paperpipe serve` as an
// operator scaling the query side would: DATABASE_URL names the primary, where the workers
// write, and PAPERPIPE_READ_DATABASE_URL a real hot standby streaming from it. Every query
// is answered from the standby (a change made on the primary while the standby's replay is
// paused is not seen), and the API usage of query embeddings — the one write of serve — goes to
// the primary, which a standby would refuse.
func TestServeReadsFromAHotStandbyAndWritesUsageToThePrimary(t *testing.T) {
	ctx := t.Context()
	primary := startPrimary(t)
	standby, err := primary.StartStandby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(standby.Close)
	pconn := connect(t, primary.URL())
	sconn := connect(t, standby.URL())
	var inRecovery bool
	if err := sconn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("the standby is not in recovery (%v, %v): the test would not test a replica", inRecovery, err)
	}

	s := newStackOn(t, primary.URL(), FakeConfig{})
	s.ingest(20)
	s.ok("worker", "--exit-when-idle")
	waitCount(t, sconn, "SELECT count(*) FROM embeddings", 20)

	// From here the standby sees nothing new: the primary's title changes, the standby's not.
	var id, title string
	if err := pconn.QueryRow(ctx, "SELECT id, title FROM papers ORDER BY id LIMIT 1").Scan(&id, &title); err != nil {
		t.Fatal(err)
	}
	if _, err := sconn.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	if _, err := pconn.Exec(ctx, "UPDATE papers SET title = 'changed on the primary' WHERE id = $1", id); err != nil {
		t.Fatal(err)
	}
	usage := func(conn *pgx.Conn) int {
		var n int
		if err := conn.QueryRow(ctx, "SELECT coalesce(sum(requests), 0) FROM api_usage WHERE kind = 'embedding'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := usage(pconn)

	port, err := nettest.PickPort()
	if err != nil {
		t.Fatal(err)
	}
	env := append(append([]string(nil), s.env...), "PAPERPIPE_READ_DATABASE_URL="+standby.URL())
	srv, err := startProc("serve", filepath.Join(s.dir, "serve.log"), env, nil, bin.Paperpipe, "serve", "--http", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(5 * time.Second) })
	if err := waitTCP(srv, port, time.Minute); err != nil {
		t.Fatalf("serve did not listen: %v\n%s", err, srv.Tail(30))
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	var rec struct {
		Title string `json:"title"`
	}
	if err := getJSON(ctx, base+"/api/papers/"+url.PathEscape(id), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Title != title {
		t.Errorf("GET /api/papers/%s title = %q, want the standby's %q: serve did not read from the replica", id, rec.Title, title)
	}
	var hits struct {
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if err := getJSON(ctx, base+"/api/search?mode=semantic&k=5&q="+url.QueryEscape(title), &hits); err != nil {
		t.Fatal(err)
	}
	if len(hits.Results) != 5 {
		t.Errorf("semantic search on the replica answered %d papers, want 5", len(hits.Results))
	}
	hits.Results = nil
	if err := getJSON(ctx, base+"/api/papers/"+url.PathEscape(id)+"/related?k=3", &hits); err != nil {
		t.Fatal(err)
	}
	if len(hits.Results) != 3 {
		t.Errorf("related on the replica answered %d papers, want 3", len(hits.Results))
	}
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := getJSON(ctx, base+"/readyz", &ready); err != nil {
		t.Fatal(err)
	}
	if ready.Status != "ok" || ready.Checks["database"] != "ok" || ready.Checks["primary"] != "ok" {
		t.Errorf("/readyz = %+v, want ok with the replica (database) and the primary checked", ready)
	}

	// The search's query embedding is in the primary's ledger (written within a second).
	deadline := time.Now().Add(30 * time.Second)
	for usage(pconn) != before+1 {
		if time.Now().After(deadline) {
			t.Fatalf("the primary's ledger has %d embedding requests, want %d (the search's)\n%s", usage(pconn), before+1, srv.Tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := sconn.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
}

func connect(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitCount waits up to a minute for query's count to reach want.
func waitCount(t *testing.T, conn *pgx.Conn, query string, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		if err := conn.QueryRow(t.Context(), query).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d after a minute, want %d", query, n, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A replica that has not replayed the primary's first migration yet, or even the vector
// extension (a new deployment whose standby is a little behind, or paused), is behind as much
// as one that lacks the last migration: serve waits for it (store.ErrSchemaBehind), where it
// failed at once on goose creating its table, or on CREATE EXTENSION, in a read-only database.
func TestAStandbyBehindTheFirstMigrationOrTheExtensionIsBehind(t *testing.T) {
	ctx := t.Context()
	primary := startPrimary(t)
	if err := primary.exec(ctx, "postgres", "CREATE DATABASE fresh"); err != nil {
		t.Fatal(err)
	}
	standby, err := primary.StartStandby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(standby.Close)
	sconn := connect(t, standby.URL())
	if _, err := sconn.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{"chaos", "fresh"} { // chaos has the extension, fresh not
		p, err := store.Open(ctx, store.Config{URL: primary.url(db)})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		p.Close()
		r, err := store.Open(ctx, store.Config{URL: standby.url(db)})
		if err == nil {
			err = r.CheckSchema(ctx)
			r.Close()
		}
		if !errors.Is(err, store.ErrSchemaBehind) {
			t.Errorf("%s: Open and CheckSchema of a standby that has replayed none of it = %v; want an error wrapping ErrSchemaBehind", db, err)
		}
	}
	if _, err := sconn.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(ctx, store.Config{URL: standby.url("fresh")})
	for deadline := time.Now().Add(time.Minute); err == nil || errors.Is(err, store.ErrSchemaBehind); {
		if err == nil {
			if err = r.CheckSchema(ctx); err == nil {
				r.Close()
				return
			}
			r.Close()
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
		r, err = store.Open(ctx, store.Config{URL: standby.url("fresh")})
	}
	t.Errorf("the standby, replaying again, did not catch up within a minute: %v", err)
}

// startPrimary starts a private PostgreSQL from deploy/services.sh's chroot, stopped when the
// test ends. Where none can run — make services on its Docker back end builds no chroot, and
// only root may enter one — the test is skipped, saying why: it failed telling the user to
// run make services, which make test had just done.
func startPrimary(t *testing.T) *Postgres {
	t.Helper()
	if err := chrootUsable(chrootRoot()); err != nil {
		t.Skipf("no private PostgreSQL for a standby here: %v", err)
	}
	primary, err := StartPostgres(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Close)
	return primary
}

// TestWithoutAChrootStartPostgresSaysWhichBackEndBuildsIt: with make services on its Docker back
// end there is no chroot, and the error said "run make services" — which had been run.
func TestWithoutAChrootStartPostgresSaysWhichBackEndBuildsIt(t *testing.T) {
	_, err := StartPostgres(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "chroot back end") || !strings.Contains(err.Error(), "Docker back end builds none") {
		t.Fatalf("StartPostgres without a chroot: %v, want an error saying only the chroot back end builds one", err)
	}
}
