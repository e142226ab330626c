package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// queuedMsg is a message of the queue as decode reads it: its metadata (stored at stored), its
// body and no headers.
type queuedMsg struct {
	jetstream.Msg
	stored time.Time
	data   string
}

func (m queuedMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{Timestamp: m.stored, NumDelivered: 1}, nil
}
func (m queuedMsg) Data() []byte         { return []byte(m.data) }
func (m queuedMsg) Headers() nats.Header { return nil }

// A message decoded carries the time the worker took it, not only the time it was queued: the
// dead letter of its last delivery is no older, and withdrawDeadLetter searches the letters
// from then on only after a hold past the duplicate window. Taken as the message's queueing
// time, every last delivery of a backlog queued over an hour ago read every letter written
// since (196 ms a paper with 1,000 letters).
func TestADecodedMessageCarriesWhenTheWorkerTookIt(t *testing.T) {
	t.Parallel()
	before := time.Now()
	j, err := decode(queuedMsg{stored: before.Add(-2 * time.Hour), data: `{"id":"x","title":"T","abstract":"A."}`})
	if err != nil {
		t.Fatal(err)
	}
	if j.received.Before(before) || j.received.After(time.Now()) {
		t.Errorf("a message queued two hours ago, taken at %s: received %s, want the time it was taken", before.Format(time.TimeOnly), j.received)
	}
}

// The lists of dead letters cut a reason longer than MaxShownReason bytes, saying its size, and
// keep one of that size whole: a reason of 1,000 bytes was not to be cut to itself.
func TestAReasonIsCutOnlyPastMaxShownReason(t *testing.T) {
	t.Parallel()
	whole := DeadLetter{Seq: 7, Reason: strings.Repeat("r", MaxShownReason)}
	whole.cut()
	if len(whole.Reason) != MaxShownReason || whole.ReasonBytes != 0 {
		t.Errorf("a reason of %d bytes: cut to %d bytes (reason_bytes %d), want it whole", MaxShownReason, len(whole.Reason), whole.ReasonBytes)
	}
	over := DeadLetter{Seq: 7, Reason: strings.Repeat("r", MaxShownReason+1)}
	over.cut()
	if over.ReasonBytes != MaxShownReason+1 || !strings.HasPrefix(over.Reason, strings.Repeat("r", MaxShownReason)+"…") ||
		!strings.Contains(over.Reason, "paperpipe dlq show 7 prints it whole") {
		t.Errorf("a reason of %d bytes: %q (reason_bytes %d), want its first %d bytes, its size and `dlq show 7`",
			MaxShownReason+1, over.Reason, over.ReasonBytes, MaxShownReason)
	}
}
