package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
)

// TestTooLargeAbstractIsRefusedAndTheOthersGoThrough: an abstract whose message is over what the
// queue takes — the server's max_payload (1 MB on a standard nats-server) or the PAPERS stream's
// MaxMsgSize, whichever is smaller — is refused by Publish with a *TooLargeError saying both
// sizes, before anything is sent; the abstracts before and after it are published. The failed
// publish made every later Publish or Flush fail, and ingest stopped at it. A message of
// exactly the limit, headers included, is taken: the size is counted as the server counts it.
func TestTooLargeAbstractIsRefusedAndTheOthersGoThrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	abstract := func(id string, pad int) paper.Abstract {
		return paper.Abstract{ID: id, Title: "Title of " + id, Abstract: "We study input handling. " + strings.Repeat("x", pad)}
	}
	tooLarge := func(pub *pipeline.Publisher, a paper.Abstract) *pipeline.TooLargeError {
		t.Helper()
		var tl *pipeline.TooLargeError
		if err := pub.Publish(ctx, a); !errors.As(err, &tl) || !errors.Is(err, paper.ErrInvalid) || tl.ID != a.ID {
			t.Fatalf("Publish of %s (%d-byte abstract): %v; want a *TooLargeError for it", a.ID, len(a.Abstract), err)
		}
		return tl
	}

	// The server's max_payload (1 MB) is below the stream's 4 MiB.
	maxPayload := js.Conn().MaxPayload()
	pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 1)
	if err := pub.Publish(ctx, abstract("test:before", 0)); err != nil {
		t.Fatal(err)
	}
	tl := tooLarge(pub, abstract("test:big", 2<<20))
	if tl.Max != maxPayload || tl.Size <= maxPayload {
		t.Errorf("refused a %d-byte message with the limit %d; want one over the server's max_payload %d", tl.Size, tl.Max, maxPayload)
	}
	if want := "message is "; !strings.HasPrefix(tl.Error(), want) || !strings.Contains(tl.Error(), ", the queue takes at most 1048576") {
		t.Errorf("error %q, want \"message is N bytes, the queue takes at most 1048576\"", tl.Error())
	}
	if err := pub.Publish(ctx, abstract("test:after", 0)); err != nil {
		t.Fatalf("Publish after a refused abstract: %v", err)
	}
	if err := pub.Flush(ctx); err != nil || pub.Stats().Published != 2 {
		t.Fatalf("Flush: %v, %d published; want the 2 abstracts around the refused one", err, pub.Stats().Published)
	}

	// An operator's smaller MaxMsgSize on the stream is the limit; a message of exactly that
	// size is taken, one byte more is refused.
	cfg := streamConfig(t, js, pipeline.StreamPapers)
	cfg.MaxMsgSize = 32 << 10
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pub = pipeline.NewPublisher(js, pipeline.SubjectNew, 1)
	tl = tooLarge(pub, abstract("test:edge", 40<<10))
	if tl.Max != 32<<10 {
		t.Errorf("limit %d with the stream's MaxMsgSize at 32768, want 32768", tl.Max)
	}
	over := int(tl.Size - tl.Max)
	tooLarge(pub, abstract("test:edge", 40<<10-over+1))
	if err := pub.Publish(ctx, abstract("test:edge", 40<<10-over)); err != nil {
		t.Fatalf("Publish of a message of exactly the stream's MaxMsgSize: %v", err)
	}
	if err := pub.Flush(ctx); err != nil || pub.Stats().Published != 1 {
		t.Errorf("Flush of a message of exactly the stream's MaxMsgSize: %v, %d published; want it taken", err, pub.Stats().Published)
	}
}

// TestFlushEndedByItsContextReportsTheRefusalsBefore: a Flush (or Publish) whose context ends
// while it waits for the server's answers returns, with the context's error, the errors of the
// messages the server refused before: it returned the context's error alone, and ingest
// interrupted while a full queue refused its abstracts said only "context canceled".
func TestFlushEndedByItsContextReportsTheRefusalsBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	cfg := streamConfig(t, js, pipeline.StreamPapers)
	cfg.MaxMsgs, cfg.Discard = 1, jetstream.DiscardNew // the queue is full after one message
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	abstract := func(id string) paper.Abstract {
		return paper.Abstract{ID: id, Title: "Title of " + id, Abstract: "We study a full queue."}
	}
	pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 16)
	for _, id := range []string{"test:taken", "test:refused"} {
		if err := pub.Publish(ctx, abstract(id)); err != nil {
			t.Fatal(err)
		}
	}
	// A message published and answered after them: the stream has answered both.
	if _, err := js.Publish(ctx, pipeline.SubjectNew, []byte("{}")); err == nil {
		t.Fatal("a full stream took a message")
	}
	// The next message is never answered, and Flush waits for it until its context ends.
	cfg.NoAck = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, abstract("test:unanswered")); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := pub.Flush(fctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(fmt.Sprint(err), "test:refused@") {
		t.Errorf("Flush ended by its context: %v; want the refusal of test:refused and the context's error", err)
	}
	if st := pub.Stats(); st.Published != 1 {
		t.Errorf("%d published, want 1 (test:taken)", st.Published)
	}
}

