package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
)

// These tests run the real paperpipe binary against real PostgreSQL (a schema per test) and its
// embedded NATS server, as a user would.

var binary string

func TestMain(m *testing.M) {
	if os.Getenv("PAPERPIPE_TEST_EXIT_SIGNAL") != "" {
		// TestExitDoesNotResendASignalIgnoredSinceTheStart's child: how exit would end a
		// process stopped by SIGINT, in a process started as the test's parent started it.
		s, ok := exitSignal(signalExitStatus(os.Interrupt))
		fmt.Println(ok, int(s))
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "paperpipe-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "paperpipe")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build paperpipe: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs paperpipe commands with one test's environment.
type cli struct {
	t   *testing.T
	env []string
}

// databaseURL is the DATABASE_URL of c's environment (the last one given).
func (c *cli) databaseURL() string {
	var url string
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "DATABASE_URL="); ok {
			url = v
		}
	}
	return url
}

func newCLI(t *testing.T, extra ...string) *cli {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"DATABASE_URL=" + ownSessions(t, pgtest.URL(t)),
		"PAPERPIPE_DATA=" + t.TempDir(),
		"PAPERPIPE_LOG_LEVEL=warn",
	}
	return &cli{t: t, env: append(env, extra...)}
}

// ownSessions returns the test database URL u with the sessions it opens named after the
// test's schema (application_name), which is what tells them apart in pg_stat_activity: the
// tests that end a session waiting behind their lock (pg_terminate_backend) also ended other
// tests' — a CREATE INDEX CONCURRENTLY of any schema waits for every older transaction, their
// lock's holder's too — failing those with 57P01 (seen: two Batch API tests of this package).
// The tests' own connections (connect) carry the same name: current_setting('application_name').
func ownSessions(t *testing.T, u string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("the test database URL does not parse: %v", err)
	}
	schema, _, _ := strings.Cut(parsed.Query().Get("search_path"), ",")
	named, err := pgtest.WithSetting(u, "application_name", schema)
	if err != nil {
		t.Fatal(err)
	}
	return named
}

type result struct {
	stdout, stderr string
	code           int
}

// connect opens a connection of the test's own to c's database, closed when the test ends.
func (c *cli) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), c.databaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	var out bytes.Buffer
	r := c.runWithStdout(&out, args...)
	r.stdout = out.String()
	return r
}

// runWithStdout runs paperpipe with its standard output on out (the result's stdout is
// empty): a file such as /dev/full is handed to the process as it is.
func (c *cli) runWithStdout(out io.Writer, args ...string) result {
	c.t.Helper()
	cmd := exec.CommandContext(context.Background(), binary, args...)
	cmd.Env = c.env
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errb
	err := cmd.Run()
	r := result{stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("paperpipe %v: %v", args, err)
	}
	return r
}

// ok runs a command that must succeed.
func (c *cli) ok(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("paperpipe %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func (c *cli) json(v any, args ...string) {
	c.t.Helper()
	r := c.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		c.t.Fatalf("paperpipe %v: output is not JSON: %v\n%s", args, err, r.stdout)
	}
}

// workUntilIdle runs `worker --exit-when-idle`, which must succeed, and returns the status after it.
func (c *cli) workUntilIdle() statusJSON {
	c.t.Helper()
	c.ok("worker", "--exit-when-idle")
	var st statusJSON
	c.json(&st, "status")
	return st
}

type statusJSON struct {
	Papers struct {
		Papers        int64 `json:"papers"`
		WithTLDR      int64 `json:"with_tldr"`
		WithEmbedding int64 `json:"with_embedding"`
		TLDRsTotal    int64 `json:"tldrs_total"`
	} `json:"papers"`
	DeadLetters int `json:"dead_letters"`
}

const sampleFile = "../../testdata/sample-papers.txt"

var moe = regexp.MustCompile(`(?i)mixture[- ]of[- ]experts?|\bMoEs?\b`)

