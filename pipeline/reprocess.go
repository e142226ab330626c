package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// NewRunPublisher returns a Publisher for one re-processing run on subject (a
// ReprocessTarget.Subject). Its message ids are MsgID prefixed by run (any short unique
// string): a paper published twice in one run is dropped by the server, while a later run
// republishes a paper that is still stale (its earlier message was dead-lettered, say) even
// within the duplicate window, which plain MsgIDs would not. The caller makes sure no message of
// an earlier run is still queued (drains the consumer first), so that one paper is never queued
// twice. maxPending bounds the messages in flight; it defaults to 256.
func NewRunPublisher(js jetstream.JetStream, subject, run string, maxPending int) *Publisher {
	p := NewPublisher(js, subject, maxPending)
	p.run = run
	return p
}

// Queued returns the messages of a re-processing target's consumer that are waiting or being
// processed: left by an interrupted run when not zero.
func Queued(ctx context.Context, js jetstream.JetStream, t ReprocessTarget) (uint64, error) {
	l, err := QueueLeft(ctx, js, t)
	return l.Waiting + uint64(l.Held), err
}

// Left is what a re-processing target's consumer holds (see QueueLeft).
type Left struct {
	// Waiting is the messages not delivered yet (or handed back).
	Waiting uint64
	// Held is the messages delivered and not acknowledged. Between runs (a run holds its
	// target's lock), those of a run that was killed, or lost its connection, before it
	// settled them: the server hands them out again only once its hold on them lapses,
	// AckWait after the last sign of that run.
	Held int
	// AckWait is the consumer's.
	AckWait time.Duration
}

// QueueLeft returns what the consumer of target t holds: none when it does not exist.
func QueueLeft(ctx context.Context, js jetstream.JetStream, t ReprocessTarget) (Left, error) {
	c, err := js.Consumer(ctx, StreamPapers, t.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return Left{}, nil
	}
	if err != nil {
		return Left{}, fmt.Errorf("consumer %s: %w", t.Consumer, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return Left{}, fmt.Errorf("consumer %s: %w", t.Consumer, err)
	}
	return Left{Waiting: info.NumPending, Held: info.NumAckPending, AckWait: info.Config.AckWait}, nil
}

// RemoveIdleReprocessConsumer deletes the durable consumer of target t when it holds no message
// — none waiting, none delivered and unacknowledged — and reports whether it did. A run calls
// it when it ends, so that the consumers of past targets do not stay in `paperpipe status` and
// the queue metrics for ever; a run of the target creates it again (EnsureReprocessConsumer).
// The messages are the work-queue stream's, not the consumer's: one published after the check
// (a race no run of the target makes: one runs at a time) stays in the stream, and the
// recreated consumer, which delivers all, hands it to the next run.
func RemoveIdleReprocessConsumer(ctx context.Context, js jetstream.JetStream, t ReprocessTarget) (bool, error) {
	c, err := js.Consumer(ctx, StreamPapers, t.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("consumer %s: %w", t.Consumer, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return false, fmt.Errorf("consumer %s: %w", t.Consumer, err)
	}
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return false, nil
	}
	err = js.DeleteConsumer(ctx, StreamPapers, t.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete consumer %s: %w", t.Consumer, err)
	}
	return true, nil
}