// TestAFullQueueIsSaidOnceAndTheRefusedAreCounted: a whole archive published while the workers
// lag fills the queue — the server's JetStream storage (by default 75% of the disk free when it
// started) or the PAPERS stream's limits. The server then refuses every message in flight, and
// the error was one line per message ("publish ID: nats: API error: code=503 err_code=10023
// description=insufficient resources", 128 of them from a Publish and as many from the Flush
// after it) with nothing saying the queue was full, and the refused papers counted nowhere. It
// is one *PublishError that says the queue is full (ErrQueueFull) and how many more it refused,
// and Stats counts every refused paper: published and refused add up to what was sent, and
// the stream holds what was published.
func TestAFullQueueIsSaidOnceAndTheRefusedAreCounted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		store   int64 // the server's max_file_store; 0: none
		cap     int64 // the stream's MaxBytes; 0: none
		account int64 // the account's max_file (a NATS server shared by accounts); 0: none
	}{
		{"server storage used up", 256 << 10, 0, 0},
		{"stream at its limit", 0, 256 << 10, 0},
		{"account storage used up", 0, 0, 256 << 10}, // "resource limits exceeded for account"
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := natstest.StartWith(t, func(o *server.Options) {
				if tc.store > 0 {
					o.JetStreamMaxStore = tc.store
				}
			})
			if tc.account > 0 {
				if err := srv.GlobalAccount().UpdateJetStreamLimits(map[string]server.JetStreamAccountLimits{
					"": {MaxMemory: -1, MaxStore: tc.account, MaxStreams: -1, MaxConsumers: -1},
				}); err != nil {
					t.Fatal(err)
				}
			}
			js := srv.Connect(t)
			if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
				t.Fatal(err)
			}
			if tc.cap > 0 {
				cfg := streamConfig(t, js, pipeline.StreamPapers)
				cfg.MaxBytes = tc.cap
				if _, err := js.UpdateStream(ctx, cfg); err != nil {
					t.Fatal(err)
				}
			}
			pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 64)
			sent := 0
			var err error
			for ; sent < 1000 && err == nil; sent++ {
				err = pub.Publish(ctx, paper.Abstract{ID: fmt.Sprintf("test:%d", sent), Title: "T",
					Abstract: strings.Repeat("A paper waiting for the workers. ", 30)})
			}
			err = errors.Join(err, pub.Flush(ctx))
			var re *pipeline.PublishError
			if !errors.Is(err, pipeline.ErrQueueFull) || !errors.As(err, &re) || re.More == 0 ||
				!strings.HasPrefix(err.Error(), "the queue is full: publish test:") || strings.Count(err.Error(), "publish ") > 2 {
				t.Fatalf("publishing into a full queue: %.600v\nwant a *PublishError per wait that says the queue is full (ErrQueueFull) and how many more it refused", err)
			}
			st := pub.Stats()
			if held := streamMsgs(t, js, pipeline.StreamPapers); st.Refused == 0 || st.Published+st.Refused != sent || uint64(st.Published) != held {
				t.Errorf("%d sent: %d published, %d refused; the stream holds %d; want published and refused adding up to what was sent, "+
					"the stream holding what was published", sent, st.Published, st.Refused, held)
			}
		})
	}
}

