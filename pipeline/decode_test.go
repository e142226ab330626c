package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/paper"
)

// queueOf starts NATS with the topology, publishes a, and returns the server's JetStream and a
// function that fetches the next message of the workers' consumer, decoded.
func queueOf(t *testing.T, a paper.Abstract, space ...int64) (jetstream.JetStream, func() job) {
	t.Helper()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := Setup(ctx, js, TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(js, SubjectNew, 1)
	for _, id := range space {
		p.ForSpace(id)
	}
	if err := p.Publish(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, StreamPapers, ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	return js, func() job {
		t.Helper()
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var m jetstream.Msg
		for m = range batch.Messages() {
		}
		if m == nil {
			t.Fatal("no message")
		}
		j, err := decode(m)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
}

// TestDecodeDatesTheTextByTheQueue: the store keeps a newer text over an older one by the time
// the queue stored each message; decode must carry that time, redeliveries included.
func TestDecodeDatesTheTextByTheQueue(t *testing.T) {
	t.Parallel()
	_, next := queueOf(t, paper.Abstract{ID: "arxiv:2401.00001", Title: "T", Abstract: "A."})
	for delivery := 1; delivery <= 2; delivery++ {
		j := next()
		if j.a.TextAt.IsZero() || !j.a.TextAt.Equal(j.meta.Timestamp) {
			t.Errorf("delivery %d: TextAt %v, want the time the queue stored the message, %v", delivery, j.a.TextAt, j.meta.Timestamp)
		}
		_ = j.msg.Nak()
	}
}

// TestStoredTextKeepsItsDateThroughPublishAndReplay: a stored text republished (the follow
// backfill, a replayed dead letter) is dated by when it was read, not by the new message, so it
// cannot pass for newer than a version the queue stored meanwhile.
func TestStoredTextKeepsItsDateThroughPublishAndReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	read := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	js, next := queueOf(t, paper.Abstract{ID: "arxiv:2401.00001", Title: "T", Abstract: "A.", TextAt: read})
	j := next()
	if !j.a.TextAt.Equal(read) {
		t.Errorf("published stored text dated %v, want %v", j.a.TextAt, read)
	}
	// Dead-lettered, then replayed: the date goes with it.
	w := &Worker{js: js, cfg: WorkerConfig{Consumer: ConsumerNew}}
	if _, err := w.publishDead(ctx, j.msg.Subject(), j.msg.Data(), j.meta.Sequence.Stream, j.meta.Timestamp, 1, j.a.ID, "test", j.a.TextAt, j.msg.Headers()); err != nil {
		t.Fatal(err)
	}
	_ = j.msg.Term()
	dls, err := ListDeadLetters(ctx, js, 0)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v, %v", dls, err)
	}
	if _, err := ReplayDeadLetter(ctx, js, dls[0].Seq); err != nil {
		t.Fatal(err)
	}
	if j := next(); !j.a.TextAt.Equal(read) {
		t.Errorf("replayed stored text dated %v, want %v", j.a.TextAt, read)
	}
}

// TestDeadLetterOfASpacesCopyIsReplayedForThatSpace: a message queued for an embedding space
// (HeaderSpace: the follow backfill's copy of a paper a newly active space lacks) keeps its
// space through its dead letter and its replay. The letter dropped the header, so the replayed
// copy was any space's: a worker still on the old space, where the paper lacks nothing, took it,
// acknowledged it, and the paper never reached the space it was queued for.
func TestDeadLetterOfASpacesCopyIsReplayedForThatSpace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js, next := queueOf(t, paper.Abstract{ID: "arxiv:2401.00001", Title: "T", Abstract: "A."}, 7)
	j := next()
	if j.space != 7 {
		t.Fatalf("published for space 7, decoded for %d", j.space)
	}
	w := &Worker{js: js, cfg: WorkerConfig{Consumer: ConsumerNew}}
	if _, err := w.publishDead(ctx, j.msg.Subject(), j.msg.Data(), j.meta.Sequence.Stream, j.meta.Timestamp, 1, j.a.ID, "test", j.a.TextAt, j.msg.Headers()); err != nil {
		t.Fatal(err)
	}
	_ = j.msg.Term()
	dls, err := ListDeadLetters(ctx, js, 0)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v, %v", dls, err)
	}
	if _, err := ReplayDeadLetter(ctx, js, dls[0].Seq); err != nil {
		t.Fatal(err)
	}
	if j := next(); j.space != 7 {
		t.Errorf("the replayed copy is for space %d, want 7, the space it was queued for", j.space)
	}
}
