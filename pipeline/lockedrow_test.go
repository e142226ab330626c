package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// A paper row held locked by another session (a transaction left open by an operator or
// another tool) must hold up that paper alone: its message is tried again later, and the
// papers published with it are stored at once, without waiting for the lock or being bought
// again (store.Config.RowLockTimeout bounds a write's wait for a row).

// lockedRowStore opens the worker's store on b's database with a short RowLockTimeout.
func lockedRowStore(t *testing.T, b *testBundle) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{URL: b.url, RowLockTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// lockPaper locks paper id's row from another session, as an UPDATE left uncommitted does,
// until the returned function (or the test's end) rolls it back.
func lockPaper(t *testing.T, b *testBundle, id string) (release func()) {
	t.Helper()
	return lockFrom(t, b, "SELECT FROM papers WHERE id = $1 FOR UPDATE", id)
}

// lockFrom runs sql (which locks something) in a transaction of another session that stays
// open until the returned function (or the test's end) rolls it back.
func lockFrom(t *testing.T, b *testBundle, sql string, args ...any) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			_ = tx.Rollback(ctx)
			_ = conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
	return release
}

// doneOf reports which of papers have a TL;DR of sum and a vector in b's space, both of their
// current text.
func doneOf(t *testing.T, b *testBundle, sum pipeline.Summarizer, papers []paper.Abstract) map[string]bool {
	t.Helper()
	ids := make([]string, len(papers))
	for i, a := range papers {
		ids[i] = a.ID
	}
	rows, err := b.store.Pool().Query(context.Background(), `SELECT p.id FROM papers p
		WHERE p.id = ANY($1)
			AND EXISTS (SELECT 1 FROM tldrs t WHERE t.paper_id = p.id AND t.model = $2 AND t.prompt_version = $3 AND t.content_hash = p.content_hash)
			AND EXISTS (SELECT 1 FROM embeddings e WHERE e.paper_id = p.id AND e.space_id = $4 AND e.content_hash = p.content_hash)`,
		ids, sum.Model(), sum.PromptVersion(), b.space.ID)
	if err != nil {
		t.Fatal(err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]bool, len(done))
	for _, id := range done {
		out[id] = true
	}
	return out
}

// othersDoneOnce waits until the papers not locked are done, while the lock holds, and fails
// the test if one's TL;DR was bought more than once.
func othersDoneOnce(t *testing.T, b *testBundle, sum *perPaperSummarizer, w *pipeline.Worker, others []paper.Abstract) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the %d papers not locked to be done while the lock holds", len(others)), func() (bool, string) {
		d := doneOf(t, b, sum, others)
		return len(d) == len(others), fmt.Sprintf("done %v, stats %+v", d, w.Stats())
	})
	for _, a := range others {
		if n := sum.callsOf(a.ID); n != 1 {
			t.Errorf("paper %s, not locked: %d TL;DRs bought, want 1", a.ID, n)
		}
	}
}

// perPaperSummarizer counts the TL;DRs it writes per paper and calls hook before each.
type perPaperSummarizer struct {
	pipeline.Summarizer
	mu    sync.Mutex
	calls map[string]int
	hook  func(a paper.Abstract, n int)
}

func (s *perPaperSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = make(map[string]int)
	}
	s.calls[a.ID]++
	n := s.calls[a.ID]
	s.mu.Unlock()
	if s.hook != nil {
		s.hook(a, n)
	}
	return s.Summarizer.Summarize(ctx, a)
}

