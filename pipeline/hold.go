package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// errStaleHold is the failure of a message whose hold could not be renewed for so long that
// API work started now might outlast the server's AckWait: the work is not started (see
// startDeadline, which waits for the hold to be renewed instead).
var errStaleHold = errors.New("message not marked in progress recently (NATS unreachable?); not starting API work that could outlive its AckWait")

// errHoldLapsed is the failure of a message whose hold lapsed at some point (see hold.lapsed),
// even if it was renewed since: the server may have delivered the message to another worker,
// which does its work, or given it up after its last delivery. The work is not started, and the
// message is not handed back (a Nak would cut the other worker's delivery short): see
// Worker.letGo.
var errHoldLapsed = errors.New("message not marked in progress for about its AckWait (NATS was unreachable): the server may have handed it to another worker; not starting its API work")

// hold is a worker's claim on one delivered message, from its receipt until it is settled. A
// goroutine renews it with InProgress every ProgressInterval while the NATS connection is up;
// renewed is when the last InProgress the server is known to have received was sent (at
// first, the receipt).
type hold struct {
	renewed atomic.Pointer[stamp]
	// lapsed: the hold went unrenewed for so long (see Worker.lapse) that the server may have
	// stopped counting the message as this worker's.
	lapsed atomic.Bool
	stop   func()
}

// startHold starts renewing the hold on m until it is released. When the worker's timings
// change (the consumer's AckWait changed, see follow), the hold is renewed at once and then at
// the new ProgressInterval.
func (w *Worker) startHold(ctx context.Context, m jetstream.Msg) *hold {
	h := &hold{}
	h.renewed.Store(stampNow())
	nc := w.js.Conn()
	// Marked at once, not a ProgressInterval after receipt: nats-server stores a delivery's time
	// as the message's own (its consumer hands the store the message's timestamp; only an
	// InProgress stores the time the message is held since), and a server that starts again from
	// its files — the embedded server taken over by another process when the one that ran it
	// stops, an upgrade, a restart, a new consumer leader — times the AckWait of each delivery
	// from there. A message older than the AckWait (a backlog), delivered less than a
	// ProgressInterval before the stop (15 s at the default AckWait), was taken from this worker
	// at the start: redelivered to another while this one bought its TL;DR, or, on its last
	// delivery, given up and dead-lettered while this worker requeued or stored it. The renewed
	// time stays the receipt's: this InProgress is not waited for.
	if nc == nil || nc.IsConnected() {
		_ = m.InProgress()
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tm := w.timings()
		t := time.NewTimer(tm.progress)
		defer t.Stop()
		back := w.reconnects()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tm.changed:
				tm = w.timings()
				t.Reset(0)
				continue
			case <-back:
				// NATS is back: a server started again from its files times this delivery's
				// AckWait from the second of the last InProgress it got, and waiting for the
				// next tick left up to a ProgressInterval less of it.
				back = w.reconnects()
				t.Reset(0)
				continue
			case <-t.C:
			}
			t.Reset(tm.progress)
			// While reconnecting, a publish is buffered and may never reach the server:
			// only a send on a live connection renews the hold.
			if nc != nil && !nc.IsConnected() {
				continue
			}
			sent := stampNow()
			if m.InProgress() != nil {
				continue
			}
			// A connection whose peer went silent (a firewall dropping the flow, a
			// partition) still looks up until its pings go unanswered, minutes later, and
			// takes publishes that go nowhere: only the server's answer to a flush sent
			// after the InProgress shows that it got there.
			if nc != nil && nc.FlushTimeout(tm.progress) != nil {
				continue
			}
			if sent.since(h.renewed.Load()) >= w.lapse() {
				h.lapsed.Store(true)
			}
			h.renewed.Store(sent)
		}
	}()
	var once sync.Once
	h.stop = func() { once.Do(func() { cancel(); <-done }) }
	return h
}

// watchReconnects has the holds renewed each time the worker's NATS connection is back after
// a loss (see reconnected); stop ends it.
func (w *Worker) watchReconnects() (stop func()) {
	first := make(chan struct{})
	w.reconnected.Store(&first)
	nc := w.js.Conn()
	if nc == nil {
		return func() {}
	}
	status := nc.StatusChanged(nats.CONNECTED)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range status {
			next := make(chan struct{})
			close(*w.reconnected.Swap(&next))
		}
	}()
	return func() { nc.RemoveStatusListener(status); <-done }
}

// reconnects returns the channel closed when the worker's NATS connection is next back after a
// loss; nil (never closed) outside Run.
func (w *Worker) reconnects() <-chan struct{} {
	if p := w.reconnected.Load(); p != nil {
		return *p
	}
	return nil
}

