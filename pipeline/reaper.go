package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/paper"
)

// ReasonMaxDeliveries is the dead-letter reason of a message the server stopped delivering
// after MaxDeliver deliveries none of which was settled — typically because the worker holding
// its last delivery died.
const ReasonMaxDeliveries = "max deliveries exceeded"

// advisoryMaxDeliveries prefixes the subject on which JetStream announces such a message:
// $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>.
const advisoryMaxDeliveries = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// maxDeliveriesAdvisory is the part of io.nats.jetstream.advisory.v1.max_deliver we use.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// orphan is a message of the work queue that its consumer gave up on.
type orphan struct {
	seq        uint64
	deliveries uint64
	raw        *jetstream.RawStreamMsg // nil: fetch it by seq
}

// startReaper listens for the consumer's max-deliveries advisories (in a queue group, so one
// worker of the consumer handles each) and sweeps for the orphans it missed — advisories are
// not stored, so those sent while no worker listened or NATS restarted are lost — at start and
// every SweepInterval. PAPERS is a work queue: a message the consumer gave up on stays in the
// stream, below the consumer's ack floor, until someone removes it. stop waits for the reaper.
func (w *Worker) startReaper(ctx context.Context, cons jetstream.Consumer) (stop func()) {
	found := make(chan orphan, 256)
	subject := advisoryMaxDeliveries + "." + StreamPapers + "." + w.cfg.Consumer
	sub, err := w.js.Conn().QueueSubscribe(subject, "paperpipe-reaper."+w.cfg.Consumer, func(m *nats.Msg) {
		var a maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &a); err != nil || a.StreamSeq == 0 {
			w.log.Warn("unreadable max-deliveries advisory", "err", err)
			return
		}
		select {
		case found <- orphan{seq: a.StreamSeq, deliveries: a.Deliveries}:
		default: // the next sweep finds it
		}
	})
	if err != nil {
		w.log.Warn("cannot listen for max-deliveries advisories; relying on sweeps", "subject", subject, "err", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.sweep(rctx, cons)
		t := time.NewTicker(w.cfg.SweepInterval)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case o := <-found:
				if err := w.reap(rctx, o); err != nil {
					w.log.Warn("handling a message given up after max deliveries failed; the next sweep retries", "seq", o.seq, "err", err)
				}
			case <-t.C:
				w.sweep(rctx, cons)
			}
		}
	}()
	return func() {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		cancel()
		<-done
	}
}

// sweep reaps the messages of the consumer's subject that the consumer delivered and gave up
// on. The server does not say which messages those are, except in its advisories, so a sweep
// acts only when the consumer has nothing delivered and unsettled: then every message of its
// subject it has delivered and that is still in the work queue (acknowledged and terminated
// ones are deleted) was given up. A consumer that never pauses is left to the advisories until
// it does; a worker with ExitWhenIdle sweeps once more before it exits.
func (w *Worker) sweep(ctx context.Context, cons jetstream.Consumer) {
	if err := w.sweepOnce(ctx, cons); err != nil && ctx.Err() == nil {
		w.log.Warn("sweep for messages given up after max deliveries failed", "err", err)
	}
}

func (w *Worker) sweepOnce(ctx context.Context, cons jetstream.Consumer) error {
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("consumer info: %w", err)
	}
	delivered := info.Delivered.Stream
	filter := info.Config.FilterSubject
	if info.NumAckPending > 0 || delivered == 0 || filter == "" {
		return nil
	}
	stream, err := w.js.Stream(ctx, StreamPapers)
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamPapers, err)
	}
	for seq := uint64(1); seq <= delivered; {
		raw, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("look for given-up messages: %w", err)
		}
		if raw.Sequence > delivered {
			return nil
		}
		if err := w.reap(ctx, orphan{seq: raw.Sequence, deliveries: uint64(max(info.Config.MaxDeliver, 0)), raw: raw}); err != nil {
			return err
		}
		seq = raw.Sequence + 1
	}
	return nil
}

