package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// The worker when PostgreSQL cannot be reached or cannot write: see also silentdb_test.go.

// countingSummarizer counts the TL;DRs bought, bills each as one request, and runs hook (if
// any) before answering.
type countingSummarizer struct {
	pipeline.Summarizer
	calls atomic.Int64
	hook  func(n int64)
}

func (s *countingSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	n := s.calls.Add(1)
	if s.hook != nil {
		s.hook(n)
	}
	sm, err := s.Summarizer.Summarize(ctx, a)
	sm.Usage = paper.Usage{Model: s.Model(), Kind: paper.KindChat, Requests: 1, InputTokens: 100, OutputTokens: 20}
	return sm, err
}

// execSQL runs sql in the test's schema.
func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// TestDatabaseBreakerStaysOpenUntilResultsAreSaved: a database that answers but cannot write
// (a full disk, 53100) pauses the worker; after the pause the probe's intake of a paper stored
// already writes nothing, and succeeds. Closing the breaker on it resumed the worker at full
// speed, to buy TL;DRs it could not save, with the pause's backoff back at its first step after
// every probe, for as long as the disk stayed full. After such a pause the breaker closes when a
// message's results are saved.
func TestDatabaseBreakerStaysOpenUntilResultsAreSaved(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:4]
	// The backlog is of papers recorded before (redeliveries): their intake writes nothing.
	if _, err := b.store.UpsertPapers(context.Background(), papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	// A full disk: TL;DRs cannot be saved.
	execSQL(t, b.url, `CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$;
CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE ON tldrs FOR EACH ROW EXECUTE FUNCTION disk_full();`)
	publish(t, b.js, papers)
	logs := &logBuffer{}
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30)}
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond },
		Logger:  slog.New(slog.NewTextHandler(logs, nil))})
	// The first TL;DRs' saves give up after their retries (~21 s): a pause.
	waitFor(t, "a database pause", func() (bool, string) { return w.Stats().DBPaused >= 1, fmt.Sprintf("%+v", w.Stats()) })
	bought := sum.calls.Load()
	time.Sleep(2 * time.Second) // the probe's intake succeeds meanwhile; its TL;DR's save retries
	if strings.Contains(logs.String(), "resumes") {
		t.Errorf("the worker resumed on an intake that wrote nothing, while TL;DRs could not be saved:\n%s", logs.String())
	}
	if n := sum.calls.Load() - bought; n > 1 {
		t.Errorf("%d TL;DRs bought after the pause while none could be saved: want the probe's only", n)
	}
	if api, db := w.Paused(); api || !db {
		t.Errorf("Paused() = %v, %v while TL;DRs cannot be saved; want false, true", api, db)
	}

	execSQL(t, b.url, `DROP TRIGGER disk_full ON tldrs`) // space freed
	waitFor(t, "every paper done", func() (bool, string) {
		c := counts(t, b, sum)
		return c.WithTLDR == int64(len(papers)), fmt.Sprintf("counts %+v, stats %+v", c, w.Stats())
	})
	waitFor(t, "the worker no longer paused", func() (bool, string) {
		api, db := w.Paused()
		return !api && !db, fmt.Sprintf("Paused() = %v, %v", api, db)
	})
	if !strings.Contains(logs.String(), "the database saves results again: the worker resumes") {
		t.Errorf("the log does not say when the worker resumes:\n%s", logs.String())
	}
}

// pendingOnlyStore is internal/reprocess.Store, which cmd/paperpipe's reprocess runs: its intake is store.PendingFor.
type pendingOnlyStore struct{ *store.Store }

func (s pendingOnlyStore) UpsertPapers(ctx context.Context, papers []paper.Abstract, w paper.Work) ([]paper.Pending, error) {
	return s.Store.PendingFor(ctx, papers, w)
}