// checkMoENeighbours checks that at least 4 of the 5 papers related to the load-balancing-loss
// paper are about mixture of experts, and, unless model is "", that they come from its space.
func checkMoENeighbours(t *testing.T, c *cli, model string) {
	t.Helper()
	var rel struct {
		Space   string `json:"space"`
		Related []struct{ ID, Title string }
	}
	c.json(&rel, "related", "Implementing Load Balancing Loss", "-k", "5")
	if len(rel.Related) != 5 || (model != "" && !strings.HasPrefix(rel.Space, model+"/")) {
		t.Fatalf("related = %+v, want 5 papers (from the space of %q)", rel, model)
	}
	n := 0
	for _, h := range rel.Related {
		var p struct{ Title, Abstract string }
		c.json(&p, "show", h.ID)
		if moe.MatchString(p.Title + " " + p.Abstract) {
			n++
		}
	}
	if n < 4 {
		t.Errorf("%d of the 5 papers related to the load-balancing-loss paper are about mixture of experts, want ≥ 4: %+v", n, rel.Related)
	}
}

func TestSampleArchiveEndToEndWithOfflineModels(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	r := c.ok("ingest", sampleFile)
	if !strings.Contains(r.stderr, "108 read, 108 published, 0 dropped as repeats") {
		t.Errorf("ingest said: %s", r.stderr)
	}
	st := c.workUntilIdle()
	if st.Papers.Papers != 108 || st.Papers.WithTLDR != 108 || st.Papers.WithEmbedding != 108 {
		t.Fatalf("status = %+v, want 108 papers each with a TL;DR and an embedding", st.Papers)
	}

	// The same ingest again stores nothing new. (Whether the server drops the repeats depends
	// on its duplicate window surviving the embedded server's restart between commands; the
	// worker finds the results stored either way.)
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	var st2 statusJSON
	c.json(&st2, "status")
	if st2.Papers != st.Papers {
		t.Errorf("after a second ingest: %+v, was %+v", st2.Papers, st.Papers)
	}

	// Related papers of the load-balancing-loss paper are mixture-of-experts papers.
	checkMoENeighbours(t, c, "")

	// Free-text search finds the topic too.
	var sr struct {
		Results []struct{ ID, Title string }
	}
	c.json(&sr, "search", "mixture of experts routing and load balancing", "-k", "5")
	hits := 0
	for _, h := range sr.Results {
		if moe.MatchString(h.Title) {
			hits++
		}
	}
	if hits < 3 {
		t.Errorf("search results %+v: %d titles about mixture of experts, want ≥ 3", sr.Results, hits)
	}

	// The tables a person reads name the offline models.
	show := c.ok("show", "Branch-Train-Merge")
	if !strings.Contains(show.stdout, "paperpipe-offline-extractive") || !strings.Contains(show.stdout, "TL;DR") {
		t.Errorf("show output lacks the TL;DR and its model:\n%s", show.stdout)
	}
	var list struct {
		Papers []struct {
			ID   string
			TLDR *struct {
				Text string `json:"tldr"`
			} `json:"tldr"`
		}
	}
	c.json(&list, "list", "-n", "200")
	if len(list.Papers) != 108 {
		t.Fatalf("list returned %d papers", len(list.Papers))
	}
	for _, p := range list.Papers {
		if p.TLDR == nil || p.TLDR.Text == "" {
			t.Errorf("%s has no TL;DR in list", p.ID)
		}
	}
}

