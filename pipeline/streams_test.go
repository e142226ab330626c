package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config
}

func consumerConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.ConsumerConfig {
	t.Helper()
	c, err := js.Consumer(context.Background(), pipeline.StreamPapers, name)
	if err != nil {
		t.Fatal(err)
	}
	return c.CachedInfo().Config
}

// TestSetupKeepsWhatAnOperatorSet: every paperpipe process runs Setup at start. What an
// operator set on the streams and the consumer (`nats stream edit PAPERS_DLQ --max-age 30d`,
// `nats consumer edit --max-pending`) must survive it; what paperpipe's own settings set
// (PAPERPIPE_ACK_WAIT, PAPERPIPE_MAX_DELIVER) is applied.
func TestSetupKeepsWhatAnOperatorSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	dlq := streamConfig(t, js, pipeline.StreamDead)
	dlq.MaxAge, dlq.MaxBytes = 30*24*time.Hour, 1<<30
	if _, err := js.UpdateStream(ctx, dlq); err != nil {
		t.Fatal(err)
	}
	papers := streamConfig(t, js, pipeline.StreamPapers)
	papers.MaxMsgs, papers.MaxMsgSize = 1_000_000, 1<<20
	if _, err := js.UpdateStream(ctx, papers); err != nil {
		t.Fatal(err)
	}
	cons := consumerConfig(t, js, pipeline.ConsumerNew)
	cons.MaxAckPending, cons.MaxRequestBatch = 1000, 128
	if _, err := js.UpdateConsumer(ctx, pipeline.StreamPapers, cons); err != nil {
		t.Fatal(err)
	}

	// The next process start, with the settings cmd/paperpipe passes.
	// (Both raised: a shorter AckWait or a lower MaxDeliver is announced first, see ackwait_test.go.)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{AckWait: 90 * time.Second, MaxDeliver: 12}); err != nil {
		t.Fatal(err)
	}
	if got := streamConfig(t, js, pipeline.StreamDead); got.MaxAge != dlq.MaxAge || got.MaxBytes != dlq.MaxBytes {
		t.Errorf("%s MaxAge %v, MaxBytes %d after a process start, want the operator's %v, %d", pipeline.StreamDead, got.MaxAge, got.MaxBytes, dlq.MaxAge, dlq.MaxBytes)
	}
	if got := streamConfig(t, js, pipeline.StreamPapers); got.MaxMsgs != papers.MaxMsgs || got.MaxMsgSize != papers.MaxMsgSize {
		t.Errorf("%s MaxMsgs %d, MaxMsgSize %d after a process start, want the operator's %d, %d", pipeline.StreamPapers, got.MaxMsgs, got.MaxMsgSize, papers.MaxMsgs, papers.MaxMsgSize)
	}
	got := consumerConfig(t, js, pipeline.ConsumerNew)
	if got.MaxAckPending != 1000 || got.MaxRequestBatch != 128 {
		t.Errorf("consumer MaxAckPending %d, MaxRequestBatch %d, want the operator's 1000, 128", got.MaxAckPending, got.MaxRequestBatch)
	}
	if got.AckWait != 90*time.Second || got.MaxDeliver != 12 {
		t.Errorf("consumer AckWait %v, MaxDeliver %d, want paperpipe's settings 1m30s, 12", got.AckWait, got.MaxDeliver)
	}
}

