package natstest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
)

// TestAStoppingServerDeliversToAPullRequestItHasDeclaredOver is nats-server's behaviour that
// pipeline's Embedded.Shutdown works around (it stops JetStream before the server), reproduced
// with nats.go alone. A server's Shutdown first answers every open pull request of a
// single-replica consumer "409 Server Shutdown" (signalPullConsumers) and then waits 50 ms
// before it stops JetStream, leaving those requests in the consumer's waiting list: a message
// that becomes available meanwhile (a new one, a NakWithDelay coming due) is delivered to a
// request its client was told is over. nats.go's Fetch ends at that 409 and unsubscribes its
// inbox (jetstream/pull.go: checkMsg's ErrServerShutdown), so the delivery reaches no worker,
// or, once the unsubscription is in, the server takes it back in memory only (didNotDeliver)
// while its file store keeps the count. Either way the server started again from its files
// counts a delivery nobody had: on the message's last delivery it gives the message up at the
// first pull request ("max deliveries exceeded" with no holder) — session 26's one unexplained
// dead letter of a takeover. Here the client keeps its inbox to see the delivery arrive after
// the 409, and the consumer allows one delivery. When this fails, nats-server no longer
// delivers to a request it has declared over, and Embedded.Shutdown's order is no longer
// needed for this.
func TestAStoppingServerDeliversToAPullRequestItHasDeclaredOver(t *testing.T) {
	ctx := context.Background()
	// The message must be published within the server's 50 ms after its 409, before JetStream
	// stops: a publish that came too late (refused: JetStream is gone) tries again on a new
	// server. A publish takes a millisecond or two, even under -race.
	for attempt := 1; ; attempt++ {
		srv, seq := deliverAfterShutdownNotice(t, ctx)
		if srv != nil {
			checkCountedUnheld(t, ctx, srv, seq)
			return
		}
		if attempt == 5 {
			t.Fatal("five publishes came after JetStream had stopped; the window is gone or the machine too slow")
		}
	}
}

// deliverAfterShutdownNotice opens a raw pull request on a new server, shuts the server down
// and publishes a message once the request is told "409 Server Shutdown". When the message was
// published in time, it checks that the request was sent it after the 409, and returns the
// server, started again from its files, and the message's sequence; nil when the publish came
// too late.
func deliverAfterShutdownNotice(t *testing.T, ctx context.Context) (*natstest.Server, uint64) {
	t.Helper()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	nc, err := nats.Connect(srv.ClientURL(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub := natstest.PendingPull(t, ctx, nc, js)

	stopped := make(chan struct{})
	go func() { srv.Shutdown(); close(stopped) }()
	notice, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no answer to the pull request at the shutdown: %v", err)
	}
	if notice.Header.Get("Status") != "409" || notice.Header.Get("Description") != "Server Shutdown" {
		t.Fatalf("the pull request was answered %q %q, want 409 Server Shutdown", notice.Header.Get("Status"), notice.Header.Get("Description"))
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	ack, perr := js.Publish(pctx, "q", []byte("work"))
	cancel()
	var delivered *nats.Msg
	if perr == nil {
		delivered, _ = sub.NextMsg(5 * time.Second)
	}
	<-stopped
	srv.Restart(t) // waits for the shutdown, starts from the files
	if perr != nil {
		if errors.Is(perr, context.DeadlineExceeded) || errors.Is(perr, nats.ErrNoResponders) || errors.Is(perr, jetstream.ErrNoStreamResponse) {
			return nil, 0
		}
		t.Fatalf("publish during the shutdown: %v", perr)
	}
	if delivered == nil || string(delivered.Data) != "work" {
		t.Fatalf("the message published after the 409 was not delivered to the request that was over (got %v)", delivered)
	}
	return srv, ack.Sequence
}

// checkCountedUnheld checks that srv, started again from its files, counts message seq's one
// allowed delivery as made and pending: once its AckWait ends the server gives it up, a
// message no client of a Fetch ever had.
func checkCountedUnheld(t *testing.T, ctx context.Context, srv *natstest.Server, seq uint64) {
	t.Helper()
	js := srv.Connect(t)
	cons, err := js.Consumer(ctx, "Q", "c")
	if err != nil {
		t.Fatal(err)
	}
	b, err := cons.FetchNoWait(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		t.Errorf("the message was delivered after the restart (%s)", m.Data())
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 1 || info.Delivered.Stream != seq {
		t.Errorf("after the restart the consumer has %d deliveries pending, the last of message %d; want the one to the request that was over (message %d)",
			info.NumAckPending, info.Delivered.Stream, seq)
	}
}
