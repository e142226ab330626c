package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
}