// TestAnUnansweredPublishIsUnconfirmedNotRefused: a message whose answer never comes (the
// publish timed out: a server that stores without answering, one whose disk failed, a lost
// connection) may have been stored, unlike one the server refused: Stats counts it as neither
// published nor refused, and Unconfirmed counts it, so that ingest's summary does not call
// papers the server may hold "refused by the queue". Unanswered messages are sent again under
// their own ids (the server drops the repeats) until the stream has answered nothing for the
// Publisher's resendFor, and then fail saying so: on a cluster, it has no leader.
func TestAnUnansweredPublishIsUnconfirmedNotRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t, jetstream.WithPublishAsyncTimeout(200*time.Millisecond))
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	cfg := streamConfig(t, js, pipeline.StreamPapers)
	cfg.NoAck = true // the server stores the messages and never answers
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 16)
	pub.SetResendFor(2 * time.Second)
	for i := range 3 {
		if err := pub.Publish(ctx, paper.Abstract{ID: fmt.Sprintf("test:%d", i), Title: "T", Abstract: "An unanswered abstract."}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	err := pub.Flush(ctx)
	var pe *pipeline.PublishError
	if !errors.As(err, &pe) || pe.More != 2 || errors.Is(err, pipeline.ErrQueueFull) {
		t.Errorf("Flush of 3 unanswered messages: %v; want one *PublishError for the first and 2 more, not a full queue", err)
	}
	// Sent again for as long as resendFor, once for all, and then said what it may mean.
	if el := time.Since(start); el < 2*time.Second || el > 20*time.Second {
		t.Errorf("Flush gave up after %s; want once the stream had answered nothing for 2 s", el)
	}
	// The time said is the silence's own, rounded to a second: 2 s, or more on a loaded machine.
	if m := regexp.MustCompile(`answered nothing for (\d+)s`).FindStringSubmatch(fmt.Sprint(err)); m == nil || atoi(t, m[1]) < 2 ||
		!strings.Contains(err.Error(), "fewer than a majority") {
		t.Errorf("Flush: %v; want it to say the stream answered nothing for 2s or more, and when a cluster has no leader", err)
	}
	if st := pub.Stats(); st.Published != 0 || st.Refused != 0 || pub.Unconfirmed() != 3 {
		t.Errorf("%d published, %d refused, %d unconfirmed; want the 3 unanswered messages unconfirmed", st.Published, st.Refused, pub.Unconfirmed())
	}
	// Sent again under their own ids, they are in the stream once each.
	if n := streamMsgs(t, js, pipeline.StreamPapers); n != 3 {
		t.Errorf("the stream holds %d messages; want the 3 sent, once each", n)
	}
}

// TestAMessageStoredWhoseAnswerWasLostIsCountedAsPublished: a message the stream stored
// without its answer reaching the publisher (a stream leader killed, a lost connection) is
// sent again under its id, and the server answers the second send as a repeat of the first.
// It was counted as a repeat — ingest's summary said "3 dropped as repeats (same record
// published within the hour)", "0 published", of papers it had just queued for the first time.
func TestAMessageStoredWhoseAnswerWasLostIsCountedAsPublished(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t, jetstream.WithPublishAsyncTimeout(200*time.Millisecond))
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	// A repeat of an earlier ingest, stored before this publisher starts: it stays a repeat.
	earlier := paper.Abstract{ID: "test:earlier", Title: "T", Abstract: "An abstract queued before."}
	publish(t, js, []paper.Abstract{earlier})
	cfg := streamConfig(t, js, pipeline.StreamPapers)
	cfg.NoAck = true // the server stores the messages and its answers are lost
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 16)
	pub.SetResendFor(time.Minute)
	for i := range 3 {
		if err := pub.Publish(ctx, paper.Abstract{ID: fmt.Sprintf("test:%d", i), Title: "T", Abstract: "An abstract whose answer is lost."}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(ctx, earlier); err != nil {
		t.Fatal(err)
	}
	// Once the stream holds them, it answers again: the messages sent again are answered as
	// repeats of the first sends.
	go func() {
		for streamMsgs(t, js, pipeline.StreamPapers) < 4 {
			time.Sleep(20 * time.Millisecond)
		}
		cfg.NoAck = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Error(err)
		}
	}()
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats(); st.Published != 3 || st.Duplicates != 1 {
		t.Errorf("%d published, %d dropped as repeats; want the 3 stored by their first send published, the earlier ingest's repeat a repeat",
			st.Published, st.Duplicates)
	}
	if n := streamMsgs(t, js, pipeline.StreamPapers); n != 4 {
		t.Errorf("the stream holds %d messages; want 4, once each", n)
	}
}

