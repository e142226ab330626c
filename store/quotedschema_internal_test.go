package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
)

// An archive in a schema whose name PostgreSQL quotes ("ML-lab": a hyphen, capitals): a
// migration's refusal to wait longer for its table named the sessions holding it for any other
// schema, and none for this one (current_schema()::regnamespace reads the name as SQL, folded
// and unquoted: schema "ml-lab" does not exist, and the look-up's error was dropped).
func TestTheHoldersOfATableAreNamedInASchemaWithAQuotedName(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base := pgtest.URL(t) // the test's own schema, dropped at its end; its search_path is replaced
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	schema := fmt.Sprintf("ML-lab-%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := pgtest.WithSearchPath(base, pgx.Identifier{schema}.Sanitize()+",public")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if got := currentSchema(t, s); got != schema { // before Migrate: never migrate public
		var path string
		_ = s.pool.QueryRow(ctx, "SHOW search_path").Scan(&path)
		t.Fatalf("the store's schema is %q (search_path %s), want %q", got, path, schema)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	holder, err := s.pool.Begin(ctx) // a long search's transaction
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	var pid int32
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid() FROM (SELECT count(*) FROM papers) p").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if got, want := tableHolders(ctx, s.pool, schemaTables), fmt.Sprintf("pid %d (client backend", pid); !strings.Contains(got, want) {
		t.Errorf("the holders of the schema's tables: %q; want them to name %s", got, want)
	}
}
