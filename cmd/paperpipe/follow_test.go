package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
)

// cancelOnLog is a slog handler that calls cancel when a record's message contains msg: a
// signal that comes at the very moment the process logs it.
type cancelOnLog struct {
	slog.Handler
	msg    string
	cancel context.CancelFunc
}

// Enabled sees every record, whatever the level the logger passes on.
func (h cancelOnLog) Enabled(context.Context, slog.Level) bool { return true }

func (h cancelOnLog) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.msg) {
		h.cancel()
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h cancelOnLog) WithAttrs(as []slog.Attr) slog.Handler {
	h.Handler = h.Handler.WithAttrs(as)
	return h
}

func (h cancelOnLog) WithGroup(name string) slog.Handler {
	h.Handler = h.Handler.WithGroup(name)
	return h
}

// TestFollowingWorkersStopCleanlyWhenInterruptedWhileRestarting: Ctrl-C or SIGTERM that comes
// while `up` or `worker` restart their workers on a newly active offline space (after a fit)
// is a stop like any other — the workers had drained, nothing failed — so the command returns
// no error (exit 0), not "queue the papers missing from space …: context canceled" (exit 1).
func TestFollowingWorkersStopCleanlyWhenInterruptedWhileRestarting(t *testing.T) {
	t.Parallel()
	c := loadConfig()
	c.DatabaseURL, c.NATSURL, c.DataDir = pgtest.URL(t), natstest.Start(t).ClientURL(), t.TempDir()
	c.BaseURL, c.APIKey, c.ChatModel, c.EmbedModel = "", "", offline, offline
	c.FollowInterval, c.LogLevel = 20*time.Millisecond, "error"
	base := newLogger(c)
	ctx := t.Context()

	st, err := openStore(ctx, c, base)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := connectBroker(ctx, c, base, newPaperWorkers)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	m, err := buildModels(ctx, c, base, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnsureSpace(ctx, m.emb.Space()); err != nil {
		t.Fatal(err)
	}
	// Another offline model's space is active (as after `paperpipe fit`): the workers, on the
	// hashed model's, follow it at their first look.
	fitted, err := st.EnsureSpace(ctx, paper.Space{Model: embed.FittedModelPrefix + "0123456789ab", Dimensions: m.emb.Space().Dimensions, Template: m.emb.Space().Template})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Activate(ctx, fitted.ID); err != nil {
		t.Fatal(err)
	}

	// The signal comes as the workers are told to restart on it.
	sigCtx, signal := context.WithCancel(ctx)
	defer signal()
	log := slog.New(cancelOnLog{Handler: base.Handler(), msg: "restarting the workers", cancel: signal})

	done := make(chan error, 1)
	go func() {
		done <- followingWorkers(sigCtx, c, log, st, b, m, []string{"workers"}, false, false)
	}()
	select {
	case err := <-done:
		if sigCtx.Err() == nil {
			t.Fatalf("the workers returned before they followed the active space: %v", err)
		}
		if err != nil {
			t.Errorf("interrupted while restarting on the active space, the workers returned %v; want nil, as for any other stop", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the workers did not stop within a minute of the signal")
	}
}

// newFollower is what a worker process on e's archive follows the active space with: its
// logger, its connection to the queue (as new-paper workers) and its models.
func newFollower(t *testing.T, e *archiveEnv) (*slog.Logger, *broker, *models) {
	t.Helper()
	log := newLogger(e.c)
	b, err := connectBroker(t.Context(), e.c, log, newPaperWorkers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	m, err := buildModels(t.Context(), e.c, log, e.st)
	if err != nil {
		t.Fatal(err)
	}
	return log, b, m
}

// TestTwoFollowersOfASpaceQueueItsMissingPapersOnce: every worker process on the offline
// embedder follows the newly active space (after `paperpipe fit`) and queues the papers it
// lacks. Several such processes follow the same activation: each queueing them again would put
// two copies of a paper on the queue, and two workers taking them at once buy a paper's missing
// TL;DR twice from a paid chat model. The second follower's copies are repeats the server drops.
func TestTwoFollowersOfASpaceQueueItsMissingPapersOnce(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{ChatLatency: 500 * time.Millisecond}) // the two workers' TL;DRs overlap
	e.c.EmbedModel, e.c.EmbedDims = offline, 0
	const n = 40 // more than a micro-batch (8): a paper's two copies go in different ones
	e.seed(t, n) // recorded, with neither a TL;DR nor a vector (as after an outage)
	ctx := t.Context()
	log, b, m := newFollower(t, e)
	space, err := e.st.EnsureSpace(ctx, m.emb.Space())
	if err != nil {
		t.Fatal(err)
	}
	// Two worker processes follow the space's activation, a moment apart.
	for range 2 {
		if err := queueMissing(ctx, log, e.st, b, space); err != nil {
			t.Fatal(err)
		}
	}
	if got := queued(t, b.js); got != n {
		t.Errorf("%d messages queued for the %d papers missing from the space; want one each", got, n)
	}

	// The two processes' workers.
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			errs <- runWorkersOnce(ctx, e.c, log, e.st, b, m, space, []string{pipeline.ConsumerNew}, true, false)
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var chat, twice int
	for _, d := range e.fake.Deliveries() {
		if d.Kind == openaitest.KindChat {
			chat++
			if d.Count > 1 {
				twice++
			}
		}
	}
	if chat != n || twice > 0 {
		t.Errorf("%d TL;DRs bought, %d of them more than once; want the %d papers' once each", chat, twice, n)
	}
}

// TestALaggingFollowerLeavesTheActiveSpacesCopiesToItsWorkers: worker processes on the offline
// embedder each notice at their own look (every PAPERPIPE_FOLLOW_INTERVAL) that a fitted
// model's space became active. The first to follow queued the papers the space lacks (a
// second follower's copies are repeats the server drops), and a process that had not noticed
// yet took the copies on its old space, found each paper's vector there, and acknowledged
// them: the papers were never embedded into the space queries use (149 of 400 in a run with
// two worker processes, a fit and revised abstracts). Such a worker now hands the copies back
// for the active space's workers, and follows at once.
func TestALaggingFollowerLeavesTheActiveSpacesCopiesToItsWorkers(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.c.ChatModel, e.c.EmbedModel, e.c.EmbedDims = offline, offline, 0
	e.c.FollowInterval = time.Hour // the lagging process does not look again within the test
	const n = 20
	e.seed(t, n)
	ctx := t.Context()
	log, b, m := newFollower(t, e)
	old, err := e.st.EnsureSpace(ctx, m.emb.Space())
	if err != nil {
		t.Fatal(err)
	}
	// The lagging process embedded every paper into its space.
	papers, err := e.st.FitSample(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	embs, _, err := m.emb.Embed(ctx, papers)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.SaveEmbeddings(ctx, old.ID, embs); err != nil {
		t.Fatal(err)
	}
	// A fitted model's space becomes active, and another process, following it first, queues
	// its missing papers.
	fitted, err := e.st.EnsureSpace(ctx, paper.Space{Model: embed.FittedModelPrefix + "0123456789ab", Dimensions: 64, Template: embed.TemplateTitleAbstract})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Activate(ctx, fitted.ID); err != nil {
		t.Fatal(err)
	}
	if err := queueMissing(ctx, log, e.st, b, fitted); err != nil {
		t.Fatal(err)
	}
	if got := queued(t, b.js); got != n {
		t.Fatalf("%d copies queued for the %d papers missing from the active space; want one each", got, n)
	}

	// The lagging process's workers, still on the old space, take them.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- runWorkersOnce(wctx, e.c, log, e.st, b, m, old, []string{pipeline.ConsumerNew}, false, false)
	}()
	var werr error
	deadline := time.After(time.Minute)
wait:
	for {
		select {
		case werr = <-done:
			break wait
		case <-deadline:
			stop()
			werr = <-done
			break wait
		case <-time.After(20 * time.Millisecond):
			if queued(t, b.js) == 0 { // taken and acknowledged
				stop()
				werr = <-done
				break wait
			}
		}
	}
	if !errors.Is(werr, errSpaceChanged) {
		t.Errorf("the workers on the old space returned %v; want them to follow the active space at once (%v)", werr, errSpaceChanged)
	}
	if got := queued(t, b.js); got != n {
		t.Errorf("%d of the %d copies queued for the active space are left for its workers; the others were taken by "+
			"workers on the old space, where nothing was missing, and the papers never reach the space queries use", got, n)
	}
}