// MinAckWait is the shortest AckWait the paperpipe command accepts (PAPERPIPE_ACK_WAIT). A
// server started again from its files (a restart, an upgrade, the embedded server taken over)
// times each restored delivery's AckWait from the start of the second of its last InProgress —
// up to a second early (internal/natstest's TestARestartedServerKeepsAnInProgressTimeInWholeSeconds)
// — and a hold counts as lapsed a ProgressInterval, a quarter of the AckWait, before the
// AckWait's end (see lapse): below 4 s that quarter does not cover the second. At 1 s a
// restart gave nearly every message held to other workers before its worker could mark it
// again, the holds still fresh to their workers, whose API work went on: two workers paying
// for one message.
const MinAckWait = 4 * time.Second

// lapse is how long a hold may go unrenewed before the server may count the message as no
// longer held: its AckWait, less a ProgressInterval for the InProgress on its way.
func (w *Worker) lapse() time.Duration {
	tm := w.timings()
	return tm.ackWait - tm.progress
}

// holdLapsed reports whether h went unrenewed for lapse at some point, now included: the
// server may have given the message up (or delivered it to another worker) meanwhile.
func (w *Worker) holdLapsed(h *hold) bool {
	return h != nil && (h.lapsed.Load() || stampNow().since(h.renewed.Load()) >= w.lapse())
}

// stamp is a moment as read on both of the process's clocks: the monotonic one (mono, since
// the process's start) and the wall clock (Unix nanoseconds). A hold's age is the longer of
// the two spans (see since), as the server's AckWait runs on neither: the wall clock may be
// stepped (NTP) back, hiding a lapse — work started on a message the server has given another
// worker, bought twice — and the monotonic clock stops while the machine is suspended (Linux).
// A step forward makes holds look lapsed: their messages are let go and delivered again after
// their AckWait, a delay rather than a second purchase.
type stamp struct {
	mono time.Duration
	wall int64
}

// processStart is the origin of stamp.mono.
var processStart = time.Now()

// stampNow is the stamp of this moment.
func stampNow() *stamp {
	t := time.Now()
	return &stamp{mono: t.Sub(processStart), wall: t.UnixNano()}
}

// since returns how long ago then was, s being now: the longer of the spans on the two clocks.
func (s *stamp) since(then *stamp) time.Duration {
	return max(s.mono-then.mono, time.Duration(s.wall-then.wall))
}

// release stops renewing the job's hold; it is called before the message is settled (an
// InProgress after a Nak would restart its AckWait). It is safe to call more than once.
func (j job) release() {
	if j.hold != nil {
		j.hold.stop()
	}
}

// workDeadline returns the deadline of API work on a message that starts now: MsgTimeout
// from now. It fails with errHoldLapsed when the hold lapsed at some point (renewed since or
// not: the message may be in another worker's hands), and with errStaleHold when it was last
// renewed so long ago that the server might redeliver the message before that deadline.
func (w *Worker) workDeadline(h *hold) (time.Time, error) {
	start := stampNow()
	tm := w.timings()
	if h != nil {
		if h.lapsed.Load() {
			return time.Time{}, errHoldLapsed
		}
		if age := start.since(h.renewed.Load()); age+tm.msgTimeout > tm.ackWait {
			return time.Time{}, fmt.Errorf("%w (last marked %s ago, AckWait %s)", errStaleHold, age.Round(time.Millisecond), tm.ackWait)
		}
	}
	return time.Now().Add(tm.msgTimeout), nil
}

// startDeadline is workDeadline for work about to start, which waits for a hold too old to
// start work on (NATS out of reach for a while: a restart, a network blip) to be renewed,
// rather than fail the message for it: the server still counts the message as this worker's
// until the hold lapses, and failing it would use one of its deliveries — on its last, dead-
// letter it. The work starts once NATS is back and the hold renewed; the wait ends with
// errHoldLapsed when the hold lapses first, with errDraining when the worker drains, and with
// ctx's error when ctx is done.
func (w *Worker) startDeadline(ctx context.Context, h *hold) (time.Time, error) {
	for {
		deadline, err := w.workDeadline(h)
		if !errors.Is(err, errStaleHold) {
			return deadline, err
		}
		if w.holdLapsed(h) {
			return time.Time{}, errHoldLapsed
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-w.draining:
			return time.Time{}, errDraining
		case <-time.After(min(w.timings().progress/4, 100*time.Millisecond)):
		}
	}
}

// workerTimings are what a worker derives from its consumer's configuration as the server has
// it: the AckWait its holds must beat (see consumerAckWait), how often it renews them, how long
// API work may take, and the deliveries a message gets.
type workerTimings struct {
	ackWait, progress, msgTimeout time.Duration
	maxDeliver                    int
	changed                       chan struct{} // closed when these timings are replaced
}

