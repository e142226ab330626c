package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// The backup a README section tells users to make: pg_dump of the archive, pg_restore into a
// new database. Every space comes back with its index (the halfvec and binary-code expression
// indexes, the tsvector column of the keyword search) and answers as before; a restore of the
// data alone into a migrated database has no space index until Reindex builds each.
func TestArchiveSurvivesDumpAndRestore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pgDump, pgRestore := pgTools(t)
	half, _ := setupKind(t, store.IndexHNSWHalfvec)
	bin := openKind(t, half.Pool().Config().ConnString(), store.IndexHNSWBinary)
	var schema string
	if err := half.Pool().QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	ps := abstracts(12)
	upsert(t, half, ps, store.Work{})
	spaces := []paper.Space{space(t, half, "halfvec-model", 4), space(t, bin, "binary-model", 4)}
	for _, sp := range spaces {
		var embs []paper.Embedding
		for i, p := range ps {
			embs = append(embs, embeddingOf(p, float32(i%4+1), float32(i%3), float32(i*i%5), 1))
		}
		if _, err := half.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
			t.Fatal(err)
		}
	}
	before := answers(t, half, spaces, ps[0].ID)
	kinds := spacesByID(t, half)

	dump := run(t, pgDump, nil, "-Fc", "-n", schema, "-d", pgtest.BaseURL())
	restored := restoreInto(t, schema, func(url, _ string) {
		run(t, pgRestore, dump, "--no-owner", "--no-comments", "-d", url)
	})
	for id, info := range spacesByID(t, restored) {
		if info.IndexName == "" || info.Index != kinds[id].Index {
			t.Errorf("space %d after the restore: index %q (%s); want its %s index", id, info.IndexName, info.Index, kinds[id].Index)
		}
	}
	if got := answers(t, restored, spaces, ps[0].ID); !slices.Equal(got, before) {
		t.Errorf("after the restore the archive answers\n%q\nwant\n%q", got, before)
	}

	data := run(t, pgDump, nil, "-Fc", "--data-only", "-n", schema, "--exclude-table-data="+schema+".goose_db_version", "-d", pgtest.BaseURL())
	migrated := restoreInto(t, schema, func(url, inSchema string) {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
		_ = conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s := open(t, inSchema)
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		run(t, pgRestore, data, "--data-only", "-d", url)
	})
	for id, info := range spacesByID(t, migrated) {
		if info.IndexName != "" {
			t.Errorf("space %d after a restore of the data alone has index %q; the test expects none", id, info.IndexName)
		}
		if _, err := migrated.Reindex(ctx, id, info.Index, store.IndexSettings{}); err != nil {
			t.Fatalf("Reindex of space %d: %v", id, err)
		}
	}
	for id, info := range spacesByID(t, migrated) {
		if info.IndexName == "" || info.Index != kinds[id].Index {
			t.Errorf("space %d after Reindex: index %q (%s); want its %s index", id, info.IndexName, info.Index, kinds[id].Index)
		}
	}
	if got := answers(t, migrated, spaces, ps[0].ID); !slices.Equal(got, before) {
		t.Errorf("after the restore of the data the archive answers\n%q\nwant\n%q", got, before)
	}
}

// answers are the archive's answers to the same questions: the related papers of id in each
// space (its index kind's query) and a keyword search.
func answers(t *testing.T, s *store.Store, spaces []paper.Space, id string) []string {
	t.Helper()
	var out []string
	for _, sp := range spaces {
		hits, err := s.Related(t.Context(), sp.ID, id, 5)
		if err != nil {
			t.Fatalf("Related in space %d: %v", sp.ID, err)
		}
		for _, h := range hits {
			out = append(out, fmt.Sprintf("space %d: %s %.4f", sp.ID, h.ID, h.Score))
		}
	}
	var n int
	if err := s.Pool().QueryRow(t.Context(), "SELECT count(*) FROM papers WHERE tsv @@ websearch_to_tsquery('english', 'problem')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return append(out, "keyword matches: "+strconv.Itoa(n))
}

// restoreInto creates a database of its own with the vector extension, restores into it with
// fill (given its URL for libpq's tools, and the store's, whose search_path starts with schema),
// and opens a store on it.
func restoreInto(t *testing.T, schema string, fill func(url, inSchema string)) *store.Store {
	t.Helper()
	url := freshDatabase(t, "paperpipe_restore")
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	// As an administrator does for a role that may not: the dump of a schema does not hold them
	// (a dump of the whole database does, and a database's owner may create unaccent).
	_, err = conn.Exec(t.Context(), "CREATE EXTENSION vector; CREATE EXTENSION unaccent")
	_ = conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	inSchema, err := pgtest.WithSearchPath(url, schema+",public")
	if err != nil {
		t.Fatal(err)
	}
	fill(url, inSchema)
	s := open(t, inSchema)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate after the restore: %v", err)
	}
	return s
}

