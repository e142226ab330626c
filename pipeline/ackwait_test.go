package pipeline_test

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

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// Workers on several machines may start with different PAPERPIPE_ACK_WAIT (a rolling change of
// the setting): the consumer they share has one AckWait.

// newConsumerConfig is the configuration of the consumer of new papers as the server has it.
func newConsumerConfig(t *testing.T, js jetstream.JetStream) jetstream.ConsumerConfig {
	t.Helper()
	c, err := js.Consumer(context.Background(), pipeline.StreamPapers, pipeline.ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	return c.CachedInfo().Config
}

// TestAShorterAckWaitDoesNotHandARunningWorkersMessageToAnother: worker A runs with AckWait 8s
// (InProgress every 2s, API work up to 4s) and is writing a TL;DR (3s) when worker B starts
// with AckWait 1s. The server must not count 1s for A's message meanwhile: it would deliver it
// again (to B, or to A itself), and the TL;DR would be bought twice.
func TestAShorterAckWaitDoesNotHandARunningWorkersMessageToAnother(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 8 * time.Second})
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30)}
	started := make(chan struct{}, 1)
	sum.hook = func(n int64) {
		if n == 1 {
			started <- struct{}{}
		}
		time.Sleep(3 * time.Second)
	}
	papers := sampledata.Papers(t)[:1]
	publish(t, b.js, papers)
	startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("worker A did not start the TL;DR")
	}

	// Worker B's process starts: its Setup, then its worker.
	if err := pipeline.Setup(context.Background(), b.js, pipeline.TopologyConfig{AckWait: time.Second}); err != nil {
		t.Fatal(err)
	}
	wB := startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})

	waitFor(t, "the paper's TL;DR stored", func() (bool, string) {
		c := counts(t, b, sum)
		return c.WithTLDR == 1, "no TL;DR yet"
	})
	// B had the time to take a redelivery.
	time.Sleep(2 * time.Second)
	if n := sum.calls.Load(); n != 1 {
		t.Errorf("the paper's TL;DR was bought %d times (worker B received %d messages); want once", n, wB.Stats().Received)
	}
	// The shorter AckWait is set once the workers have followed it: 8s after B's start.
	waitFor(t, "the consumer's AckWait lowered to B's", func() (bool, string) {
		aw := newConsumerConfig(t, b.js).AckWait
		return aw == time.Second, "AckWait " + aw.String()
	})
}

// TestARunningWorkerFollowsALoweredAckWait: worker A started with AckWait 12s (InProgress every
// 3s); worker B's start lowers it to 2s. Once the server counts 2s, A must renew its holds
// faster than that: with one chat slot, its messages wait in line for longer than 2s, and one
// renewed every 3s would be delivered again meanwhile (here to A itself), and bought twice.
func TestARunningWorkerFollowsALoweredAckWait(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 12 * time.Second})
	sum := &countingSummarizer{Summarizer: summarize.NewOffline(30), hook: func(int64) { time.Sleep(300 * time.Millisecond) }}
	startWorker(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 1, SweepInterval: time.Hour})
	if err := pipeline.Setup(context.Background(), b.js, pipeline.TopologyConfig{AckWait: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer's AckWait lowered to B's", func() (bool, string) {
		aw := newConsumerConfig(t, b.js).AckWait
		return aw == 2*time.Second, "AckWait " + aw.String()
	})

	papers := sampledata.Papers(t)[:12] // ~3.6s in line for the one slot
	publish(t, b.js, papers)
	waitFor(t, "every TL;DR stored", func() (bool, string) {
		c := counts(t, b, sum)
		return c.WithTLDR == int64(len(papers)), fmt.Sprintf("%d of %d", c.WithTLDR, len(papers))
	})
	if n := sum.calls.Load(); n != int64(len(papers)) {
		t.Errorf("%d TL;DRs bought for %d papers; want one each", n, len(papers))
	}
}

// flakySummarizer fails its first call for each paper as a 5xx would (a retry's matter), then answers.
type flakySummarizer struct {
	pipeline.Summarizer
	mu     sync.Mutex
	failed map[string]bool
}

// Summarize fails the first call for each paper, as an API answering 503 once.
func (s *flakySummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	s.mu.Lock()
	first := !s.failed[a.ID]
	if s.failed == nil {
		s.failed = map[string]bool{}
	}
	s.failed[a.ID] = true
	s.mu.Unlock()
	if first {
		return paper.Summary{}, errors.New("the API answered 503")
	}
	return s.Summarizer.Summarize(ctx, a)
}

