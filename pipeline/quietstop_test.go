package pipeline_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestExitWhenIdleWorkerStoppedWhilePullingWarnsOfNothing: an ExitWhenIdle worker (reprocess's,
// `worker --exit-when-idle`) stopped while its pull request waited, with nothing in hand, asked
// the consumer whether it was idle with the stopped context, and warned `consumer info failed
// … context canceled` at every such stop: a warning that said nothing was wrong (seen at the
// SIGINT of a resumed reprocess run in session 27, once per run; session 25 saw a warning twice
// at one signal). It stops without a word now.
func TestExitWhenIdleWorkerStoppedWhilePullingWarnsOfNothing(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: time.Minute})
	publish(t, b.js, sampledata.Papers(t)[:1])
	// Another client holds the one message: the consumer is not idle, and the worker's pulls
	// come back empty.
	ctx := context.Background()
	cons, err := b.js.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
	}
	if info, err := cons.Info(ctx); err != nil || info.NumAckPending != 1 {
		t.Fatalf("the test's client holds %+v (%v), want the one message", info, err)
	}

	logs := &logBuffer{}
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, ExitWhenIdle: true,
		FetchWait: time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	waitFor(t, "the worker's pull request to wait on the server", func() (bool, string) {
		info, err := cons.Info(ctx)
		return err == nil && info.NumWaiting > 0, ""
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the worker warned at its stop:\n%s", logs.String())
	}
}
