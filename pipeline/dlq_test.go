package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestDeadLetterIsKeptAfterTheStreamIsCreatedAgain: a dead letter's message id named the
// consumer and the stream sequence, and sequences start again at 1 when PAPERS is deleted and
// created again (Setup's retention error tells operators to do so): within the dead-letter
// stream's duplicate window (an hour) the first message to fail in the new stream had an old
// letter's id, the server dropped its letter as a repeat, and the worker terminated the
// message all the same — lost from both streams. The id now holds when the queue stored it.
func TestDeadLetterIsKeptAfterTheStreamIsCreatedAgain(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	ctx := context.Background()
	broken := func(body string) {
		t.Helper()
		if _, err := b.js.Publish(ctx, pipeline.SubjectNew, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	broken(`{"id":"arxiv:2401.00001","title":"x"`)
	if ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{}); ws.Dead != 1 {
		t.Fatalf("stats %+v, want 1 dead", ws)
	}
	// An operator resets the queue; the next paperpipe start creates it again.
	if err := b.js.DeleteStream(ctx, pipeline.StreamPapers); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Setup(ctx, b.js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	broken(`{"id":"arxiv:2401.00002","title":"another broken one"`)
	if ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{}); ws.Dead != 1 {
		t.Fatalf("stats %+v, want 1 dead", ws)
	}
	if dls := deadLetters(t, b.js); len(dls) != 2 {
		t.Errorf("%d dead letters, want both messages' (the second was dropped as a repeat of the first, and lost)", len(dls))
	}
}

// TestDeadLetterReplayedTwiceAtOnceIsQueuedOnce: a replay published each letter under an id of
// its own (the replay's time), so two `dlq replay --all` run at once from two shells — or one
// run again after a Ctrl-C between a letter's publish and its removal — both queued the
// letters they read before the other removed them: papers processed (and paid for) twice, and
// each shell failing with "could not remove it" for letters that were gone. The id now names
// the letter, and the server drops the second copy as a repeat.
func TestDeadLetterReplayedTwiceAtOnceIsQueuedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := range n {
		m := &nats.Msg{Subject: pipeline.SubjectDead + ".workers", Data: []byte(`{}`), Header: nats.Header{}}
		m.Header.Set(pipeline.HeaderPaperID, fmt.Sprintf("arxiv:2401.%05d", i+1))
		m.Header.Set(pipeline.HeaderSubject, pipeline.SubjectNew)
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for range 2 { // two shells' `dlq replay --all`, each with the list it read
		wg.Go(func() {
			for seq := uint64(1); seq <= n; seq++ {
				if _, err := pipeline.ReplayDeadLetter(ctx, js, seq); err != nil && !errors.Is(err, pipeline.ErrDeadLetterGone) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("replay: %v", err)
	}
	if q := streamState(t, js, pipeline.StreamPapers); q.Msgs != n {
		t.Errorf("%d messages queued for %d dead letters replayed: some papers were queued twice", q.Msgs, n)
	}
	if dls := deadLetters(t, js); len(dls) != 0 {
		t.Errorf("%d dead letters left, want none", len(dls))
	}
}

// TestDeadLetterOfAMessageNearTheServersMaxPayloadIsWritten: on a server whose max_payload
// is not much larger than a message (an external server's default 1 MB, and an abstract of
// nearly as much), the dead letter — the message and headers naming why it failed — was
// larger than the server takes: its publish failed, the message was returned to the queue,
// delivered and failed again (paying the API each time) until the server gave it up, and the
// reaper's dead letter failed the same way at every sweep, the message never leaving the
// queue. The reason is now cut to fit, and when that is not enough the body is left out, the
// letter saying so (and refusing a replay, which would queue nothing).
func TestDeadLetterOfAMessageNearTheServersMaxPayloadIsWritten(t *testing.T) {
	t.Parallel()
	const maxPayload = 64 << 10
	srv := natstest.StartWith(t, func(o *server.Options) { o.MaxPayload = maxPayload })
	js := srv.Connect(t)
	ctx := context.Background()
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{MaxDeliver: 2}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setupOn(t, js, emb)
	// A paper 1,000 bytes short of the limit, its TL;DR refused with a long reason: the
	// letter keeps its body and a cut reason.
	long := paper.Abstract{ID: "test:long", Title: "A long paper"}
	long.Abstract = strings.Repeat("w", maxPayload-1000-len(`{"id":"test:long","title":"A long paper","abstract":""}`)-
		len(pipeline.MsgID(pipeline.SubjectNew, long))-40)
	publish(t, js, []paper.Abstract{long})
	// A message that is not an abstract, 50 bytes short of the limit: no room for the headers.
	junk := []byte(strings.Repeat("}", maxPayload-50))
	if _, err := js.Publish(ctx, pipeline.SubjectNew, junk); err != nil {
		t.Fatal(err)
	}
	sum := failingSummarizer{err: fmt.Errorf("the API said: %s: %w", strings.Repeat("no! ", 1000), paper.ErrPermanent)}
	w, err := pipeline.NewWorker(js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, ExitWhenIdle: true,
		FetchWait: 200 * time.Millisecond, Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.Run(rctx); err != nil {
		t.Fatal(err)
	}
	dls := deadLetters(t, js)
	if ws := w.Stats(); len(dls) != 2 || ws.Dead != 2 || ws.Retried != 0 {
		var got []string
		for _, d := range dls {
			got = append(got, fmt.Sprintf("%d %q: %.100q", d.Seq, d.PaperID, d.Reason))
		}
		t.Fatalf("stats %+v, dead letters %q; want both messages dead-lettered at their first delivery", ws, got)
	}
	if n := streamMsgs(t, js, pipeline.StreamPapers); n != 0 {
		t.Errorf("%d messages left in the queue", n)
	}
	if dls[0].BodyLeftOut > 0 { // the junk fails first, at its decoding
		dls[0], dls[1] = dls[1], dls[0]
	}
	body := func(seq uint64) []byte {
		t.Helper()
		s, err := js.Stream(ctx, pipeline.StreamDead)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		return raw.Data
	}
	var got paper.Abstract
	if err := json.Unmarshal(body(dls[0].Seq), &got); err != nil || got.Abstract != long.Abstract || dls[0].BodyLeftOut != 0 ||
		!strings.Contains(dls[0].Reason, "the API said: no! no!") || len(dls[0].Reason) >= 4000 {
		t.Errorf("the long paper's dead letter: reason %.80q… (%d bytes), body left out %d (%v); want its body and a cut reason",
			dls[0].Reason, len(dls[0].Reason), dls[0].BodyLeftOut, err)
	}
	if d := dls[1]; len(body(d.Seq)) != 0 || d.BodyLeftOut != len(junk) || !strings.Contains(d.Reason, "not in this dead letter") {
		t.Errorf("the junk's dead letter: reason %q, body left out %d, body %d bytes; want its body left out, saying so",
			d.Reason, d.BodyLeftOut, len(body(d.Seq)))
	}
	if _, err := pipeline.ReplayDeadLetter(ctx, js, dls[1].Seq); !errors.Is(err, pipeline.ErrNoBody) {
		t.Errorf("replay of a dead letter without its body: %v, want ErrNoBody", err)
	}
	if _, err := pipeline.ReplayDeadLetter(ctx, js, dls[0].Seq); err != nil {
		t.Errorf("replay of the long paper's dead letter: %v", err)
	}
}

// TestAWithdrawalWhoseClaimCannotBeRemovedLeavesNoDeadLetter: a worker that settles a requeued
// copy withdraws its original's dead letter by publishing a claim under the letter's message id
// (the server drops a letter written later as its repeat) and removing what the answer names:
// the letter, or, when there was none, the claim itself. A claim whose removal failed (NATS
// lost between the two, a slow server) stayed in PAPERS_DLQ, and `dlq list`, `status` and the
// status page showed it as a dead letter, "none: its requeued copy was processed (withdrawn)",
// counted among the failures, for a paper that is done. Claims now go on a subject of their
// own, which the lists and the counts leave out. Here the worker may not remove messages from
// PAPERS_DLQ at all.
func TestAWithdrawalWhoseClaimCannotBeRemovedLeavesNoDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "worker", Password: "worker", Permissions: &server.Permissions{Publish: &server.SubjectPermission{
				Allow: []string{">"}, Deny: []string{"$JS.API.STREAM.MSG.DELETE." + pipeline.StreamDead}}}},
		}
	})
	connect := func(user string) jetstream.JetStream { return connectAs(t, srv, user) } // errors unreported: the refused removals
	admin := connect("admin")
	if err := pipeline.Setup(ctx, admin, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setupOn(t, admin, emb)
	a := paper.Abstract{ID: "arxiv:2401.00001", Title: "A requeued paper", Abstract: "A copy a worker requeued on its last delivery."}
	body, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	copied := &nats.Msg{Subject: pipeline.SubjectNew, Data: body, Header: nats.Header{}}
	// Its original was never given up: there is no letter to withdraw, and the claim is stored.
	copied.Header.Set(pipeline.HeaderRequeuedFrom, "dead:"+pipeline.ConsumerNew+":1:"+fmt.Sprint(time.Now().Add(-time.Minute).UnixNano()))
	if _, err := admin.PublishMsg(ctx, copied); err != nil {
		t.Fatal(err)
	}

	b.js = connect("worker")
	if s := runUntilIdle(t, b, summarize.NewOffline(30), emb, pipeline.WorkerConfig{}); s.Acked != 1 {
		t.Fatalf("worker stats %+v, want the copy acknowledged", s)
	}
	if dls := deadLetters(t, admin); len(dls) != 0 {
		t.Errorf("dead letters %+v, want none: the paper is done", dls)
	}
	if n, err := pipeline.CountDeadLetters(ctx, admin); err != nil || n != 0 {
		t.Errorf("CountDeadLetters = %d, %v; want 0", n, err)
	}
	if dls, err := pipeline.LatestDeadLetters(ctx, admin, 10); err != nil || len(dls) != 0 {
		t.Errorf("LatestDeadLetters = %+v, %v; want none", dls, err)
	}
}
