package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// A message the server gave up on, whose dead letter a worker's sweep wrote but whose removal
// from the work queue failed, is counted as dead-lettered by that worker: its next sweep (or
// another worker's) finds the letter written (a duplicate) and only removes the message, so a
// count that waited for the removal never came. The worker's Dead (a reprocess's "papers were
// dead-lettered" and its exit status, the worker's summary, up's metric) missed a paper whose
// dead letter `dlq list` shows. Here the first worker's user may not delete messages from
// PAPERS; a second worker, which may, removes the message after it.
func TestReapedMessageWhoseRemovalFailedIsCountedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "nodelete", Password: "nodelete", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.STREAM.MSG.DELETE." + pipeline.StreamPapers}}}},
		}
	})
	connect := func(user string) jetstream.JetStream { return connectAs(t, srv, user) } // errors unreported: the denied deletes, expected
	admin := connect("admin")
	if err := pipeline.Setup(ctx, admin, pipeline.TopologyConfig{MaxDeliver: 1, AckWait: time.Second}); err != nil {
		t.Fatal(err)
	}
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setupOn(t, admin, emb)
	papers := sampledata.Papers(t)[:1]
	publish(t, admin, papers)
	dieHolding(t, admin, 1)
	cons, err := admin.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to give the message up", func() (bool, string) {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.NumAckPending == 0, fmt.Sprintf("%d ack pending", info.NumAckPending)
	})

	restricted := *b
	restricted.js = connect("nodelete")
	w1 := startWorker(t, &restricted, sum, emb, pipeline.WorkerConfig{SweepInterval: 100 * time.Millisecond})
	waitFor(t, "the first worker to write the dead letter", func() (bool, string) {
		n := len(deadLetters(t, admin))
		return n > 0, fmt.Sprintf("%d dead letters", n)
	})
	if n := streamMsgs(t, admin, pipeline.StreamPapers); n != 1 {
		t.Fatalf("%s holds %d messages, want the one the first worker could not remove", pipeline.StreamPapers, n)
	}
	waitFor(t, "the first worker to count the dead letter it wrote", func() (bool, string) {
		s := w1.Stats()
		return s.Dead == 1, fmt.Sprintf("stats %+v", s)
	})

	w2 := startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: 100 * time.Millisecond})
	waitFor(t, "the second worker to remove the message", func() (bool, string) {
		q := streamMsgs(t, admin, pipeline.StreamPapers)
		return q == 0, fmt.Sprintf("%d messages left", q)
	})
	if dls := deadLetters(t, admin); len(dls) != 1 {
		t.Errorf("dead letters %+v, want the one", dls)
	}
	if s1, s2 := w1.Stats(), w2.Stats(); s1.Dead+s2.Dead != 1 || s1.Reaped+s2.Reaped != 1 {
		t.Errorf("stats %+v and %+v: want the dead letter counted once, the message reaped once", s1, s2)
	}
}
