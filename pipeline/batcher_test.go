package pipeline

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is a flush that records its batches and reports each on a channel.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	flushed chan []int
}

func newRecorder() *recorder { return &recorder{flushed: make(chan []int, 100)} }

func (r *recorder) flush(_ context.Context, items []int) []error {
	b := slices.Clone(items)
	slices.Sort(b)
	r.mu.Lock()
	r.batches = append(r.batches, b)
	r.mu.Unlock()
	r.flushed <- b
	return nil
}

func (r *recorder) next(t *testing.T) []int {
	t.Helper()
	select {
	case b := <-r.flushed:
		return b
	case <-time.After(10 * time.Second):
		t.Fatal("no batch flushed")
		return nil
	}
}

func (r *recorder) none(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case b := <-r.flushed:
		t.Fatalf("batch %v flushed while its items were all held", b)
	case <-time.After(within):
	}
}

func TestBatcherFlushesAFullBatchAtOnce(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	b := newBatcher(context.Background(), batcherConfig{Max: 3, Linger: time.Hour}, r.flush)
	var items []*pendingItem[int]
	for i := range 7 {
		items = append(items, b.submit(time.Time{}, i, false))
	}
	got := [][]int{r.next(t), r.next(t)}
	if !slices.Equal(got[0], []int{0, 1, 2}) && !slices.Equal(got[0], []int{3, 4, 5}) || len(got[1]) != 3 {
		t.Errorf("batches %v, want [0 1 2] and [3 4 5] without waiting for the hour's linger", got)
	}
	b.Wait() // the seventh item, lingering
	if last := r.next(t); !slices.Equal(last, []int{6}) {
		t.Errorf("Wait flushed %v, want the one item left", last)
	}
	for _, p := range items {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBatcherHeldItemsGatherUntilOneIsReleased(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	b := newBatcher(context.Background(), batcherConfig{Max: 100, Linger: time.Millisecond}, r.flush)
	var items []*pendingItem[int]
	for i := range 5 {
		items = append(items, b.submit(time.Time{}, i, true))
	}
	r.none(t, 50*time.Millisecond)
	b.release(items[3])
	if got := r.next(t); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("batch %v, want all five held items together", got)
	}
	for _, p := range items {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	b.release(items[0]) // after its batch went: nothing happens
	// The next batch starts afresh: a ready item goes after the linger on its own.
	if err := b.Do(context.Background(), 9); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); !slices.Equal(got, []int{9}) {
		t.Fatalf("batch %v, want [9]", got)
	}
}

func TestBatcherReadyItemStartsTheLingerForHeldOnes(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	b := newBatcher(context.Background(), batcherConfig{Max: 100, Linger: time.Millisecond}, r.flush)
	held := b.submit(time.Time{}, 1, true)
	if err := b.Do(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if err := held.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("batch %v, want the held item with the ready one", got)
	}
}

func TestBatcherMaxHoldBoundsHeldItems(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	b := newBatcher(context.Background(), batcherConfig{Max: 100, Linger: time.Millisecond, MaxHold: time.Millisecond}, r.flush)
	p := b.submit(time.Time{}, 1, true) // never released
	if err := p.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); !slices.Equal(got, []int{1}) {
		t.Fatalf("batch %v, want [1]", got)
	}
}

func TestBatcherWaitFlushesHeldItems(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	b := newBatcher(context.Background(), batcherConfig{Max: 100, Linger: time.Hour}, r.flush)
	p := b.submit(time.Time{}, 1, true)
	b.Wait()
	if err := p.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); !slices.Equal(got, []int{1}) {
		t.Fatalf("batch %v, want [1]", got)
	}
}

// TestBatcherFlushContextEndsAtTheEarliestDeadline: each item's work must end by its own
// deadline, so the batch it is flushed with must too.
func TestBatcherFlushContextEndsAtTheEarliestDeadline(t *testing.T) {
	t.Parallel()
	got := make(chan time.Time, 1)
	b := newBatcher(context.Background(), batcherConfig{Max: 3, Linger: time.Hour}, func(ctx context.Context, items []int) []error {
		d, _ := ctx.Deadline()
		got <- d
		return nil
	})
	early, late := time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)
	p := b.submit(late, 1, true)
	q := b.submit(time.Time{}, 2, true) // no deadline: bounds nothing
	if err := b.DoBy(context.Background(), early, 3); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*pendingItem[int]{p, q} {
		if err := x.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if d := <-got; !d.Equal(early) {
		t.Errorf("flush deadline %v, want the earliest item's %v", d, early)
	}
}

func TestSerialBatcherGathersWhileAFlushIsInFlight(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	unblock := make(chan struct{})
	flush := func(ctx context.Context, items []int) []error {
		if slices.Contains(items, 1) {
			<-unblock
		}
		return r.flush(ctx, items)
	}
	b := newBatcher(context.Background(), batcherConfig{Max: 3, Linger: time.Millisecond, Serial: true}, flush)
	first := b.submit(time.Time{}, 1, false) // goes after the linger, then blocks
	waitFlights(t, b, 1)
	var items []*pendingItem[int]
	for i := 2; i <= 3; i++ {
		items = append(items, b.submit(time.Time{}, i, false))
	}
	r.none(t, 50*time.Millisecond)
	// A full batch goes at once, flush in flight or not.
	for i := 4; i <= 6; i++ {
		items = append(items, b.submit(time.Time{}, i, false))
	}
	if got := r.next(t); !slices.Equal(got, []int{2, 3, 4}) {
		t.Fatalf("batch %v, want the full [2 3 4] while [1] is in flight", got)
	}
	// [5 6] is not full; it waits for [1], which is still in flight.
	r.none(t, 50*time.Millisecond)
	close(unblock)
	if got := r.next(t); !slices.Equal(got, []int{1}) {
		t.Fatalf("batch %v, want [1]", got)
	}
	if got := r.next(t); !slices.Equal(got, []int{5, 6}) {
		t.Fatalf("batch %v, want [5 6] once [1] was done", got)
	}
	for _, p := range append(items, first) {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSerialBatcherSendsABatchOfEnoughBesideTheFlushInFlight(t *testing.T) {
	t.Parallel()
	r := newRecorder()
	unblock := make(chan struct{})
	flush := func(ctx context.Context, items []int) []error {
		if slices.Contains(items, 1) {
			<-unblock
		}
		return r.flush(ctx, items)
	}
	b := newBatcher(context.Background(), batcherConfig{Max: 10, Linger: time.Millisecond, Serial: true, Enough: 2}, flush)
	first := b.submit(time.Time{}, 1, false)
	waitFlights(t, b, 1)
	second := []*pendingItem[int]{b.submit(time.Time{}, 2, false), b.submit(time.Time{}, 3, false)}
	if got := r.next(t); !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("batch %v, want [2 3]: two is enough to go beside [1]", got)
	}
	for _, p := range second {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	lone := b.submit(time.Time{}, 4, false)
	r.none(t, 50*time.Millisecond) // one is not enough: it waits for [1]
	close(unblock)
	if got := r.next(t); !slices.Equal(got, []int{1}) {
		t.Fatalf("batch %v, want [1]", got)
	}
	if got := r.next(t); !slices.Equal(got, []int{4}) {
		t.Fatalf("batch %v, want [4] once [1] was done", got)
	}
	for _, p := range []*pendingItem[int]{first, lone} {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFlights waits until b has n flushes running.
func waitFlights(t *testing.T, b *batcher[int], n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		f := b.flights
		b.mu.Unlock()
		if f == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d flushes running, want %d", f, n)
		}
		time.Sleep(time.Millisecond)
	}
}
