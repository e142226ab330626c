package main

import (
	"context"
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
	log := newLogger(e.c)
	b, err := connectBroker(ctx, e.c, log, newPaperWorkers)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	m, err := buildModels(ctx, e.c, log, e.st)
	if err != nil {
		t.Fatal(err)
	}
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
