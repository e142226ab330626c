package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// `list` narrows as the web's front page and GET /api/papers do, and as `export` does: by
// --category (exactly), --since (papers stored since) and --text (full-text, web-search syntax).
// It took none of them: `list --category cs.LG` was a usage error, and a script had to page
// through the whole archive, or run a server, for what the API answers in one request.
func TestListNarrowsAsTheAPIDoes(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	st := cliStore(t, c)
	add := func(id, title, category string) {
		t.Helper()
		if _, err := st.UpsertPapers(t.Context(), []paper.Abstract{{ID: id, Title: title, Categories: []string{category},
			Abstract: "We study " + strings.ToLower(title) + " on benchmarks."}}, paper.Work{}); err != nil {
			t.Fatal(err)
		}
	}
	add("id:old-routing", "Expert routing", "cs.LG")
	add("id:old-parsing", "Dependency parsing", "cs.CL")
	if _, err := st.Pool().Exec(t.Context(), `UPDATE papers SET created_at = '2020-01-01T00:00:00Z'`); err != nil {
		t.Fatal(err)
	}
	add("id:new-routing", "Token routing", "cs.LG")
	add("id:new-parsing", "Semantic parsing", "cs.CL")

	ids := func(args ...string) []string {
		t.Helper()
		var out struct {
			Papers []paper.Record `json:"papers"`
			Next   string         `json:"next"`
			Notice string         `json:"notice"`
		}
		r := c.ok(append([]string{"list", "--json"}, args...)...)
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("list %v --json: %v\n%s", args, err, r.stdout)
		}
		var got []string
		for _, p := range out.Papers {
			got = append(got, p.ID)
		}
		return got
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--category", "cs.LG"}, "id:new-routing id:old-routing"},
		{[]string{"--since", time.Now().UTC().Add(-24 * time.Hour).Format(time.DateOnly)}, "id:new-parsing id:new-routing"},
		{[]string{"--text", "routing"}, "id:new-routing id:old-routing"},
		{[]string{"--text", "parsing", "--since", "2021-01-01T00:00:00Z", "--category", "cs.CL"}, "id:new-parsing"},
	} {
		if got := strings.Join(ids(tc.args...), " "); got != tc.want {
			t.Errorf("list %v: %s, want %s", tc.args, got, tc.want)
		}
	}
	// A page of a narrowed list says how to get the next with the same filters.
	r := c.ok("list", "-n", "1", "--category", "cs.LG")
	if !strings.Contains(r.stdout, "id:new-routing") || !strings.Contains(r.stderr, "more: paperpipe list -n 1 --category cs.LG --after ") {
		t.Fatalf("list -n 1 --category cs.LG: the next page's command lacks the filter:\n%s\n%s", r.stdout, r.stderr)
	}
	next := strings.Fields(r.stderr[strings.Index(r.stderr, "more: "):])
	if r := c.ok(next[2:]...); !strings.Contains(r.stdout, "id:old-routing") || strings.Contains(r.stdout, "parsing") {
		t.Errorf("%s: %s", strings.Join(next[1:], " "), r.stdout)
	}
	// Text that full-text search ignores lists nothing, and says why (the API's notice).
	var out map[string]any
	if err := json.Unmarshal([]byte(c.ok("list", "--json", "--text", "the of").stdout), &out); err != nil || out["notice"] == nil {
		t.Errorf("list --text 'the of' --json: %v, want a notice: %v", out, err)
	}
	if r := c.ok("list", "--text", "the of"); r.stdout != "" || !strings.Contains(r.stderr, "ignores every word") {
		t.Errorf("list --text 'the of': stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if r := c.run("list", "--since", "yesterday"); r.code != 2 {
		t.Errorf("list --since yesterday: exit %d, want 2 (a usage error)\n%s", r.code, r.stderr)
	}
}

// cliStore is the migrated store of c's database, closed with the test.
func cliStore(t *testing.T, c *cli) *store.Store {
	t.Helper()
	cfg := loadConfig()
	cfg.DatabaseURL, cfg.LogLevel = c.databaseURL(), "error"
	st, err := openStore(t.Context(), cfg, newLogger(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}
