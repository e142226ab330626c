package pipeline

import (
	"context"
	"sync"
	"time"
)

// batcher gathers items submitted from many goroutines into batches and hands each batch to
// flush in its own goroutine. It serves both the embedding requests (many abstracts per API
// call) and the TL;DR saves (group commit).
//
// A batch goes when it holds max items, or linger after its first ready item. An item is
// ready when submitted, unless it is submitted held: then it becomes ready when its submitter
// releases it. A batch goes maxHold after its first item at the latest, whatever it waits
// for. Held items let a batch
// keep gathering for free while its members' messages are busy with something else: an
// abstract's embedding is submitted held when its message starts and released when its TL;DR
// request starts, so the batch gathers while its members wait for a chat slot — longer, and so
// fuller, the busier the worker — and goes, linger later, when the first of them starts the
// TL;DR its message waits for anyway.
//
// A serial batcher also keeps gathering while a flush is in flight: a batch smaller than
// enough waits, past its linger, until no flush is running. Batches then grow with the load by
// themselves — about the items arriving during one flush — where a fixed linger would send
// more, smaller ones the busier the flushes' work (a slow database) gets; a batch of enough
// items goes at once (and a full one in any case), so flushes run side by side when the load
// needs it and the flushes' rate never bounds the items'. At low load nothing is in flight and
// a batch goes after linger: a lone item waits linger, no more.
type batcher[T any] struct {
	max     int
	linger  func() time.Duration
	maxHold func() time.Duration // 0: no bound
	serial  bool                 // a batch smaller than enough waits for the flush in flight
	enough  int
	flush   func(ctx context.Context, items []T) []error // one error per item, or nil for all fine

	mu      sync.Mutex
	cur     *gathering[T] // the batch being gathered, nil when none
	flights int           // flushes running
	wg      sync.WaitGroup
	ctx     context.Context
}

// batcherConfig is what a batcher is made with; see batcher.
type batcherConfig struct {
	// Max bounds the items of a batch; a full batch goes at once. Values below 1 mean 1.
	Max int
	// Linger is how long a batch waits, after its first ready item, for more.
	Linger time.Duration
	// LingerNow, when set, replaces Linger: it is asked at each batch's first ready item.
	LingerNow func() time.Duration
	// MaxHold bounds how long a batch waits for its held items' release, from its first item;
	// 0 for no bound.
	MaxHold time.Duration
	// MaxHoldNow, when set, replaces MaxHold: it is asked at each batch's first item.
	MaxHoldNow func() time.Duration
	// Serial makes a batch smaller than Enough wait, past its linger, for the flush in flight.
	Serial bool
	// Enough is the size at which a batch of a serial batcher goes after its linger even
	// while a flush is in flight. Values below 1, or above Max, mean Max.
	Enough int
}

// gathering is one batch while it fills.
type gathering[T any] struct {
	items   []*pendingItem[T]
	ready   bool        // some item is ready: the linger timer runs
	due     bool        // the linger has passed: it goes once no flush is in flight
	timer   *time.Timer // linger, from the first ready item
	hold    *time.Timer // maxHold, from the first item
	started bool        // handed to flush
}

// pendingItem is a submitted item. Its fields other than done are guarded by the batcher's mu.
type pendingItem[T any] struct {
	item     T
	deadline time.Time // of the submitter's context; zero when it has none
	done     chan error
	g        *gathering[T]
	held     bool
}

// newBatcher returns a batcher whose flushes run with ctx.
func newBatcher[T any](ctx context.Context, cfg batcherConfig, flush func(context.Context, []T) []error) *batcher[T] {
	linger := cfg.LingerNow
	if linger == nil {
		linger = func() time.Duration { return cfg.Linger }
	}
	maxHold := cfg.MaxHoldNow
	if maxHold == nil {
		maxHold = func() time.Duration { return cfg.MaxHold }
	}
	b := &batcher[T]{max: max(cfg.Max, 1), linger: linger, maxHold: maxHold, serial: cfg.Serial, enough: cfg.Enough, flush: flush, ctx: ctx}
	if b.enough < 1 || b.enough > b.max {
		b.enough = b.max
	}
	return b
}

// Do submits item and waits for the result of the batch it lands in, or for ctx.
func (b *batcher[T]) Do(ctx context.Context, item T) error {
	return b.DoBy(ctx, time.Time{}, item)
}

