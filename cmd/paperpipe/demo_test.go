package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// TestMakeDemoUsesTheOfflineModels: `make demo`, the README's first command, processes the
// sample with the built-in offline models, as README and `make help` say — also for a user
// whose shell has OPENAI_API_KEY (and a model of their own) set, as many a lab's have: it must
// not send the sample to their paid API. The demo runs on the test database, with the binary
// the tests built (GO=true skips the Makefile's build).
func TestMakeDemoUsesTheOfflineModels(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	api := openaitest.Start(t, openaitest.Config{})
	c := newCLI(t,
		"OPENAI_API_KEY=sk-test", "OPENAI_BASE_URL="+api.URL(),
		"PAPERPIPE_CHAT_MODEL=gpt-4o-mini", "PAPERPIPE_EMBED_MODEL=text-embedding-3-small")
	cmd := exec.Command("make", "-s", "-C", "../..", "demo", "GO=true", "BIN="+binary, "DEMO_DATA="+filepath.Join(t.TempDir(), "demo"))
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	if st := api.Stats(); st.ChatRequests != 0 || st.EmbedRequests != 0 {
		t.Errorf("make demo sent %d chat and %d embeddings requests to the API of the environment; want none (the offline models)\n%s",
			st.ChatRequests, st.EmbedRequests, out)
	}
	if !strings.Contains(string(out), "paperpipe-offline-extractive") {
		t.Errorf("make demo's TL;DRs are not the offline model's:\n%s", out)
	}
	checkDemoShowsTLDRsAndRelated(t, string(out))
}

// checkDemoShowsTLDRsAndRelated checks what issue 2 asks `make demo` to print: for a few
// papers, the TL;DR and the 5 most related papers (from the space of the offline model `fit`
// made, which the demo activates), then the commands to go further.
func checkDemoShowsTLDRsAndRelated(t *testing.T, out string) {
	t.Helper()
	shows, relateds := 0, 0
	for _, section := range strings.Split(out, "\n==> ")[1:] {
		head, body, _ := strings.Cut(section, "\n")
		switch {
		case strings.HasPrefix(head, "paperpipe show "):
			shows++
			if !strings.Contains(body, "TL;DR (paperpipe-offline-extractive") {
				t.Errorf("make demo's %s shows no TL;DR of the offline summarizer:\n%s", head, body)
			}
		case strings.HasPrefix(head, "paperpipe related "):
			relateds++
			if !strings.Contains(body, "(space paperpipe-offline-tfidf-") {
				t.Errorf("make demo's %s does not come from the fitted offline model's space:\n%s", head, body)
			}
			for i := 1; i <= 5; i++ {
				if !strings.Contains(body, fmt.Sprintf("\n %d. ", i)) {
					t.Errorf("make demo's %s lacks related paper %d of 5:\n%s", head, i, body)
				}
			}
			if strings.Contains(body, "\n 6. ") {
				t.Errorf("make demo's %s lists more than 5 related papers:\n%s", head, body)
			}
		}
	}
	if shows < 3 || relateds < 3 {
		t.Errorf("make demo showed %d papers and the related papers of %d, want 3 each:\n%s", shows, relateds, out)
	}
	if !strings.Contains(out, "Go further:") || !strings.Contains(out, " search ") || !strings.Contains(out, " up ") {
		t.Errorf("make demo does not end with the commands to go further:\n%s", out)
	}
}

// TestWorkerExitWhenIdleInterruptedFails: `worker --exit-when-idle` stopped by Ctrl-C or
// SIGTERM (a batch job cancelled, a CI timeout) before the queue was empty ends by the signal,
// saying so: with exit 0, `worker --exit-when-idle && paperpipe fit` would go on as if every
// paper were processed, and a Kubernetes Job would count as completed.
func TestWorkerExitWhenIdleInterruptedFails(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{ChatLatency: time.Second})
	c := newCLI(t, "OPENAI_API_KEY=sk-test", "OPENAI_BASE_URL="+api.URL(), "PAPERPIPE_CONCURRENCY=2")
	c.ok("ingest", sampleFile)
	w := exec.Command(binary, "worker", "--exit-when-idle")
	w.Env = c.env
	var logs lockedBuffer
	w.Stderr = &logs
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); api.Stats().ChatRequests == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = w.Process.Kill()
			t.Fatalf("the worker sent no TL;DR request within a minute:\n%s", logs.String())
		}
	}
	_ = w.Process.Signal(syscall.SIGINT)
	err := w.Wait()
	if ws, _ := w.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Fatalf("worker --exit-when-idle interrupted with papers queued exited with %v, want it ended by the SIGINT (status 130):\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "interrupted before the queue was empty") {
		t.Errorf("the interrupted worker does not say the queue is not empty:\n%s", logs.String())
	}
}