// reap handles one message its consumer gave up on: when its results are all stored already
// (its last worker saved them but died before acknowledging) it is just removed; otherwise it
// is copied to the dead-letter stream with ReasonMaxDeliveries, then removed from PAPERS.
// Several workers may reap the same message: the dead letter's message id drops the second
// copy, and the second removal finds nothing.
func (w *Worker) reap(ctx context.Context, o orphan) error {
	stream, err := w.js.Stream(ctx, StreamPapers)
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamPapers, err)
	}
	raw := o.raw
	if raw == nil {
		raw, err = stream.GetMsg(ctx, o.seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil // reaped already
		}
		if err != nil {
			return fmt.Errorf("get message %d: %w", o.seq, err)
		}
	}
	var a paper.Abstract
	decoded := json.Unmarshal(raw.Data, &a) == nil && a.ID != "" && a.Title != "" && a.Abstract != ""
	a.TextAt = textAt(raw.Header, raw.Time)
	if decoded {
		pending, err := w.upsert(ctx, []paper.Abstract{a})
		if err != nil && !errors.Is(err, paper.ErrInvalid) {
			return fmt.Errorf("check the store for %s: %w", a.ID, err)
		}
		if err == nil && !pending[0].NeedTLDR && !pending[0].NeedEmbedding {
			removed, err := removeMsg(ctx, stream, o.seq)
			if err != nil {
				return err
			}
			// Another worker's sweep, or an earlier one of this worker, that read the message
			// before it was removed may have reaped it first: it counted it.
			if removed {
				w.log.Info("message given up after max deliveries had its results stored; removed", "paper", a.ID, "seq", o.seq)
				w.stats.reaped.Add(1)
			}
			w.withdrawOriginals(raw.Header, raw.Data, a.ID, "processed")
			return nil
		}
	}
	reason := fmt.Sprintf("%s (%d deliveries, none settled: the worker holding the last one died or lost its connection)", ReasonMaxDeliveries, o.deliveries)
	dup, err := w.publishDead(ctx, raw.Subject, raw.Data, o.seq, raw.Time, o.deliveries, a.ID, reason, a.TextAt, raw.Header)
	if err != nil {
		return err
	}
	// A requeued copy's letter carries its paper: its original's, if any, is withdrawn.
	w.withdrawOriginals(raw.Header, raw.Data, a.ID, "dead-lettered")
	// The letter is counted by the worker that wrote it, once written: a removal that fails is
	// made by a later sweep (this worker's or another's), whose letter is then a duplicate, and
	// the count waiting for the removal never came (the worker's Dead, a reprocess's summary
	// and exit status, the metric, missed a letter `dlq list` shows).
	if !dup {
		w.log.Warn("dead-lettered", "paper", a.ID, "seq", o.seq, "attempts", o.deliveries, "reason", ReasonMaxDeliveries)
		w.stats.dead.Add(1)
		w.stats.reaped.Add(1)
	}
	return deleteMsg(ctx, stream, o.seq)
}

// deleteMsg removes a message from the stream; one already gone is fine.
func deleteMsg(ctx context.Context, s jetstream.Stream, seq uint64) error {
	_, err := removeMsg(ctx, s, seq)
	return err
}

// removeMsg is deleteMsg, reporting whether this call removed the message (false: it was gone).
func removeMsg(ctx context.Context, s jetstream.Stream, seq uint64) (removed bool, err error) {
	err = s.DeleteMsg(ctx, seq)
	if err == nil {
		return true, nil
	}
	if msgGone(err) {
		return false, nil
	}
	return false, fmt.Errorf("remove message %d from %s: %w", seq, s.CachedInfo().Config.Name, err)
}

// msgGone reports whether err, a DeleteMsg's, says the message is not in the stream: the
// server answers a delete of a missing one with ErrMsgDeleteUnsuccessful, "no message found".
func msgGone(err error) bool {
	return errors.Is(err, jetstream.ErrMsgNotFound) ||
		errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && strings.Contains(err.Error(), "no message found")
}
