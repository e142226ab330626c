package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// startHanging runs a worker whose TL;DR calls hang until cancelled, waits until it has
// received n messages and one is in its TL;DR call, and returns its stop function (cancel, then
// wait for the drain).
func startHanging(t *testing.T, b *testBundle, emb pipeline.Embedder, cfg pipeline.WorkerConfig, n int) (*pipeline.Worker, func()) {
	t.Helper()
	h := &hangingSummarizer{}
	cfg.SpaceID = b.space.ID
	w, err := pipeline.NewWorker(b.js, b.store, h, emb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	waitFor(t, "the worker holding the messages, one in its TL;DR call", func() (bool, string) {
		return w.Stats().Received >= int64(n) && h.calls.Load() >= 1, ""
	})
	return w, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRequeueOnALastDeliveryKeepsTheTextDate: a message a shutdown hands back on its last
// delivery is published again as a new message; the copy must keep the date of its text (the
// original's time in the queue), or the old version it carries would count as newer than a
// version stored meanwhile, and replace it.
func TestRequeueOnALastDeliveryKeepsTheTextDate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1}) // every delivery is the last
	v1 := paper.Abstract{ID: "arxiv:2401.00001", Title: "Old title", Abstract: "The old version of the abstract."}
	publish(t, b.js, []paper.Abstract{v1})
	stream, err := b.js.Stream(ctx, pipeline.StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}

	_, stop := startHanging(t, b, emb, pipeline.WorkerConfig{Concurrency: 1, DrainTimeout: 300 * time.Millisecond, FetchWait: 200 * time.Millisecond}, 1)
	// Meanwhile another worker stores a newer version of the paper.
	v2 := v1
	v2.Title, v2.Abstract, v2.TextAt = "New title", "The corrected, newer version of the abstract.", time.Now()
	if _, err := b.store.UpsertPapers(ctx, []paper.Abstract{v2}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	stop() // the TL;DR call is cancelled at the drain's end; the message is requeued

	copied, err := stream.GetLastMsgForSubject(ctx, pipeline.SubjectNew)
	if err != nil {
		t.Fatal(err)
	}
	if copied.Sequence == orig.Sequence {
		t.Fatalf("the message was not requeued (last message is the original, seq %d)", orig.Sequence)
	}
	if got, want := copied.Header.Get(pipeline.HeaderTextAt), orig.Time.UTC().Format(time.RFC3339Nano); got != want {
		t.Errorf("requeued copy's %s = %q, want the original's time in the queue %q", pipeline.HeaderTextAt, got, want)
	}
	runUntilIdle(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{})
	rec, err := b.store.Paper(ctx, v1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Abstract.Abstract != v2.Abstract {
		t.Errorf("stored abstract %q, want the newer %q: the requeued old version replaced it", rec.Abstract.Abstract, v2.Abstract)
	}
}

// TestRequeuedMessagesDoNotComeBackToTheDrainingWorker: the copy of a message requeued on its
// last delivery is a new message, which the server delivers at once to any open pull request —
// the draining worker's own, which would hand it back and requeue it again, as often as the
// pull request had room for. The copies go out once its pull request has ended.
func TestRequeuedMessagesDoNotComeBackToTheDrainingWorker(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1}) // every delivery is the last
	papers := []paper.Abstract{
		{ID: "arxiv:2401.00001", Title: "One", Abstract: "The first abstract."},
		{ID: "arxiv:2401.00002", Title: "Two", Abstract: "The second abstract."},
	}
	publish(t, b.js, papers)
	// The pull request stays open for a second after the shutdown begins.
	w, stop := startHanging(t, b, emb, pipeline.WorkerConfig{Concurrency: 1, DrainTimeout: 300 * time.Millisecond, FetchWait: time.Second}, len(papers))
	stop()
	s := w.Stats()
	if s.Received != int64(len(papers)) || s.Retried != int64(len(papers)) {
		t.Errorf("stats %+v: want %d messages received once each and handed back: requeued copies came back to the draining worker", s, len(papers))
	}
	waitQueued(t, b, len(papers))
	runToTheEnd(t, b, emb, len(papers), "of papers requeued and processed")
}

