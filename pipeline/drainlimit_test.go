package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestStopDuringARateLimitHandsBackTheWaitingMessagesAtOnce: a worker stopped while the API's
// rate limit held its requests (a 429 with Retry-After: 3600, paused MaxPause at a time) waited
// through its drain for calls that were never sent — the limiter's wait went on in the drain's
// context until the pause or the message's time ended: 26.5 s for a SIGTERM in session 26. The
// waits now give up when the drain starts, and their messages go back to the queue unpaid.
func TestStopDuringARateLimitHandsBackTheWaitingMessagesAtOnce(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Faults: openaitest.Faults{RateLimit: 1, RetryAfter: time.Hour}})
	// MaxPause below the message's time (half the AckWait): without the fix the wait ends with
	// the pause, after the stop, rather than with the message's time.
	limiter := llm.NewLimiter(llm.LimiterConfig{MaxPause: 20 * time.Second})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "k", Model: "m", Limiter: limiter})
	if err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 2 * time.Minute})
	papers := sampledata.Papers(t)[:5]
	publish(t, b.js, papers)

	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, Concurrency: 2,
		DrainTimeout: 2 * time.Minute, FetchWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// Stop once every paper is held and the API's 429 has paused the limiter.
	for w.Stats().Received < int64(len(papers)) || api.Stats().Faults[openaitest.FaultRateLimit] == 0 || !limiter.PausedUntil().After(time.Now()) {
		time.Sleep(5 * time.Millisecond)
	}
	pauseEnd := limiter.PausedUntil()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !time.Now().Before(pauseEnd) {
		t.Errorf("the stop returned after the rate limit's pause ended (%s): the drain waited for calls that were never sent",
			pauseEnd.Format(time.RFC3339Nano))
	}
	s := w.Stats()
	if s.Acked != 0 || s.Dead != 0 || api.Stats().ChatDelivered != 0 {
		t.Errorf("stats %+v, %d TL;DRs delivered: want nothing done, paid or dead-lettered during the limit", s, api.Stats().ChatDelivered)
	}

	// The papers are still queued: a worker with the limit lifted does them all.
	api.SetFaults(openaitest.Faults{})
	sum2, err := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "k", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	runUntilIdle(t, b, sum2, emb, pipeline.WorkerConfig{})
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("%d dead letters, want none; the first: %s: %s", len(dls), dls[0].PaperID, dls[0].Reason)
	}
	if c := counts(t, b, sum2); c.WithTLDR != int64(len(papers)) {
		t.Errorf("%d of %d papers have a TL;DR after the limit lifted: papers were lost at the stop", c.WithTLDR, len(papers))
	}
}
