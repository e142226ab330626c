package pipeline_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// recordGate holds each RecordUsage of the worker until the test has looked at the database:
// what a kill -9 of the worker at that instant would leave behind.
type recordGate struct {
	*store.Store
	reached chan []paper.Usage
	release chan struct{}
}

func (g *recordGate) RecordUsage(ctx context.Context, u []paper.Usage) error {
	g.reached <- slices.Clone(u)
	<-g.release
	return g.Store.RecordUsage(ctx, u)
}

// TestUsageIsRecordedAfterItsResultsAreCommitted: a worker killed (kill -9, the OOM killer)
// between an API's answer and the commit of what it bought loses the answer, bought again on
// the message's redelivery; one killed between that commit and the usage ledger's record loses
// the ledger's line only (README: kill -9 of a worker). The record therefore follows the
// commit: recording first (or in the save's transaction) would make the first window longer by
// the record's round trip — paid answers lost, not a reporting line — and a save retried after
// a lost COMMIT answer would count its usage twice. Each record is held here: the TL;DR and
// the vector it is for are committed already.
func TestUsageIsRecordedAfterItsResultsAreCommitted(t *testing.T) {
	t.Parallel()
	emb := &billingEmbedder{countingEmbedder{Embedder: embed.NewOffline()}}
	b := setup(t, emb, pipeline.TopologyConfig{})
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30)}
	publish(t, b.js, sampledata.Papers(t)[:1])
	g := &recordGate{Store: b.store, reached: make(chan []paper.Usage), release: make(chan struct{})}
	w, err := pipeline.NewWorker(b.js, g, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, ExitWhenIdle: true,
		FetchWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var chat, vectors int
	for chat == 0 || vectors == 0 {
		var u []paper.Usage
		select {
		case u = <-g.reached:
		case err := <-done:
			t.Fatalf("the worker ended (%v) having recorded %d chat and %d embedding requests, want one each", err, chat, vectors)
		}
		c := counts(t, b, sum)
		for _, x := range u {
			switch x.Kind {
			case paper.KindChat:
				chat += x.Requests
				if c.WithTLDR != 1 {
					t.Errorf("the TL;DR's usage is being recorded, and the TL;DR is not committed (%+v): a kill now loses it", c)
				}
			default:
				vectors += x.Requests
				if c.WithEmbedding != 1 {
					t.Errorf("the vector's usage is being recorded, and the vector is not committed (%+v): a kill now loses it", c)
				}
			}
		}
		g.release <- struct{}{}
	}
	go func() {
		for range g.reached { // records after these (none expected) go through
			g.release <- struct{}{}
		}
	}()
	err = <-done
	close(g.reached)
	if err != nil {
		t.Fatal(err)
	}
	if n := chatRequestsRecorded(t, b); n != 1 {
		t.Errorf("%d chat requests in the ledger, want 1", n)
	}
}
