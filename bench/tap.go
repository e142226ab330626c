package bench

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ackTap watches JetStream traffic on its own connection, without touching the worker: the
// deliveries the server pushes to pull requests (their reply subject is the message's ack
// subject) and the acknowledgements workers publish on those subjects. An ack subject names
// the stream sequence and the time the server stored the message, so publish → ack latency
// comes from message metadata alone.
type ackTap struct {
	subs []*nats.Subscription

	mu        sync.Mutex
	delivered map[uint64]time.Time // stream sequence → first delivery seen
	acks      map[uint64]ackSeen
}

type ackSeen struct {
	consumer  string
	stored    time.Time // when the server stored the message (≈ publish)
	delivered time.Time // first delivery, zero if not seen
	acked     time.Time
}

// ackSubject is the parsed form of an ack subject: $JS.ACK.<stream>.<consumer>.<delivered>.
// <stream seq>.<consumer seq>.<timestamp ns>.<pending> (v1), or the v2 form with domain and
// account hash after ACK and an optional trailing token.
type ackSubject struct {
	consumer string
	seq      uint64
	stored   time.Time
}

func parseAckSubject(s string) (ackSubject, error) {
	t := strings.Split(s, ".")
	if len(t) < 9 || t[0] != "$JS" || t[1] != "ACK" {
		return ackSubject{}, fmt.Errorf("not an ack subject: %q", s)
	}
	var f []string // stream, consumer, delivered, stream seq, consumer seq, timestamp, pending
	switch len(t) {
	case 9:
		f = t[2:]
	case 11, 12:
		f = t[4:11]
	default:
		return ackSubject{}, fmt.Errorf("ack subject %q: %d tokens", s, len(t))
	}
	seq, err := strconv.ParseUint(f[3], 10, 64)
	if err != nil {
		return ackSubject{}, fmt.Errorf("ack subject %q: stream sequence: %w", s, err)
	}
	ns, err := strconv.ParseInt(f[5], 10, 64)
	if err != nil {
		return ackSubject{}, fmt.Errorf("ack subject %q: timestamp: %w", s, err)
	}
	return ackSubject{consumer: f[1], seq: seq, stored: time.Unix(0, ns)}, nil
}

func startTap(nc *nats.Conn, stream string) (*ackTap, error) {
	t := &ackTap{delivered: map[uint64]time.Time{}, acks: map[uint64]ackSeen{}}
	sub, err := nc.Subscribe("_INBOX.>", func(m *nats.Msg) {
		if !strings.HasPrefix(m.Reply, "$JS.ACK.") {
			return
		}
		now := time.Now()
		a, err := parseAckSubject(m.Reply)
		if err != nil {
			return
		}
		t.mu.Lock()
		if _, ok := t.delivered[a.seq]; !ok {
			t.delivered[a.seq] = now
		}
		t.mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("tap deliveries: %w", err)
	}
	t.subs = append(t.subs, sub)
	sub, err = nc.Subscribe("$JS.ACK."+stream+".>", func(m *nats.Msg) {
		if len(m.Data) > 0 && string(m.Data) != "+ACK" {
			return // progress, nak or term
		}
		now := time.Now()
		a, err := parseAckSubject(m.Subject)
		if err != nil {
			return
		}
		t.mu.Lock()
		if _, ok := t.acks[a.seq]; !ok {
			t.acks[a.seq] = ackSeen{consumer: a.consumer, stored: a.stored, delivered: t.delivered[a.seq], acked: now}
		}
		t.mu.Unlock()
	})
	if err != nil {
		return nil, fmt.Errorf("tap acks: %w", err)
	}
	t.subs = append(t.subs, sub)
	for _, s := range t.subs {
		_ = s.SetPendingLimits(-1, -1)
	}
	return t, nc.Flush()
}

func (t *ackTap) stop() {
	for _, s := range t.subs {
		_ = s.Unsubscribe()
	}
}

// take returns the acks seen for consumer and forgets everything seen so far.
func (t *ackTap) take(consumer string) []ackSeen {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []ackSeen
	for _, a := range t.acks {
		if a.consumer == consumer {
			out = append(out, a)
		}
	}
	t.acks = map[uint64]ackSeen{}
	t.delivered = map[uint64]time.Time{}
	return out
}
