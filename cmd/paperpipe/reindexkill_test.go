package main

import (
	"strings"
	"testing"
)

// A `spaces reindex` killed (SIGKILL) in its swap — its new index built, the transaction that
// puts it in the old one's place waiting for the embedding spaces table, which a `spaces drop`
// holds for minutes — has its transaction rolled back by the server and leaves the new index,
// valid, beside the space's, updated by every write of embeddings. `spaces`, `status` and
// `spaces check` name it and say what to run.
func TestAReindexKilledInItsSwapLeavesAnIndexThatIsShown(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	db := c.connect(t)
	hold := c.connect(t)
	var holder int32
	if err := hold.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	// As a `spaces drop` deleting a space's vectors holds it; the lock its one statement,
	// which leaves no snapshot the reindex's concurrent build would wait for.
	tx, err := hold.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	if _, err := tx.Exec(t.Context(), `LOCK TABLE embedding_spaces IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	killBlocked(t, c, db, holder, "LOCK TABLE embedding_spaces", "its swap", "spaces", "reindex", "1", "--index", "hnsw-binary")
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	var valid bool
	if err := db.QueryRow(t.Context(), `SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('embeddings_hnsw_s1_new')`).Scan(&valid); err != nil {
		t.Fatalf("the reindex killed in its swap left no embeddings_hnsw_s1_new: %v", err)
	}
	if !valid {
		t.Fatal("the reindex killed in its swap left embeddings_hnsw_s1_new invalid: it was killed before its build ended")
	}
	for _, args := range [][]string{{"spaces"}, {"status"}, {"spaces", "check", "1"}} {
		r := c.ok(args...)
		if out := r.stdout + r.stderr; !strings.Contains(out, "embeddings_hnsw_s1_new") || !strings.Contains(out, "spaces reindex 1") {
			t.Errorf("paperpipe %s does not show the index the reindex killed in its swap left, nor what to run:\n%s", strings.Join(args, " "), out)
		}
	}
	c.ok("spaces", "reindex", "1", "--index", "hnsw-binary")
	var left bool
	if err := db.QueryRow(t.Context(), `SELECT to_regclass('embeddings_hnsw_s1_new') IS NOT NULL`).Scan(&left); err != nil || left {
		t.Errorf("the reindex run again, as the notes say, leaves embeddings_hnsw_s1_new (%v)", err)
	}
}
