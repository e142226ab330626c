package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
)

// TestARestartedServerTimesAnUnmarkedDeliveryFromItsMessage is nats-server's behaviour that
// pipeline's holds work around (pipeline/hold.go, startHold), reproduced with nats.go alone:
// the server stores a delivery's time as the message's own timestamp (consumer.deliverMsg
// passes pmsg.ts to its store's UpdateDelivered; only an InProgress, progressUpdate, stores
// the current time), and a server started again from its files checks the restored
// deliveries at once (setLeader's checkPending) against that time. A delivery of a message
// older than the AckWait, made a moment before the stop, is then expired at the start: on its
// last delivery it is given up ("max deliveries", with as many deliveries as its holder was
// given) at the next pull request, while its holder still works on it; on an earlier one it is
// redelivered to that pull request. The same delivery marked in progress once is kept. When
// the first case fails, nats-server times restored deliveries from their delivery: the
// InProgress a worker sends as it takes a message is no longer needed for this.
func TestARestartedServerTimesAnUnmarkedDeliveryFromItsMessage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mark     bool // the holder sends an InProgress after receiving it
		givenUp  bool
		ackPends int
	}{
		{name: "unmarked", mark: false, givenUp: true, ackPends: 0},
		{name: "marked in progress", mark: true, givenUp: false, ackPends: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			const ackWait = 2 * time.Second
			srv := natstest.Start(t)
			js := srv.Connect(t)
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "Q", Subjects: []string{"q"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
				t.Fatal(err)
			}
			cons, err := js.CreateOrUpdateConsumer(ctx, "Q", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy,
				AckWait: ackWait, MaxDeliver: 2})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "q", []byte("work")); err != nil {
				t.Fatal(err)
			}
			// The first delivery is handed back, the holder below has the last.
			if m := fetchOne(t, cons); m == nil {
				t.Fatal("no first delivery")
			} else if err := m.Nak(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(ackWait) // the message gets older than the AckWait (no event says so)
			held := fetchOne(t, cons)
			if held == nil {
				t.Fatal("no last delivery")
			}
			if tc.mark {
				if err := held.InProgress(); err != nil {
					t.Fatal(err)
				}
			}
			if err := js.Conn().Flush(); err != nil {
				t.Fatal(err)
			}
			srv.Restart(t) // well within the AckWait of the delivery

			nc, err := nats.Connect(srv.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			advisories, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.Q.c")
			if err != nil {
				t.Fatal(err)
			}
			ojs, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			if cons, err = ojs.Consumer(ctx, "Q", "c"); err != nil {
				t.Fatal(err)
			}
			pulled, err := cons.FetchNoWait(1) // the server acts on what it restored
			if err != nil {
				t.Fatal(err)
			}
			for range pulled.Messages() {
				t.Error("the held message was delivered again")
			}
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumAckPending != tc.ackPends {
				t.Errorf("%d deliveries pending, want %d", info.NumAckPending, tc.ackPends)
			}
			if tc.givenUp {
				if _, err := advisories.NextMsg(10 * time.Second); err != nil {
					t.Errorf("no max-deliveries advisory: %v", err)
				}
			}
		})
	}
}

// fetchOne pulls one message of cons, nil when none comes within a second.
func fetchOne(t *testing.T, cons jetstream.Consumer) jetstream.Msg {
	t.Helper()
	b, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		return m
	}
	return nil
}

// TestARestartedServerKeepsAnInProgressTimeInWholeSeconds is nats-server's behaviour that the
// lowest AckWait paperpipe accepts allows for, reproduced with nats.go alone: the file store
// keeps a pending delivery's time in whole seconds (encodeConsumerState: the time's seconds,
// relative to the write's own, rounded), so a server started again from its files times the
// AckWait from the start of the second of the last InProgress — up to a second early. A
// message marked in progress late in a second, with an AckWait of 3 s, comes back about 2.1 s
// after that InProgress: the pull request here ends 2.6 s after it (a margin of half a second
// each way).
func TestARestartedServerKeepsAnInProgressTimeInWholeSeconds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ackWait = 3 * time.Second
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "Q", Subjects: []string{"q"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "Q", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: ackWait, MaxDeliver: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "q", []byte("work")); err != nil {
		t.Fatal(err)
	}
	held := fetchOne(t, cons)
	if held == nil {
		t.Fatal("no delivery")
	}
	// The InProgress goes 0.9 s into a second of the wall clock (the server's).
	time.Sleep(time.Duration((1900-time.Now().UnixMilli()%1000)%1000) * time.Millisecond)
	marked := time.Now()
	if err := held.InProgress(); err != nil {
		t.Fatal(err)
	}
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)

	js = srv.Connect(t)
	if cons, err = js.Consumer(ctx, "Q", "c"); err != nil {
		t.Fatal(err)
	}
	wait := time.Until(marked.Add(ackWait - 400*time.Millisecond))
	if wait < 100*time.Millisecond {
		t.Skipf("the restart took %s; the test needs it well within the AckWait", time.Since(marked))
	}
	b, err := cons.Fetch(1, jetstream.FetchMaxWait(wait))
	if err != nil {
		t.Fatal(err)
	}
	var again jetstream.Msg
	for m := range b.Messages() {
		again = m
	}
	if again == nil {
		t.Fatalf("the message held was not delivered again within %s of its InProgress (AckWait %s): the server kept the InProgress's time", ackWait-400*time.Millisecond, ackWait)
	}
	meta, err := again.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("delivered again (delivery %d) %s after the InProgress", meta.NumDelivered, time.Since(marked).Round(10*time.Millisecond))
}
