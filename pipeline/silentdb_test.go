package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// proxiedStore returns a proxy to b's database (see nettest.Proxy: it can go silent, or drop
// and refuse connections) and a store connected through it, on b's schema.
func proxiedStore(t *testing.T, b *testBundle) (*nettest.Proxy, *store.Store) {
	t.Helper()
	p, url := nettest.ProxyURL(t, b.url)
	st, err := store.Open(context.Background(), store.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return p, st
}

// TestWorkerHandsBackItsBatchWhenTheDatabaseGoesSilent: recording a micro-batch had no
// deadline, while every message of it was marked InProgress every quarter AckWait: a database
// connection gone silent (no reset: a failover, a NAT or firewall dropping the flow) held the
// messages, never redelivered, for as long as TCP took to declare it dead (~15 minutes), or for
// ever behind a proxy. Saves were bounded (15 s an attempt); intake is now too (IntakeTimeout),
// and a batch that runs out of it goes back to the queue without using a delivery.
func TestWorkerHandsBackItsBatchWhenTheDatabaseGoesSilent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	// Every delivery the last: a message handed back on a delivery would be dead-lettered.
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 2 * time.Second, MaxDeliver: 1})
	js := b.js
	bh, st := proxiedStore(t, b)
	w, err := pipeline.NewWorker(js, st, summarize.NewOffline(30), emb, pipeline.WorkerConfig{
		SpaceID: b.space.ID, FetchWait: 200 * time.Millisecond, DrainTimeout: time.Second, IntakeTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	defer func() { bh.Freeze(false); stop(); <-done }()

	bh.Freeze(true) // the database goes silent
	publish(t, js, []paper.Abstract{{ID: "arxiv:2401.00001", Title: "A title", Abstract: strings.Repeat("words of an abstract ", 10)}})

	// The intake ends after IntakeTimeout: the message goes back to the queue, without using a
	// delivery (the database's fault, not the paper's), instead of being held while the
	// database is silent.
	waitFor(t, "the message handed back", func() (bool, string) {
		s := w.Stats()
		return s.Retried > 0, fmt.Sprintf("%+v", s)
	})
	if s := w.Stats(); s.Dead != 0 {
		t.Errorf("a silent database dead-lettered a paper on its last delivery: %+v", s)
	}
	if dls := deadLetters(t, js); len(dls) != 0 {
		t.Errorf("%d dead letters: %s", len(dls), dls[0].Reason)
	}
}

// TestWorkerPausesWhileTheDatabaseIsDown: a database server stopped or restarting (connections
// dropped, new ones refused) is no paper's fault. Each failed intake used one of its messages'
// deliveries, and a database down for longer than the deliveries lasted dead-lettered the whole
// backlog (here, every delivery the last, at once). The worker now pauses as for an API that
// cannot be reached, nothing is dead-lettered however long it lasts, and once the database
// accepts connections again the worker resumes on its own and does every paper.
func TestWorkerPausesWhileTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1})
	proxy, st := proxiedStore(t, b)
	proxy.Refuse() // the database goes down
	papers := sampledata.Papers(t)[:5]
	publish(t, b.js, papers)

	logs := &logBuffer{}
	w := startWorkerOn(t, b, st, sum, emb, pipeline.WorkerConfig{Concurrency: 4,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond },
		Logger:  slog.New(slog.NewTextHandler(logs, nil))})
	waitFor(t, "the worker pausing twice", func() (bool, string) {
		s := w.Stats()
		return s.DBPaused >= 2 || s.Dead > 0, fmt.Sprintf("%+v", s)
	})
	checkAllQueued(t, b, w, papers, "a database that is down")
	if s := w.Stats(); s.Paused != 0 {
		t.Errorf("stats %+v: the database's pauses counted as the API's", s)
	}
	if !strings.Contains(logs.String(), "the database cannot be reached or cannot write (not the papers' fault): pausing the worker") {
		t.Errorf("the pause does not say the database cannot be reached:\n%s", logs.String())
	}

	proxy.Accept() // the database is back
	// Acknowledged, not only stored: a requeued copy's acknowledgement withdraws its original's
	// dead letter first, by a claim published to the dead-letter stream and then deleted, which
	// a look between the last save and the deletion saw as a letter.
	waitFor(t, "every paper done and acknowledged once the database is back", func() (bool, string) {
		c, s := counts(t, b, sum), w.Stats()
		return c.WithTLDR == int64(len(papers)) && c.WithEmbedding == int64(len(papers)) && s.Acked >= int64(len(papers)),
			fmt.Sprintf("counts %+v, stats %+v", c, s)
	})
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("%d papers dead-lettered across the outage; the first: %s", len(dls), dls[0].Reason)
	}
	if !strings.Contains(logs.String(), "the database answers again: the worker resumes") {
		t.Errorf("the log does not say when the worker resumes:\n%s", logs.String())
	}
}

