package pipeline

import (
	"context"
	"sync"
	"time"
)

// batcher gathers items submitted from many goroutines into batches and hands each batch to
// flush in its own goroutine: a batch goes when it holds max items or when linger has passed
// since its first item. It serves both the embedding requests (many abstracts per API call)
// and the TL;DR saves (group commit).
type batcher[T any] struct {
	max    int
	linger time.Duration
	flush  func(ctx context.Context, items []T) []error // one error per item, or nil for all fine

	mu      sync.Mutex
	pending []pendingItem[T]
	timer   *time.Timer
	wg      sync.WaitGroup
	ctx     context.Context
}

type pendingItem[T any] struct {
	item     T
	deadline time.Time // of the submitter's context; zero when it has none
	done     chan error
}

// newBatcher returns a batcher whose flushes run with ctx.
func newBatcher[T any](ctx context.Context, max int, linger time.Duration, flush func(context.Context, []T) []error) *batcher[T] {
	if max < 1 {
		max = 1
	}
	return &batcher[T]{max: max, linger: linger, flush: flush, ctx: ctx}
}

// Do submits item and waits for the result of the batch it lands in, or for ctx.
func (b *batcher[T]) Do(ctx context.Context, item T) error {
	return b.DoBy(ctx, time.Time{}, item)
}

// DoBy is Do for an item whose work must end by deadline (zero: none). The flush of a batch
// whose every item has a deadline runs with a context that ends at the latest of them, while
// DoBy waits for the flush's result for as long as ctx allows: work bounded in time, whose
// outcome — results paid for and being saved — is still awaited.
func (b *batcher[T]) DoBy(ctx context.Context, deadline time.Time, item T) error {
	done := make(chan error, 1)
	b.mu.Lock()
	b.pending = append(b.pending, pendingItem[T]{item: item, deadline: deadline, done: done})
	switch {
	case len(b.pending) >= b.max:
		b.startLocked()
	case len(b.pending) == 1:
		b.timer = time.AfterFunc(b.linger, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.startLocked()
		})
	}
	b.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The batch may still complete; its result is dropped here and the caller treats the
		// item as not done (it will be checked against the store on redelivery).
		return ctx.Err()
	}
}

// startLocked hands the pending items to a flush goroutine.
func (b *batcher[T]) startLocked() {
	if len(b.pending) == 0 {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	batch := b.pending
	b.pending = nil
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		items := make([]T, len(batch))
		latest, bounded := time.Time{}, true
		for i, p := range batch {
			items[i] = p.item
			bounded = bounded && !p.deadline.IsZero()
			if p.deadline.After(latest) {
				latest = p.deadline
			}
		}
		ctx, cancel := b.ctx, context.CancelFunc(func() {})
		if bounded {
			ctx, cancel = context.WithDeadline(b.ctx, latest)
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

// Wait starts a flush of what is pending at once (items whose submitters stopped waiting may
// still be there, their linger timer running) and blocks until every flush has finished. It
// is called once nothing more is submitted.
func (b *batcher[T]) Wait() {
	b.mu.Lock()
	b.startLocked()
	b.mu.Unlock()
	b.wg.Wait()
}
