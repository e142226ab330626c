package pgtest

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestWithSearchPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?search_path=t_x%2Cpublic&sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db?search_path=t_x%2Cpublic"},
		{"postgres://u@h/db?search_path=other", "postgres://u@h/db?search_path=t_x%2Cpublic"},
		{"host=h dbname=db", "host=h dbname=db search_path='t_x,public'"},
	} {
		got, err := WithSearchPath(tc.in, "t_x,public")
		if err != nil || got != tc.want {
			t.Errorf("WithSearchPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"postgres://user:s3cret@host:5432/db",
		"host=h user=u password=s3cret dbname=db",
	} {
		if got := Redact(in); strings.Contains(got, "s3cret") || !strings.Contains(got, "xxxxx") {
			t.Errorf("Redact(%q) = %q", in, got)
		}
	}
}

// A URL whose password holds a bare % or a space does not parse; Redact masked only the
// keyword/value form then, and printed such a URL's password whole (paperbench's errors).
func TestRedactHidesThePasswordOfAURLThatDoesNotParse(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"postgres://bench:Pa%ss@127.0.0.1:5432/postgres",
		"postgres://bench:Pa ss@127.0.0.1:5432/postgres?sslmode=disable",
	} {
		if got := Redact(in); strings.Contains(got, "Pa") || !strings.Contains(got, "127.0.0.1:5432") {
			t.Errorf("Redact(%q) = %q: the password is shown, or the host is not", in, got)
		}
	}
}

func TestRedactHidesQuotedAndSpacedPasswords(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"host=h user=u password='s3cret with spaces' dbname=db", "host=h user=u password=xxxxx dbname=db"},
		{`host=h password='it\'s s3cret' dbname=db`, "host=h password=xxxxx dbname=db"},
		{"host=h user=u password = s3cret dbname=db", "host=h user=u password=xxxxx dbname=db"},
		{"host=h PASSWORD=s3cret", "host=h password=xxxxx"},
		{"host=h password='unterminated s3cret", "host=h password=xxxxx"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRedactHidesPasswordsGivenAsSettings: pgx takes a password among a URL's query
// parameters too, and a client key's passphrase as sslpassword (in either form); Redact masks
// them all and keeps the other settings.
func TestRedactHidesPasswordsGivenAsSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"postgres://paperpipe@127.0.0.1:55432/paperpipe_test?sslmode=disable&password=s3cret",
			"postgres://paperpipe@127.0.0.1:55432/paperpipe_test?sslmode=disable&password=xxxxx"},
		{"postgres://u@h/db?sslpassword=s3cret&sslkey=/k.pem", "postgres://u@h/db?sslpassword=xxxxx&sslkey=/k.pem"},
		{"postgres://u:s3cret@h/db?PassWord=s3cret", "postgres://u:xxxxx@h/db?PassWord=xxxxx"},
		{"host=h user=u sslpassword=s3cret sslkey=/k.pem", "host=h user=u sslpassword=xxxxx sslkey=/k.pem"},
		{"host=h SSLPASSWORD = 's3cret phrase' password=s3cret", "host=h sslpassword=xxxxx password=xxxxx"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSchemaNameIsASafeIdentifier(t *testing.T) {
	t.Parallel()
	valid := regexp.MustCompile(`^t_[a-z0-9_]{1,30}_[0-9a-f]{8}$`)
	for _, name := range []string{"TestX", "TestResolve/%_'; DROP SCHEMA public; --", strings.Repeat("VeryLongTestName", 10)} {
		got := schemaName(name)
		if !valid.MatchString(got) || len(got) > 63 {
			t.Errorf("schemaName(%q) = %q", name, got)
		}
	}
	// The suffix is random: two tests whose names agree in their first 30 characters, or one
	// test run from two packages at once, must not share a schema.
	if first, second := schemaName("TestX"), schemaName("TestX"); first == second {
		t.Errorf("two schemas of one test got the same name %q", first)
	}
}

// TestURLGivesEachTestItsOwnSchema needs the test database, like every user of this package.
func TestURLGivesEachTestItsOwnSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var schemas [2]string
	for i := range schemas {
		t.Run("sub", func(t *testing.T) {
			conn, err := pgx.Connect(ctx, URL(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schemas[i]); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "CREATE TABLE mine (v vector(3))"); err != nil {
				t.Fatalf("create a table with a vector column in the test schema: %v", err)
			}
		})
	}
	if schemas[0] == schemas[1] || !strings.HasPrefix(schemas[0], "t_") {
		t.Fatalf("schemas %q", schemas)
	}
	conn, err := pgx.Connect(ctx, BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = ANY($1)", schemas[:]).Scan(&left)
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 && !keep() {
		t.Errorf("%d test schemas left after their tests ended", left)
	}
}

func keep() bool { return os.Getenv(EnvKeep) != "" }
