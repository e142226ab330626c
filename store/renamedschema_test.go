package store_test

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/store"
)

// An archive's schema renamed (ALTER SCHEMA a RENAME TO b) keeps its tables, but papers_tsv, the
// trigger that indexes a paper's text, runs with the search_path its migration had, which names
// the old schema: every command started, and every paper written failed with "function
// papers_tsv_of(text, text) does not exist". Migrate, which every command's start runs, refuses
// the schema saying what to run; run, it lets the archive work again.
func TestMigrateRefusesARenamedSchemaSayingWhatToRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	u := pgtest.URL(t)
	if err := open(t, u).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	old, _, _ := strings.Cut(parsed.Query().Get("search_path"), ",")
	renamed := old + "_r"
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	rename := func(from, to string) error {
		_, err := admin.Exec(context.Background(), "ALTER SCHEMA "+pgx.Identifier{from}.Sanitize()+" RENAME TO "+pgx.Identifier{to}.Sanitize())
		return err
	}
	if err := rename(old, renamed); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rename(renamed, old) }) // before pgtest drops it by its name
	nu, err := pgtest.WithSearchPath(u, renamed+",public")
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, nu)
	err = s.Migrate(ctx)
	if !errors.Is(err, store.ErrFunctionPath) {
		t.Fatalf("Migrate of a renamed schema = %v; want ErrFunctionPath", err)
	}
	fixes := regexp.MustCompile(`ALTER FUNCTION [^;]+;`).FindAllString(err.Error(), -1)
	if len(fixes) != 2 || !strings.Contains(err.Error(), "papers_tsv()") || !strings.Contains(err.Error(), "papers_tsv_of(text,text)") {
		t.Fatalf("Migrate of a renamed schema: %v\nwant it to name papers_tsv and papers_tsv_of and an ALTER FUNCTION for each", err)
	}
	for _, fix := range fixes {
		if _, err := s.Pool().Exec(ctx, fix); err != nil {
			t.Fatalf("%s: %v", fix, err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after %q: %v", fixes, err)
	}
	upsert(t, s, abstracts(1), store.Work{})
}

// Only paperpipe's functions are checked: another function of the schema whose search_path does
// not name it (a DBA's SECURITY DEFINER function pinned to pg_catalog, as PostgreSQL's manual
// advises) is none of paperpipe's business, and every command starts beside it.
func TestMigrateLeavesOtherFunctionsSearchPathAlone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := setup(t)
	if _, err := s.Pool().Exec(ctx, `CREATE FUNCTION audit_now() RETURNS timestamptz LANGUAGE sql
		SECURITY DEFINER SET search_path = pg_catalog RETURN now()`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate beside a function of the schema pinned to pg_catalog: %v", err)
	}
}
