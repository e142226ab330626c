package web

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// Timing of the usage ledger's writes.
const (
	// usageFlushDelay is how long the API usage of query embeddings gathers before it is
	// written: one write for all the searches of that time, off their request path.
	usageFlushDelay = 500 * time.Millisecond
	// usageWriteTimeout bounds one write to the ledger.
	usageWriteTimeout = 10 * time.Second
)

// usageLedger writes the API usage of query embeddings to Config.Usage in the background, a
// batch at a time. A failed write is logged, not retried: the ledger is for reporting, and a
// search never waits for it nor fails because of it.
type usageLedger struct {
	rec UsageRecorder
	log *slog.Logger

	mu      sync.Mutex
	pending []paper.Usage
	done    chan struct{} // while the writer runs: closed when it returns
}

// add queues u for the ledger. Usage without a request (a local model's) is not recorded, as
// the pipeline records none for it.
func (l *usageLedger) add(u paper.Usage) {
	if l.rec == nil || u.Requests == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = append(l.pending, u)
	if l.done == nil {
		l.done = make(chan struct{})
		go l.run(l.done)
	}
}

// run writes what gathered every usageFlushDelay, and returns once nothing did.
func (l *usageLedger) run(done chan struct{}) {
	defer close(done)
	for {
		time.Sleep(usageFlushDelay)
		l.mu.Lock()
		batch := l.pending
		l.pending = nil
		if len(batch) == 0 {
			l.done = nil
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), usageWriteTimeout)
		l.write(ctx, batch)
		cancel()
	}
}

// flush writes what is pending now and waits for the writer to finish, until ctx is done:
// a server that stops loses no usage it had gathered.
func (l *usageLedger) flush(ctx context.Context) {
	if l.rec == nil {
		return
	}
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	done := l.done
	l.mu.Unlock()
	if len(batch) > 0 {
		l.write(ctx, batch)
	}
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

func (l *usageLedger) write(ctx context.Context, batch []paper.Usage) {
	if err := l.rec.RecordUsage(ctx, batch); err != nil {
		requests := 0
		for _, u := range batch {
			requests += u.Requests
		}
		l.log.Warn("recording the API usage of query embeddings failed; the usage ledger lacks it", "requests", requests, "err", err)
	}
}