// TestFitSwitchesToTheArchiveFittedEmbedder runs the offline embedder's life cycle: process
// with the hashed model, fit on the archive, fill and activate the fitted model's space; then
// queries and new papers use it, and a refit of an unchanged archive changes nothing.
func TestFitSwitchesToTheArchiveFittedEmbedder(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	r := c.ok("fit")
	if !strings.Contains(r.stderr, "fitted") || !strings.Contains(r.stderr, "108 papers") || !strings.Contains(r.stderr, "is active") ||
		strings.Contains(r.stderr, "not active") {
		t.Errorf("fit said:\n%s", r.stderr)
	}
	type spaceJSON struct {
		ID       int64
		Model    string `json:"model"`
		Active   bool   `json:"active"`
		Embedded int64
		Papers   int64
	}
	var spaces []spaceJSON
	c.json(&spaces, "spaces")
	var fitted spaceJSON
	for _, sp := range spaces {
		if sp.Active {
			fitted = sp
		}
	}
	if len(spaces) != 2 || !strings.HasPrefix(fitted.Model, "paperpipe-offline-tfidf-") || fitted.Embedded != 108 {
		t.Fatalf("spaces after fit = %+v, want the hashed one and an active, filled paperpipe-offline-tfidf-… one", spaces)
	}

	checkMoENeighbours(t, c, fitted.Model)
	var sr struct {
		Space   string `json:"space"`
		Results []struct{ ID, Title string }
	}
	c.json(&sr, "search", "mixture of experts routing", "-k", "3")
	expertTitle := regexp.MustCompile(`(?i)\bexperts?\b|\bMoE`)
	if !strings.HasPrefix(sr.Space, fitted.Model+"/") || len(sr.Results) != 3 || !expertTitle.MatchString(sr.Results[0].Title) {
		t.Errorf("search = %+v, want mixture-of-experts papers from the fitted space", sr)
	}

	// A fit is a function of the archive: refitting an unchanged one gives the same model,
	// with nothing to embed.
	r = c.ok("fit")
	if !strings.Contains(r.stderr, fitted.Model+" fitted") || !strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("refit of an unchanged archive said:\n%s", r.stderr)
	}

	// A paper that arrives later is embedded by the fitted model, into the active space.
	late := filepath.Join(t.TempDir(), "late.jsonl")
	if err := os.WriteFile(late, []byte(`{"id":"late-1","title":"Routing tokens to sparse experts","abstract":"A load balancing loss for mixture-of-experts routers."}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("ingest", late)
	c.ok("worker", "--exit-when-idle")
	c.json(&spaces, "spaces")
	for _, sp := range spaces {
		if sp.ID == fitted.ID && (sp.Embedded != 109 || sp.Papers != 109) {
			t.Errorf("fitted space after a new paper: %+v, want 109/109", sp)
		}
	}

}

func TestEndToEndThroughOpenAICompatibleAPIPaysOnce(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{APIKey: "sk-test-secret"})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test-secret", "PAPERPIPE_LOG_LEVEL=debug")
	c.ok("ingest", sampleFile)
	w := c.ok("worker", "--exit-when-idle")
	var st statusJSON
	c.json(&st, "status")
	if st.Papers.Papers != 108 || st.Papers.WithTLDR != 108 || st.Papers.WithEmbedding != 108 {
		t.Fatalf("status = %+v", st.Papers)
	}
	first := api.Stats()
	if first.EmbedRequests > 5 {
		t.Errorf("%d embedding requests for 108 papers: inputs are not batched", first.EmbedRequests)
	}
	if strings.Contains(w.stderr, "sk-test-secret") {
		t.Error("the API key appears in the worker's log")
	}

	// Ingest again, and once more as JSONL from another "source" with the same text:
	// no new rows, no new API calls.
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	if s := api.Stats(); s.ChatRequests != first.ChatRequests || s.EmbedRequests != first.EmbedRequests {
		t.Errorf("re-ingest made API calls: chat %d→%d, embeddings %d→%d", first.ChatRequests, s.ChatRequests, first.EmbedRequests, s.EmbedRequests)
	}
	var st2 statusJSON
	c.json(&st2, "status")
	if st2.Papers != st.Papers {
		t.Errorf("after re-ingest: %+v, was %+v", st2.Papers, st.Papers)
	}
}

// A worker whose API key is refused dead-letters nothing: with --exit-when-idle it stops, giving
// the API's answer (not the key), and the papers wait in the queue for a run with a good key.
func TestWorkerWithARefusedKeyStopsAndLeavesThePapersQueued(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{APIKey: "sk-good-key"})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-revoked-key-secret")
	c.ok("ingest", sampleFile)
	r := c.run("worker", "--exit-when-idle")
	if r.code == 0 || !strings.Contains(r.stderr, "Incorrect API key provided") {
		t.Errorf("worker with a refused key: exit %d, want a failure giving the API's answer; stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "sk-revoked-key-secret") {
		t.Error("the API key appears in the worker's output")
	}
	var st statusJSON
	if c.json(&st, "status"); st.DeadLetters != 0 {
		t.Errorf("%d dead letters for a refused key, want none", st.DeadLetters)
	}
	api.SetAPIKey("sk-revoked-key-secret") // the key works again
	c.ok("worker", "--exit-when-idle")
	if c.json(&st, "status"); st.Papers.WithTLDR != 108 || st.Papers.WithEmbedding != 108 || st.DeadLetters != 0 {
		t.Errorf("after a run with a working key: %+v, want all 108 papers done and no dead letters", st)
	}
}

func TestBadRecordsAreReportedWithFileAndLineAndTheRestGoesThrough(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "mixed.jsonl")
	var b bytes.Buffer
	good := func(id, title string) {
		fmt.Fprintf(&b, `{"id":%q,"title":%q,"abstract":"We propose a method for %s and show that it improves results on standard benchmarks."}`+"\n", id, title, strings.ToLower(title))
	}
	good("2401.00001", "Sparse Routing for Experts")                                                                         // line 1
	b.WriteString(`{"id":"2401.00002","title":"Truncated","abstract":"This line ends too so` + "\n")                         // line 2
	good("2401.00003", "Dense Retrieval at Scale")                                                                           // line 3
	b.WriteString(`{"id":"2401.00004","title":"Empty abstract","abstract":"   "}` + "\n")                                    // line 4
	fmt.Fprintf(&b, `{"id":"2401.00005","title":"Huge","abstract":%q}`+"\n", strings.Repeat("word ", 1<<18))                 // line 5: 1.3 MB
	b.WriteString("{\"id\":\"2401.00006\",\"title\":\"Bad \xff\xfe bytes\",\"abstract\":\"Invalid UTF-8 in the title.\"}\n") // line 6
	good("2401.00007", "Curriculum Learning for Code Models")                                                                // line 7
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t)
	r := c.run("ingest", path)
	if r.code != 1 {
		t.Errorf("ingest exit code = %d, want 1 (some records rejected)", r.code)
	}
	for _, line := range []string{"2", "4", "5", "6"} {
		if !strings.Contains(r.stderr, path+":"+line+":") {
			t.Errorf("stderr does not name %s:%s:\n%s", path, line, r.stderr)
		}
	}
	if !strings.Contains(r.stderr, "3 read, 3 published") || !strings.Contains(r.stderr, "4 rejected") {
		t.Errorf("summary line: %s", r.stderr)
	}
	st := c.workUntilIdle()
	if st.Papers.Papers != 3 || st.Papers.WithTLDR != 3 || st.Papers.WithEmbedding != 3 || st.DeadLetters != 0 {
		t.Errorf("status = %+v, want the 3 good papers processed", st)
	}
	for _, id := range []string{"arxiv:2401.00001", "arxiv:2401.00003", "arxiv:2401.00007"} {
		c.ok("show", id)
	}
	if r := c.run("show", "arxiv:2401.00002"); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("show of a rejected record: exit %d, %s", r.code, r.stderr)
	}
}

