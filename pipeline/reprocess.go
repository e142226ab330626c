package pipeline

import (
	"context"
	"errors"
	"fmt"

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
	c, err := js.Consumer(ctx, StreamPapers, t.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("consumer %s: %w", t.Consumer, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("consumer %s: %w", t.Consumer, err)
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}
