package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `summarize` and `embed` read a file as `ingest` reads it, and take its --max-abstract-bytes:
// an abstract above the default 32 KiB that `ingest --max-abstract-bytes 65536` stores was a
// rejected record to them (exit 1), and the flag the user reached for was not defined (exit
// 2), so a model could not be tried on the papers the archive holds.
func TestSummarizeAndEmbedTakeMaxAbstractBytes(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	long := strings.Repeat("We route tokens to experts and balance their load. ", 800) // 40,800 bytes
	line, err := json.Marshal(map[string]string{"id": "2401.00001", "title": "A long abstract", "abstract": long})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "long.jsonl")
	if err := os.WriteFile(file, append(line, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"summarize", "embed"} {
		if r := c.run(cmd, file); r.code != 1 || !strings.Contains(r.stderr, "limit 32768") {
			t.Errorf("%s of a 40 KB abstract: exit %d, want 1 and the limit named:\n%s", cmd, r.code, r.stderr)
		}
		r := c.ok(cmd, "--max-abstract-bytes", "65536", file)
		if !strings.Contains(r.stdout, `"id":"arxiv:2401.00001"`) {
			t.Errorf("%s --max-abstract-bytes 65536: no line of the paper:\n%s\n%s", cmd, r.stdout, r.stderr)
		}
		if r := c.run(cmd, "--max-abstract-bytes", "0", file); r.code != 2 {
			t.Errorf("%s --max-abstract-bytes 0: exit %d, want 2", cmd, r.code)
		}
	}
}
