package pipeline_test

import (
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestRateLimitLongerThanAMessagesTimeDeadLettersNothing: a request waiting for the API's
// rate limit (a 429's Retry-After, x-ratelimit headers, PAPERPIPE_RPM) past its message's time
// failed with "context deadline exceeded" like a timeout of the call, which was never sent:
// each such wait used a delivery, and a long limit (an account's daily budget, paused 5 minutes
// at a time) dead-lettered every message held meanwhile — here, at MaxDeliver 1, all of them.
// They now go back to the queue without using a delivery, and are processed once it lifts.
func TestRateLimitLongerThanAMessagesTimeDeadLettersNothing(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{})
	limiter := llm.NewLimiter(llm.LimiterConfig{})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "k", Model: "m", Limiter: limiter})
	if err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1, AckWait: 4 * time.Second})
	papers := sampledata.Papers(t)[:5]
	publish(t, b.js, papers)
	limiter.Pause(5 * time.Second) // the API's limit: longer than a message's time (2 s)

	ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{MsgTimeout: 2 * time.Second})
	if ws.Dead != 0 {
		t.Errorf("stats %+v: %d papers dead-lettered for the API's rate limit: %q", ws, ws.Dead, deadLetters(t, b.js)[0].Reason)
	}
	if ws.Retried == 0 {
		t.Error("no message waited past its time for the rate limit; the test proves nothing")
	}
	if c := counts(t, b, sum); c.WithTLDR != int64(len(papers)) {
		t.Errorf("%d of %d papers have a TL;DR once the limit lifted", c.WithTLDR, len(papers))
	}
}
