package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/paper"
)

// RunPublisher puts abstracts on a re-processing target's subject for one run. Its message
// ids are MsgID prefixed by the run's id: a paper published twice in one run is dropped by the
// server, while a later run republishes a paper that is still stale (its earlier message was
// dead-lettered, say) even within the duplicate window, which Publisher's ids would not. The
// caller makes sure no message of an earlier run is still queued (drains the consumer first),
// so that one paper is never queued twice. It is not safe for concurrent use.
type RunPublisher struct {
	js      jetstream.JetStream
	subject string
	run     string
	window  []jetstream.PubAckFuture
	max     int
	stats   PublishStats
}

// NewRunPublisher returns a RunPublisher for run (any short unique string) on subject (a
// ReprocessTarget.Subject). maxPending bounds the messages in flight; it defaults to 256.
func NewRunPublisher(js jetstream.JetStream, subject, run string, maxPending int) *RunPublisher {
	if maxPending <= 0 {
		maxPending = 256
	}
	return &RunPublisher{js: js, subject: subject, run: run, max: maxPending}
}

// Publish sends one abstract; errors from the server surface from a later Publish or Flush.
func (p *RunPublisher) Publish(ctx context.Context, a paper.Abstract) error {
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode %s: %w", a.ID, err)
	}
	msg := &nats.Msg{Subject: p.subject, Data: data, Header: nats.Header{}}
	f, err := p.js.PublishMsgAsync(msg, jetstream.WithMsgID(p.run+"/"+MsgID(p.subject, a)))
	if err != nil {
		return fmt.Errorf("publish %s: %w", a.ID, err)
	}
	p.window = append(p.window, f)
	if len(p.window) >= p.max {
		return p.settle(ctx, len(p.window)/2)
	}
	return nil
}

// Flush waits until the server has acknowledged every message published so far.
func (p *RunPublisher) Flush(ctx context.Context) error { return p.settle(ctx, len(p.window)) }

// Stats returns the counts of acknowledged messages so far.
func (p *RunPublisher) Stats() PublishStats { return p.stats }

func (p *RunPublisher) settle(ctx context.Context, n int) error {
	var errs []error
	for _, f := range p.window[:n] {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				p.stats.Duplicates++
			} else {
				p.stats.Published++
			}
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("publish %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.window = append(p.window[:0], p.window[n:]...)
	return errors.Join(errs...)
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
