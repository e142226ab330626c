package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A command that reads a file and stores what it holds (import, import-embeddings,
// import-tldrs, reprocess --ids, and embed with a fitted offline model, which lives in the
// database) says that the file is missing before it opens the database: it opened the database
// and applied its migrations first, so a typo in the path gave a database paperpipe had never
// used its tables (and reprocess created its model's space), and one that could not be reached
// gave the connection's error instead of "no such file".
func TestAMissingFileIsSaidBeforeTheDatabaseIsOpened(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1", "NATS_URL=nats://127.0.0.1:1")
	missing := filepath.Join(t.TempDir(), "exprot.jsonl")
	dir := t.TempDir()
	for _, args := range [][]string{
		{"import", missing},
		{"import-embeddings", missing},
		{"import-tldrs", missing},
		{"import", dir},
		{"reprocess", "--ids", missing, "--chat-model", "offline", "--embed-model", "offline"},
		{"reprocess", "--ids", missing, "--dry-run"},
		{"embed", "--embed-model", "paperpipe-offline-tfidf-0123456789ab", missing},
	} {
		r := c.run(args...)
		want := "no such file or directory"
		if args[1] == dir {
			want = "is a directory"
		}
		if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "database") {
			t.Errorf("paperpipe %q: exit %d, stderr %q; want 1 and %q, before the database is opened", args, r.code, r.stderr, want)
		}
	}
}