func (s *perPaperSummarizer) callsOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// TestALockedRowDoesNotHoldUpItsBatchmatesAtIntake: a changed paper whose row is locked is
// published with three new ones, in one micro-batch. The batch's UpsertPapers cannot update
// the locked row; the three others are recorded and processed while the lock holds (before,
// the whole batch waited IntakeTimeout, went back, and timed out again for as long as the
// lock lasted), and the locked paper once it is gone.
func TestALockedRowDoesNotHoldUpItsBatchmatesAtIntake(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	sum := &perPaperSummarizer{Summarizer: summarize.NewOffline(30)}
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:4]
	older := papers[0]
	older.Abstract = "An older version of the abstract."
	older.TextAt = time.Now().Add(-time.Hour)
	if _, err := b.store.UpsertPapers(context.Background(), []paper.Abstract{older}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	release := lockPaper(t, b, papers[0].ID)
	publish(t, b.js, papers)
	w := startWorkerOn(t, b, lockedRowStore(t, b), sum, emb, pipeline.WorkerConfig{BatchSize: 4, Concurrency: 4,
		IntakeTimeout: 5 * time.Minute, Backoff: func(int) time.Duration { return 200 * time.Millisecond }})
	othersDoneOnce(t, b, sum, w, papers[1:])
	if d := doneOf(t, b, sum, papers[:1]); d[papers[0].ID] {
		t.Fatalf("paper %s is done while its row is locked: the test locked nothing", papers[0].ID)
	}
	release()
	waitFor(t, "the locked paper to be done once the lock is gone", func() (bool, string) {
		d := doneOf(t, b, sum, papers)
		return len(d) == 4, fmt.Sprintf("done %v, stats %+v", d, w.Stats())
	})
	for _, a := range papers {
		if n := sum.callsOf(a.ID); n != 1 {
			t.Errorf("paper %s: %d TL;DRs bought, want 1 (a locked intake buys nothing)", a.ID, n)
		}
	}
}

// TestALockedRowDoesNotHoldUpTheResultsSavedWithIt: another session locks a paper's row after
// the worker recorded it, while its TL;DR is being written. Its TL;DR and vector cannot be
// saved while the lock holds, but those of the three papers saved with it (one TL;DR group
// commit, one embedding batch) are, at once and bought once (before, the whole group waited
// for the lock for up to 2.6 minutes, every other TL;DR behind it, and then every message of
// the batch used a delivery and bought its results again).
func TestALockedRowDoesNotHoldUpTheResultsSavedWithIt(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:4]
	var release func()
	locked := make(chan struct{})
	sum := &perPaperSummarizer{Summarizer: summarize.NewOffline(30)}
	sum.hook = func(a paper.Abstract, n int) {
		if a.ID == papers[0].ID && n == 1 {
			release = lockPaper(t, b, a.ID)
			close(locked)
		}
	}
	publish(t, b.js, papers)
	w := startWorkerOn(t, b, lockedRowStore(t, b), sum, emb, pipeline.WorkerConfig{BatchSize: 4, Concurrency: 4,
		Backoff: func(int) time.Duration { return time.Second }})
	<-locked
	othersDoneOnce(t, b, sum, w, papers[1:])
	release()
	waitFor(t, "the locked paper to be done once the lock is gone", func() (bool, string) {
		d := doneOf(t, b, sum, papers)
		return len(d) == 4, fmt.Sprintf("done %v, stats %+v", d, w.Stats())
	})
}

// TestALockedTLDRRowDoesNotHoldUpTheTLDRsSavedWithIt: a paper whose text changed has its
// older TL;DR row held by another session (an operator's UPDATE of tldrs left uncommitted).
// The TL;DR group commit that holds its new TL;DR runs out of RowLockTimeout and the store
// cannot name a paper (its papers row is free): the worker saves the group's TL;DRs one by one,
// so the three saved with it are not bought again.
func TestALockedTLDRRowDoesNotHoldUpTheTLDRsSavedWithIt(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:4]
	base := summarize.NewOffline(30)
	older := papers[0]
	older.Abstract = "An older version of the abstract."
	older.TextAt = time.Now().Add(-time.Hour)
	ctx := context.Background()
	if _, err := b.store.UpsertPapers(ctx, []paper.Abstract{older}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.SaveSummaries(ctx, []paper.Summary{{PaperID: older.ID, Model: base.Model(), PromptVersion: base.PromptVersion(),
		ContentHash: older.ContentHash(), Text: "An older TL;DR.", Validation: paper.ValidOK}}); err != nil {
		t.Fatal(err)
	}
	release := lockFrom(t, b, "UPDATE tldrs SET tldr = 'edited by hand' WHERE paper_id = $1", older.ID)
	sum := &perPaperSummarizer{Summarizer: base}
	publish(t, b.js, papers)
	w := startWorkerOn(t, b, lockedRowStore(t, b), sum, emb, pipeline.WorkerConfig{BatchSize: 4, Concurrency: 4,
		Backoff: func(int) time.Duration { return time.Second }})
	othersDoneOnce(t, b, sum, w, papers[1:])
	release()
}
