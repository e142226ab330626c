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
	item T
	done chan error
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
	done := make(chan error, 1)
	b.mu.Lock()
	b.pending = append(b.pending, pendingItem[T]{item, done})
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
		for i, p := range batch {
			items[i] = p.item
		}
		errs := b.flush(b.ctx, items)
		for i, p := range batch {
			var err error
			if errs != nil {
				err = errs[i]
			}
			p.done <- err
		}
	}()
}

// Wait blocks until every started flush has finished.
func (b *batcher[T]) Wait() { b.wg.Wait() }
