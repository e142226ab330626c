package pipeline

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The warning of a consumer's AckWait below MinAckWait is for values below it, once per value:
// an AckWait of MinAckWait itself (4s, which PAPERPIPE_ACK_WAIT accepts) is not warned of, and a
// MaxDeliver changed while the AckWait stays below the minimum does not say it again; a new
// value below it does.
func TestTheShortAckWaitWarningIsForValuesBelowTheMinimumOncePerValue(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	w := &Worker{log: slog.New(slog.NewTextHandler(&logs, nil))}
	for _, step := range []struct {
		ackWait    time.Duration
		maxDeliver int
		warnings   int // in all, after this step
	}{
		{MinAckWait, 8, 0},
		{time.Second, 8, 1},
		{time.Second, 9, 1}, // MaxDeliver alone changed
		{2 * time.Second, 9, 2},
		{MinAckWait, 9, 2},
	} {
		if err := w.setTimeouts(step.ackWait, step.maxDeliver); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(logs.String(), "AckWait is below"); n != step.warnings {
			t.Fatalf("after AckWait %s and MaxDeliver %d: %d warnings of an AckWait below %s, want %d:\n%s",
				step.ackWait, step.maxDeliver, n, MinAckWait, step.warnings, logs.String())
		}
	}
}
