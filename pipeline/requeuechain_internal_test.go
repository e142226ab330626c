package pipeline

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/paper"
)

// TestACopyNamesTheSixteenNewestMessagesOfItsChain: a copy of a copy names every message before
// it (HeaderRequeuedFrom), whose dead letters its worker withdraws, up to maxRequeuedFrom, the
// newest: a worker paused for days requeues one paper again and again, and each older one is
// handed back (dropped) for its letter to be withdrawn when the copy leaving it out is sent.
// The message requeued from keeps its own headers.
func TestACopyNamesTheSixteenNewestMessagesOfItsChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js, next := queueOf(t, paper.Abstract{ID: "arxiv:2401.00001", Title: "T", Abstract: "A."})
	j := next()
	var chain []string // the dead-letter ids of the messages requeued so far, oldest first
	const names = 16   // the messages a copy names at most
	for i := range names + 3 {
		before := slices.Clone(j.msg.Headers().Values(HeaderRequeuedFrom))
		from := fmt.Sprintf("%s:%d:%d", SubjectNew, i+1, i+1)
		chain = append(chain, from)
		m, dropped := requeued(j, from)
		keep := max(0, len(chain)-names)
		if got := m.Header.Values(HeaderRequeuedFrom); !slices.Equal(got, chain[keep:]) {
			t.Fatalf("copy %d names %q, want %q", i+1, got, chain[keep:])
		}
		var wantDropped []string
		if keep > 0 {
			wantDropped = chain[keep-1 : keep]
		}
		if !slices.Equal(dropped, wantDropped) {
			t.Fatalf("copy %d drops %q, want %q", i+1, dropped, wantDropped)
		}
		if after := j.msg.Headers().Values(HeaderRequeuedFrom); !slices.Equal(after, before) {
			t.Fatalf("copy %d changed its original's headers: %q, were %q", i+1, after, before)
		}
		if err := j.msg.Ack(); err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
		j = next()
	}
}

// TestASettledCopyWithdrawsTheLetterOfEveryMessageItNames: the dead letter of any message of a
// copy's chain (HeaderRequeuedFrom), not only the first's, is withdrawn when the copy is
// settled: a copy requeued and given up in turn left its letter once a copy of it stored the
// paper.
func TestASettledCopyWithdrawsTheLetterOfEveryMessageItNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := Setup(ctx, js, TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(js, nil, noSummarizer{}, nil, WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h := nats.Header{}
	for i := range 3 {
		id := w.deadLetterID(uint64(i+1), now)
		h.Add(HeaderRequeuedFrom, id)
		if i == 0 {
			continue // the first original was not dead-lettered: only the copies after it
		}
		letter := &nats.Msg{Subject: SubjectDead + "." + w.cfg.Consumer, Data: []byte(`{}`), Header: nats.Header{}}
		letter.Header.Set(HeaderReason, ReasonMaxDeliveries)
		if _, err := js.PublishMsg(ctx, letter, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	w.withdrawOriginals(h, []byte(`{}`), "arxiv:2401.00001", "processed")
	if n, err := CountDeadLetters(ctx, js); err != nil || n != 0 {
		t.Errorf("%d dead letters (%v) after the copy naming them was settled; want none", n, err)
	}
}

// TestARequeueWithdrawsTheLetterOfTheOriginalItsCopyNoLongerNames: requeuing a copy that names
// maxRequeuedFrom messages leaves the oldest out of the new copy, whose worker could then not
// withdraw that one's dead letter: the requeue withdraws it, the new copy carrying its work.
func TestARequeueWithdrawsTheLetterOfTheOriginalItsCopyNoLongerNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js, next := queueOf(t, paper.Abstract{ID: "arxiv:2401.00001", Title: "T", Abstract: "A."})
	w, err := NewWorker(js, nil, noSummarizer{}, nil, WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	j := next()
	copied, _ := requeued(j, "")
	copied.Header.Del(HeaderRequeuedFrom)
	now := time.Now()
	for i := range maxRequeuedFrom {
		copied.Header.Add(HeaderRequeuedFrom, w.deadLetterID(uint64(100+i), now))
	}
	if err := j.msg.Ack(); err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, copied); err != nil {
		t.Fatal(err)
	}
	// The oldest of the chain was given up and dead-lettered.
	letter := &nats.Msg{Subject: SubjectDead + "." + w.cfg.Consumer, Data: []byte(`{}`), Header: nats.Header{}}
	letter.Header.Set(HeaderReason, ReasonMaxDeliveries)
	if _, err := js.PublishMsg(ctx, letter, jetstream.WithMsgID(w.deadLetterID(100, now))); err != nil {
		t.Fatal(err)
	}
	w.requeue(ctx, next(), byShutdown)
	if n, err := CountDeadLetters(ctx, js); err != nil || n != 0 {
		t.Errorf("%d dead letters (%v) after a requeue left the dead-lettered original out of its copy; want none", n, err)
	}
}