// TestARunningWorkerFollowsARaisedMaxDeliver: worker A started with MaxDeliver 1; worker B's
// start raises it to 5 (more retries during an API outage, as README advises). A must not
// dead-letter a message at its first failure: the consumer would deliver it four more times.
func TestARunningWorkerFollowsARaisedMaxDeliver(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1})
	sum := &flakySummarizer{Summarizer: summarize.NewOffline(30)}
	logs := &logBuffer{}
	startWorker(t, b, sum, emb, pipeline.WorkerConfig{ProgressInterval: 100 * time.Millisecond, SweepInterval: time.Hour,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	// A runs by MaxDeliver 1 before it is raised: its first paper is dead-lettered at its first
	// failure (else A could have read 5 at its start, and the test would not see it follow).
	papers := sampledata.Papers(t)[:2]
	publish(t, b.js, papers[:1])
	waitFor(t, "the first paper dead-lettered under MaxDeliver 1", func() (bool, string) {
		return len(deadLetters(t, b.js)) == 1, ""
	})
	if err := pipeline.Setup(context.Background(), b.js, pipeline.TopologyConfig{MaxDeliver: 5}); err != nil {
		t.Fatal(err)
	}
	// A reads the consumer every ProgressInterval; it is given a hundred of them to follow.
	waitFor(t, "worker A to follow MaxDeliver 5", func() (bool, string) {
		return strings.Contains(logs.String(), "max_deliver=5"), logs.String()
	})

	publish(t, b.js, papers[1:])
	waitFor(t, "the TL;DR stored or the message dead-lettered", func() (bool, string) {
		return counts(t, b, sum).WithTLDR == 1 || len(deadLetters(t, b.js)) > 1, ""
	})
	if dls := deadLetters(t, b.js); len(dls) > 1 {
		t.Errorf("dead-lettered at its first failure under MaxDeliver 5: %s", dls[1].Reason)
	}
}

// TestALaterWorkerWithTheLongerAckWaitWithdrawsTheAnnouncedOne: the last worker to start sets
// the consumer's AckWait; one started with the current AckWait after another announced a
// shorter one (a rollback of the change, a pod of the old configuration restarting) withdraws
// the announcement, and the workers running go back to the current one.
func TestALaterWorkerWithTheLongerAckWaitWithdrawsTheAnnouncedOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	for _, step := range []struct {
		set      time.Duration
		want     time.Duration
		announce string
	}{
		{10 * time.Minute, 10 * time.Minute, ""},
		{time.Minute, 10 * time.Minute, "1m0s"},
		{2 * time.Minute, 10 * time.Minute, "2m0s"},
		{10 * time.Minute, 10 * time.Minute, ""},
		{20 * time.Minute, 20 * time.Minute, ""},
	} {
		if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{AckWait: step.set}); err != nil {
			t.Fatal(err)
		}
		cc := newConsumerConfig(t, js)
		aw, meta := cc.AckWait, cc.Metadata
		if aw != step.want || meta["paperpipe_ack_wait"] != step.announce {
			t.Errorf("after a worker's Setup with AckWait %s: AckWait %s, announced %q; want %s, %q",
				step.set, aw, meta["paperpipe_ack_wait"], step.want, step.announce)
		}
	}
}

// refusingOnceSummarizer refuses its first call as an API refusing the account would
// (llm.ErrAccount: the worker pauses and hands its messages back), then answers.
type refusingOnceSummarizer struct {
	pipeline.Summarizer
	calls atomic.Int64
}

// Summarize refuses the first call, then summarizes.
func (s *refusingOnceSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	if s.calls.Add(1) == 1 {
		return paper.Summary{}, fmt.Errorf("the API answered 401: %w", llm.ErrAccount)
	}
	return s.Summarizer.Summarize(ctx, a)
}

// TestALoweredMaxDeliverDoesNotDeadLetterAMessageARunningWorkerHandsBack: worker A runs with
// MaxDeliver 3 (it reads the consumer every 15 s, a quarter of the AckWait); worker B's start
// lowers it to 1. A message's first delivery is then its last, and A, refused by the API, hands
// it back: by the 3 it follows, with a Nak — and the server, counting 1, would give the
// message up and a reaper dead-letter it, "max deliveries exceeded", for a refusal that was not
// the paper's. The lower MaxDeliver is announced and set once the running workers follow it,
// as a shorter AckWait is: the paper is done once the API accepts again, and no dead letter.
func TestALoweredMaxDeliverDoesNotDeadLetterAMessageARunningWorkerHandsBack(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 3})
	sum := &refusingOnceSummarizer{Summarizer: summarize.NewOffline(30)}
	startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }})
	// Worker B's process starts: its Setup.
	if err := pipeline.Setup(context.Background(), b.js, pipeline.TopologyConfig{MaxDeliver: 1}); err != nil {
		t.Fatal(err)
	}
	publish(t, b.js, sampledata.Papers(t)[:1])
	waitFor(t, "the TL;DR stored or the message dead-lettered", func() (bool, string) {
		return counts(t, b, sum).WithTLDR == 1 || len(deadLetters(t, b.js)) > 0, ""
	})
	if dls := deadLetters(t, b.js); len(dls) > 0 {
		t.Errorf("handed back after the API's refusal, the message was dead-lettered: %s", dls[0].Reason)
	}
	if n := sum.calls.Load(); n < 2 {
		t.Fatalf("%d TL;DR calls: the API's refusal never came", n)
	}
}

