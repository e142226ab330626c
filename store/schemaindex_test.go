package store_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// schemaOf is the first schema of the search_path a pgtest URL sets.
func schemaOf(t *testing.T, conn string) string {
	t.Helper()
	u, err := url.Parse(conn)
	if err != nil {
		t.Fatal(err)
	}
	schema, _, _ := strings.Cut(u.Query().Get("search_path"), ",")
	return schema
}

// schemaIndexes lists the HNSW indexes of embeddings in schema, by name.
func schemaIndexes(t *testing.T, s *store.Store, schema string) []string {
	t.Helper()
	var names []string
	if err := s.Pool().QueryRow(t.Context(), `SELECT coalesce(array_agg(indexname::text ORDER BY indexname), '{}')
		FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'embeddings_hnsw_s%'`, schema).Scan(&names); err != nil {
		t.Fatal(err)
	}
	return names
}

// A second archive in a schema of its own, whose search_path names the first archive's schema
// after its own (a copy in schema copy of the archive in public, with search_path=copy,public
// to find the vector extension there, as the README's copy does): both have a space 1 and an
// index named embeddings_hnsw_s1. The second one's space, loaded without its index, is told
// apart from the first's: listed without an index, given one by BuildSpaceIndex, and its
// reindex and drop leave the first archive's index alone — its index was looked up, and
// dropped, by a name the search_path resolved into the other schema (the first archive's
// unfinished embeddings_hnsw_s1_new too, which the second has none of).
func TestAnArchiveNeverTakesAnotherSchemasIndexForItsOwn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	firstURL := pgtest.URL(t)
	first := open(t, firstURL)
	if err := first.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	firstSchema := schemaOf(t, firstURL)
	sp := paper.Space{Model: "m", Dimensions: 3, Template: "title+abstract"}
	if _, err := first.EnsureSpace(ctx, sp); err != nil {
		t.Fatal(err)
	}

	// The first archive's reindex was interrupted: its unfinished index is left, by name.
	if _, err := first.Pool().Exec(ctx, "CREATE INDEX embeddings_hnsw_s1_new ON "+pgx.Identifier{firstSchema, "embeddings"}.Sanitize()+" (space_id)"); err != nil {
		t.Fatal(err)
	}

	secondURL := pgtest.URL(t)
	secondSchema := schemaOf(t, secondURL)
	secondURL, err := pgtest.WithSearchPath(secondURL, secondSchema+","+firstSchema+",public")
	if err != nil {
		t.Fatal(err)
	}
	second := open(t, secondURL)
	if err := second.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	loaded, created, err := second.EnsureSpaceForLoad(ctx, sp)
	if err != nil || !created || loaded.ID != 1 {
		t.Fatalf("EnsureSpaceForLoad in the second schema: %+v, created %v, %v; want space 1, created", loaded, created, err)
	}
	spaces, err := second.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(spaces) != 1 || spaces[0].IndexName != "" || spaces[0].UnfinishedIndex != "" {
		t.Errorf("the second archive's spaces before its index is built: %+v; want space 1 listed without an index", spaces)
	}
	built, err := second.BuildSpaceIndex(ctx, loaded.ID, store.IndexSettings{})
	if err != nil || !built {
		t.Errorf("BuildSpaceIndex of the second archive's space = %v, %v; want it built", built, err)
	}
	if got := schemaIndexes(t, second, secondSchema); len(got) != 1 {
		t.Errorf("the second archive's indexes after its build: %v; want embeddings_hnsw_s1", got)
	}

	if _, err := second.Reindex(ctx, loaded.ID, store.IndexHNSW, store.IndexSettings{}); err != nil {
		t.Fatal(err)
	}
	if got := schemaIndexes(t, first, firstSchema); len(got) != 2 {
		t.Errorf("the first archive's indexes after the second's reindex: %v; want its embeddings_hnsw_s1 and embeddings_hnsw_s1_new kept", got)
	}
	if _, err := second.EnsureSpace(ctx, paper.Space{Model: "other", Dimensions: 3, Template: "title+abstract"}); err != nil {
		t.Fatal(err)
	}
	if err := second.Activate(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := second.DropSpace(ctx, loaded.ID, store.DropOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := schemaIndexes(t, first, firstSchema); len(got) != 2 {
		t.Errorf("the first archive's indexes after the second's drop of its space 1: %v; want its embeddings_hnsw_s1 and embeddings_hnsw_s1_new kept", got)
	}
}

// CheckSchema (serve's check of a read replica) of an archive's schema that has no migration
// yet, whose search_path names a migrated archive's schema after its own: goose's version table
// there was taken for its own, and goose then created its own (a standby refuses that: "read-only
// transaction", not "no migration yet").
func TestCheckSchemaNeverTakesAnotherSchemasVersionTableForItsOwn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	firstURL := pgtest.URL(t)
	if err := open(t, firstURL).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	secondURL := pgtest.URL(t)
	secondURL, err := pgtest.WithSearchPath(secondURL, schemaOf(t, secondURL)+","+schemaOf(t, firstURL)+",public")
	if err != nil {
		t.Fatal(err)
	}
	second := open(t, secondURL)
	err = second.CheckSchema(ctx)
	if !errors.Is(err, store.ErrSchemaBehind) || !strings.Contains(err.Error(), "no migration yet") {
		t.Errorf("CheckSchema of a schema with no migration = %v, want ErrSchemaBehind saying it has no migration", err)
	}
	if n := countRows(t, second, "pg_tables WHERE tablename = 'goose_db_version' AND schemaname = current_schema()"); n != 0 {
		t.Error("CheckSchema created goose's table (a standby refuses that)")
	}
}
