package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/store"
)

// TestEmbeddedQueueOwnerIsTheSchemaTheServerSays: the embedded queue's owner was read from
// DATABASE_URL alone, so a schema chosen by the database's or the role's settings (ALTER
// DATABASE … SET search_path, ALTER ROLE … SET search_path) was not seen: a worker of a copy
// of the archive in schema "copy" of the same database, reached through such a setting, was
// taken for the archive's and joined its queue, storing its new papers in the copy. The owner
// is now what the server says (current_database(), current_schema()); a directory an earlier
// release recorded from the URL stays the archive's, and is brought up to the new record.
func TestEmbeddedQueueOwnerIsTheSchemaTheServerSays(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base, err := url.Parse(pgtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, base.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	name := fmt.Sprintf("paperpipe_queue_owner_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	db := *base
	db.Path = "/" + name
	plain := db.String() // the database's own search_path: copy, public
	q := db.Query()
	q.Set("search_path", "public")
	db.RawQuery = q.Encode()
	archiveURL := db.String()

	archive, err := store.Open(ctx, store.Config{URL: archiveURL})
	if err != nil {
		t.Fatal(err)
	}
	defer archive.Close()
	if _, err := archive.Pool().Exec(ctx, "CREATE SCHEMA copy; ALTER DATABASE "+name+" SET search_path = copy, public"); err != nil {
		t.Fatal(err)
	}
	copyOf, err := store.Open(ctx, store.Config{URL: plain})
	if err != nil {
		t.Fatal(err)
	}
	defer copyOf.Close()
	owner := func(st *store.Store) string {
		t.Helper()
		o, err := archiveOwner(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if got, want := owner(copyOf), "database "+name+" (schema copy)"; got != want {
		t.Errorf("the copy's archive: %q, want %q", got, want)
	}

	dir := t.TempDir()
	if err := claimDataDir(dir, owner(archive), archiveURL); err != nil {
		t.Fatal(err)
	}
	if err := claimDataDir(dir, owner(copyOf), plain); err == nil {
		t.Error("a worker of the copy in schema copy (the database's search_path) joined the archive's queue")
	} else if !strings.Contains(err.Error(), "is database "+name+" (schema public)'s") || !strings.Contains(err.Error(), "(schema copy)") {
		t.Errorf("the refusal does not name both: %v", err)
	}
	if err := claimDataDir(dir, owner(archive), archiveURL); err != nil {
		t.Errorf("the archive's worker again: %v", err)
	}

	// A directory an earlier release claimed for the archive, from its URL.
	earlier := t.TempDir()
	file := filepath.Join(earlier, queueOwnerFile)
	if err := os.WriteFile(file, []byte(queueOwner(archiveURL)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := claimDataDir(earlier, owner(archive), archiveURL); err != nil {
		t.Fatalf("the archive's worker on the queue an earlier release claimed for it: %v", err)
	}
	if raw, err := os.ReadFile(file); err != nil || string(raw) != owner(archive)+"\n" {
		t.Errorf("the record after the archive's worker: %q, %v; want %q", raw, err, owner(archive)+"\n")
	}
	if err := claimDataDir(earlier, owner(copyOf), plain); err == nil {
		t.Error("a worker of the copy joined the queue an earlier release claimed for the archive")
	}
}

// The owner is written to the data directory and named in the refusal of another archive's
// worker: a DATABASE_URL pgconn cannot parse (which loadConfig refuses first, at start) was
// recorded whole, password and all.
func TestQueueOwnerOfAnUnparsableURLHoldsNoPassword(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"postgres://paperpipe:OwnerSecret@127.0.0.1:5x432/db", "host=h password=my OwnerSecret dbname=db"} {
		if got := queueOwner(u); strings.Contains(got, "OwnerSecret") {
			t.Errorf("queueOwner(%q) = %q, want no password", u, got)
		}
	}
}
