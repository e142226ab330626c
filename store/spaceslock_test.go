package store_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// syncLog is a log destination safe to read while another goroutine logs.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A `spaces drop` holds the embedding spaces table while it deletes the space's vectors, which
// takes a while for a large space; `activate` (and a space's creation, a worker's start) waits
// for it. It waits as before, but says what it waits for, naming the session that holds the
// table and its statement, as other lock waits do, instead of hanging without a word.
func TestActivateBehindASlowDropSaysWhatItWaitsFor(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	active := space(t, s, "active", 3)
	old := space(t, s, "old", 3)
	a := paper.Abstract{ID: "arxiv:2401.00001", Title: "Routing", Abstract: "We route tokens."}
	if _, err := s.UpsertPapers(ctx, []paper.Abstract{a}, store.Work{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveEmbeddings(ctx, old.ID, []paper.Embedding{{PaperID: a.ID, Vector: []float32{1, 2, 3}, ContentHash: a.ContentHash()}}); err != nil {
		t.Fatal(err)
	}
	// The drop's DELETE of the vectors waits for this row: a drop as slow as a large space's.
	slow, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Rollback(ctx)
	if _, err := slow.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Exec(ctx, "SELECT FROM embeddings WHERE space_id = $1 FOR UPDATE", old.ID); err != nil {
		t.Fatal(err)
	}
	dropped := make(chan error, 1)
	go func() { dropped <- s.DropSpace(ctx, old.ID, store.DropOptions{}) }()
	waitFor(t, "the drop to delete the vectors", func() bool {
		var n int
		_ = s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
			AND query LIKE 'DELETE FROM embeddings WHERE space_id%'`).Scan(&n)
		return n > 0
	})
	// A session whose lock of the table does not conflict with the one activate takes (a row
	// share, as a foreign key's check takes) holds nothing up, and is not named.
	reader, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback(ctx)
	var readerPID int32
	if _, err := reader.Exec(ctx, "LOCK TABLE embedding_spaces IN ROW SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	if err := reader.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&readerPID); err != nil {
		t.Fatal(err)
	}
	var logs syncLog
	logged, err := store.Open(ctx, store.Config{URL: s.Pool().Config().ConnString(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer logged.Close()
	activated := make(chan error, 1)
	go func() { activated <- logged.Activate(ctx, active.ID) }()
	said := true
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "DELETE FROM embeddings") {
		if time.Now().After(deadline) {
			said = false
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := slow.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-dropped; err != nil {
		t.Errorf("drop: %v", err)
	}
	if err := <-activated; err != nil {
		t.Errorf("activate: %v", err)
	}
	if strings.Contains(logs.String(), fmt.Sprintf("pid %d ", readerPID)) {
		t.Errorf("the wait named pid %d, whose row share lock of the table holds nothing up:\n%s", readerPID, logs.String())
	}
	if !said || !strings.Contains(logs.String(), "spaces drop") {
		t.Errorf("activate waited 20 s behind the drop and logged %q; want it to say it waits for the table the drop holds, naming the drop's session", logs.String())
	}
}

// waitFor polls cond until it holds, failing the test after three minutes. (A concurrent index
// build waits for every transaction of the database older than its snapshot — the other
// packages' and tests' too, which share the test database: under a loaded -race run a reindex
// took over a minute to reach its swap.)
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited three minutes for %s", what)
		}
	}
}

// A reindex interrupted after its new index is built, while its swap waits for the embedding
// spaces table (a `spaces drop` deleting a large space's vectors holds it for minutes: Ctrl-C),
// left embeddings_hnsw_sN_new, valid, beside the space's index: every write of embeddings
// updates it, it takes the disk space of an index, and `spaces` and `status` (which name an
// unfinished index, but only an invalid one) showed nothing of it. It is dropped, or shown.
func TestReindexInterruptedBeforeItsSwapLeavesNoHiddenIndex(t *testing.T) {
	t.Parallel()
	s := setup(t)
	sp := space(t, s, "swap", 3)
	a := paper.Abstract{ID: "arxiv:2401.00001", Title: "Routing", Abstract: "We route tokens."}
	if _, err := s.UpsertPapers(t.Context(), []paper.Abstract{a}, store.Work{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveEmbeddings(t.Context(), sp.ID, []paper.Embedding{embeddingOf(a, 1, 2, 3)}); err != nil {
		t.Fatal(err)
	}
	blocker, err := s.Pool().Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback(t.Context())
	if _, err := blocker.Exec(t.Context(), "LOCK TABLE embedding_spaces IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var logs syncLog
	logged, err := store.Open(t.Context(), store.Config{URL: s.Pool().Config().ConnString(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer logged.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := logged.Reindex(ctx, sp.ID, store.IndexHNSWBinary, store.IndexSettings{})
		done <- err
	}()
	waitFor(t, "the reindex's swap to wait for the spaces table", func() bool {
		return strings.Contains(logs.String(), "waiting for the embedding spaces table")
	})
	cancel() // Ctrl-C
	if err := <-done; err == nil {
		t.Fatal("a reindex interrupted before its swap reported success")
	}
	if err := blocker.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	fresh := fmt.Sprintf("embeddings_hnsw_s%d_new", sp.ID)
	var left bool
	if err := s.Pool().QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", fresh).Scan(&left); err != nil {
		t.Fatal(err)
	}
	info, err := s.FindSpace(t.Context(), fmt.Sprint(sp.ID))
	if err != nil {
		t.Fatal(err)
	}
	if left && !strings.Contains(info.UnfinishedIndex, fresh) {
		t.Errorf("the interrupted reindex left %s, which the space's UnfinishedIndex (%q) does not name: nothing shows it", fresh, info.UnfinishedIndex)
	}
}
