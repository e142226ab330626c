package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/store"
)

// Two labs' archives in one database, each in a schema of its own: the first lab's role, the
// database's owner, ran its migrations first and so created unaccent (migration 00013) in its
// own schema, the first of its search_path, which the second lab's role may not use. The second
// one's Migrate was refused at 00013 with "permission denied for schema lab1" and the advice to
// be given CREATE on its own schema, where it had just created twelve migrations' tables; it
// now names the extension, the schema it is in, and the grant (or the move) that lets it work.
func TestMigrateSaysWhenUnaccentIsInASchemaTheRoleMayNotUse(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	role, _, as := testRole(t)
	db := freshDatabase(t, "paperpipe_unaccent_elsewhere")
	admin := open(t, db) // creates the vector extension, in public
	if _, err := admin.Pool().Exec(ctx, "CREATE SCHEMA lab1; CREATE EXTENSION unaccent SCHEMA lab1; "+
		"CREATE SCHEMA lab2 AUTHORIZATION "+role); err != nil {
		t.Fatal(err)
	}
	app := open(t, as(withPath(t, db, "lab2,public")))
	err := app.Migrate(ctx)
	if err == nil {
		t.Fatal("Migrate with unaccent in a schema the role may not use succeeded")
	}
	t.Logf("refused: %v", err)
	for _, want := range []string{"unaccent", `schema lab1`, "GRANT USAGE ON SCHEMA lab1 TO " + role, "ALTER EXTENSION unaccent SET SCHEMA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate with unaccent in lab1: %v\nwant it to say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "may not create tables") {
		t.Errorf("Migrate with unaccent in lab1: %v\nwant no advice on a schema privilege the role has", err)
	}
	if _, err := admin.Pool().Exec(ctx, "GRANT USAGE ON SCHEMA lab1 TO "+role); err != nil {
		t.Fatal(err)
	}
	if err := app.Migrate(ctx); err != nil {
		t.Fatalf("Migrate once the role may use lab1: %v", err)
	}
}

// The vector extension created in a schema the role may not use (the first lab's, which the
// database's owner created it in): Open said it was "not on the search_path" while the URL's
// search_path named it, and that adding it there would help; it says the role may not use it.
func TestOpenSaysWhenTheVectorExtensionIsInASchemaTheRoleMayNotUse(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	role, _, as := testRole(t)
	db := freshDatabase(t, "paperpipe_vector_elsewhere")
	admin, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	if _, err := admin.Exec(ctx, "CREATE SCHEMA lab1; CREATE EXTENSION vector SCHEMA lab1; CREATE SCHEMA lab2 AUTHORIZATION "+role); err != nil {
		t.Fatal(err)
	}
	s, err := store.Open(ctx, store.Config{URL: as(withPath(t, db, "lab2,lab1"))})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with the vector extension in a schema the role may not use")
	}
	t.Logf("refused: %v", err)
	for _, want := range []string{`schema "lab1"`, "GRANT USAGE ON SCHEMA lab1 TO " + role} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %v\nwant it to say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "not on the search_path") {
		t.Errorf("Open: %v\nwant no word of a search_path that names the schema", err)
	}
	if _, err := admin.Exec(ctx, "GRANT USAGE ON SCHEMA lab1 TO "+role); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(ctx, store.Config{URL: as(withPath(t, db, "lab2,lab1"))})
	if err != nil {
		t.Fatalf("Open once the role may use lab1: %v", err)
	}
	s.Close()
}

// withPath is connection string conn with its search_path set to path.
func withPath(t *testing.T, conn, path string) string {
	t.Helper()
	u, err := pgtest.WithSearchPath(conn, path)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