// TestReprocessIntakeStopsTheRunWhileTheDatabaseIsDown: `reprocess` records its papers with
// PendingFor, whose errors were not marked: a database that is down spent the messages'
// deliveries and dead-lettered the run's queue. The run now stops at the first pause, its
// messages queued.
func TestReprocessIntakeStopsTheRunWhileTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1})
	papers := sampledata.Papers(t)[:3]
	if _, err := b.store.UpsertPapers(context.Background(), papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	proxy, st := proxiedStore(t, b)
	proxy.Refuse()
	publish(t, b.js, papers)
	w, err := pipeline.NewWorker(b.js, pendingOnlyStore{st}, summarize.NewOffline(30), emb, pipeline.WorkerConfig{
		SpaceID: b.space.ID, FetchWait: 200 * time.Millisecond, ExitWhenIdle: true,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Run(ctx); !errors.Is(err, paper.ErrUnavailable) {
		t.Errorf("the run did not stop for the database: %v (stats %+v)", err, w.Stats())
	}
	checkAllQueued(t, b, w, papers, "a database that is down")
}

// TestOneLinePerDatabasePause: each failed intake logged "recording papers failed; messages
// will be redelivered" beside the pause's own line (they are handed back, no delivery used).
func TestOneLinePerDatabasePause(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1})
	proxy, st := proxiedStore(t, b)
	proxy.Refuse()
	publish(t, b.js, sampledata.Papers(t)[:5])
	logs := &logBuffer{}
	w := startWorkerOn(t, b, st, sum, emb, pipeline.WorkerConfig{Concurrency: 4,
		Backoff: func(int) time.Duration { return 200 * time.Millisecond },
		Logger:  slog.New(slog.NewTextHandler(logs, nil))})
	waitFor(t, "five pauses", func() (bool, string) { return w.Stats().DBPaused >= 5, fmt.Sprintf("%+v", w.Stats()) })
	proxy.Accept()
	out := logs.String()
	if n, p := strings.Count(out, "level="), strings.Count(out, pauseLine); n != p {
		t.Errorf("%d log lines for %d pause lines, want only the pauses':\n%s", n, p, out)
	}
}

// TestExitWhenIdleRunStopsWhenTheDatabaseGoesSilent: a refused database stopped an
// --exit-when-idle run (and `reprocess`) at once, but a silent one handed each micro-batch back
// after IntakeTimeout with no pause, and pulled it again, for ever: a cron run never ended, and
// a long-running worker never paused. The intake's timeout now pauses the worker.
func TestExitWhenIdleRunStopsWhenTheDatabaseGoesSilent(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	proxy, st := proxiedStore(t, b)
	papers := sampledata.Papers(t)[:2]
	publish(t, b.js, papers)
	proxy.Freeze(true)
	defer proxy.Freeze(false)
	w, err := pipeline.NewWorker(b.js, st, summarize.NewOffline(30), emb, pipeline.WorkerConfig{
		SpaceID: b.space.ID, FetchWait: 200 * time.Millisecond, ExitWhenIdle: true, IntakeTimeout: 2 * time.Second,
		DrainTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runErr := w.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("an --exit-when-idle run did not end in 30 s (15 IntakeTimeouts) with the database silent: %+v", w.Stats())
	}
	if !errors.Is(runErr, paper.ErrUnavailable) {
		t.Errorf("the run ended with %v, want the database's error", runErr)
	}
	proxy.Freeze(false)
	checkAllQueued(t, b, w, papers, "a silent database")
}

// TestUsageBoughtDuringAnOutageReachesTheLedger: a TL;DR bought as the database goes down is
// lost when its save gives up (and bought again, as documented), but the purchase is spent: it
// was never written to the usage ledger (one attempt, the failure only logged), so `status`
// and the cost estimate under-reported the spend. Usage the ledger did not take is now added
// to the next record.
func TestUsageBoughtDuringAnOutageReachesTheLedger(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	proxy, st := proxiedStore(t, b)
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30), hook: func(n int64) {
		if n == 1 {
			proxy.Refuse() // down as the answer comes back, for longer than the save's retries
			time.AfterFunc(25*time.Second, proxy.Accept)
		}
	}}
	publish(t, b.js, sampledata.Papers(t)[:1])
	w := startWorkerOn(t, b, st, sum, emb, pipeline.WorkerConfig{Backoff: func(int) time.Duration { return 500 * time.Millisecond }})
	waitFor(t, "the paper done after the outage", func() (bool, string) { return w.Stats().Acked == 1, fmt.Sprintf("%+v", w.Stats()) })
	recorded := chatRequestsRecorded(t, b)
	if bought := sum.calls.Load(); bought < 2 || int64(recorded) != bought {
		t.Errorf("%d TL;DR requests bought, %d in the usage ledger: want the one lost in the outage and its second purchase, each recorded", bought, recorded)
	}
}

// refusingSummarizer is an API that refuses the key (401).
type refusingSummarizer struct{ pipeline.Summarizer }

func (s refusingSummarizer) Summarize(context.Context, paper.Abstract) (paper.Summary, error) {
	return paper.Summary{}, fmt.Errorf("chat: 401 invalid api key: %w", llm.ErrAccount)
}

