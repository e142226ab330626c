package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
)

// announcedOne waits for the single entry of the bucket to satisfy ok, and returns it.
func announcedOne(t *testing.T, js jetstream.JetStream, what string, ok func(AnnouncedWorker) bool) AnnouncedWorker {
	t.Helper()
	var last []AnnouncedWorker
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ws, _, err := AnnouncedWorkers(context.Background(), js)
		if err != nil && !errors.Is(err, ErrNoWorkersBucket) {
			t.Fatal(err)
		}
		if len(ws) == 1 && ok(ws[0]) {
			return ws[0]
		}
		last = ws
	}
	t.Fatalf("waited 30 s for %s: %+v", what, last)
	return AnnouncedWorker{}
}

// A change of what the worker does is written at once (at the next look, each second), not at
// the next refresh: it goes from idle to working, its pause's end moves (a new 429's
// Retry-After), and each write carries the messages it has processed so far.
func TestAChangeOfStateIsAnnouncedAtOnce(t *testing.T) {
	t.Parallel()
	js := natstest.Start(t).Connect(t)
	var until atomic.Pointer[time.Time]
	until.Store(&time.Time{})
	w := &Worker{log: slog.New(slog.DiscardHandler), cfg: WorkerConfig{Consumer: ConsumerNew,
		APILimitedBy: func() (time.Time, bool) { return *until.Load(), false }}}
	an := Announce(js, w, AnnounceConfig{Interval: time.Hour}) // no refresh during the test
	defer an.Stop()
	announcedOne(t, js, "the idle worker", func(a AnnouncedWorker) bool { return a.State == StateIdle })

	w.stats.acked.Add(5)
	w.held.Store(2)
	announcedOne(t, js, "the worker working, 5 processed", func(a AnnouncedWorker) bool {
		return a.State == StateWorking && a.Held == 2 && a.Processed == 5
	})

	end := time.Now().Add(time.Hour).Round(time.Second)
	until.Store(&end)
	announcedOne(t, js, "the worker rate limited", func(a AnnouncedWorker) bool { return a.Pause != nil && a.Pause.Until.Equal(end) })
	later := end.Add(time.Hour)
	until.Store(&later)
	announcedOne(t, js, "the rate limit's new end", func(a AnnouncedWorker) bool { return a.Pause != nil && a.Pause.Until.Equal(later) })
}

// racingJS reports the bucket missing at its first look, as when another process makes it
// between this one's look and its creation.
type racingJS struct {
	jetstream.JetStream
	looked atomic.Bool
}

func (r *racingJS) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	if !r.looked.Swap(true) {
		return nil, jetstream.ErrBucketNotFound
	}
	return r.JetStream.KeyValue(ctx, bucket)
}

// A bucket another process made between this one's look and its creation, with other limits
// (another refresh's TTL, or made by hand), is used: creating it again with this process's
// limits fails with 'bucket exists', which must not keep the worker unannounced.
func TestABucketMadeMeanwhileWithOtherLimitsIsUsed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketWorkers, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	kv, err := ensureWorkersBucket(ctx, &racingJS{JetStream: js}, time.Second, 1)
	if err != nil || kv == nil || kv.Bucket() != BucketWorkers {
		t.Fatalf("ensureWorkersBucket with a bucket made meanwhile: %v, %v; want the bucket", kv, err)
	}
}

// syncBuffer is a log's output that a test reads while the log writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// announceRefused announces a bare worker in the bucket cfg makes, after fill writes it, and
// returns the warning the worker logs once the bucket refuses its entry.
func announceRefused(t *testing.T, cfg jetstream.KeyValueConfig, fill func(jetstream.KeyValue)) string {
	t.Helper()
	js := natstest.Start(t).Connect(t)
	kv, err := js.CreateKeyValue(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fill(kv)
	var logs syncBuffer
	w := &Worker{log: slog.New(slog.DiscardHandler), cfg: WorkerConfig{Consumer: ConsumerNew}}
	an := Announce(js, w, AnnounceConfig{Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer an.Stop()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "cannot announce itself"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("30 s on, the worker has not warned that it cannot announce itself: %q", logs.String())
		}
	}
	return logs.String()
}

// TestAWorkerRefusedByAHandMadeBucketsValueLimitIsToldSo: a bucket made by hand with a maximum
// value size below a worker's entry refuses it; the worker's warning advised making the bucket
// (`nats kv add`) as for an account that may not create streams, though it exists.
func TestAWorkerRefusedByAHandMadeBucketsValueLimitIsToldSo(t *testing.T) {
	t.Parallel()
	warning := announceRefused(t, jetstream.KeyValueConfig{Bucket: BucketWorkers, History: 1, MaxValueSize: 64}, func(jetstream.KeyValue) {})
	if strings.Contains(warning, "nats kv add") || !strings.Contains(warning, "largest value it takes") {
		t.Errorf("the warning of a bucket that refuses the entry's size: %s; want it to say so, not to make the bucket", warning)
	}
}

// TestAWorkerRefusedByAFullBucketIsToldSo: a bucket full of other clients' entries refuses a
// worker's (status then lists no worker, and says none runs, once the worker's entry expires);
// the worker's warning advised making the bucket, which exists.
func TestAWorkerRefusedByAFullBucketIsToldSo(t *testing.T) {
	t.Parallel()
	warning := announceRefused(t, jetstream.KeyValueConfig{Bucket: BucketWorkers, History: 1, MaxBytes: 4 << 10}, func(kv jetstream.KeyValue) {
		for i := 0; ; i++ {
			if _, err := kv.PutString(t.Context(), fmt.Sprintf("other%d", i), "{}"); err != nil {
				return // full
			}
		}
	})
	if strings.Contains(warning, "nats kv add") || !strings.Contains(warning, "is full") {
		t.Errorf("the warning of a full bucket: %s; want it to say so, not to make the bucket", warning)
	}
}