// TestARequeueWhoseAnswerIsLostIsNotDeadLetteredToo: the copy of a message requeued on its
// last delivery is stored, but the server's answer to its publish is lost (a connection cut
// after the send, a stream leader killed). The worker took the publish for failed and handed
// the original back with a Nak: on its last delivery the server gave it up, and a reaper
// dead-lettered it while the copy was processed — a paper both in `dlq list` and stored. The
// copy is sent again under its message id, and the server's answer (a repeat of the copy
// stored) settles it: the original is terminated, and only the copy goes on.
func TestARequeueWhoseAnswerIsLostIsNotDeadLetteredToo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1}) // every delivery is the last
	p := paper.Abstract{ID: "arxiv:2401.00001", Title: "Requeued", Abstract: "An abstract interrupted on its last delivery."}
	publish(t, b.js, []paper.Abstract{p})
	cfg := streamConfig(t, b.js, pipeline.StreamPapers)
	cfg.NoAck = true // the server stores the messages and its answers are lost
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	// Once the copy is stored, the stream answers again.
	answering := make(chan struct{})
	go func() {
		defer close(answering)
		for streamMsgs(t, b.js, pipeline.StreamPapers) < 2 {
			time.Sleep(20 * time.Millisecond)
		}
		cfg.NoAck = false
		if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
			t.Error(err)
		}
	}()
	_, stop := startHanging(t, b, emb, pipeline.WorkerConfig{Concurrency: 1, DrainTimeout: 300 * time.Millisecond, FetchWait: 200 * time.Millisecond}, 1)
	stop() // the shutdown requeues the message
	<-answering

	stream, err := b.js.Stream(ctx, pipeline.StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	// The Term is sent without an answer: the server removes the original soon after.
	waitFor(t, "the original terminated once its copy was confirmed", func() (bool, string) {
		_, err := stream.GetMsg(ctx, 1)
		return errors.Is(err, jetstream.ErrMsgNotFound), fmt.Sprintf("the original message is still queued (%v) beside its stored copy: "+
			"the server gives it up, and it is dead-lettered while the copy is processed", err)
	})
	runToTheEnd(t, b, emb, 1, "of a paper that was requeued and processed")
}

// requeueUnanswered queues one paper on b (whose MaxDeliver is 1) and has a worker's shutdown
// requeue it while the stream answers none of the sends: the copy is stored, and the original
// handed back, which the server gives up (a reaper then dead-letters it). It returns once the
// stream answers again, holding the original and its copy.
func requeueUnanswered(t *testing.T, b *testBundle, emb pipeline.Embedder) {
	t.Helper()
	ctx := context.Background()
	p := paper.Abstract{ID: "arxiv:2401.00001", Title: "Requeued", Abstract: "An abstract interrupted on its last delivery."}
	publish(t, b.js, []paper.Abstract{p})
	cfg := streamConfig(t, b.js, pipeline.StreamPapers)
	cfg.NoAck = true // the server stores the messages and never answers
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, stop := startHanging(t, b, emb, pipeline.WorkerConfig{Concurrency: 1, DrainTimeout: 300 * time.Millisecond, FetchWait: 200 * time.Millisecond}, 1)
	stop() // the requeue's copy is stored, unanswered: the original is handed back
	cfg.NoAck = false
	if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, b.js, pipeline.StreamPapers); n != 2 {
		t.Fatalf("the stream holds %d messages; want the original handed back and its copy", n)
	}
}

// TestARequeuedCopyWithdrawsItsOriginalsDeadLetter: the copy of a message requeued on its last
// delivery is stored, and the server answers none of its sends (requeueFor): the worker hands
// the original back, the server gives it up and a reaper dead-letters it while the copy waits
// in the queue. Once the copy is processed, that dead letter names a paper that is stored (a
// replay would queue it again for nothing): the copy names its original, and its worker
// withdraws the original's dead letter when it acknowledges it.
func TestARequeuedCopyWithdrawsItsOriginalsDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1}) // every delivery is the last
	requeueUnanswered(t, b, emb)
	// A worker takes the copy and holds it while the original is given up and dead-lettered.
	g := &gatedSummarizer{Summarizer: summarize.NewOffline(30), gate: newGate()}
	w := startWorker(t, b, g, emb, pipeline.WorkerConfig{Concurrency: 1})
	<-g.entered
	waitFor(t, "the original dead-lettered while its copy is in a TL;DR call", func() (bool, string) {
		n, err := pipeline.CountDeadLetters(ctx, b.js)
		return err == nil && n == 1, fmt.Sprintf("%d dead letters (%v)", n, err)
	})
	close(g.open)
	waitFor(t, "the copy acknowledged", func() (bool, string) {
		return w.Stats().Acked >= 1, fmt.Sprintf("%+v", w.Stats())
	})
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("%d dead letters of a paper its requeued copy stored; the first: %s", len(dls), dls[0].Reason)
	}
	if c := counts(t, b, summarize.NewOffline(30)); c.WithTLDR != 1 || c.WithEmbedding != 1 {
		t.Errorf("counts %+v, want the paper done", c)
	}
}