// TestALoweredMaxDeliverIsSetOnceTheWorkersFollowIt: the lower MaxDeliver a worker's start
// announces is set on the consumer one AckWait later by a running worker; a later start with
// the current MaxDeliver withdraws the announcement, and a higher one is set at once.
func TestALoweredMaxDeliverIsSetOnceTheWorkersFollowIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	for _, step := range []struct {
		set, want int
		announce  string
	}{
		{8, 8, ""},
		{2, 8, "2"},
		{3, 8, "3"},
		{8, 8, ""},
		{10, 10, ""},
		{1, 10, "1"},
	} {
		if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{MaxDeliver: step.set}); err != nil {
			t.Fatal(err)
		}
		cc := newConsumerConfig(t, js)
		if cc.MaxDeliver != step.want || cc.Metadata["paperpipe_max_deliver"] != step.announce {
			t.Errorf("after a worker's Setup with MaxDeliver %d: MaxDeliver %d, announced %q; want %d, %q",
				step.set, cc.MaxDeliver, cc.Metadata["paperpipe_max_deliver"], step.want, step.announce)
		}
	}

	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 2 * time.Second, MaxDeliver: 5})
	startWorker(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	if err := pipeline.Setup(ctx, b.js, pipeline.TopologyConfig{MaxDeliver: 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the consumer's MaxDeliver lowered to 2", func() (bool, string) {
		cc := newConsumerConfig(t, b.js)
		return cc.MaxDeliver == 2 && cc.Metadata["paperpipe_max_deliver"] == "", fmt.Sprintf("MaxDeliver %d, metadata %v", cc.MaxDeliver, cc.Metadata)
	})
}

// TestAWorkerOnAConsumerWhoseAckWaitIsBelowTheMinimumSaysSoOnce: only the command refuses a
// PAPERPIPE_ACK_WAIT under MinAckWait; a consumer edited by hand (`nats consumer edit
// --ack-wait 1s`) was followed without a word, though a NATS restart then hands held messages
// to a second worker. The worker says so, once for the value, and works on.
func TestAWorkerOnAConsumerWhoseAckWaitIsBelowTheMinimumSaysSoOnce(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: time.Second})
	papers := sampledata.Papers(t)[:3]
	publish(t, b.js, papers)
	var logs logBuffer
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, ExitWhenIdle: true,
		FetchWait: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, b, sum); c.WithTLDR != int64(len(papers)) {
		t.Errorf("%d of %d papers have a TL;DR", c.WithTLDR, len(papers))
	}
	if n := strings.Count(logs.String(), "AckWait is below"); n != 1 {
		t.Errorf("%d warnings of the AckWait below %s, want 1:\n%s", n, pipeline.MinAckWait, logs.String())
	}
}

// TestAWorkerFollowingAnEditedConsumerNamesItOnceALine: the worker's logger names its consumer
// (paperpipe's commands give it With("consumer", …), WorkerConfig.Logger), and the worker's own
// lines must not add it again: the line of a consumer followed after an edit and the warning of
// an AckWait below MinAckWait read `consumer=workers consumer=workers`, a key twice in one
// logfmt line, which log processors read as they like.
func TestAWorkerFollowingAnEditedConsumerNamesItOnceALine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil)).With("consumer", pipeline.ConsumerNew)
	startWorker(t, b, sum, emb, pipeline.WorkerConfig{ProgressInterval: 100 * time.Millisecond, Logger: log})
	cons, err := b.js.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	cfg.AckWait = time.Second // `nats consumer edit --ack-wait 1s`
	if _, err := b.js.UpdateConsumer(ctx, pipeline.StreamPapers, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to follow the edited AckWait", func() (bool, string) {
		s := logs.String()
		return strings.Contains(s, "following them") && strings.Contains(s, "AckWait is below"), s
	})
	for _, line := range strings.Split(logs.String(), "\n") {
		if n := strings.Count(line, " consumer="); n > 1 {
			t.Errorf("a log line names the consumer %d times: %s", n, line)
		}
	}
}