func TestSummarizeAndEmbedNeedNoDatabaseOrQueue(t *testing.T) {
	t.Parallel()
	// A database URL that cannot connect proves these commands do not use one.
	c := newCLI(t)
	c.env = append(c.env, "DATABASE_URL=postgres://nobody@127.0.0.1:1/none", "NATS_URL=nats://127.0.0.1:1")
	r := c.ok("summarize", sampleFile)
	lines := nonEmptyLines(r.stdout)
	if len(lines) != 108 {
		t.Fatalf("summarize printed %d lines, want 108", len(lines))
	}
	var s struct{ ID, TLDR, Model string }
	if err := json.Unmarshal([]byte(lines[0]), &s); err != nil || s.ID == "" || s.TLDR == "" || s.Model != "paperpipe-offline-extractive" {
		t.Errorf("first line %q → %+v, %v", lines[0], s, err)
	}
	// Standard input with nothing on it is a source without papers: a warning, not a failure.
	if r := c.run("embed", "-", "--format", "text"); r.code != 0 || !strings.Contains(r.stderr, "paperpipe embed: stdin: no papers in it") {
		t.Errorf("embed of empty standard input: exit %d, stderr %q; want exit 0 saying it has no papers", r.code, r.stderr)
	}
	in, _ := os.ReadFile(sampleFile)
	cmd := exec.Command(binary, "embed", "-")
	cmd.Env = c.env
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	lines = nonEmptyLines(string(out))
	if len(lines) != 108 {
		t.Fatalf("embed printed %d lines, want 108", len(lines))
	}
	var e struct {
		ID        string
		Embedding []float32
		Model     string
	}
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || len(e.Embedding) != 768 || e.Model != "paperpipe-offline-hash-v2" {
		t.Errorf("first embedding line: id %q, %d dims, model %q, %v", e.ID, len(e.Embedding), e.Model, err)
	}
}

