package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// A paper removed (paperpipe remove) while its message waits in a worker for a chat slot — the
// worker holds up to max(4×Concurrency, 256) messages, recorded at once, while Concurrency of
// them are written — gets no TL;DR bought: the worker asks the store again once the slot is
// its. It bought every one (and the store dropped them, as their paper was gone): removing a
// wrongly ingested file while the workers were at it paid for up to 256 TL;DRs per worker.
func TestAPaperRemovedWhileItsMessageWaitsForAChatSlotGetsNoTLDRBought(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:4]
	publish(t, b.js, papers)

	started, release := make(chan struct{}), make(chan struct{})
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30), hook: func(n int64) {
		if n == 1 {
			close(started)
			<-release // the first TL;DR is being written while the others wait
		}
	}}
	// TL;DRs only, as `reprocess --tldr-only`; any wait asks the store again (the default, 1 s,
	// would make the test wait).
	w := startWorkerOn(t, b, b.store, sum, nil, pipeline.WorkerConfig{Concurrency: 1, RecheckAfter: time.Nanosecond})
	<-started
	var first string
	waitFor(t, "the worker to record every paper", func() (bool, string) {
		var n int
		if err := b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM papers`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == len(papers), fmt.Sprintf("%d papers stored", n)
	})
	if err := b.store.Pool().QueryRow(ctx, `SELECT paper_id FROM tldrs LIMIT 1`).Scan(&first); err == nil {
		t.Fatalf("a TL;DR (%s) was stored before the first was released", first)
	}
	var ids []string
	for _, a := range papers {
		ids = append(ids, a.ID)
	}
	// Every paper, the one being written among them (its TL;DR is bought, and dropped).
	tot, err := b.store.RemovePapers(ctx, ids, false, nil)
	if err != nil || tot.Papers != len(papers) {
		t.Fatalf("RemovePapers = %+v, %v", tot, err)
	}
	close(release)
	waitFor(t, "the queue to empty", func() (bool, string) {
		n := streamMsgs(t, b.js, pipeline.StreamPapers)
		return n == 0, fmt.Sprintf("%d messages queued", n)
	})
	if n := sum.calls.Load(); n != 1 {
		t.Errorf("%d TL;DRs bought, want 1 (the one being written when the papers were removed)", n)
	}
	if st := w.Stats(); st.Skipped != int64(len(papers)-1) {
		t.Errorf("worker stats %+v; want the %d papers whose TL;DR was not bought counted skipped", st, len(papers)-1)
	}
	var stored int
	if err := b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM papers`).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("%d papers stored after their removal (%v), want 0", stored, err)
	}
}

// removalCountingStore counts the worker's questions about removals.
type removalCountingStore struct {
	*store.Store
	probes, latest atomic.Int64
}

func (s *removalCountingStore) Removed(ctx context.Context, id string) (bool, error) {
	s.probes.Add(1)
	return s.Store.Removed(ctx, id)
}

func (s *removalCountingStore) LastRemoval(ctx context.Context) (time.Time, error) {
	s.latest.Add(1)
	return s.Store.LastRemoval(ctx)
}

// While no paper is being removed, the messages that waited for a chat slot ask the store
// nothing about their papers (one read of the latest removal stands for all of them): a probe
// per paper cost PostgreSQL ~0.1 CPU-s per 1,000 papers at C64 and C256, where every message
// waits (and re-reading each paper's work cost 1.3–1.7).
func TestWaitingMessagesAskNothingPerPaperWhileNoneIsRemoved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:6]
	publish(t, b.js, papers)

	st := &removalCountingStore{Store: b.store}
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30)}
	// Every message waits longer than RecheckAfter: each goes through the re-check.
	startWorkerOn(t, b, st, sum, nil, pipeline.WorkerConfig{Concurrency: 1, RecheckAfter: time.Nanosecond})
	waitFor(t, "every TL;DR", func() (bool, string) {
		var n int
		if err := b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM tldrs`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == len(papers), fmt.Sprintf("%d TL;DRs stored", n)
	})
	if n := sum.calls.Load(); n != int64(len(papers)) {
		t.Errorf("%d TL;DRs bought, want %d", n, len(papers))
	}
	if st.latest.Load() == 0 {
		t.Fatal("the latest removal was never read: the messages did not go through the re-check, and the test proves nothing")
	}
	if n := st.probes.Load(); n != 0 {
		t.Errorf("%d papers asked about one by one with no paper removed, want 0", n)
	}
}

// The latest removal is read once a RecheckAfter for every message that waited, not once per
// message (Store.LastRemoval, what the removal re-check costs at C64 and C256 where every
// message waits): five messages held past RecheckAfter behind a slow TL;DR, then let through,
// share one read. (The test above re-checks with RecheckAfter a nanosecond, under which a read
// per message and a shared one look alike.)
func TestWaitingMessagesShareOneReadOfTheLatestRemoval(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, embed.NewOffline(), pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:6]
	publish(t, b.js, papers)

	const recheck = 6 * time.Second // the five messages after the first go through within it, with room on a loaded machine
	release := make(chan struct{})
	var once sync.Once
	let := func() { once.Do(func() { close(release) }) }
	t.Cleanup(let)
	st := &removalCountingStore{Store: b.store}
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30), hook: func(n int64) {
		if n == 1 {
			<-release
		}
	}}
	startWorkerOn(t, b, st, sum, nil, pipeline.WorkerConfig{Concurrency: 1, RecheckAfter: recheck})
	waitFor(t, "the first TL;DR request", func() (bool, string) {
		return sum.calls.Load() == 1, fmt.Sprintf("%d requests", sum.calls.Load())
	})
	// The others have now waited past RecheckAfter: each goes through the re-check once let
	// through, within a RecheckAfter of the first (six offline TL;DRs take milliseconds).
	time.Sleep(recheck + 200*time.Millisecond)
	let()
	waitFor(t, "every TL;DR", func() (bool, string) {
		var n int
		if err := b.store.Pool().QueryRow(ctx, `SELECT count(*) FROM tldrs`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == len(papers), fmt.Sprintf("%d TL;DRs stored", n)
	})
	if n := st.latest.Load(); n == 0 || n > 2 {
		t.Errorf("the latest removal was read %d times for the %d messages that waited past RecheckAfter, want once (twice at most, if the reads straddle a RecheckAfter)", n, len(papers)-1)
	}
}