// TestOneBadRecordDoesNotMultiplyTheIntakeTimeout: a micro-batch with a bad record is recorded
// one paper at a time, so that only the bad one is dead-lettered; each of those calls had its
// own IntakeTimeout, and a silent database held the batch's good papers for one IntakeTimeout
// each (64 minutes for a full batch at the default) instead of one for the batch.
func TestOneBadRecordDoesNotMultiplyTheIntakeTimeout(t *testing.T) {
	t.Parallel()
	const intake, good = 3 * time.Second, 6
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 2 * time.Second, MaxDeliver: 1})
	proxy, st := proxiedStore(t, b)
	papers := sampledata.Papers(t)[:good]
	// A blank title passes decoding but not the store's check: the batch's statement fails.
	papers = append(papers, paper.Abstract{ID: "arxiv:2401.99999", Title: "   ", Abstract: "An abstract."})
	publish(t, b.js, papers)

	proxy.Freeze(true) // the database goes silent
	defer proxy.Freeze(false)
	start := time.Now()
	w := startWorkerOn(t, b, st, summarize.NewOffline(30), emb, pipeline.WorkerConfig{
		BatchSize: 64, IntakeTimeout: intake, DrainTimeout: time.Second})
	waitFor(t, "the good papers handed back", func() (bool, string) {
		s := w.Stats()
		return s.Retried >= good, fmt.Sprintf("%+v", s)
	})
	// One IntakeTimeout for the batch, then the ping that finds the database silent (3 s): 6 s,
	// and a margin for a loaded machine; not one IntakeTimeout and ping per paper (36 s).
	if took := time.Since(start); took > 4*intake {
		t.Errorf("the batch's good papers were handed back after %s: an intake timeout per paper", took.Round(time.Second))
	}
	// Once the database answers again, the bad record is dead-lettered (handed back with the
	// batch, or at once), and nothing else is.
	proxy.Freeze(false)
	waitFor(t, "the bad record dead-lettered", func() (bool, string) {
		s := w.Stats()
		return s.Dead >= 1, fmt.Sprintf("%+v", s)
	})
	if dls := deadLetters(t, b.js); len(dls) != 1 || dls[0].PaperID != "arxiv:2401.99999" {
		t.Errorf("dead letters %+v: want the bad record's only", dls)
	}
}

// gatedSummarizer holds the first TL;DR request until open is closed.
type gatedSummarizer struct {
	pipeline.Summarizer
	*gate
}

func (g *gatedSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	if g.enter() {
		<-g.open
	}
	return g.Summarizer.Summarize(ctx, a)
}