// withheldSummarizer withholds every TL;DR (the API's content filter) once its gate opens.
type withheldSummarizer struct {
	pipeline.Summarizer
	*gate
}

func (g *withheldSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	if g.enter() {
		<-g.open
	}
	return paper.Summary{}, &paper.WithheldError{Reason: "TL;DR withheld by the API's content filter (finish_reason content_filter)"}
}

// TestADeadLetteredCopyWithdrawsItsOriginalsDeadLetter: a requeued copy whose original the
// server gave up (its requeue unanswered) and a reaper dead-lettered is itself dead-lettered —
// the API withholds its paper's TL;DR. The paper had two dead letters, the original's and the
// copy's: `dlq list` showed it twice, and `dlq replay --all` queued it twice, each replay asking
// the API again for a TL;DR it withholds (a replay forgets the record). The copy's letter
// carries the paper; the original's is withdrawn.
func TestADeadLetteredCopyWithdrawsItsOriginalsDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1}) // every delivery is the last
	requeueUnanswered(t, b, emb)
	g := &withheldSummarizer{Summarizer: summarize.NewOffline(30), gate: newGate()}
	w := startWorker(t, b, g, emb, pipeline.WorkerConfig{Concurrency: 1})
	<-g.entered
	waitFor(t, "the original dead-lettered while its copy is in a TL;DR call", func() (bool, string) {
		n, err := pipeline.CountDeadLetters(ctx, b.js)
		return err == nil && n == 1, fmt.Sprintf("%d dead letters (%v)", n, err)
	})
	close(g.open)
	waitFor(t, "the copy dead-lettered and terminated", func() (bool, string) {
		n := streamMsgs(t, b.js, pipeline.StreamPapers)
		return n == 0, fmt.Sprintf("%d messages queued; worker %+v", n, w.Stats())
	})
	dls := deadLetters(t, b.js)
	if len(dls) != 1 {
		for _, d := range dls {
			t.Logf("dead letter %d of %s: %s", d.Seq, d.PaperID, d.Reason)
		}
		t.Fatalf("%d dead letters of one paper, want one (its copy's)", len(dls))
	}
	if !strings.Contains(dls[0].Reason, "withheld") {
		t.Errorf("the dead letter left says %q, want the copy's (its TL;DR withheld)", dls[0].Reason)
	}
}

// TestACopyOfACopyWithdrawsTheFirstOriginalsDeadLetter: a requeued copy whose original was
// dead-lettered (its requeue unanswered) is itself requeued on its last delivery (a second
// shutdown), and that copy is processed. The second copy named only the first, so the
// original's dead letter stayed: a paper stored and listed by `dlq list`. A copy names every
// message it was requeued from, and its worker withdraws each one's letter.
func TestACopyOfACopyWithdrawsTheFirstOriginalsDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1}) // every delivery is the last
	requeueUnanswered(t, b, emb)
	// A worker takes the copy, the original is dead-lettered, and a shutdown requeues the copy.
	_, stop := startHanging(t, b, emb, pipeline.WorkerConfig{Concurrency: 1, DrainTimeout: 300 * time.Millisecond, FetchWait: 200 * time.Millisecond}, 1)
	waitFor(t, "the original dead-lettered while its copy is in a TL;DR call", func() (bool, string) {
		n, err := pipeline.CountDeadLetters(ctx, b.js)
		return err == nil && n == 1, fmt.Sprintf("%d dead letters (%v)", n, err)
	})
	stop()
	waitQueued(t, b, 1)
	runToTheEnd(t, b, emb, 1, "of a paper a copy of its copy stored")
}