// TestDatabaseRecoveryDoesNotEndTheAPIsPause: one breaker served the API and the database, so
// a database outage while the API refused the key, once over, closed the API's pause: the
// worker resumed against an API still refusing, its backoff back at the first step. Each
// service's breaker is now closed by that service only.
func TestDatabaseRecoveryDoesNotEndTheAPIsPause(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	proxy, st := proxiedStore(t, b)
	publish(t, b.js, sampledata.Papers(t)[:8])
	logs := &logBuffer{}
	w := startWorkerOn(t, b, st, refusingSummarizer{summarize.NewOffline(30)}, emb, pipeline.WorkerConfig{Concurrency: 8,
		Backoff: func(n int) time.Duration { return time.Duration(n) * 100 * time.Millisecond },
		Logger:  slog.New(slog.NewTextHandler(logs, nil))})
	waitFor(t, "three API pauses", func() (bool, string) { return w.Stats().Paused >= 3, fmt.Sprintf("%+v", w.Stats()) })
	proxy.Refuse()
	waitFor(t, "a database pause", func() (bool, string) { return w.Stats().DBPaused >= 1, fmt.Sprintf("%+v", w.Stats()) })
	proxy.Accept()
	waitFor(t, "the API's next pause", func() (bool, string) { return w.Stats().Paused >= 5, fmt.Sprintf("%+v", w.Stats()) })
	out := logs.String()
	if strings.Contains(out, "resumes") {
		t.Errorf("the worker resumed while the API still refused the key:\n%s", out)
	}
	// The API's pauses go on counting: 1, 2, 3, 4, 5, not back to 1 after the database's.
	var inARow []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "the API refuses") {
			if _, after, ok := strings.Cut(l, "pauses_in_a_row="); ok {
				inARow = append(inARow, strings.Fields(after)[0])
			}
		}
	}
	for i, n := range inARow {
		if n != fmt.Sprint(i+1) {
			t.Errorf("the API's pauses in a row went %v: its backoff started again", inARow)
			break
		}
	}
}

// TestLockedRowDoesNotPauseTheWorker: an intake that runs out of IntakeTimeout because one
// paper's row is locked by another session (an operator's open transaction) was taken for a
// database gone silent: the whole worker paused, logging that the database cannot be reached,
// again at each probe. A database that answers a ping is not down: the batch goes back to the
// queue, and the other papers go on.
func TestLockedRowDoesNotPauseTheWorker(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	sum := summarize.NewOffline(30)
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:10]
	ctx := context.Background()
	older := papers[0]
	older.Abstract = "An older version of the abstract."
	older.TextAt = time.Now().Add(-time.Hour)
	if _, err := b.store.UpsertPapers(ctx, []paper.Abstract{older}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	defer lockPaper(t, b, papers[0].ID)()
	publish(t, b.js, papers[:1])
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{BatchSize: 2, Concurrency: 4, IntakeTimeout: time.Second,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
	waitFor(t, "the locked paper's intake handed back", func() (bool, string) { return w.Stats().Retried >= 1, fmt.Sprintf("%+v", w.Stats()) })
	publish(t, b.js, papers[1:]) // the other papers arrive
	waitFor(t, "the other papers done", func() (bool, string) {
		c := counts(t, b, sum)
		return c.WithTLDR >= int64(len(papers)-1), fmt.Sprintf("counts %+v, stats %+v", c, w.Stats())
	})
	if s := w.Stats(); s.DBPaused != 0 {
		t.Errorf("the database answers, one paper's row is locked: the worker paused %d times (stats %+v)", s.DBPaused, s)
	}
}

// intakeSizes is a store that records the size of every intake.
type intakeSizes struct {
	pipeline.Store
	mu    sync.Mutex
	sizes []int
}

func (s *intakeSizes) UpsertPapers(ctx context.Context, p []paper.Abstract, w paper.Work) ([]paper.Pending, error) {
	s.mu.Lock()
	s.sizes = append(s.sizes, len(p))
	s.mu.Unlock()
	return s.Store.UpsertPapers(ctx, p, w)
}

// TestWorkerLeavesProbingWhenTheDatabaseAnswersAgain: the database's breaker closed only on a
// message whose results were saved, so after an outage a backlog of papers stored already
// (redeliveries, a dump ingested again) went through one message at a time for as long as none
// needed new work. After a connection failure, a micro-batch recorded closes it; only a
// database that answered but could not write waits for a save.
func TestWorkerLeavesProbingWhenTheDatabaseAnswersAgain(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)
	if _, err := b.store.UpsertPapers(context.Background(), papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	publish(t, b.js, papers)
	if ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{}); ws.Acked != int64(len(papers)) {
		t.Fatalf("first pass %+v", ws)
	}
	proxy, st := proxiedStore(t, b)
	sizes := &intakeSizes{Store: st}
	proxy.Refuse()
	// The same papers again, as another run's (not dropped as repeats): nothing to do for them.
	p := pipeline.NewRunPublisher(b.js, pipeline.SubjectNew, "again", 64)
	for _, a := range papers {
		if err := p.Publish(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	w, err := pipeline.NewWorker(b.js, sizes, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, FetchWait: 200 * time.Millisecond,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "a database pause", func() (bool, string) { return w.Stats().DBPaused >= 1, fmt.Sprintf("%+v", w.Stats()) })
	sizes.mu.Lock()
	before := len(sizes.sizes)
	sizes.mu.Unlock()
	proxy.Accept()
	waitFor(t, "the backlog done", func() (bool, string) {
		s := w.Stats()
		return s.Skipped == int64(len(papers)), fmt.Sprintf("%+v", s)
	})
	sizes.mu.Lock()
	defer sizes.mu.Unlock()
	batches := 0
	for _, n := range sizes.sizes[before:] {
		if n > 1 {
			batches++
		}
	}
	if batches == 0 {
		t.Errorf("after the database came back the worker took %d papers stored already one intake at a time (%d intakes)", len(papers), len(sizes.sizes)-before)
	}
}

// TestUsageOfARunStoppedByTheDatabaseReachesTheLedger: an --exit-when-idle run (and reprocess)
// stops at a database pause; the usage the ledger could not take was "kept for the next
// record", and there was no next record: its one last try, the database still down, lost it.
// The last record now tries for a few seconds (and logs what it still cannot record).
func TestUsageOfARunStoppedByTheDatabaseReachesTheLedger(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	proxy, st := proxiedStore(t, b)
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30), hook: func(n int64) {
		if n == 1 {
			proxy.Refuse() // down as the answer comes back
		}
	}}
	publish(t, b.js, sampledata.Papers(t)[:1])
	w, err := pipeline.NewWorker(b.js, st, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, FetchWait: 200 * time.Millisecond,
		ExitWhenIdle: true, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "the run's pause", func() (bool, string) { return w.Stats().DBPaused >= 1, fmt.Sprintf("%+v", w.Stats()) })
	// Back a moment after the run stops (it stops at once at the pause): after the last
	// record's first try, before its last.
	time.Sleep(1500 * time.Millisecond)
	proxy.Accept()
	if err := <-done; !errors.Is(err, paper.ErrUnavailable) {
		t.Fatalf("the run ended with %v, want the database's pause", err)
	}
	recorded := chatRequestsRecorded(t, b)
	if bought := sum.calls.Load(); int64(recorded) != bought {
		t.Errorf("%d TL;DR requests bought, %d in the usage ledger", bought, recorded)
	}
}