// TestAFullQueueRefusesNewPapersInsteadOfDroppingQueuedOnes: an operator who caps PAPERS
// (`nats stream edit PAPERS --max-msgs`/--max-bytes, to keep a whole archive's ingest from
// filling the disk while the workers lag) must not lose the papers already waiting: with
// JetStream's default discard policy (DiscardOld), each paper published at the limit deleted
// the oldest unprocessed one, and the publisher counted every one as published. The stream
// discards new messages instead — one an older paperpipe created too —, so the publish fails
// and the queued papers stay.
func TestAFullQueueRefusesNewPapersInsteadOfDroppingQueuedOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	// As an older paperpipe created it.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: pipeline.StreamPapers, Subjects: []string{pipeline.SubjectNew},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	cfg := streamConfig(t, js, pipeline.StreamPapers)
	if cfg.Discard != jetstream.DiscardNew {
		t.Errorf("%s discard policy %v after Setup, want DiscardNew", pipeline.StreamPapers, cfg.Discard)
	}
	if dlq := streamConfig(t, js, pipeline.StreamDead); dlq.Discard != jetstream.DiscardOld {
		t.Errorf("%s discard policy %v, want DiscardOld (the oldest dead letters go at its limits)", pipeline.StreamDead, dlq.Discard)
	}
	cfg.MaxMsgs = 10 // the operator's cap
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 64)
	for i := range 15 {
		if err := pub.Publish(ctx, paper.Abstract{ID: fmt.Sprintf("test:%d", i), Title: "T", Abstract: "A queued abstract."}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err == nil {
		t.Error("Flush of 15 papers into a queue capped at 10: no error, want the 5 over the cap refused")
	}
	if state := streamState(t, js, pipeline.StreamPapers); state.Msgs != 10 || state.FirstSeq != 1 || pub.Stats().Published != 10 {
		t.Errorf("queue holds %d messages from sequence %d, %d counted as published; want the first 10 papers kept (from 1), 10 published",
			state.Msgs, state.FirstSeq, pub.Stats().Published)
	}
}

// TestSetupLeavesTheReplicasOfExistingStreams: replicas apply when Setup creates the streams;
// an existing stream keeps its own (a cluster's R3 streams are not scaled down by a process
// started without PAPERPIPE_NATS_REPLICAS). On this single server, an attempt to apply 3
// replicas to the existing streams would fail.
func TestSetupLeavesTheReplicasOfExistingStreams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{Replicas: 3}); err != nil {
		t.Fatalf("Setup on existing streams tried to change their replicas: %v", err)
	}
	for _, name := range []string{pipeline.StreamPapers, pipeline.StreamDead} {
		if r := streamConfig(t, js, name).Replicas; r != 1 {
			t.Errorf("%s replicas = %d, want its own 1", name, r)
		}
	}
}

// TestSetupAddsItsSubjectsToAnExistingStream: a stream made by an older version, or by hand,
// gets the subjects paperpipe publishes on; subjects an operator added stay.
func TestSetupAddsItsSubjectsToAnExistingStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: pipeline.StreamPapers, Subjects: []string{pipeline.SubjectNew, "papers.other"},
		Retention: jetstream.WorkQueuePolicy, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	got := streamConfig(t, js, pipeline.StreamPapers)
	for _, subj := range []string{pipeline.SubjectNew, pipeline.SubjectReprocess + ".>", "papers.other"} {
		if !slices.Contains(got.Subjects, subj) {
			t.Errorf("subjects %v lack %s", got.Subjects, subj)
		}
	}
	if got.MaxAge != time.Hour {
		t.Errorf("MaxAge %v, want the stream's own 1h", got.MaxAge)
	}
}

// TestSetupRefusesAStreamOfAnotherRetention: the workers depend on PAPERS being a work queue,
// and the server cannot change a stream's retention: Setup says so instead of going on.
func TestSetupRefusesAStreamOfAnotherRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: pipeline.StreamPapers, Subjects: []string{pipeline.SubjectNew}}); err != nil {
		t.Fatal(err)
	}
	err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{})
	if err == nil || !strings.Contains(err.Error(), "retention") {
		t.Errorf("Setup = %v, want an error about the retention policy", err)
	}
}