// TestACopyProcessedPastTheDuplicateWindowWithdrawsItsOriginalsDeadLetter: the withdrawal of
// an original's dead letter by its requeued copy found the letter by its message id, which the
// dead-letter stream remembers for its duplicate window only (an hour by default, or a
// server's lower max_duplicate_window): a copy that waited in the queue longer than that after
// its original was dead-lettered — behind a backlog, the requeue having put it at the end —
// left the letter of a paper it stored.
func TestACopyProcessedPastTheDuplicateWindowWithdrawsItsOriginalsDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1}) // every delivery is the last
	// The dead-letter stream's window; the queue's stays an hour.
	const window = 300 * time.Millisecond
	dcfg := streamConfig(t, b.js, pipeline.StreamDead)
	dcfg.Duplicates = window
	if _, err := b.js.UpdateStream(ctx, dcfg); err != nil {
		t.Fatal(err)
	}
	requeueUnanswered(t, b, emb)
	g := &gatedSummarizer{Summarizer: summarize.NewOffline(30), gate: newGate()}
	w := startWorker(t, b, g, emb, pipeline.WorkerConfig{Concurrency: 1})
	<-g.entered
	waitFor(t, "the original dead-lettered while its copy is in a TL;DR call", func() (bool, string) {
		n, err := pipeline.CountDeadLetters(ctx, b.js)
		return err == nil && n == 1, fmt.Sprintf("%d dead letters (%v)", n, err)
	})
	time.Sleep(5 * window) // the copy is processed once the letter's id is forgotten
	close(g.open)
	waitFor(t, "the copy acknowledged", func() (bool, string) {
		return w.Stats().Acked >= 1, fmt.Sprintf("%+v", w.Stats())
	})
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("%d dead letters of a paper its requeued copy stored past the duplicate window; the first: %s", len(dls), dls[0].Reason)
	}
}

// TestAGivenUpCopyWithdrawsItsOriginalsDeadLetter: a requeued copy whose original the server
// gave up (its requeue unanswered) is given up in turn — the worker holding its last delivery
// died — and a reaper dead-letters both. The copy's letter carries the paper; the reaper that
// writes it withdraws the original's, which was a second letter of the paper.
func TestAGivenUpCopyWithdrawsItsOriginalsDeadLetter(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1, AckWait: 2 * time.Second}) // every delivery is the last
	requeueUnanswered(t, b, emb)
	dieHolding(t, b.js, 1) // the copy
	startWorker(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{SweepInterval: 200 * time.Millisecond})
	waitFor(t, "the original and its copy reaped", func() (bool, string) {
		n := streamMsgs(t, b.js, pipeline.StreamPapers)
		return n == 0, fmt.Sprintf("%d messages queued", n)
	})
	if dls := deadLetters(t, b.js); len(dls) != 1 {
		for _, d := range dls {
			t.Logf("dead letter %d of %s: %s", d.Seq, d.PaperID, d.Reason)
		}
		t.Errorf("%d dead letters of one paper, want one (its copy's)", len(dls))
	}
}

// TestARequeueIsNotSentAgainPastTheQueuesDuplicateWindow: a requeue whose sends the server
// leaves unanswered sends the copy again under its id for up to 10 s, counting on the queue's
// duplicate window to drop a copy stored already. Under a shorter window (a server's
// max_duplicate_window, which the streams take) each send after it was stored as one more
// copy: five of one paper, in the queue at once, for as many workers to take. A copy is sent
// again only while the window remembers the first send; past it the original is handed back
// (and, should the copy have been stored, its letter withdrawn when the copy is processed).
func TestARequeueIsNotSentAgainPastTheQueuesDuplicateWindow(t *testing.T) {
	t.Parallel()
	emb := embed.NewOffline()
	// Every delivery is the last; the window is shorter than the requeue's 10 s of sends.
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 1, DuplicateWindow: time.Second})
	requeueUnanswered(t, b, emb) // fails unless the queue holds the original and one copy
	runToTheEnd(t, b, emb, 1, "of a paper its requeued copy stored")
}

// runToTheEnd runs a worker until the queue is idle, then checks that n papers were stored
// with their TL;DR and vector and that no dead letter is left; what names the letters for the
// error ("of a paper its requeued copy stored").
func runToTheEnd(t *testing.T, b *testBundle, emb pipeline.Embedder, n int, what string) {
	t.Helper()
	runUntilIdle(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{})
	if dls := deadLetters(t, b.js); len(dls) != 0 {
		t.Errorf("%d dead letters %s; the first: %s", len(dls), what, dls[0].Reason)
	}
	if c := counts(t, b, summarize.NewOffline(30)); c.WithTLDR != int64(n) || c.WithEmbedding != int64(n) {
		t.Errorf("counts %+v, want %d papers done", c, n)
	}
}
