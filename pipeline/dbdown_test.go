package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// The worker when PostgreSQL cannot be reached or cannot write: see also silentdb_test.go.

const dbResumeLine = "the database saves results again: the worker resumes"

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

// proxiedWorker starts a worker on b whose store reaches the database through proxy's store st.
func proxiedWorker(t *testing.T, b *testBundle, st *store.Store, sum pipeline.Summarizer, emb pipeline.Embedder, cfg pipeline.WorkerConfig) *pipeline.Worker {
	t.Helper()
	wb := *b
	wb.store = st
	return startWorker(t, &wb, sum, emb, cfg)
}

// TestDatabaseBreakerStaysOpenUntilResultsAreSaved: after a database pause, the probe's intake
// of a paper already stored writes nothing, and succeeds even on a full disk (53100). Closing
// the breaker on it resumed the worker at full speed, to buy TL;DRs it could not save, with
// the pause's backoff back at its first step after every probe, for as long as the disk stayed
// full. The breaker now closes when a message's results are saved.
func TestDatabaseBreakerStaysOpenUntilResultsAreSaved(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:4]
	// The backlog is of papers recorded before (redeliveries): their intake writes nothing.
	if _, err := b.store.UpsertPapers(context.Background(), papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	proxy, st := proxiedStore(t, b)
	proxy.refuse() // the database goes down...
	publish(t, b.js, papers)
	logs := &logBuffer{}
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30)}
	w := proxiedWorker(t, b, st, sum, emb, pipeline.WorkerConfig{Concurrency: 4,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond },
		Logger:  slog.New(slog.NewTextHandler(logs, nil))})
	waitFor(t, "a database pause", func() (bool, string) { return w.Stats().DBPaused >= 1, fmt.Sprintf("%+v", w.Stats()) })

	// ... and comes back with a full disk: TL;DRs cannot be saved.
	execSQL(t, b.url, `CREATE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$;
CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE ON tldrs FOR EACH ROW EXECUTE FUNCTION disk_full();`)
	proxy.accept()
	waitFor(t, "the probe's TL;DR bought", func() (bool, string) { return sum.calls.Load() >= 1, fmt.Sprintf("%+v", w.Stats()) })
	time.Sleep(2 * time.Second) // the probe's save retries meanwhile
	if strings.Contains(logs.String(), "resumes") {
		t.Errorf("the worker resumed on an intake that wrote nothing, while TL;DRs could not be saved:\n%s", logs.String())
	}
	if n := sum.calls.Load(); n != 1 {
		t.Errorf("%d TL;DRs bought while the first could not be saved: want the probe's only", n)
	}

	execSQL(t, b.url, `DROP TRIGGER disk_full ON tldrs`) // space freed
	waitFor(t, "every paper done", func() (bool, string) {
		c := counts(t, b, sum)
		return c.WithTLDR == int64(len(papers)), fmt.Sprintf("counts %+v, stats %+v", c, w.Stats())
	})
	if !strings.Contains(logs.String(), dbResumeLine) {
		t.Errorf("the log does not say when the worker resumes:\n%s", logs.String())
	}
}

// pendingOnlyStore is cmd/paperpipe's reprocessStore: its intake is store.PendingFor.
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
	proxy.refuse()
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
	proxy.refuse()
	publish(t, b.js, sampledata.Papers(t)[:5])
	logs := &logBuffer{}
	w := proxiedWorker(t, b, st, sum, emb, pipeline.WorkerConfig{Concurrency: 4,
		Backoff: func(int) time.Duration { return 200 * time.Millisecond },
		Logger:  slog.New(slog.NewTextHandler(logs, nil))})
	waitFor(t, "five pauses", func() (bool, string) { return w.Stats().DBPaused >= 5, fmt.Sprintf("%+v", w.Stats()) })
	proxy.accept()
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
	proxy.frozen.Store(true)
	defer proxy.frozen.Store(false)
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
	proxy.frozen.Store(false)
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
			proxy.refuse() // down as the answer comes back, for longer than the save's retries
			time.AfterFunc(25*time.Second, proxy.accept)
		}
	}}
	publish(t, b.js, sampledata.Papers(t)[:1])
	w := proxiedWorker(t, b, st, sum, emb, pipeline.WorkerConfig{Backoff: func(int) time.Duration { return 500 * time.Millisecond }})
	waitFor(t, "the paper done after the outage", func() (bool, string) { return w.Stats().Acked == 1, fmt.Sprintf("%+v", w.Stats()) })
	rows, err := b.store.Usage(context.Background(), time.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	recorded := 0
	for _, r := range rows {
		if r.Kind == paper.KindChat {
			recorded += r.Requests
		}
	}
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
	w := proxiedWorker(t, b, st, refusingSummarizer{summarize.NewOffline(30)}, emb, pipeline.WorkerConfig{Concurrency: 8,
		Backoff: func(n int) time.Duration { return time.Duration(n) * 100 * time.Millisecond },
		Logger:  slog.New(slog.NewTextHandler(logs, nil))})
	waitFor(t, "three API pauses", func() (bool, string) { return w.Stats().Paused >= 3, fmt.Sprintf("%+v", w.Stats()) })
	proxy.refuse()
	waitFor(t, "a database pause", func() (bool, string) { return w.Stats().DBPaused >= 1, fmt.Sprintf("%+v", w.Stats()) })
	proxy.accept()
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