func nonEmptyLines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

// TestRunningWorkerFollowsAFit: a long-running worker (here `up`'s) on the default offline
// embedder moves to the fitted model's space when `paperpipe fit` activates it, so papers that
// arrive afterwards are embedded where queries look — also one that arrives before the worker
// notices (the follow interval is 2 s here, so the late paper is embedded into the old space
// first, and the restarted worker must make its vector in the fitted space too). `up`'s web
// server keeps serving across the workers' restart, on the same address.
func TestRunningWorkerFollowsAFit(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_FOLLOW_INTERVAL=2s", "PAPERPIPE_LOG_LEVEL=info")
	c.ok("ingest", sampleFile)
	worker := exec.Command(binary, "up", "--http", "127.0.0.1:0")
	worker.Env = c.env
	var logs lockedBuffer
	worker.Stderr = &logs
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- worker.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = worker.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker exited with %v\n%s", err, logs.String())
			}
		case <-time.After(60 * time.Second):
			_ = worker.Process.Kill()
			t.Errorf("worker did not stop on SIGTERM\n%s", logs.String())
		}
	}
	defer stop()

	type spaceJSON struct {
		ID               int64
		Model            string `json:"model"`
		Active           bool   `json:"active"`
		Embedded, Papers int64
	}
	// waitFor polls the spaces until cond holds (the worker runs on its own schedule).
	waitFor := func(what string, cond func([]spaceJSON) bool) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			var spaces []spaceJSON
			c.json(&spaces, "spaces")
			if cond(spaces) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; spaces: %+v\nworker log:\n%s", what, spaces, logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("the sample to be embedded", func(s []spaceJSON) bool { return len(s) == 1 && s[0].Embedded == 108 })
	const listening = "web UI and API on http://"
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(50 * time.Millisecond) {
		if _, rest, ok := strings.Cut(logs.String(), listening); ok {
			base = "http://" + strings.Fields(rest)[0]
		} else if time.Now().After(deadline) {
			t.Fatalf("up did not say where it serves:\n%s", logs.String())
		}
	}
	if r := c.ok("fit"); !strings.Contains(r.stderr, "running workers on PAPERPIPE_EMBED_MODEL=offline switch to it within PAPERPIPE_FOLLOW_INTERVAL") {
		t.Errorf("fit does not say that running workers follow it:\n%s", r.stderr)
	}
	var fitted string
	waitFor("the fitted space to be active", func(s []spaceJSON) bool {
		for _, sp := range s {
			if sp.Active && strings.HasPrefix(sp.Model, "paperpipe-offline-tfidf-") {
				fitted = sp.Model
				return true
			}
		}
		return false
	})

	late := filepath.Join(t.TempDir(), "late.jsonl")
	if err := os.WriteFile(late, []byte(`{"id":"late-2","title":"Expert parallelism","abstract":"Routing tokens across devices for mixture-of-experts training."}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("ingest", late)
	waitFor("the new paper in the fitted space", func(s []spaceJSON) bool {
		for _, sp := range s {
			if sp.Model == fitted {
				return sp.Embedded == 109
			}
		}
		return false
	})
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("after the workers' restart the web server at %s does not answer: %v", base, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the workers' restart /healthz answered HTTP %d", resp.StatusCode)
	}
	stop()
	if !strings.Contains(logs.String(), "restarting the workers") {
		t.Errorf("the worker did not say it moved to the fitted space:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), listening); n != 1 {
		t.Errorf("the web server started %d times, want once across the workers' restart:\n%s", n, logs.String())
	}
}

// servedURL reads a `serve` process's stderr, copying each line to logs, and returns the URL it
// says it listens on; the test fails if none comes within a minute.
func servedURL(t *testing.T, stderr io.Reader, logs io.Writer) string {
	t.Helper()
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			if _, rest, ok := strings.Cut(sc.Text(), "on http://"); ok {
				select {
				case urls <- "http://" + strings.Fields(rest)[0]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-urls:
		return u
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not say where it listens")
		return ""
	}
}

// lockedBuffer is a bytes.Buffer a process writes to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeAnswersTheAllowedHosts: `serve` answers on its loopback address to localhost, IP
// addresses and the names of PAPERPIPE_HTTP_ALLOWED_HOSTS, and refuses any other name (421):
// a web page that makes its own name resolve to 127.0.0.1 (DNS rebinding) must not reach it.
func TestServeAnswersTheAllowedHosts(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_HTTP_ALLOWED_HOSTS=papers.lab, Archive.Internal")
	base := startServe(t, c)
	port := base[strings.LastIndex(base, ":")+1:]
	for host, want := range map[string]int{
		"papers.lab:" + port:       http.StatusOK,
		"archive.internal":         http.StatusOK,
		"localhost:" + port:        http.StatusOK,
		"127.0.0.1:" + port:        http.StatusOK,
		"attacker.example:" + port: http.StatusMisdirectedRequest,
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/papers", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /api/papers with Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// TestServeFollowsAFit: a running server on the default offline embedder answers semantic
// searches in the fitted space once `paperpipe fit` has activated it, without a restart.
func TestServeFollowsAFit(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	base := startServe(t, c)
	search := func() string {
		t.Helper()
		resp, err := http.Get(base + "/api/search?mode=semantic&k=3&q=" + url.QueryEscape("mixture of experts routing"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Space   string `json:"space"`
			Results []struct{ ID string }
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("search: HTTP %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Results) != 3 {
			t.Fatalf("search answered %+v, %v", out, err)
		}
		return out.Space
	}
	if sp := search(); !strings.HasPrefix(sp, "paperpipe-offline-hash-v2/") {
		t.Fatalf("before the fit the search used space %s", sp)
	}
	c.ok("fit")
	if sp := search(); !strings.HasPrefix(sp, "paperpipe-offline-tfidf-") {
		t.Fatalf("after the fit the search used space %s, want the fitted one", sp)
	}
}

// `serve` on the API's embedding model records its searches' query embeddings in the usage
// ledger, and on SIGTERM answers a search still waiting on the API with a 503 after a short
// grace and exits 0, instead of holding the shutdown for 10 s, dropping the connection and
// exiting 1.
func TestServeRecordsQueryUsageAndStopsPromptly(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{APIKey: "sk-test-secret"})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test-secret")
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	const model = "text-embedding-3-small"
	before := embedRequests(c, model)

	srv := exec.Command(binary, "serve", "--http", "127.0.0.1:0")
	srv.Env = c.env
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			_ = srv.Process.Kill()
			_ = srv.Wait()
		}
	}()
	var logs lockedBuffer
	base := servedURL(t, stderr, &logs)
	get := func(q string) (int, error) {
		resp, err := http.Get(base + "/api/search?mode=semantic&k=3&q=" + url.QueryEscape(q))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get("mixture of experts routing"); err != nil || code != http.StatusOK {
		t.Fatalf("search: %d, %v", code, err)
	}

	// The API now holds every request: a search waits on it.
	api.SetFaults(openaitest.Faults{Timeout: 1, TimeoutHold: time.Minute})
	calls := api.Stats().EmbedRequests
	answer := make(chan error, 1)
	go func() {
		code, err := get("sparse upcycling")
		if err == nil && code != http.StatusServiceUnavailable {
			err = fmt.Errorf("status %d, want 503", code)
		}
		answer <- err
	}()
	for api.Stats().EmbedRequests == calls {
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = srv.Wait()
	exited = true
	took := time.Since(start)
	out := logs.String()
	if err != nil {
		t.Errorf("serve after SIGTERM: %v, want exit 0\n%s", err, out)
	}
	// Not timed (a loaded machine took 6.2 s): the 10 s hold this test is for ends in a dropped
	// connection and exit 1, which the checks here fail on; the time is for the log.
	t.Logf("serve stopped %v after SIGTERM with a search in flight", took)
	if err := <-answer; err != nil {
		t.Errorf("the search in flight at the shutdown: %v", err)
	}
	if got := embedRequests(c, model) - before; got < 1 {
		t.Errorf("the usage ledger gained %d embedding requests from serve's searches, want at least the first's", got)
	}
}

// startServe runs `paperpipe serve` on a free loopback port with c's environment until the
// test ends (SIGTERM, then wait), and returns its base URL.
func startServe(t *testing.T, c *cli) string {
	t.Helper()
	srv := exec.Command(binary, "serve", "--http", "127.0.0.1:0")
	srv.Env = c.env
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		_ = srv.Wait()
	})
	return servedURL(t, stderr, io.Discard)
}

// TestInterruptedStartStopsQuietly: Ctrl-C or SIGTERM while up, worker or serve start (here:
// connecting to a database host that accepts the connection and does not answer yet) is a
// stop like the one that ends them once they run — exit 0, nothing said — not a failure of
// the step it cut short ("paperpipe up: connect to database …: context canceled", exit 1).
func TestInterruptedStartStopsQuietly(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"up", "--http", ""}, {"worker"}, {"serve", "--http", "127.0.0.1:0"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 4)
			go func() {
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					accepted <- conn // held open, never answered
				}
			}()
			c := newCLI(t)
			cmd := exec.Command(binary, args...)
			cmd.Env = append(c.env, "DATABASE_URL=postgres://nobody@"+ln.Addr().String()+"/none?connect_timeout=60&sslmode=disable",
				"NATS_URL=nats://127.0.0.1:1")
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case conn := <-accepted:
				defer conn.Close()
			case <-done:
				t.Fatalf("paperpipe %s ended before it connected to the database:\n%s", args[0], stderr.String())
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("paperpipe %s did not connect to the database within 30 s", args[0])
			}
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("paperpipe %s still starting 20 s after SIGINT\n%s", args[0], stderr.String())
			}
			if code, out := cmd.ProcessState.ExitCode(), stderr.String(); code != 0 || strings.Contains(out, "context canceled") ||
				strings.Contains(out, "paperpipe "+args[0]+":") {
				t.Errorf("paperpipe %s interrupted while starting: exit %d\n%s\nwant exit 0, and no error", args[0], code, out)
			}
		})
	}
}

// getBody returns the body of a GET of u, failing the test unless it is answered 200.
func getBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", u, resp.StatusCode, err, body)
	}
	return string(body)
}

// getJSON decodes the body of a GET of u into v (see getBody).
func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	if body := getBody(t, u); json.Unmarshal([]byte(body), v) != nil {
		t.Fatalf("GET %s: not JSON of %T:\n%s", u, v, body)
	}
}
