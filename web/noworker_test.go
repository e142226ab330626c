package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/web"
)

// unattended is the test's status with no worker announced, each backlog marked as
// cmd/paperpipe's status source marks it: messages pending or delivered and not acknowledged.
type unattended struct{ testStatus }

func (s unattended) Status(ctx context.Context) (web.Status, error) {
	st, err := s.testStatus.Status(ctx)
	for i := range st.Backlog {
		bl := &st.Backlog[i]
		bl.Workers, bl.NoWorker = []web.Worker{}, bl.Pending+uint64(bl.AckPending) > 0
	}
	return st, err
}

// TestStatusPageCountsTheMessagesAWorkerKilledHoldingThemLeft: a worker killed while it held a
// backlog's messages leaves them delivered and not acknowledged, none pending; with no worker
// running, the page said "its 0 waiting messages are not being processed", where `paperpipe
// status` counts them (and said "1 waiting messages" of one).
func TestStatusPageCountsTheMessagesAWorkerKilledHoldingThemLeft(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:3])
	ctx := t.Context()
	cons, err := b.js.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(3, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for range batch.Messages() {
		held++ // never acknowledged: the worker was killed
	}
	if held != 3 {
		t.Fatalf("fetched %d of 3 messages (%v)", held, batch.Error())
	}
	cfg := b.config()
	cfg.Status = unattended{testStatus{st: b.st, js: b.js, sum: b.sum}}
	b.serve(cfg)
	body := string(b.get("/status").body)
	const want = "its 3 messages wait, not being processed"
	if !strings.Contains(body, "No worker is running for <code>"+pipeline.ConsumerNew+"</code>: "+want) {
		i := strings.Index(body, "No worker")
		t.Errorf("the status page does not say %q: %.200s", want, body[max(i, 0):])
	}
}