// Timeouts returns the message timeout and the embedding linger the worker ran by: its
// configuration's, or, once Run has read the consumer, lowered to fit the consumer's AckWait
// (each with a warning). A command that makes several workers in turn for one consumer
// (reprocess: the resumed messages, then each page) gives the next ones these, and the
// warnings are said once, not once per worker.
func (w *Worker) Timeouts() (msgTimeout, embedLinger time.Duration) {
	msgTimeout = w.cfg.MsgTimeout
	if tm := w.timings(); tm != nil && msgTimeout > tm.msgTimeout {
		msgTimeout = tm.msgTimeout
	}
	return msgTimeout, w.cfg.EmbedLinger
}

// timings returns the worker's current timings.
func (w *Worker) timings() *workerTimings { return w.tm.Load() }

// setTimeouts derives ProgressInterval and MsgTimeout from the consumer's AckWait, keeping
// the message timeout below it (see WorkerConfig.MsgTimeout), and sets them with maxDeliver as
// the worker's timings. At start (no timings yet) a ProgressInterval too long for the AckWait is
// an error; later (the consumer's AckWait was lowered while the worker ran) it is lowered to a
// quarter of it, with a warning. The holds of the messages the worker has are renewed at once
// and then at the new interval. Timings already set from the same AckWait and maxDeliver are
// kept as they are.
func (w *Worker) setTimeouts(ackWait time.Duration, maxDeliver int) error {
	if ackWait <= 0 {
		ackWait = 30 * time.Second // the server's default
	}
	old := w.tm.Load()
	if old != nil && old.ackWait == ackWait && old.maxDeliver == maxDeliver {
		return nil
	}
	if ackWait < MinAckWait && (old == nil || old.ackWait != ackWait) {
		// Only the paperpipe command refuses such an AckWait (PAPERPIPE_ACK_WAIT); an operator's
		// `nats consumer edit --ack-wait 1s` is followed as it is, and said once per value: it is
		// theirs to set (a worker that set it back, or stopped, would fight it or turn the edit
		// into an outage), but its risk is paperpipe's to tell.
		w.log.Warn(fmt.Sprintf("the consumer's AckWait is below %s, the shortest paperpipe accepts: a restart of the NATS server "+
			"(the embedded one taken over) can hand the messages a worker holds to another while the first still works on them, "+
			"both paying the API; set it back with `nats consumer edit %s %s --ack-wait 60s` (or restart a worker with PAPERPIPE_ACK_WAIT)",
			MinAckWait, StreamPapers, w.cfg.Consumer), "ack_wait", ackWait)
	}
	tm := &workerTimings{ackWait: ackWait, maxDeliver: maxDeliver, progress: w.cfg.ProgressInterval, changed: make(chan struct{})}
	if tm.progress <= 0 {
		tm.progress = max(ackWait/4, 10*time.Millisecond)
	}
	limit := ackWait - 2*tm.progress
	if limit <= 0 {
		if old == nil {
			return fmt.Errorf("worker: ProgressInterval %s is too long for the consumer's AckWait %s: want less than half of it (a quarter, the default, leaves the work room)",
				tm.progress, ackWait)
		}
		tm.progress = max(ackWait/4, 10*time.Millisecond)
		w.log.Warn("progress interval lowered to a quarter of the consumer's new AckWait", "progress_interval", w.cfg.ProgressInterval,
			"ack_wait", ackWait, "now", tm.progress)
		limit = ackWait - 2*tm.progress
	}
	tm.msgTimeout = w.cfg.MsgTimeout
	switch {
	case tm.msgTimeout <= 0:
		tm.msgTimeout = min(ackWait/2, limit)
	case tm.msgTimeout > limit:
		w.log.Warn("message timeout lowered below the consumer's AckWait", "msg_timeout", w.cfg.MsgTimeout,
			"ack_wait", ackWait, "now", limit)
		tm.msgTimeout = limit
	}
	if old == nil && w.cfg.EmbedLinger > tm.msgTimeout/2 {
		// A batch goes half a MsgTimeout after its first abstract at the latest: the other half
		// is the request's.
		lowered := max(tm.msgTimeout/2, w.cfg.Linger)
		w.log.Warn("embedding linger lowered to half the message timeout (or Linger, if longer)", "embed_linger", w.cfg.EmbedLinger,
			"msg_timeout", tm.msgTimeout, "now", lowered)
		w.cfg.EmbedLinger = lowered
	}
	w.tm.Store(tm)
	if old != nil {
		close(old.changed)
	}
	return nil
}
