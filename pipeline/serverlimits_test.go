package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

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
