package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A pull request ended by "409 Leadership Change" is made again at once, from the consumer's new
// leader, which sent it: it waited the failed pull's backoff (1–2 s, more after failures), the
// worker idle at every move of the leader. Other failures still back off, growing with those in
// a row, which a move neither lengthens nor ends.
func TestAPullEndedByALeadershipChangeIsMadeAgainAtOnce(t *testing.T) {
	var f pullFailures
	moved := fmt.Errorf("pull: %w", jetstream.ErrConsumerLeadershipChanged)
	if d := f.wait(moved); d != 0 {
		t.Errorf("after a leadership change the worker waits %s to pull again; want no wait", d)
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		if d := f.wait(nats.ErrNoResponders); d < want {
			t.Errorf("after no responders %d times in a row the worker waits %s; want at least %s", i+1, d, want)
		}
		if d := f.wait(moved); d != 0 {
			t.Errorf("after a leadership change following %d failures the worker waits %s; want no wait", i+1, d)
		}
	}
	if d := f.wait(nats.ErrNoResponders); d < 8*time.Second {
		t.Errorf("the fourth failure in a row, leadership changes between them, waits %s; want the fourth's 8–16 s", d)
	}
}
