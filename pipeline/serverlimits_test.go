package pipeline_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestSetupOnAServerLimitingMaxAckPendingMakesTheConsumers: a NATS server (or an account, or
// the stream's consumer limits) may cap a consumer's MaxAckPending (`jetstream { limits {
// max_ack_pending: 1000 } }`, an account's JWT limits): a consumer asking for more is refused.
// paperpipe asks for DefaultMaxAckPending, which no setting changes: every process failed at
// start, on its first consumer.
func TestSetupOnAServerLimitingMaxAckPendingMakesTheConsumers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.StartWith(t, func(o *server.Options) { o.JetStreamLimits.MaxAckPending = 1000 }).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatalf("Setup on a server limiting max_ack_pending to 1000: %v", err)
	}
	if got := consumerConfig(t, js, pipeline.ConsumerNew).MaxAckPending; got != 1000 {
		t.Errorf("consumer MaxAckPending %d, want the server's limit, 1000", got)
	}
	target := pipeline.ReprocessTarget{Key: "k", Subject: pipeline.SubjectReprocess + ".k", Consumer: "reprocess-k"}
	if err := pipeline.EnsureReprocessConsumer(ctx, js, pipeline.TopologyConfig{}, target, "test"); err != nil {
		t.Fatalf("reprocess consumer on that server: %v", err)
	}

	// Under the server's limit, the stream's own (`nats stream edit PAPERS
	// --consumer-max-ack-pending`, checked after the server's): the lower one.
	for _, name := range []string{pipeline.ConsumerNew, target.Consumer} {
		if err := js.DeleteConsumer(ctx, pipeline.StreamPapers, name); err != nil {
			t.Fatal(err)
		}
	}
	cfg := streamConfig(t, js, pipeline.StreamPapers)
	cfg.ConsumerLimits.MaxAckPending = 500
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatalf("Setup under the stream's limit of 500: %v", err)
	}
	if got := consumerConfig(t, js, pipeline.ConsumerNew).MaxAckPending; got != 500 {
		t.Errorf("consumer MaxAckPending %d, want the stream's limit, 500", got)
	}
}

// TestWorkerPullsWithinTheConsumersMaxRequestBatch: a consumer whose MaxRequestBatch is below
// the worker's BatchSize (an operator's `nats consumer edit --max-batch`, or a server's
// `limits { max_request_batch }`, which the server gives every consumer it creates) refuses
// every larger pull request (409 Exceeded MaxRequestBatch): the worker took no message, ever,
// retrying with a warning.
func TestWorkerPullsWithinTheConsumersMaxRequestBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.StartWith(t, func(o *server.Options) { o.JetStreamLimits.MaxRequestBatch = 8 }).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := consumerConfig(t, js, pipeline.ConsumerNew).MaxRequestBatch; got != 8 {
		t.Fatalf("consumer MaxRequestBatch %d, want the server's 8", got)
	}
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setupOn(t, js, emb)
	papers := sampledata.Papers(t)[:40]
	publish(t, b.js, papers)
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{
		SpaceID: b.space.ID, BatchSize: 32, ExitWhenIdle: true, FetchWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Long enough for 40 offline papers many times over; the worker that cannot pull never
	// gets idle.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Run(rctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, b, sum); c.WithTLDR != int64(len(papers)) {
		t.Errorf("%d of %d papers with a TL;DR after the run (worker stats %+v)", c.WithTLDR, len(papers), w.Stats())
	}
}

// TestSetupOnAServerLimitingTheDuplicateWindowMakesTheStreams: a NATS server may cap a
// stream's duplicate window (`jetstream { limits { max_duplicate_window: 10m } }`): a stream
// asking for more is refused. paperpipe asks for an hour, which no setting changes: every
// process failed at start, on its first stream.
func TestSetupOnAServerLimitingTheDuplicateWindowMakesTheStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.StartWith(t, func(o *server.Options) { o.JetStreamLimits.Duplicates = 10 * time.Minute }).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatalf("Setup on a server limiting the duplicate window to 10m: %v", err)
	}
	for _, name := range []string{pipeline.StreamPapers, pipeline.StreamDead} {
		if got := streamConfig(t, js, name).Duplicates; got != 10*time.Minute {
			t.Errorf("%s duplicate window %v, want the server's limit, 10m", name, got)
		}
	}
}

// TestWorkerFollowsAMaxRequestBatchLoweredWhileItRuns: an operator lowers the consumer's
// MaxRequestBatch below the worker's pull while it runs: its next pull request is refused, and
// the worker asks within the new limit from then on (it re-reads the consumer after a failed
// pull, not only at its next ProgressInterval: minutes with a long AckWait).
func TestWorkerFollowsAMaxRequestBatchLoweredWhileItRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 20 * time.Minute})
	papers := sampledata.Papers(t)[:40]
	logs := &logBuffer{}
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{
		SpaceID: b.space.ID, BatchSize: 32, FetchWait: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitTLDRs := func(n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for counts(t, b, sum).WithTLDR < int64(n) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d papers with a TL;DR after a minute (worker stats %+v)", counts(t, b, sum).WithTLDR, n, w.Stats())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	publish(t, b.js, papers[:20])
	waitTLDRs(20)
	cc := consumerConfig(t, b.js, pipeline.ConsumerNew)
	cc.MaxRequestBatch = 4
	if _, err := b.js.UpdateConsumer(ctx, pipeline.StreamPapers, cc); err != nil {
		t.Fatal(err)
	}
	// The papers go once a pull request of the worker has been refused: not to one it opened
	// before the change, which the server honours.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(logs.String(), "Exceeded MaxRequestBatch") {
		if time.Now().After(deadline) {
			t.Fatalf("no pull request refused a minute after MaxRequestBatch was lowered to 4; log:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	publish(t, b.js, papers[20:])
	waitTLDRs(40)
}

// TestWorkerPullsWithinTheConsumersMaxRequestExpires: a consumer whose MaxRequestExpires is
// below the worker's FetchWait (an operator's `nats consumer edit --max-pull-expire 500ms`)
// refuses every pull request that waits longer (409 Exceeded MaxRequestExpires), as a lower
// MaxRequestBatch refuses a larger one: the worker took no message, ever, retrying with a
// warning. It waits no longer than the consumer allows.
func TestWorkerPullsWithinTheConsumersMaxRequestExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	cc := consumerConfig(t, b.js, pipeline.ConsumerNew)
	cc.MaxRequestExpires = 500 * time.Millisecond
	if _, err := b.js.UpdateConsumer(ctx, pipeline.StreamPapers, cc); err != nil {
		t.Fatal(err)
	}
	papers := sampledata.Papers(t)[:10]
	publish(t, b.js, papers)
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{
		SpaceID: b.space.ID, ExitWhenIdle: true, FetchWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Long enough for 10 offline papers many times over; the worker that cannot pull never
	// gets idle.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Run(rctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, b, sum); c.WithTLDR != int64(len(papers)) {
		t.Errorf("%d of %d papers with a TL;DR after the run (worker stats %+v)", c.WithTLDR, len(papers), w.Stats())
	}
}
