package main

import (
	"bufio"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
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
	for _, want := range []string{"text-embedding-3-small/1536/title-abstract-v1", "paperpipe-offline-hash/768/title-abstract-v1",
		"409", "`paperpipe activate 2`"} {
		if !strings.Contains(out, want) {
			t.Errorf("serve started on the embedding model of an inactive space says:\n%s\nwant it to name %q", out, want)
		}
	}
}
