package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// A message given up with its results stored is removed by whichever sweep reaps it: two
// workers (or two sweeps of one) that read it before either removed it both reap it, and the
// second removal finds nothing. Only the removal that took it counts it in Stats.Reaped: each
// counted it, and a sweep over five messages reported six reaped.
func TestAMessageReapedTwiceIsCountedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, stream, raw, w := givenUpWithItsResultsStored(t)
	// Both sweeps read the message before either removed it.
	for range 2 {
		if err := w.reap(ctx, orphan{seq: raw.Sequence, deliveries: 1, raw: raw}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stream.GetMsg(ctx, raw.Sequence); err == nil {
		t.Fatal("the message whose results are stored is still in the queue")
	}
	if n := w.Stats().Reaped; n != 1 {
		t.Errorf("one message reaped twice counted %d times in Reaped, want 1", n)
	}
}

// givenUpWithItsResultsStored returns the queue (its JetStream and papers stream) holding one
// message, raw, whose paper's results are stored, and a worker to reap it.
func givenUpWithItsResultsStored(t *testing.T) (jetstream.JetStream, jetstream.Stream, *jetstream.RawStreamMsg, *Worker) {
	t.Helper()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := Setup(ctx, js, TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	sp, err := st.EnsureSpace(ctx, emb.Space())
	if err != nil {
		t.Fatal(err)
	}
	a := paper.Abstract{ID: "arxiv:2501.00001", Title: "Sparse experts", Abstract: "Routing tokens to sparse experts scales language models."}
	if _, err := st.UpsertPapers(ctx, []paper.Abstract{a}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	s, err := sum.Summarize(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveSummaries(ctx, []paper.Summary{s}); err != nil {
		t.Fatal(err)
	}
	embs, _, err := emb.Embed(ctx, []paper.Abstract{a})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(js, SubjectNew, 1)
	if err := p.Publish(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(js, st, sum, emb, WorkerConfig{SpaceID: sp.ID})
	if err != nil {
		t.Fatal(err)
	}
	return js, stream, raw, w
}

// TestAStoredCopyReapedWithdrawsItsOriginalsDeadLetter: a requeued copy given up after its
// results were stored (its worker died before the ack) is removed by the sweep, and its
// original's dead letter is withdrawn as its worker's ack would have: the paper is stored.
func TestAStoredCopyReapedWithdrawsItsOriginalsDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js, _, raw, w := givenUpWithItsResultsStored(t)
	from := w.deadLetterID(99, time.Now())
	letter := &nats.Msg{Subject: SubjectDead + "." + w.cfg.Consumer, Data: raw.Data, Header: nats.Header{}}
	letter.Header.Set(HeaderReason, ReasonMaxDeliveries)
	if _, err := js.PublishMsg(ctx, letter, jetstream.WithMsgID(from)); err != nil {
		t.Fatal(err)
	}
	raw.Header.Set(HeaderRequeuedFrom, from) // the message is a copy of the one dead-lettered
	if err := w.reap(ctx, orphan{seq: raw.Sequence, deliveries: 1, raw: raw}); err != nil {
		t.Fatal(err)
	}
	if n, err := CountDeadLetters(ctx, js); err != nil || n != 0 {
		t.Errorf("%d dead letters (%v) after the sweep removed a stored copy; want its original's withdrawn", n, err)
	}
}
