package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestAServerRestartedWhileAWorkerHoldsAMessageLeavesItToTheWorker: nats-server stores a
// delivery's time as the message's own time (consumer.deliverMsg hands its store the message's
// timestamp; only an InProgress stores the time the message is held since), and a server that
// starts again from its files — paperpipe's embedded server taken over by another process when
// the one that ran it stops, an upgrade, a restart — times each restored delivery's AckWait
// from there. A message of a backlog older than the AckWait, delivered within a
// ProgressInterval before the stop (a quarter of the AckWait: 15 s by default), was taken from
// the worker that held it at once: redelivered to another worker while the first still worked
// on it, or, on its last delivery, given up — and dead-lettered by a reaper while its worker
// requeued or stored it ("max deliveries exceeded (8 deliveries, none settled…)" in `dlq list`
// after a takeover under a rate limit, session 25). The worker now marks each message in
// progress as it takes it. Here the worker holds the message on its last delivery (its TL;DR's
// save held) through a restart, with its renewals further away than the restarted server's
// first look at what it has delivered (nats-server's applyState: within 1.5 s of the start).
func TestAServerRestartedWhileAWorkerHoldsAMessageLeavesItToTheWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ackWait = 4 * time.Second
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{AckWait: ackWait, MaxDeliver: 2}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setupOn(t, js, emb)
	publish(t, js, sampledata.Papers(t)[:1])
	cons, err := js.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	// Its first delivery is handed back: the worker gets its last.
	first, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range first.Messages() {
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	// A backlog: the message is older than the AckWait when the worker takes it. (Time must
	// pass here; no event says it has.)
	time.Sleep(ackWait)

	saves := &gatedSaves{Store: b.store, gate: newGate()}
	w := startWorkerOn(t, b, saves, summarize.NewOffline(30), emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	<-saves.entered // the TL;DR is bought; its save waits, the message held
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t) // within the hold's first ProgressInterval (a second)

	// An observer of the restarted server: its pull request has the server act on what it
	// restored (a message given up or redelivered needs one), while the worker's connection
	// may still wait to reconnect (nats.go's ReconnectWait, 2 s).
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	advisories, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + pipeline.StreamPapers + ".>")
	if err != nil {
		t.Fatal(err)
	}
	ojs, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if cons, err = ojs.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew); err != nil {
		t.Fatal(err)
	}
	pulled, err := cons.FetchNoWait(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range pulled.Messages() {
		md, _ := m.Metadata()
		t.Errorf("the restarted server redelivered the message the worker holds (delivery %d)", md.NumDelivered)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 1 {
		why := "no advisory"
		if m, err := advisories.NextMsg(time.Second); err == nil {
			why = "advisory " + string(m.Data)
		}
		t.Errorf("the restarted server counts %d messages as held, want 1, the worker's: it gave it up (%s)", info.NumAckPending, why)
	}

	close(saves.open)
	waitFor(t, "the worker acknowledging the message", func() (bool, string) {
		s := w.Stats()
		return s.Acked == 1, fmt.Sprintf("%+v", s)
	})
	if n := streamMsgs(t, js, pipeline.StreamPapers); n != 0 {
		t.Errorf("%d messages left in %s, want none", n, pipeline.StreamPapers)
	}
}

// TestAWorkerMarksWhatItHoldsAsSoonAsItReconnects: after its NATS connection was lost (a
// server restart, a takeover of the embedded server), a worker renewed its holds only at their
// next tick, up to a ProgressInterval after it was back. A restarted server times each
// restored delivery from the second of its last InProgress (internal/natstest's
// TestARestartedServerKeepsAnInProgressTimeInWholeSeconds), so the outage a hold survived was
// a ProgressInterval and up to a second shorter than the AckWait: at an AckWait of 6 s, a
// takeover of 2.5 s could hand messages in the workers' hands to others. Here the ticks are 20 s
// apart, and the message's first InProgress after the restart must come well before that.
func TestAWorkerMarksWhatItHoldsAsSoonAsItReconnects(t *testing.T) {
	t.Parallel()
	w, saves, acks := heldThroughARestart(t, time.Minute, 20*time.Second)
	m, err := acks.NextMsg(10 * time.Second)
	if err != nil {
		t.Errorf("no InProgress for the message held within 10 s of the restart (ProgressInterval 20 s): %v", err)
	} else if string(m.Data) != "+WPI" {
		t.Errorf("the worker's first word on the message after the restart is %q, want an InProgress (+WPI)", m.Data)
	}

	close(saves.open)
	waitFor(t, "the worker acknowledging the message", func() (bool, string) {
		s := w.Stats()
		return s.Acked == 1, fmt.Sprintf("%+v", s)
	})
}

// TestAWorkerBackFromALostConnectionMarksWhatItHoldsOnce: the InProgress a worker sends when
// its NATS connection is back is one, not one after another until its next tick: the next word
// on the message after it is its acknowledgement. (A hold that kept watching the reconnection
// it had already answered sent InProgress back to back for as long as it held the message.)
func TestAWorkerBackFromALostConnectionMarksWhatItHoldsOnce(t *testing.T) {
	t.Parallel()
	w, saves, acks := heldThroughARestart(t, 10*time.Minute, 4*time.Minute)
	if m, err := acks.NextMsg(time.Minute); err != nil || string(m.Data) != "+WPI" {
		t.Fatalf("the worker's first word on the message after the restart: %v; want an InProgress (+WPI)", err)
	}
	close(saves.open)
	waitFor(t, "the worker acknowledging the message", func() (bool, string) {
		s := w.Stats()
		return s.Acked == 1, fmt.Sprintf("%+v", s)
	})
	m, err := acks.NextMsg(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "+ACK" {
		words := []string{string(m.Data)}
		for len(words) < 5 {
			m, err := acks.NextMsg(100 * time.Millisecond)
			if err != nil {
				break
			}
			words = append(words, string(m.Data))
		}
		t.Errorf("the next words on the message after its InProgress: %q…; want its acknowledgement (+ACK), its next tick being 4 minutes away", words)
	}
}

// heldThroughARestart starts a worker (AckWait ackWait, holds marked every progress) on one
// paper whose TL;DR's save it holds open (close saves.open to let it go), restarts the NATS
// server, and returns the worker, its saves and a subscription of an observer of the restarted
// server to the stream's acknowledgements — subscribed before the worker's connection is back
// (nats.go's ReconnectWait, 2 s): the worker's words on the message go to its reply subject.
func heldThroughARestart(t *testing.T, ackWait, progress time.Duration) (*pipeline.Worker, *gatedSaves, *nats.Subscription) {
	t.Helper()
	ctx := context.Background()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{AckWait: ackWait}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setupOn(t, js, emb)
	publish(t, js, sampledata.Papers(t)[:1])
	saves := &gatedSaves{Store: b.store, gate: newGate()}
	w := startWorkerOn(t, b, saves, summarize.NewOffline(30), emb, pipeline.WorkerConfig{SweepInterval: time.Hour, ProgressInterval: progress})
	<-saves.entered // the TL;DR is bought; its save waits, the message held
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	acks, err := nc.SubscribeSync("$JS.ACK." + pipeline.StreamPapers + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w, saves, acks
}

// TestAWorkerStartedWhileNATSCannotAnswerWaitsForIt: a worker whose server is down as it starts
// (the embedded server changing hands: the process that ran it, a `status`, stopped a moment
// before; a NATS server restarting) looks its consumer up again until the server answers, and
// then works. Its lookup failed the command instead ("worker: consumer workers: context deadline
// exceeded", after the request's 5 s), while its connection would have gone on to the server
// come back.
func TestAWorkerStartedWhileNATSCannotAnswerWaitsForIt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setupOn(t, js, emb)
	var logs logBuffer
	w, err := pipeline.NewWorker(js, b.store, summarize.NewOffline(30), emb, pipeline.WorkerConfig{SpaceID: b.space.ID,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- w.Run(rctx) }()
	defer func() { stop(); <-ran }()
	stopped := func() {
		select {
		case err := <-ran:
			ran <- err
			t.Fatalf("the worker stopped: %v\n%s", err, logs.String())
		default:
		}
	}
	waitFor(t, "the worker's lookup of its consumer failed", func() (bool, string) {
		stopped()
		return strings.Contains(logs.String(), "consumer lookup failed"), logs.String()
	})
	srv.Restart(t)
	publish(t, js, sampledata.Papers(t)[:1])
	waitFor(t, "the paper processed", func() (bool, string) {
		stopped()
		s := w.Stats()
		return s.TLDRs == 1 && s.Embeddings == 1, fmt.Sprintf("%+v\n%s", s, logs.String())
	})
}
