package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// Values read from files keep the white space around them (a Secret made --from-file keeps its
// final newline, a hand-written env file a space): each setting is its value without it. An
// OPENAI_API_KEY with its newline failed every call ("invalid header field value for
// Authorization"), each retried as a passing failure until its paper was dead-lettered; a
// DATABASE_URL with a space before it connected to the local server's default database.
func TestSettingsWithWhiteSpaceAroundThemAreTheirValues(t *testing.T) {
	t.Parallel()
	const key = "sk-from-a-secret-file"
	api := openaitest.Start(t, openaitest.Config{APIKey: key})
	c := newCLI(t, "OPENAI_API_KEY="+key+"\n", "OPENAI_BASE_URL= "+api.URL()+"\n", "PAPERPIPE_CHAT_MODEL=gpt-4o-mini ")
	if r := c.ok("summarize", sampleFile); len(nonEmptyLines(r.stdout)) != 108 || !strings.Contains(r.stdout, `"model":"gpt-4o-mini"`) {
		t.Errorf("summarize with settings read from files printed %d lines, want 108 TL;DRs of gpt-4o-mini:\n%s", len(nonEmptyLines(r.stdout)), r.stdout)
	}
	for i, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "DATABASE_URL="); ok {
			c.env[i] = "DATABASE_URL= " + v + "\n"
		}
	}
	c.ok("list") // the test's own database, not the local server's default one
}

// A value in quotes — kept by `docker run --env-file` and `kubectl create configmap
// --from-env-file`, which unlike a shell do not remove them — stops every command at once,
// exit 2, naming the variable and not the value (it may be a secret): DATABASE_URL="postgres://…"
// connected to the local server's default database, as a keyword/value string naming nothing,
// and a quoted key or model name was refused by the API on every call.
func TestSettingsInQuotesAreRefused(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	var dbURL string
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "DATABASE_URL="); ok {
			dbURL = v
		}
	}
	for _, kv := range []string{
		`DATABASE_URL="` + dbURL + `"`, `DATABASE_URL='` + dbURL + `'`, `OPENAI_API_KEY="sk-quoted-secret"`,
		`PAPERPIPE_CHAT_MODEL="llama3.2"`, `PAPERPIPE_CONCURRENCY="16"`, `PAPERPIPE_DATA="/srv/paperpipe"`,
	} {
		name, value, _ := strings.Cut(kv, "=")
		r := newCLI(t, kv).run("list")
		if r.code != 2 || !strings.Contains(r.stderr, "paperpipe: "+name+" is in quotes") {
			t.Errorf("list with %s: exit %d, stderr %q; want 2 and a message naming %s and its quotes", kv, r.code, r.stderr, name)
		}
		noSecret(t, "the error of "+name+" in quotes", r.stderr, strings.Trim(value, `"'`))
	}
}

// DATABASE_URL set but empty — a script's `DATABASE_URL=$NEW_DATABASE_URL paperpipe …` (as
// README's restore does) with the variable not set, a template or a Secret without a value —
// was taken as unset: every command went on, without a word, on the default archive
// (postgres://paperpipe@127.0.0.1:55432/paperpipe), migrating it, and `import`, `remove` or
// `tldrs prune` wrote there. It stops every command at once, exit 2, as a value in quotes does.
// (Commands that read no database show it here: on the default archive, the test must not run
// one that does.)
func TestDatabaseURLSetButEmptyIsRefused(t *testing.T) {
	t.Parallel()
	src := writeFile(t, t.TempDir(), "one.jsonl", []byte(`{"id":"2405.00001","title":"Good","abstract":"We study careful input handling in data pipelines. It works."}`+"\n"))
	for _, v := range []string{"", "  "} {
		for _, args := range [][]string{{"version"}, {"summarize", src}} {
			r := newCLI(t, "DATABASE_URL="+v).run(args...)
			if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "paperpipe: DATABASE_URL is set but empty") {
				t.Errorf("%s with DATABASE_URL=%q: exit %d\nstdout: %s\nstderr: %s\nwant 2 naming DATABASE_URL", strings.Join(args, " "), v, r.code, r.stdout, r.stderr)
			}
		}
	}
}

// A DATABASE_URL the store cannot use — another database's scheme (mysql://…), a port that is
// no number, an "@" in the password left unescaped, a pool_max_conns below the store's
// minimum — was found only when a command connected: exit 1, as if the database were down,
// where README promises a bad setting exit 2 with a message. Every command now refuses it at
// once, exit 2, naming the variable and not the value; so do they PAPERPIPE_READ_DATABASE_URL's
// (shown here with serve, which reads it, and status: a command that would run on
// DATABASE_URL's archive must not be run here).
func TestDatabaseURLTheStoreCannotUseIsASettingsError(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	var names []string
	for _, cmd := range commands() {
		names = append(names, cmd.name)
	}
	for _, u := range []string{
		"mysql://someone:S3cretpw@127.0.0.1:3306/db", "postgres://someone:S3cretpw@127.0.0.1:port/db",
		"postgres://someone:S3cret@pw@127.0.0.1:5432/db", "postgres://someone:S3cretpw@127.0.0.1:5432/db?pool_max_conns=1",
	} {
		for _, v := range []struct {
			name string
			cmds []string
		}{{"DATABASE_URL", names}, {"PAPERPIPE_READ_DATABASE_URL", []string{"serve", "status"}}} {
			for _, cmd := range v.cmds {
				r := (&cli{t: t, env: append(slices.Clone(c.env), v.name+"="+u)}).run(cmd)
				if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "paperpipe: "+v.name+": ") {
					t.Errorf("%s with %s=%s: exit %d\nstdout: %s\nstderr: %s\nwant 2 naming %s", cmd, v.name, u, r.code, r.stdout, r.stderr, v.name)
				}
				noSecret(t, "the error of "+v.name, r.stderr, "S3cret")
			}
		}
	}
}
