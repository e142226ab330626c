package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestDeadLetterIsKeptAfterTheStreamIsCreatedAgain: a dead letter's message id named the
// consumer and the stream sequence, and sequences start again at 1 when PAPERS is deleted and
// created again (Setup's retention error tells operators to do so): within the dead-letter
// stream's duplicate window (an hour) the first message to fail in the new stream had an old
// letter's id, the server dropped its letter as a repeat, and the worker terminated the
// message all the same — lost from both streams. The id now holds when the queue stored it.
func TestDeadLetterIsKeptAfterTheStreamIsCreatedAgain(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	ctx := context.Background()
	broken := func(body string) {
		t.Helper()
		if _, err := b.js.Publish(ctx, pipeline.SubjectNew, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	broken(`{"id":"arxiv:2401.00001","title":"x"`)
	if ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{}); ws.Dead != 1 {
		t.Fatalf("stats %+v, want 1 dead", ws)
	}
	// An operator resets the queue; the next paperpipe start creates it again.
	if err := b.js.DeleteStream(ctx, pipeline.StreamPapers); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Setup(ctx, b.js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	broken(`{"id":"arxiv:2401.00002","title":"another broken one"`)
	if ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{}); ws.Dead != 1 {
		t.Fatalf("stats %+v, want 1 dead", ws)
	}
	if dls := deadLetters(t, b.js); len(dls) != 2 {
		t.Errorf("%d dead letters, want both messages' (the second was dropped as a repeat of the first, and lost)", len(dls))
	}
}

// TestDeadLetterReplayedTwiceAtOnceIsQueuedOnce: a replay published each letter under an id of
// its own (the replay's time), so two `dlq replay --all` run at once from two shells — or one
// run again after a Ctrl-C between a letter's publish and its removal — both queued the
// letters they read before the other removed them: papers processed (and paid for) twice, and
// each shell failing with "could not remove it" for letters that were gone. The id now names
// the letter, and the server drops the second copy as a repeat.
func TestDeadLetterReplayedTwiceAtOnceIsQueuedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		m := &nats.Msg{Subject: pipeline.SubjectDead + ".workers", Data: []byte(`{}`), Header: nats.Header{}}
		m.Header.Set(pipeline.HeaderPaperID, fmt.Sprintf("arxiv:2401.%05d", i+1))
		m.Header.Set(pipeline.HeaderSubject, pipeline.SubjectNew)
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for range 2 { // two shells' `dlq replay --all`, each with the list it read
		wg.Go(func() {
			for seq := uint64(1); seq <= n; seq++ {
				if _, err := pipeline.ReplayDeadLetter(ctx, js, seq); err != nil && !errors.Is(err, pipeline.ErrDeadLetterGone) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("replay: %v", err)
	}
	if q := streamState(t, js, pipeline.StreamPapers); q.Msgs != n {
		t.Errorf("%d messages queued for %d dead letters replayed: some papers were queued twice", q.Msgs, n)
	}
	if dls := deadLetters(t, js); len(dls) != 0 {
		t.Errorf("%d dead letters left, want none", len(dls))
	}
}
