package pipeline_test

import (
	"context"
	"testing"

	"github.com/paperpipe/paperpipe/embed"
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