// TestSaveCutOffMidTransactionDoesNotLockItsPaperForHours: a worker's host that dies or loses
// its network for good in the middle of a save's transaction (after its statement, before its
// COMMIT) never tells the database: the server waits for the next command of a session
// "idle in transaction", holding the rows it wrote locked, until its TCP keepalive gives up —
// two hours and more by default. Meanwhile every save of those papers' results (the worker's
// own retry on a new connection, the redelivery's) ran out of RowLockTimeout: each delivery
// bought the TL;DR again, and the paper was dead-lettered as "row locked by another session".
// The server now ends such a transaction on its own.
func TestSaveCutOffMidTransactionDoesNotLockItsPaperForHours(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	proxy, st := proxiedStore(t, b)
	a := sampledata.Papers(t)[0]
	publish(t, b.js, []paper.Abstract{a})
	sum := &perPaperCalls{Summarizer: summarize.NewOffline(30), calls: map[string]int{}}
	g := &gatedSummarizer{Summarizer: sum, gate: newGate()}
	w := startWorkerOn(t, b, st, g, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	<-g.entered // the paper is recorded; its TL;DR is being written

	// Another session holds the paper's row: the worker's save, once in its transaction,
	// waits for it. Its statement then runs, and the answer goes nowhere.
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var locker int32
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid() FROM papers WHERE id = $1 FOR UPDATE", a.ID).Scan(&locker); err != nil {
		t.Fatal(err)
	}
	close(g.open)
	var saver int32
	waitFor(t, "the worker's save to wait for the row in its transaction", func() (bool, string) {
		err := b.store.Pool().QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%INSERT INTO tldrs%'`, locker).Scan(&saver)
		return err == nil, fmt.Sprint(err)
	})
	proxy.Blackhole() // the worker's host is gone, as far as the database can tell
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	waitFor(t, "the database to end the abandoned transaction", func() (bool, string) {
		var state string
		err := b.store.Pool().QueryRow(ctx, "SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = $1", saver).Scan(&state)
		return errors.Is(err, pgx.ErrNoRows), fmt.Sprintf("session %d: %q, %v", saver, state, err)
	})
	waitFor(t, "the TL;DR saved and the message acknowledged", func() (bool, string) {
		c, s := counts(t, b, sum), w.Stats()
		return c.WithTLDR == 1 && s.Acked == 1, fmt.Sprintf("counts %+v, stats %+v", c, s)
	})
	sum.mu.Lock()
	defer sum.mu.Unlock()
	if n := sum.calls[a.ID]; n != 1 {
		t.Errorf("%d TL;DR requests for the paper, want 1", n)
	}
}

// TestStatusSaysAWorkerWaitsForTheDatabaseWhileItsSavesRetry: a worker cut off from
// PostgreSQL silently (a proxy or a firewall that drops the packets) retries the save of the
// TL;DR it bought for up to 2.6 minutes before its breaker opens, and status listed it as
// `working` all that time, while its log showed the retries. Its announcement now says
// `stalled`, waiting for the database, within seconds of a write going unanswered, and the
// state goes back once the database answers.
func TestStatusSaysAWorkerWaitsForTheDatabaseWhileItsSavesRetry(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	proxy, st := proxiedStore(t, b)
	defer proxy.Freeze(false)
	// Cut off once the paper is recorded and its TL;DR is being bought: the TL;DR's save waits.
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30), hook: func(n int64) {
		if n == 1 {
			proxy.Freeze(true)
		}
	}}
	papers := sampledata.Papers(t)[:1]
	publish(t, b.js, papers)
	w := startWorkerOn(t, b, st, sum, emb, pipeline.WorkerConfig{})
	announce(t, b.js, w, pipeline.AnnounceConfig{})
	var seen pipeline.AnnouncedWorker
	waitFor(t, "the worker announced as waiting for the database", func() (bool, string) {
		ws := announced(t, b.js)
		if len(ws) == 1 {
			seen = ws[0]
		}
		return len(ws) == 1 && ws[0].State == pipeline.StateStalled, describe(ws)
	})
	// The paper's TL;DR and its vector are saved side by side, both cut off: the detail names
	// whichever write the worker saw wait first.
	if p := seen.Pause; p == nil || p.Reason != pipeline.StallDatabase || !strings.Contains(p.Detail, "TL;DRs") && !strings.Contains(p.Detail, "embeddings") {
		t.Errorf("stalled worker's pause %+v: want the reason %s and the save that waits (TL;DRs or embeddings) in its detail", p, pipeline.StallDatabase)
	}
	if sum.calls.Load() != 1 || w.Stats().DBPaused != 0 {
		t.Fatalf("%d TL;DRs bought, %d database pauses: the test meant one TL;DR waiting for its save, before any pause", sum.calls.Load(), w.Stats().DBPaused)
	}
	proxy.Freeze(false)
	waitFor(t, "the paper done and the worker idle again", func() (bool, string) {
		ws := announced(t, b.js)
		return w.Stats().Acked == 1 && len(ws) == 1 && ws[0].State == pipeline.StateIdle, describe(ws)
	})
}
