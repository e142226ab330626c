package pipeline

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// follow keeps the worker's timings (see setTimeouts) on its consumer's AckWait and MaxDeliver
// as the server has them, until stop is called: workers on several machines may have started
// with different settings, and the last one to start set the consumer's (see Setup). It reads
// the consumer every ProgressInterval: an AckWait or a MaxDeliver being lowered (announced by
// Setup, see setAckWait and setMaxDeliver) is followed within a quarter of the current AckWait,
// before the server counts it, and the worker sets it once its time has come (lowerWhenDue).
func (w *Worker) follow(ctx context.Context, cons jetstream.Consumer) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx)) // on through the drain
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(w.timings().progress)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			w.followOnce(ctx, cons)
			t.Reset(w.timings().progress)
		}
	}()
	return func() { cancel(); <-done }
}

// followOnce reads the consumer and follows its settings.
func (w *Worker) followOnce(ctx context.Context, cons jetstream.Consumer) {
	info, err := cons.Info(ctx)
	if err != nil {
		w.log.Debug("consumer info failed; keeping the timings", "err", err)
		return
	}
	w.readPullLimits(info.Config)
	ackWait, maxDeliver, err := lowerWhenDue(ctx, w.js, info)
	switch {
	case err != nil:
		w.log.Warn("could not lower the consumer's AckWait or MaxDeliver as announced; the next check retries", "err", err)
	case ackWait || maxDeliver:
		w.log.Info("lowered the consumer's settings as announced",
			"ack_wait", consumerAckWait(info.Config), "max_deliver", consumerMaxDeliver(info.Config))
	}
	old := w.timings()
	_ = w.setTimeouts(consumerAckWait(info.Config), consumerMaxDeliver(info.Config)) // an error only at start
	tm := w.timings()
	if tm == old {
		return
	}
	w.log.Info("the consumer's settings changed; following them",
		"ack_wait", tm.ackWait, "max_deliver", tm.maxDeliver, "progress_interval", tm.progress, "msg_timeout", tm.msgTimeout)
}