// TestPublishingToADeletedStreamSaysSo: the PAPERS stream deleted while a process that
// publishes runs (`nats stream rm PAPERS` to empty the queue, beside a running `serve`): no
// stream takes papers.new, and the server answers every message "no responders". The
// publisher sent them again for a minute, as to a cluster electing a leader, and then said the
// stream had "answered nothing ... on a JetStream cluster, it has no leader": each POST
// /api/papers waited a minute to be told of a leader election that was not happening.
func TestPublishingToADeletedStreamSaysSo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, pipeline.StreamPapers); err != nil {
		t.Fatal(err)
	}
	pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 16)
	pub.SetResendFor(5 * time.Second) // a bound for the code before the fix: it resent until then
	err := pub.Publish(ctx, paper.Abstract{ID: "test:1", Title: "T", Abstract: "An abstract for a stream that is gone."})
	if err == nil {
		err = pub.Flush(ctx)
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) || !strings.Contains(err.Error(), "recreates it") {
		t.Errorf("publish to a deleted stream: %v; want it to say the stream does not exist and how to recreate it", err)
	}
	if strings.Contains(fmt.Sprint(err), "no leader") {
		t.Errorf("publish to a deleted stream: %v; want no talk of a leader election", err)
	}
	// Not stored, and known not to be: refused (ingest says so), not unconfirmed ("the server may
	// or may not have stored" it).
	if st, n := pub.Stats(), pub.Unconfirmed(); st.Refused != 1 || n != 0 {
		t.Errorf("publish to a deleted stream: %d refused, %d unconfirmed; want 1 refused, none unconfirmed", st.Refused, n)
	}
}