// run runs cmd with args (and stdin when not nil), failing the test with its output on error,
// and returns its standard output.
func run(t *testing.T, cmd []string, stdin []byte, args ...string) []byte {
	t.Helper()
	c := exec.CommandContext(t.Context(), cmd[0], append(slices.Clone(cmd[1:]), args...)...)
	if stdin != nil {
		c.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", filepath.Base(cmd[len(cmd)-1]), args, err, stderr.String())
	}
	return out
}

// pgTools returns the commands that run pg_dump and pg_restore of the test server's major
// version or newer (an older pg_dump refuses the server): the PostgreSQL of deploy/services.sh's
// chroot when it exists and this test runs as root (as chaos.StartPostgres finds it), else those
// on PATH. Without either it skips, saying what to install.
func pgTools(t *testing.T) (pgDump, pgRestore []string) {
	t.Helper()
	var server int
	conn, err := pgx.Connect(t.Context(), pgtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	err = conn.QueryRow(t.Context(), "SELECT current_setting('server_version_num')::int / 10000").Scan(&server)
	_ = conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	root := "/var/lib/paperpipe-services/trixie-root"
	if dir := os.Getenv("PAPERPIPE_SERVICES_DIR"); dir != "" {
		root = filepath.Join(dir, "trixie-root")
	}
	bin := fmt.Sprintf("/usr/lib/postgresql/%d/bin", server)
	if _, err := os.Stat(filepath.Join(root, bin, "pg_dump")); err == nil && os.Geteuid() == 0 {
		if chroot, err := exec.LookPath("chroot"); err == nil {
			in := func(tool string) []string {
				return []string{chroot, root, "/usr/bin/env", "-i", "LC_ALL=C.UTF-8", "PGTZ=UTC", bin + "/" + tool}
			}
			return in("pg_dump"), in("pg_restore")
		}
	}
	dumpPath, derr := exec.LookPath("pg_dump")
	restorePath, rerr := exec.LookPath("pg_restore")
	if derr == nil && rerr == nil {
		out, err := exec.CommandContext(t.Context(), dumpPath, "--version").Output()
		m := regexp.MustCompile(`\) (\d+)`).FindSubmatch(out)
		if err == nil && m != nil {
			if major, _ := strconv.Atoi(string(m[1])); major >= server {
				return []string{dumpPath}, []string{restorePath}
			}
		}
	}
	t.Skipf("no pg_dump and pg_restore of PostgreSQL %d or newer: not in the chroot of deploy/services.sh (%s, run as root) "+
		"nor on PATH (install postgresql-client-%d)", server, root, server)
	return nil, nil
}

// A dump restored part way — pg_restore going on past its errors, as it does when the new
// database has the vector and unaccent extensions in another schema than the dumped one
// (pg_dump writes public.vector) — left no embeddings table and no paperpipe_english, with every
// migration recorded as applied: every command started, and failed at its first query of them
// ("relation \"embeddings\" does not exist"), saying nothing of the restore. Migrate, which every
// command's start runs, refuses the schema naming what it lacks and the likely cause.
func TestMigrateRefusesASchemaRestoredPartWay(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t)
	if _, err := s.Pool().Exec(ctx, "DROP TABLE embeddings; DROP TEXT SEARCH CONFIGURATION paperpipe_english CASCADE"); err != nil {
		t.Fatal(err)
	}
	err := s.Migrate(ctx)
	if !errors.Is(err, store.ErrIncomplete) {
		t.Fatalf("Migrate of a schema without its embeddings table = %v; want ErrIncomplete", err)
	}
	for _, want := range []string{"(embeddings", "paperpipe_english", "restore", "vector in schema public"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate of a schema restored part way: %v\nwant it to say %q", err, want)
		}
	}
	// The tables nothing else of the schema depends on are missed as well.
	for _, table := range []string{"removed_papers", "withheld_tldrs"} {
		s := setup(t)
		if _, err := s.Pool().Exec(ctx, "DROP TABLE "+table+" CASCADE"); err != nil {
			t.Fatal(err)
		}
		if err := s.Migrate(ctx); !errors.Is(err, store.ErrIncomplete) || !strings.Contains(err.Error(), "("+table) {
			t.Errorf("Migrate of a schema without %s = %v; want ErrIncomplete naming it", table, err)
		}
	}
}
