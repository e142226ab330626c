package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
)

// writePapers writes a JSON lines file of papers with the given ids, their abstracts naming word.
func writePapers(t *testing.T, name, word string, ids ...string) string {
	t.Helper()
	var b strings.Builder
	for i, id := range ids {
		fmt.Fprintf(&b, `{"id":%q,"title":"A study of %s number %d","abstract":"We study %s, a property of graphs that nobody measured before, and report how often it holds in sample %d."}`+"\n",
			id, word, i, word, i)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type removeJSON struct {
	DryRun     bool `json:"dry_run"`
	Papers     int  `json:"papers"`
	TLDRs      int  `json:"tldrs"`
	Embeddings int  `json:"embeddings"`
	NotStored  int  `json:"not_stored"`
	Removed    []struct {
		ID string `json:"id"`
	} `json:"removed"`
}

// `remove --from FILE` takes out what a file ingested, with its TL;DRs and vectors, and nothing
// else: status, spaces, related, search and the web no longer find it. A file removed while its
// papers are still queued does not have them stored by the workers afterwards; ingested again
// afterwards, they come back.
func TestRemoveTakesOutWhatAFileIngested(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	wrong := writePapers(t, "wrong.jsonl", "zyxwqfoo", "id:wrong-1", "id:wrong-2", "id:wrong-3")
	c.ok("ingest", wrong)
	if st := c.workUntilIdle(); st.Papers.Papers != 111 || st.Papers.WithEmbedding != 111 {
		t.Fatalf("status before: %+v, want 111 papers", st.Papers)
	}

	var dry removeJSON
	c.json(&dry, "remove", "--from", wrong, "--dry-run")
	if !dry.DryRun || dry.Papers != 3 || dry.TLDRs != 3 || dry.Embeddings != 3 || len(dry.Removed) != 3 || dry.Removed[0].ID != "id:wrong-1" {
		t.Errorf("remove --dry-run: %+v; want the 3 papers with a TL;DR and a vector each", dry)
	}
	if r := c.ok("remove", "--from", wrong, "--dry-run"); !strings.Contains(r.stdout, "id:wrong-2") || !strings.Contains(r.stderr, "would remove 3 papers") {
		t.Errorf("remove --dry-run printed:\n%s\n%s", r.stdout, r.stderr)
	}
	var st statusJSON
	c.json(&st, "status")
	if st.Papers.Papers != 111 {
		t.Fatalf("a dry run removed papers: %+v", st.Papers)
	}

	url := startServe(t, c)
	get := func(path string) int {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/papers/id:wrong-1"); code != http.StatusOK {
		t.Fatalf("the paper's page before its removal: %d", code)
	}

	r := c.ok("remove", "--from", wrong)
	if !strings.Contains(r.stderr, "removed 3 papers (3 TL;DRs, 3 vectors, 0 Batch API items)") {
		t.Errorf("remove said: %s", r.stderr)
	}
	c.json(&st, "status")
	if st.Papers.Papers != 108 || st.Papers.WithTLDR != 108 || st.Papers.WithEmbedding != 108 || st.Papers.TLDRsTotal != 108 {
		t.Errorf("status after the removal: %+v; want the 108 sample papers, each with its TL;DR and vector", st.Papers)
	}
	for _, path := range []string{"/papers/id:wrong-1", "/api/papers/id:wrong-1", "/api/papers/id:wrong-1/related"} {
		if code := get(path); code != http.StatusNotFound {
			t.Errorf("GET %s after the removal: %d, want 404", path, code)
		}
	}
	if r := c.run("show", "id:wrong-2"); r.code != 1 {
		t.Errorf("show of a removed paper: exit %d\n%s", r.code, r.stdout)
	}
	var spaces []struct {
		Papers   int64 `json:"papers"`
		Embedded int64 `json:"embedded"`
	}
	c.json(&spaces, "spaces")
	if len(spaces) != 1 || spaces[0].Papers != 108 || spaces[0].Embedded != 108 {
		t.Errorf("spaces after the removal: %+v; want 108 of 108 embedded", spaces)
	}
	c.ok("spaces", "check")
	var sr struct {
		Results []struct{ ID string }
	}
	for _, mode := range []string{"keyword", "hybrid", "semantic"} {
		c.json(&sr, "search", "zyxwqfoo graphs", "--mode", mode, "-k", "200")
		for _, h := range sr.Results {
			if strings.HasPrefix(h.ID, "id:wrong") {
				t.Errorf("%s search finds the removed %s", mode, h.ID)
			}
		}
	}

	// Removed while still queued: the workers do not store them afterwards.
	queued := writePapers(t, "queued.jsonl", "qqvvzz", "id:queued-1", "id:queued-2")
	c.ok("ingest", queued)
	r = c.ok("remove", "--from", queued)
	if !strings.Contains(r.stderr, "removed 0 papers") || !strings.Contains(r.stderr, "2 ids are not stored") {
		t.Errorf("remove of queued papers said: %s", r.stderr)
	}
	if st := c.workUntilIdle(); st.Papers.Papers != 108 || st.DeadLetters != 0 {
		t.Errorf("after the workers took the queued messages of removed papers: %+v, want 108 papers, no dead letter", st)
	}
	// Ingested again (a corrected text) after the removal: they come back.
	again := writePapers(t, "again.jsonl", "qqvvzzz", "id:queued-1", "id:queued-2")
	c.ok("ingest", again)
	if st := c.workUntilIdle(); st.Papers.Papers != 110 || st.Papers.WithTLDR != 110 {
		t.Errorf("after the removed papers were ingested again: %+v, want 110 papers", st.Papers)
	}
	c.ok("show", "id:queued-1")
}

// A dead letter of a paper removed since is replayed without storing the paper again: its text
// keeps the date it was read, before the removal.
func TestReplayedDeadLetterOfARemovedPaperIsNotStored(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, js := queueServer(t)
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	for i, at := range []time.Time{time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)} {
		m := nats.NewMsg(pipeline.SubjectDead + "." + pipeline.ConsumerNew)
		m.Data = fmt.Appendf(nil, `{"id":"id:dead-%d","title":"Dead letter %d","abstract":"We study the dead letters of removed papers and what a replay does with them."}`, i, i)
		m.Header.Set(pipeline.HeaderSubject, pipeline.SubjectNew)
		m.Header.Set(pipeline.HeaderReason, "test")
		m.Header.Set(pipeline.HeaderTextAt, at.UTC().Format(time.RFC3339Nano))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	c.ok("remove", "id:dead-0")
	c.ok("dlq", "replay", "--all")
	if st := c.workUntilIdle(); st.Papers.Papers != 1 || st.DeadLetters != 0 {
		t.Errorf("after the replay: %+v; want the paper not removed stored, and no dead letter", st)
	}
	if r := c.run("show", "id:dead-0"); r.code != 1 {
		t.Errorf("the removed paper's replayed dead letter stored it again:\n%s", r.stdout)
	}
	c.ok("show", "id:dead-1")
}

// The dead letters of papers removed are dropped by the removal: the user took the papers out
// on purpose, and `dlq list`, status's count and the metric went on showing them as failures to
// look at until dropped by hand. A dry run says how many it would drop and drops none; the
// letters of other papers stay.
func TestRemoveDropsTheDeadLettersOfTheRemovedPapers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, js := queueServer(t)
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	for i, id := range []string{"id:dead-0", "id:dead-1", "id:dead-0"} {
		m := nats.NewMsg(pipeline.SubjectDead + "." + pipeline.ConsumerNew)
		m.Data = fmt.Appendf(nil, `{"id":%q,"title":"Dead letter %d","abstract":"We study the dead letters of removed papers and what a removal does with them."}`, id, i)
		m.Header.Set(pipeline.HeaderSubject, pipeline.SubjectNew)
		m.Header.Set(pipeline.HeaderReason, "test")
		m.Header.Set(pipeline.HeaderPaperID, id)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	letters := func() []string {
		t.Helper()
		var dls []pipeline.DeadLetter
		c.json(&dls, "dlq", "list")
		var ids []string
		for _, d := range dls {
			ids = append(ids, d.PaperID)
		}
		return ids
	}
	if r := c.ok("remove", "--dry-run", "id:dead-0"); !strings.Contains(r.stderr, "would drop 2 dead letters of the papers") {
		t.Errorf("remove --dry-run said %q; want it to say it would drop their 2 dead letters", r.stderr)
	}
	if got := letters(); len(got) != 3 {
		t.Fatalf("after the dry run: dead letters of %v; want the 3 still there", got)
	}
	if r := c.ok("remove", "id:dead-0"); !strings.Contains(r.stderr, "dropped 2 dead letters of the papers") {
		t.Errorf("remove said %q; want it to say it dropped their 2 dead letters", r.stderr)
	}
	if got := letters(); len(got) != 1 || got[0] != "id:dead-1" {
		t.Errorf("after the removal of id:dead-0: dead letters of %v; want only id:dead-1's", got)
	}
	var st statusJSON
	c.json(&st, "status")
	if st.DeadLetters != 1 {
		t.Errorf("status counts %d dead letters, want 1", st.DeadLetters)
	}
}

func TestRemoveUsage(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, args := range [][]string{{"remove"}, {"remove", "--format", "jsonl", "id:x"}, {"remove", "--ids", "-", "--from", "-"}} {
		if r := c.run(args...); r.code != 2 {
			t.Errorf("paperpipe %s: exit %d, want 2 (usage)\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// A `remove --dry-run` interrupted has removed nothing, and says so: it said "interrupted after
// 0 papers (…) were removed; run the same command again to remove the rest", as a removal does.
func TestRemoveDryRunInterruptedSaysNothingWasRemoved(t *testing.T) {
	t.Parallel()
	st, err := store.Open(t.Context(), store.Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = runRemove(ctx, &config{JSON: true}, st, []string{"arxiv:2401.00001"}, true, nil, io.Discard)
	if err == nil {
		t.Fatal("an interrupted dry run: no error")
	}
	if msg := errorMessage(err); strings.Contains(msg, "were removed") || strings.Contains(msg, "remove the rest") ||
		!strings.Contains(msg, "nothing was removed") {
		t.Errorf("an interrupted dry run says %q; want that nothing was removed, and no removal to finish", msg)
	}
}