// TestMetadataCorrectionIsNotARepeat: the same paper published again within the duplicate
// window with the same text but added or corrected metadata (authors, categories, published
// date, URL) is queued, so that the store can merge it; the same record again, whatever file
// and line it came from (Source), is dropped as a repeat. The message id covered the id and
// text only, and a Hugging Face record without categories followed by the arXiv record of the
// same paper lost the second one's metadata.
func TestMetadataCorrectionIsNotARepeat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	bare := paper.Abstract{ID: "arxiv:2405.00001", Title: "Careful Input Handling", Abstract: "We study input handling.", Source: "daily.json:1"}
	withAuthors := bare
	withAuthors.Authors, withAuthors.Source = []string{"Ada Lovelace"}, "full.jsonl:1"
	withCategories := withAuthors
	withCategories.Categories = []string{"cs.DB"}
	withDate := withCategories
	withDate.Published = time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	withURL := withDate
	withURL.URL = "https://arxiv.org/abs/2405.00001"
	again := withURL
	again.Source = "full-copy.jsonl:7"
	pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 8)
	for _, a := range []paper.Abstract{bare, withAuthors, withCategories, withDate, withURL, again, bare} {
		if err := pub.Publish(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats(); st.Published != 5 || st.Duplicates != 2 {
		t.Errorf("published %d, dropped as repeats %d; want 5 (each metadata change) and 2 (the same record again)", st.Published, st.Duplicates)
	}
}

// TestFlushAfterTheContextEndedCountsTheAnswersThatCame: once its context has ended (Ctrl-C),
// Flush still counts every acknowledgement that had arrived, and Unconfirmed says how many
// messages have none. It picked at random between an arrived answer and the ended context, and
// ingest's summary said "2 read, 1 published" for papers that were all queued.
func TestFlushAfterTheContextEndedCountsTheAnswersThatCame(t *testing.T) {
	t.Parallel()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(context.Background(), js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 256)
	const n = 50
	for i := range n {
		a := paper.Abstract{ID: fmt.Sprintf("test:%d", i), Title: "Title", Abstract: fmt.Sprintf("Abstract %d.", i)}
		if err := pub.Publish(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the server has stored them all, so that every answer has been sent.
	s, err := js.Stream(context.Background(), pipeline.StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := s.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream holds %d messages after 30 s, want %d", info.State.Msgs, n)
		}
	}
	// Wait until the client has taken every answer in (the publisher's futures hold them, not
	// yet read by Flush): the stream's count says only that the server sent them, and the
	// client's handler of the answers runs behind it (a fixed 100 ms was not always enough).
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatalf("the client has %d answers still to come 30 s after the stream held every message", js.PublishAsyncPending())
	}
	cancel() // Ctrl-C
	err = pub.Flush(ctx)
	if st := pub.Stats(); st.Published != n || pub.Unconfirmed() != 0 {
		t.Errorf("Flush after the context ended: %v; %d published, %d unconfirmed; want all %d published", err, st.Published, pub.Unconfirmed(), n)
	}
}

// TestPublishWaitsForRoomAmongTheMessagesInFlight: a Publisher whose JetStream context has as
// many messages in flight as it allows (PublishAsyncMaxPending, shared by the POST /api/papers
// requests of a server at once) waits for one of them to be answered, until its context ends.
// nats.go gives up after 200 ms with ErrTooManyStalledMsgs: under concurrent posts, requests
// failed with 503 though the queue had refused nothing.
func TestPublishWaitsForRoomAmongTheMessagesInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// One message in flight at most; an unanswered one frees its place after 2 s.
	js := natstest.Start(t).Connect(t, jetstream.WithPublishAsyncMaxPending(1), jetstream.WithPublishAsyncTimeout(2*time.Second))
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	cfg := streamConfig(t, js, pipeline.StreamPapers)
	// occupy publishes a message the server stores without answering: another request's, in
	// flight for 2 s.
	occupy := func() {
		t.Helper()
		cfg.NoAck = true
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		s, err := js.Stream(ctx, pipeline.StreamPapers)
		if err != nil {
			t.Fatal(err)
		}
		before := s.CachedInfo().State.Msgs
		if _, err := js.PublishAsync(pipeline.SubjectNew, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		// Stored, unanswered: the stream may answer again.
		for deadline := time.Now().Add(10 * time.Second); ; {
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs > before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the stream did not store the message in 10 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cfg.NoAck = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	a := paper.Abstract{ID: "test:waits", Title: "T", Abstract: "We study a busy queue."}

	occupy()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	acked, _, err := pipeline.PublishAll(wctx, js, pipeline.SubjectNew, 256, []paper.Abstract{a})
	if err != nil || len(acked) != 1 {
		t.Fatalf("PublishAll while another message was in flight: acked %v, %v; want it to wait for room and be acknowledged", acked, err)
	}

	// The wait ends with the request's context.
	occupy()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	a.ID = "test:gives-up"
	acked, _, err = pipeline.PublishAll(short, js, pipeline.SubjectNew, 256, []paper.Abstract{a})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrTooManyStalledMsgs) || len(acked) != 0 {
		t.Errorf("PublishAll whose context ended while no room came: acked %v, %v; want its context's error", acked, err)
	}
}

// TestAStoredMessageWhoseAnswerWasLostIsPublishedWhenTheStreamCouldNotBeRead: two faults
// together — the PAPERS stream's state could not be read at the first Publish (where the
// Publisher learns the sequence its messages are stored from), and the answers to the
// messages were lost, so they were sent again and answered as repeats of their own first
// sends. Without the sequence, every such message was counted a repeat: ingest's summary said
// "0 published, 3 dropped as repeats" of papers it had just queued for the first time.
func TestAStoredMessageWhoseAnswerWasLostIsPublishedWhenTheStreamCouldNotBeRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			// The publisher's reads of the stream's state fail (a permission here; a timeout,
			// a cluster without a leader, in the field).
			{Username: "pub", Password: "pub", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.STREAM.INFO.>"}}}},
		}
	})
	admin := connectAs(t, srv, "admin", jetstream.WithPublishAsyncTimeout(200*time.Millisecond))
	if err := pipeline.Setup(ctx, admin, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	cfg := streamConfig(t, admin, pipeline.StreamPapers)
	cfg.NoAck = true // the server stores the messages and its answers are lost
	if _, err := admin.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	js := connectAs(t, srv, "pub", jetstream.WithPublishAsyncTimeout(200*time.Millisecond), jetstream.WithDefaultTimeout(300*time.Millisecond))
	if _, err := js.Stream(ctx, pipeline.StreamPapers); err == nil {
		t.Fatal("the publisher's user can read the stream's state; the test needs it not to")
	}
	pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 16)
	pub.SetResendFor(time.Minute)
	for i := range 3 {
		if err := pub.Publish(ctx, paper.Abstract{ID: fmt.Sprintf("test:%d", i), Title: "T", Abstract: "An abstract whose answer is lost."}); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for streamMsgs(t, admin, pipeline.StreamPapers) < 3 {
			time.Sleep(20 * time.Millisecond)
		}
		cfg.NoAck = false
		if _, err := admin.UpdateStream(ctx, cfg); err != nil {
			t.Error(err)
		}
	}()
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats(); st.Published != 3 || st.Duplicates != 0 {
		t.Errorf("%d published, %d dropped as repeats; want the 3 stored by their first send published", st.Published, st.Duplicates)
	}
	if n := streamMsgs(t, admin, pipeline.StreamPapers); n != 3 {
		t.Errorf("the stream holds %d messages; want 3, once each", n)
	}
}

// connectAs returns a JetStream client of srv as user (password the same), closed when the
// test ends.
func connectAs(t *testing.T, srv *natstest.Server, user string, opts ...jetstream.JetStreamOpt) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, user), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