// The status page lists the newest dead letters, and `dlq list` all of them: with dead letters
// replayed over weeks while an older one is kept (a record that is really bad), reading the
// stream sequence by sequence made every status request ask for every replayed (deleted)
// sequence. The requests now follow the letters there are.
func TestDeadLettersAreReadWithoutWalkingReplayedSequences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		m := &nats.Msg{Subject: pipeline.SubjectDead + ".workers", Data: []byte(`{}`), Header: nats.Header{}}
		m.Header.Set(pipeline.HeaderPaperID, fmt.Sprintf("arxiv:2401.%05d", i+1))
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	// The operator keeps the oldest and the 500th, and replays the others.
	for seq := uint64(2); seq <= n; seq++ {
		if seq == 500 {
			continue
		}
		if _, err := pipeline.ReplayDeadLetter(ctx, js, seq); err != nil {
			t.Fatal(err)
		}
	}
	before := js.Conn().Stats().OutMsgs
	latest, err := pipeline.LatestDeadLetters(ctx, js, 20)
	if err != nil {
		t.Fatal(err)
	}
	all, err := pipeline.ListDeadLetters(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	requests := js.Conn().Stats().OutMsgs - before
	if len(latest) != 2 || latest[0].Seq != 500 || latest[1].Seq != 1 {
		t.Errorf("latest dead letters: %+v, want sequences 500 and 1, newest first", latest)
	}
	if len(all) != 2 || all[0].Seq != 1 || all[1].Seq != 500 {
		t.Errorf("all dead letters: %+v, want sequences 1 and 500, oldest first", all)
	}
	if requests > 40 {
		t.Errorf("reading 2 dead letters among %d sequences took %d requests: replayed sequences were read one by one", n, requests)
	}
}

// TestSetupWithoutJetStreamSaysSo: NATS_URL naming a server that runs without JetStream — what
// `docker run nats` and a bare `nats-server` start, JetStream being off unless -js is given —
// made every command stop with "stream PAPERS: nats: no responders available for request",
// which names neither JetStream nor the fix.
func TestSetupWithoutJetStreamSaysSo(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) { o.JetStream = false })
	js := srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{})
	if !errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		t.Fatalf("Setup on a server without JetStream: %v; want jetstream.ErrJetStreamNotEnabled", err)
	}
	for _, want := range []string{"without JetStream", "-js", "jetstream {}"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Setup: %v; want it to say the server runs without JetStream and how to enable it (%q)", err, want)
		}
	}
}

// TestSetupRefusesTheWorkersOfAnotherArchive: processes of two databases sharing one NATS
// server share its PAPERS stream and its consumer, so the workers of archive B took archive A's
// new papers and stored them in B, where A never got them. The first archive's workers record
// it on the stream; another archive's are refused, naming both and the ways out, while its
// processes that run no such worker (ingest, status, serve) and the first archive's own go on.
func TestSetupRefusesTheWorkersOfAnotherArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	// A stream made by a release that recorded no archive is claimed by the first worker.
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	const a, b = "database papers (schema public)", "database papers_restored (schema public)"
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{Archive: a}); err != nil {
		t.Fatalf("archive A's worker: %v", err)
	}
	if got := streamConfig(t, js, pipeline.StreamPapers).Metadata[pipeline.MetaArchive]; got != a {
		t.Errorf("PAPERS records archive %q, want %q", got, a)
	}
	err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{Archive: b})
	if !errors.Is(err, pipeline.ErrOtherArchive) {
		t.Fatalf("archive B's worker on A's stream: %v, want ErrOtherArchive", err)
	}
	for _, want := range []string{"new papers of " + a, "names " + b, "NATS account", "nats stream edit PAPERS --metadata '" + pipeline.MetaArchive + "=" + b + "'"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal: %v\nwant it to say %q", err, want)
		}
	}
	for name, cfg := range map[string]pipeline.TopologyConfig{
		"archive A's worker again":           {Archive: a},
		"a process of B that runs no worker": {},
	} {
		if err := pipeline.Setup(ctx, js, cfg); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The way out the refusal names for a move, as the nats CLI's edit does it.
	papers := streamConfig(t, js, pipeline.StreamPapers)
	papers.Metadata[pipeline.MetaArchive] = b
	if _, err := js.UpdateStream(ctx, papers); err != nil {
		t.Fatal(err)
	}
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{Archive: b}); err != nil {
		t.Errorf("archive B's worker once PAPERS records B: %v", err)
	}
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{Archive: a}); !errors.Is(err, pipeline.ErrOtherArchive) {
		t.Errorf("archive A's worker once PAPERS records B: %v, want ErrOtherArchive", err)
	}
}