// chatRequestsRecorded is the number of chat requests in b's usage ledger.
func chatRequestsRecorded(t *testing.T, b *testBundle) int {
	t.Helper()
	rows, err := b.store.Usage(context.Background(), time.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if r.Kind == paper.KindChat {
			n += r.Requests
		}
	}
	return n
}

// TestReplayedWithheldTLDRWaitsOutASlowDatabase: a replayed dead letter's first write (deleting
// the record of its withheld TL;DR, so that it is asked again) that runs out of IntakeTimeout on
// a database that answers — the record's row locked by another session — goes back to the queue
// as a slow intake does, and is processed once the lock is gone. It was the paper's own failure:
// retried, and on its last delivery dead-lettered again, for the database's slowness.
func TestReplayedWithheldTLDRWaitsOutASlowDatabase(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	sum := summarize.NewOffline(30)
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1}) // every delivery is the last
	ctx := context.Background()
	p := sampledata.Papers(t)[0]
	if _, err := b.store.UpsertPapers(ctx, []paper.Abstract{p}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.store.RecordWithheld(ctx, []store.Withheld{{PaperID: p.ID, Model: sum.Model(), PromptVersion: sum.PromptVersion(),
		ContentHash: p.ContentHash(), Reason: "the API's content filter withheld it"}}); n != 1 || err != nil {
		t.Fatalf("RecordWithheld = %d, %v", n, err)
	}
	release := lockFrom(t, b, "SELECT FROM withheld_tldrs WHERE paper_id = $1 FOR UPDATE", p.ID)
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: pipeline.SubjectNew, Data: data, Header: nats.Header{}}
	msg.Header.Set(pipeline.HeaderReplayed, "1") // as `dlq replay` sends it
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 1, IntakeTimeout: 500 * time.Millisecond,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
	waitFor(t, "the replayed message's intake given up once", func() (bool, string) {
		s := w.Stats()
		return s.Retried >= 1 || s.Dead >= 1, fmt.Sprintf("%+v", s)
	})
	release()
	// Acknowledged, not only stored: the copy's acknowledgement withdraws its original's dead
	// letter first, by a claim published to the dead-letter stream and then deleted, which a
	// look between the TL;DR's save and the deletion saw as a letter.
	waitFor(t, "the replayed paper acknowledged or dead-lettered", func() (bool, string) {
		s := w.Stats()
		return s.Acked >= 1 || s.Dead >= 1, fmt.Sprintf("counts %+v, stats %+v", counts(t, b, sum), s)
	})
	if c := counts(t, b, sum); c.WithTLDR != 1 {
		t.Errorf("the replayed paper's TL;DR is not stored: counts %+v", c)
	}
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("the replayed message was dead-lettered because the database was slow to forget its record: %s", dls[0].Reason)
	}
}
