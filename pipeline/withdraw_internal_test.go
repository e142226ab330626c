package pipeline

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/paper"
)

// TestALastDeliveryOfAnOldBacklogIsWithdrawnWithoutSearchingTheLetters: every settlement of a
// last delivery withdraws the dead letter a reaper may have written (PAPERPIPE_MAX_DELIVER=1:
// every acknowledgement). A message queued longer ago than the dead-letter stream's duplicate
// window (an hour) had the stream searched for its letter, reading every letter written since
// it was queued: measured (BenchmarkLastDeliveryWithdrawal, 1,000 letters) 196 ms a paper
// instead of 0.8 — a backlog of a day processed at a few papers a second. Its letter can only
// have been written after the worker took it, which the claim's duplicate check covers: no
// letter is read, and a letter written since it was taken is still withdrawn.
func TestALastDeliveryOfAnOldBacklogIsWithdrawnWithoutSearchingTheLetters(t *testing.T) {
	srv := natstest.Start(t)
	js := srv.Connect(t)
	ctx := context.Background()
	if err := Setup(ctx, js, TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	w := &Worker{js: js, cfg: WorkerConfig{Consumer: ConsumerNew}, log: slog.New(slog.DiscardHandler)}
	letter := func(id string) uint64 {
		m := nats.NewMsg(SubjectDead + "." + ConsumerNew)
		m.Data = []byte(`{}`)
		m.Header.Set(HeaderReason, "max deliveries exceeded")
		m.Header.Set(jetstream.MsgIDHeader, id)
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	for i := range 20 { // other papers' letters
		letter("other:" + string(rune('a'+i)))
	}
	take := func(id string) job {
		if _, err := js.Publish(ctx, SubjectNew, []byte(`{"id":"`+id+`","title":"T","abstract":"A."}`)); err != nil {
			t.Fatal(err)
		}
		cons, err := js.Consumer(ctx, StreamPapers, ConsumerNew)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(1)
		if err != nil {
			t.Fatal(err)
		}
		m := <-batch.Messages()
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		meta.Timestamp = time.Now().Add(-2 * time.Hour) // queued two hours ago, in a backlog
		return job{msg: m, meta: meta, a: paper.Abstract{ID: id}, received: time.Now()}
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var reads atomic.Int64
	for _, subj := range []string{"$JS.API.STREAM.MSG.GET." + StreamDead, "$JS.API.DIRECT.GET." + StreamDead + ".>", "$JS.API.DIRECT.GET." + StreamDead} {
		if _, err := nc.Subscribe(subj, func(*nats.Msg) { reads.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// No letter (the rule): nothing to read.
	w.withdrawDeadLetter(take("x:1"), "stored its results")
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n > 0 {
		t.Errorf("withdrawing the letter of a delivery taken a moment ago read %d messages of the dead-letter stream; want none (the claim finds it)", n)
	}
	// The reaper's letter of a delivery, written after the worker took it: withdrawn.
	j := take("x:2")
	seq := letter(w.deadLetterID(j.meta.Sequence.Stream, j.meta.Timestamp))
	w.withdrawDeadLetter(j, "stored its results")
	s, err := js.Stream(ctx, StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMsg(ctx, seq); err == nil {
		t.Errorf("the letter of the delivery (sequence %d) is still in the stream: want it withdrawn", seq)
	}
}