// DoBy is Do for an item whose work must end by deadline (zero: none). The flush of a batch
// runs with a context that ends at the earliest of its items' deadlines — every item's work
// ends by its own (the worker's promise that no two workers pay for one message at once
// rests on it; MaxHold leaves the earliest item time for the flush) — while DoBy waits for
// the flush's result for as long as ctx allows: work bounded in time, whose outcome —
// results paid for and being saved — is still awaited.
func (b *batcher[T]) DoBy(ctx context.Context, deadline time.Time, item T) error {
	return b.submit(deadline, item, false).wait(ctx)
}

// submit adds item, held or ready, to the batch being gathered and returns it, to release
// (when held) and wait for.
func (b *batcher[T]) submit(deadline time.Time, item T, held bool) *pendingItem[T] {
	p := &pendingItem[T]{item: item, deadline: deadline, done: make(chan error, 1), held: held}
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.cur
	if g == nil {
		g = &gathering[T]{}
		b.cur = g
		if d := b.maxHold(); d > 0 {
			g.hold = time.AfterFunc(d, func() {
				b.mu.Lock()
				defer b.mu.Unlock()
				b.startLocked(g)
			})
		}
	}
	p.g = g
	g.items = append(g.items, p)
	switch {
	case len(g.items) >= b.max, g.due && b.mayStartLocked(g):
		b.startLocked(g)
	case !held:
		b.readyLocked(g)
	}
	return p
}

// mayStartLocked reports whether g, its linger passed, may go now.
func (b *batcher[T]) mayStartLocked(g *gathering[T]) bool {
	return !b.serial || b.flights == 0 || len(g.items) >= b.enough
}

// release makes a held item ready, if its batch has not gone yet. It may be called more than
// once, and for items not held.
func (b *batcher[T]) release(p *pendingItem[T]) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.held {
		p.held = false
		b.readyLocked(p.g)
	}
}

// readyLocked notes that g has a ready item: its linger starts, unless it runs already or g
// has gone.
func (b *batcher[T]) readyLocked(g *gathering[T]) {
	if g.ready || g.started {
		return
	}
	g.ready = true
	g.timer = time.AfterFunc(b.linger(), func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		g.due = true
		if b.mayStartLocked(g) {
			b.startLocked(g)
		}
	})
}

// wait waits for the result of p's batch, or for ctx.
func (p *pendingItem[T]) wait(ctx context.Context) error {
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// The batch may still complete; its result is dropped here and the caller treats the
		// item as not done (it will be checked against the store on redelivery).
		return ctx.Err()
	}
}

// startLocked hands g's items to a flush goroutine, once.
func (b *batcher[T]) startLocked(g *gathering[T]) {
	if g == nil || g.started {
		return
	}
	g.started = true
	if b.cur == g {
		b.cur = nil
	}
	for _, t := range []*time.Timer{g.timer, g.hold} {
		if t != nil {
			t.Stop()
		}
	}
	batch := g.items
	b.flights++
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.flights--
			if b.flights == 0 && b.cur != nil && b.cur.due {
				b.startLocked(b.cur)
			}
		}()
		items := make([]T, len(batch))
		var earliest time.Time
		for i, p := range batch {
			items[i] = p.item
			if !p.deadline.IsZero() && (earliest.IsZero() || p.deadline.Before(earliest)) {
				earliest = p.deadline
			}
		}
		ctx, cancel := b.ctx, context.CancelFunc(func() {})
		if !earliest.IsZero() {
			ctx, cancel = context.WithDeadline(b.ctx, earliest)
		}
		errs := b.flush(ctx, items)
		cancel()
		for i, p := range batch {
			var err error
			if errs != nil {
				err = errs[i]
			}
			p.done <- err
		}
	}()
}

// startPending starts a flush of the batch being gathered at once, if there is one.
func (b *batcher[T]) startPending() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.startLocked(b.cur)
}

// Wait starts a flush of what is pending at once (items whose submitters stopped waiting may
// still be there, held or with their linger timer running) and blocks until every flush has
// finished. It is called once nothing more is submitted.
func (b *batcher[T]) Wait() {
	b.startPending()
	b.wg.Wait()
}
