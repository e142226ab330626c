package main

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
)

// TestServeOnANewModelBeforeActivateSaysSo: an operator switching the embedding model restarts
// serve on the new model before `paperpipe activate` (README: fill the new space, activate,
// restart). Every search by meaning is then refused (409; the search page falls back to keyword
// results with a notice), each refusal logged at debug level only: serve said nothing, and the
// operator learned of it from readers. It warns at start, naming the space searches use, its
// own, and the command that activates its own.
func TestServeOnANewModelBeforeActivateSaysSo(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle() // the hashed offline model's space, active
	c.ok("reprocess", "--embed-only", "--embed-model", "text-embedding-3-small")

	srv := exec.Command(binary, "serve", "--http", "127.0.0.1:0")
	srv.Env = append(c.env, "PAPERPIPE_EMBED_MODEL=text-embedding-3-small")
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
	started := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "web UI and API on http://") {
				break
			}
		}
		started <- b.String()
		_, _ = io.Copy(io.Discard, stderr)
	}()
	var out string
	select {
	case out = <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not say where it listens")
	}
	for _, want := range []string{"text-embedding-3-small/1536/title-abstract-v1", "paperpipe-offline-hash-v2/768/title-abstract-v1",
		"409", "`paperpipe activate 2`"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve started on the embedding model of an inactive space says:\n%s\nwant it to name %q", out, want)
		}
	}
}

// TestSettingsForNameTheDimensionsToChange: the settings activate, a worker of an inactive space
// and serve give to embed into the active space must make its vectors once set. Configured for
// text-embedding-3-small at 512 dimensions, with its 1536-dimension space active, they said "set
// PAPERPIPE_EMBED_MODEL=text-embedding-3-small" — already set: PAPERPIPE_EMBED_DIMENSIONS=512
// stayed, and so did the mismatch.
func TestSettingsForNameTheDimensionsToChange(t *testing.T) {
	t.Parallel()
	small := paper.Space{Model: "text-embedding-3-small", Dimensions: 1536, Template: embed.TemplateTitleAbstract}
	nomic := paper.Space{Model: "nomic-embed-text", Dimensions: 768, Template: embed.TemplateTitleAbstract}
	for _, tc := range []struct {
		model string
		dims  int
		sp    paper.Space
		want  string
	}{
		{"text-embedding-3-small", 512, small, "PAPERPIPE_EMBED_MODEL=text-embedding-3-small PAPERPIPE_EMBED_DIMENSIONS=1536"},
		{"text-embedding-3-small", 512, nomic, "PAPERPIPE_EMBED_MODEL=nomic-embed-text PAPERPIPE_EMBED_DIMENSIONS=768"},
		{"text-embedding-3-large", 0, small, "PAPERPIPE_EMBED_MODEL=text-embedding-3-small"},
		{"text-embedding-3-small", 0, small, ""},
		{"text-embedding-3-small", 1536, small, ""},
	} {
		c := &config{APIKey: "sk-test", EmbedModel: tc.model, EmbedDims: tc.dims}
		if got := settingsFor(c, tc.sp); got != tc.want {
			t.Errorf("configured %s with %d dimensions, space %s: settingsFor = %q, want %q", tc.model, tc.dims, tc.sp.Name(), got, tc.want)
		}
	}
}

// TestSearchOnANewModelBeforeActivateSaysHowToSwitch: a lab moving from the offline models to an
// API has its workers fill the API model's space while the offline one stays active. `paperpipe
// search` from the new settings was refused with one way out, back to the offline model, and none
// forward: the space the workers fill, what fills it and the `activate` that switches queries
// to it (the workers' own warning said so); nor that a keyword search needs no vectors. It names
// them now, the old way kept.
func TestSearchOnANewModelBeforeActivateSaysHowToSwitch(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle() // the hashed offline model's space, active
	c.ok("reprocess", "--embed-only", "--embed-model", "text-embedding-3-small")

	c.env = append(c.env, "PAPERPIPE_EMBED_MODEL=text-embedding-3-small") // the new settings
	r := c.run("search", "expert routing")
	if r.code != 1 {
		t.Fatalf("search on the model of the inactive space: exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"PAPERPIPE_EMBED_MODEL=offline", "space 2 (text-embedding-3-small/1536/title-abstract-v1)",
		"`paperpipe reprocess --embed-only`", "`paperpipe activate 2`", "--mode keyword"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("search on the model of the inactive space says:\n%s\nwant it to name %q", r.stderr, want)
		}
	}
	if r := c.ok("search", "expert routing", "--mode", "keyword"); !strings.Contains(r.stdout, " 1. ") {
		t.Errorf("the keyword search it points to finds nothing:\n%s", r.stdout)
	}
}
