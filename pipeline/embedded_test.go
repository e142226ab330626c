package pipeline_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/pipeline"
)

// TestAStoppingEmbeddedServerDeliversNothingToAPullRequestItHasEnded: a message that became
// available as the embedded server stopped (a worker's NakWithDelay coming due, during a
// takeover) was delivered to a pull request the server had just answered "409 Server Shutdown"
// (see internal/natstest's TestAStoppingServerDeliversToAPullRequestItHasDeclaredOver).
// nats.go's Fetch drops what comes after that answer, and the server started again from its
// files counted the delivery: on a last delivery, the message was given up and dead-lettered
// with no worker ever having held it. The raw pull request here keeps its inbox, as a Fetch
// whose unsubscription has not reached the server yet, and publishes the message when told the
// request is over; the consumer allows one delivery, and the message must be there for the
// server that takes the directory over.
func TestAStoppingEmbeddedServerDeliversNothingToAPullRequestItHasEnded(t *testing.T) {
	ctx := context.Background()
	// A publish that comes after JetStream has stopped tells nothing: try again (the server's
	// window after its 409 is 50 ms, a publish takes a millisecond or two).
	for attempt := 1; attempt <= 5; attempt++ {
		if stopEmbeddedDuringPull(t, ctx) {
			return
		}
	}
	t.Fatal("five publishes came after JetStream had stopped")
}

// stopEmbeddedDuringPull runs one attempt; false when its publish came after JetStream stopped.
func stopEmbeddedDuringPull(t *testing.T, ctx context.Context) bool {
	dir := t.TempDir()
	e, err := pipeline.StartEmbedded(pipeline.EmbeddedConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(e.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	stopped := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-stopped:
		default:
			e.Shutdown()
		}
	})

	nc, err := nats.Connect(e.ClientURL(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sub := natstest.PendingPull(t, ctx, nc, js)

	go func() { e.Shutdown(); close(stopped) }()
	published := false
	if m, err := sub.NextMsg(10 * time.Second); err == nil && m.Header.Get("Status") == "409" {
		// Told the request is over while the server may still deliver to it.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.Publish(pctx, "q", []byte("work"))
		cancel()
		if err != nil {
			<-stopped
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
				errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrConnectionClosed) {
				return false
			}
			t.Fatalf("publish during the shutdown: %v", err)
		}
		published = true
	}
	<-stopped

	// The server another process starts on the directory.
	e2, err := pipeline.StartEmbedded(pipeline.EmbeddedConfig{Dir: dir, Port: port, Token: u.User.Username()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e2.Shutdown)
	nc2, err := nats.Connect(e2.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	js2, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	if !published {
		if _, err := js2.Publish(ctx, "q", []byte("work")); err != nil {
			t.Fatal(err)
		}
	}
	cons2, err := js2.Consumer(ctx, "Q", "c")
	if err != nil {
		t.Fatal(err)
	}
	b, err := cons2.FetchNoWait(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		if string(m.Data()) == "work" {
			return true
		}
	}
	info, err := cons2.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Fatalf("the message is not delivered after the takeover: its one delivery was counted (%d pending, %d messages waiting)",
		info.NumAckPending, info.NumPending)
	return true
}
