package pipeline_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// gate holds a store's calls until open is closed; entered is closed when the first arrives.
type gate struct {
	entered, open chan struct{}
	once          sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), open: make(chan struct{})} }

// enter reports whether this call is the first, and closes entered if so.
func (g *gate) enter() (first bool) {
	g.once.Do(func() { first = true; close(g.entered) })
	return first
}

// gatedSaves holds every TL;DR save until open is closed: a database slow or unreachable
// while the worker's host is cut off.
type gatedSaves struct {
	pipeline.Store
	*gate
}

func (g *gatedSaves) SaveSummaries(ctx context.Context, sums []paper.Summary) (int, error) {
	g.enter()
	<-g.open
	return g.Store.SaveSummaries(ctx, sums)
}

// TestPartitionedWorkerThatFinishesLeavesNoFalseDeadLetter: a worker holding a message on its
// last delivery is cut off from NATS (its host's network) while it saves the TL;DR it bought;
// the server gives the message up after AckWait, and another worker's reaper finds the paper
// not stored yet. The first worker then comes back and stores it.
func TestPartitionedWorkerThatFinishesLeavesNoFalseDeadLetter(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	// Worker A reaches NATS through a proxy the test cuts.
	b, bA, p, a := lastDeliveryBehindProxy(t, emb)
	gate := &gatedSaves{Store: b.store, gate: newGate()}
	wA := startWorkerOn(t, bA, gate, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	<-gate.entered // the TL;DR is bought; its save waits
	p.Refuse()

	// Worker B, connected, pulls: the server gives the message up, B's reaper gets the advisory.
	startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	waitFor(t, "the message given up and reaped", func() (bool, string) {
		q := streamMsgs(t, b.js, pipeline.StreamPapers)
		return q == 0, fmt.Sprintf("%d messages in %s", q, pipeline.StreamPapers)
	})

	p.Accept()
	close(gate.open)
	wantStoredNotDeadLettered(t, b, wA, a, "a dead letter a user would replay for nothing")
}

// wantStoredNotDeadLettered waits for worker wA to settle its message, then checks that paper a
// has the one TL;DR wA saved and no dead letter; why says what such a dead letter would mean.
func wantStoredNotDeadLettered(t *testing.T, b *testBundle, wA *pipeline.Worker, a paper.Abstract, why string) {
	t.Helper()
	waitFor(t, "worker A to settle its message", func() (bool, string) {
		s := wA.Stats()
		return s.Acked+s.Retried+s.Dead > 0, fmt.Sprintf("%+v", s)
	})
	sums, err := b.store.Summaries(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 1 {
		t.Fatalf("TL;DRs of %s: %+v, want the one worker A saved", a.ID, sums)
	}
	if dls := deadLetters(t, b.js); len(dls) > 0 {
		t.Errorf("paper %s is stored and dead-lettered (%q, %d letters): %s", a.ID, dls[0].Reason, len(dls), why)
	}
}

// lastDeliveryBehindProxy starts a NATS server whose consumer delivers a message once
// (MaxDeliver 1) and gives it up after an AckWait of 2 s, publishes one paper to it, and returns
// the test's bundle, a copy of it (worker A's) whose JetStream client reaches the server through
// a proxy the test can cut, the proxy, and the paper.
func lastDeliveryBehindProxy(t *testing.T, emb pipeline.Embedder) (b, bA *testBundle, p *nettest.Proxy, a paper.Abstract) {
	t.Helper()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if err := pipeline.Setup(context.Background(), js, pipeline.TopologyConfig{MaxDeliver: 1, AckWait: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	b = setupOn(t, js, emb)
	papers := sampledata.Papers(t)[:1]
	publish(t, js, papers)
	p, bA = proxiedNATS(t, srv, b)
	return b, bA, p, papers[0]
}

// proxiedNATS returns a proxy to srv and a copy of b whose JetStream client reaches srv
// through it.
func proxiedNATS(t *testing.T, srv *natstest.Server, b *testBundle) (*nettest.Proxy, *testBundle) {
	t.Helper()
	p := nettest.StartProxy(t, srv.Addr().String())
	nc, err := nats.Connect("nats://"+p.Addr(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	bp := *b
	bp.js = js
	return p, &bp
}

// perPaperCalls counts TL;DR requests per paper across workers.
type perPaperCalls struct {
	pipeline.Summarizer
	mu    sync.Mutex
	calls map[string]int
}

func (s *perPaperCalls) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	s.mu.Lock()
	s.calls[a.ID]++
	s.mu.Unlock()
	return s.Summarizer.Summarize(ctx, a)
}

// TestSilentNATSLinkStopsNewAPIWork: a worker's link to NATS that goes silent without a reset
// (a firewall dropping the flow, a partition, a VM's network detached) looks up to the client
// until its pings go unanswered — minutes at nats.go's defaults. Its InProgress marks went
// nowhere, yet each counted as a renewal of the hold, so the worker went on starting API work
// on messages the server had meanwhile delivered to another worker: both paid for them.
func TestSilentNATSLinkStopsNewAPIWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{AckWait: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	sum := &perPaperCalls{Summarizer: slowSummarizer{Summarizer: summarize.NewOffline(30), delay: 400 * time.Millisecond}, calls: map[string]int{}}
	b := setupOn(t, js, emb)
	papers := sampledata.Papers(t)[:10]
	publish(t, js, papers)

	p, bA := proxiedNATS(t, srv, b)
	// One TL;DR at a time: worker A holds the others, waiting for the slot, ~4 s in all.
	wA := startWorker(t, bA, sum, emb, pipeline.WorkerConfig{Concurrency: 1})
	t.Cleanup(func() { p.Freeze(false) }) // before A stops
	waitFor(t, "worker A to hold every message", func() (bool, string) {
		s := wA.Stats()
		return s.Received == int64(len(papers)), fmt.Sprintf("%+v", s)
	})
	p.Freeze(true)

	// The server delivers A's messages to B once their AckWait is over.
	wB := startWorker(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4})
	waitFor(t, "every paper done", func() (bool, string) {
		c := counts(t, b, sum)
		return c.WithTLDR == int64(len(papers)), fmt.Sprintf("counts %+v, A %+v, B %+v", c, wA.Stats(), wB.Stats())
	})
	waitFor(t, "worker A to settle every message it holds (done, or handed back unstarted)", func() (bool, string) {
		s := wA.Stats()
		return s.Acked+s.Retried+s.Dead == int64(len(papers)), fmt.Sprintf("%+v", s)
	})
	sum.mu.Lock()
	defer sum.mu.Unlock()
	for _, a := range papers {
		if n := sum.calls[a.ID]; n != 1 {
			t.Errorf("paper %s: %d TL;DR requests, want 1 (A %+v, B %+v)", a.ID, n, wA.Stats(), wB.Stats())
		}
	}
}

// gatedIntake holds the first recording of papers until open is closed, then fails it as a
// database out of reach: the worker's host lost its network, NATS and the database alike.
type gatedIntake struct {
	pipeline.Store
	*gate
}

func (g *gatedIntake) UpsertPapers(ctx context.Context, papers []paper.Abstract, w paper.Work) ([]paper.Pending, error) {
	if !g.enter() {
		return g.Store.UpsertPapers(ctx, papers, w)
	}
	<-g.open
	return nil, fmt.Errorf("record papers: %w: connection refused", paper.ErrUnavailable)
}

// TestPartitionedWorkerThatRequeuesLeavesNoFalseDeadLetter: a worker holding a message on its
// last delivery loses its host's network (NATS and the database) while it records the paper;
// the server gives the message up after AckWait, and another worker's reaper, finding the
// paper not stored, dead-letters it. The first worker then comes back, finds the database
// unavailable and requeues the message (as a new one: it was on its last delivery), which the
// other worker processes. The paper is done: the reaper's dead letter must not stay next to
// it, for a user to see and replay for nothing.
func TestPartitionedWorkerThatRequeuesLeavesNoFalseDeadLetter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b, bA, p, a := lastDeliveryBehindProxy(t, emb)
	gate := &gatedIntake{Store: b.store, gate: newGate()}
	wA := startWorkerOn(t, bA, gate, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	<-gate.entered // A holds the message; recording the paper waits
	p.Refuse()

	startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	waitFor(t, "the message given up and dead-lettered", func() (bool, string) {
		dls := deadLetters(t, b.js)
		return len(dls) > 0, fmt.Sprintf("%d dead letters, %d messages in %s", len(dls), streamMsgs(t, b.js, pipeline.StreamPapers), pipeline.StreamPapers)
	})

	p.Accept()
	close(gate.open)
	waitFor(t, "worker A to requeue its message", func() (bool, string) {
		s := wA.Stats()
		return s.Retried > 0, fmt.Sprintf("%+v", s)
	})
	waitFor(t, "the requeued copy processed", func() (bool, string) {
		sums, err := b.store.Summaries(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(sums) == 1, fmt.Sprintf("TL;DRs of %s: %+v", a.ID, sums)
	})
	if dls := deadLetters(t, b.js); len(dls) > 0 {
		t.Errorf("paper %s is done and dead-lettered (%q, %d letters): a dead letter a user would replay for nothing",
			a.ID, dls[0].Reason, len(dls))
	}
}

// TestPartitionedWorkerRenewedBeforeItStoresLeavesNoFalseDeadLetter: as
// TestPartitionedWorkerThatFinishesLeavesNoFalseDeadLetter, but the worker's link comes back,
// and its hold on the message is renewed again, before it stores the results: its hold is fresh
// when it acknowledges, yet it lapsed meanwhile, and the reaper's dead letter must go all the
// same (the hold remembers the lapse, see hold.lapsed).
func TestPartitionedWorkerRenewedBeforeItStoresLeavesNoFalseDeadLetter(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b, bA, p, a := lastDeliveryBehindProxy(t, emb)
	marks := inProgressMarks(t, b.js) // worker A's
	gate := &gatedSaves{Store: b.store, gate: newGate()}
	wA := startWorkerOn(t, bA, gate, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	<-gate.entered // the TL;DR is bought; its save waits
	p.Refuse()

	startWorker(t, b, sum, emb, pipeline.WorkerConfig{SweepInterval: time.Hour})
	waitFor(t, "the message given up and dead-lettered", func() (bool, string) {
		dls := deadLetters(t, b.js)
		return len(dls) > 0, fmt.Sprintf("%d dead letters, %d messages in %s", len(dls), streamMsgs(t, b.js, pipeline.StreamPapers), pipeline.StreamPapers)
	})

	// A sends an InProgress, flushes it, counts the hold renewed, then waits a ProgressInterval
	// before the next: a second mark shows the first one renewed the hold.
	reconnectUntilRenewed(t, p, marks, wA)
	close(gate.open)
	wantStoredNotDeadLettered(t, b, wA, a, "its worker's hold lapsed and was renewed before it stored the results, and the lapse was forgotten")
}

// reconnectUntilRenewed drops the marks sent before p's link was cut, lets p accept again,
// and waits (30 s at most) for worker wA's next two InProgress marks.
func reconnectUntilRenewed(t *testing.T, p *nettest.Proxy, marks chan struct{}, wA *pipeline.Worker) {
	t.Helper()
	for len(marks) > 0 { // those sent before the link was cut
		<-marks
	}
	p.Accept()
	for i := range 2 {
		select {
		case <-marks:
		case <-time.After(30 * time.Second):
			t.Fatalf("worker A sent %d InProgress marks in 30 s once its link was back, want 2 (stats %+v)", i, wA.Stats())
		}
	}
}

// inProgressMarks returns a channel that gets one value per InProgress mark the server of js
// receives for the consumer of new papers (from any worker), buffered.
func inProgressMarks(t *testing.T, js jetstream.JetStream) chan struct{} {
	t.Helper()
	marks := make(chan struct{}, 1024)
	sub, err := js.Conn().Subscribe("$JS.ACK."+pipeline.StreamPapers+"."+pipeline.ConsumerNew+".>", func(m *nats.Msg) {
		if string(m.Data) == "+WPI" {
			select {
			case marks <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	return marks
}

// TestWorkerBackFromALongPartitionStartsNoWorkTheServerGaveAway: a worker's host loses its
// network for longer than AckWait (NATS and the database alike): a TL;DR it bought waits to be
// saved, holding its chat slot, and its other messages wait for that slot. The server gives
// them to another worker, which does them all. When the network is back the first worker's
// holds are renewed — fresh again — and it went on to buy every TL;DR the other worker had
// bought already.
func TestWorkerBackFromALongPartitionStartsNoWorkTheServerGaveAway(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{AckWait: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	sum := &perPaperCalls{Summarizer: summarize.NewOffline(30), calls: map[string]int{}}
	b := setupOn(t, js, emb)
	papers := sampledata.Papers(t)[:5]
	publish(t, js, papers)
	p, bA := proxiedNATS(t, srv, b)
	marks := inProgressMarks(t, js)

	gate := &gatedSaves{Store: b.store, gate: newGate()}
	wA := startWorkerOn(t, bA, gate, sum, emb, pipeline.WorkerConfig{Concurrency: 1, SweepInterval: time.Hour})
	<-gate.entered // one TL;DR bought, its save waiting; the others wait for the chat slot
	waitFor(t, "worker A to hold every message", func() (bool, string) {
		s := wA.Stats()
		return s.Received == int64(len(papers)), fmt.Sprintf("%+v", s)
	})
	p.Refuse()

	wB := startWorker(t, b, sum, emb, pipeline.WorkerConfig{Concurrency: 4, SweepInterval: time.Hour})
	waitFor(t, "worker B to do every paper", func() (bool, string) {
		c := counts(t, b, sum)
		return c.WithTLDR == int64(len(papers)), fmt.Sprintf("counts %+v, B %+v", c, wB.Stats())
	})

	// A's holds are renewed: a second mark after the link is back shows the first one counted.
	reconnectUntilRenewed(t, p, marks, wA)
	close(gate.open) // the database answers again: the chat slot frees
	waitFor(t, "worker A to let go of every message", func() (bool, string) {
		s := wA.Stats()
		return s.Acked+s.Retried+s.Dead+s.Skipped >= int64(len(papers)), fmt.Sprintf("%+v", s)
	})

	sum.mu.Lock()
	defer sum.mu.Unlock()
	total := 0
	for _, a := range papers {
		total += sum.calls[a.ID]
	}
	// The TL;DR A bought before the partition was bought again by B: that one is the
	// partition's price. Every other one must have been bought once.
	if total > len(papers)+1 {
		t.Errorf("%d TL;DR requests for %d papers (%v): worker A, back from a partition longer than AckWait, started work on messages the server had given to worker B (A %+v, B %+v)",
			total, len(papers), sum.calls, wA.Stats(), wB.Stats())
	}
	if dls := deadLetters(t, b.js); len(dls) > 0 {
		t.Errorf("%d dead letters; the first: %s", len(dls), dls[0].Reason)
	}
}

// TestShortNATSOutageDeadLettersNothing: a worker loses NATS for longer than AckWait −
// MsgTimeout but less than the AckWait (a NATS restart, a network blip) while its messages wait
// for a chat slot, every delivery the last. The server still counts them as the worker's; yet
// the first to get a slot during the outage found its hold too old to start API work and was
// dead-lettered for it ("gave up after 1 deliveries: message not marked in progress
// recently"), as on an earlier delivery it used one up. The work now waits for the hold to be
// renewed, and starts once NATS is back.
func TestShortNATSOutageDeadLettersNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	// AckWait 10 s, renewed every 0.5 s, 9 s of work a message: a hold older than 1 s is too
	// old to start work on, and lapses after 9.5 s.
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{AckWait: 10 * time.Second, MaxDeliver: 1}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	sum := &perPaperCalls{Summarizer: summarize.NewOffline(30), calls: map[string]int{}}
	b := setupOn(t, js, emb)
	papers := sampledata.Papers(t)[:3]
	publish(t, js, papers)
	p, bA := proxiedNATS(t, srv, b)

	gate := &gatedSaves{Store: b.store, gate: newGate()}
	w := startWorkerOn(t, bA, gate, sum, emb, pipeline.WorkerConfig{Concurrency: 1, SweepInterval: time.Hour,
		ProgressInterval: 500 * time.Millisecond, MsgTimeout: 9 * time.Second})
	<-gate.entered // one TL;DR waits to be saved; the other messages wait for its chat slot
	waitFor(t, "the worker to hold every message", func() (bool, string) {
		s := w.Stats()
		return s.Received == int64(len(papers)), fmt.Sprintf("%+v", s)
	})
	p.Refuse()
	time.Sleep(3 * time.Second) // the outage: longer than AckWait − MsgTimeout, well within AckWait
	close(gate.open)            // the chat slot frees during the outage
	time.Sleep(200 * time.Millisecond)
	p.Accept()

	waitFor(t, "every paper done", func() (bool, string) {
		c, s := counts(t, b, sum), w.Stats()
		return c.WithTLDR == int64(len(papers)) || s.Dead > 0, fmt.Sprintf("counts %+v, stats %+v", c, s)
	})
	if dls := deadLetters(t, b.js); len(dls) > 0 {
		t.Errorf("%d papers dead-lettered for a NATS outage shorter than the AckWait; the first: %s", len(dls), dls[0].Reason)
	}
	sum.mu.Lock()
	defer sum.mu.Unlock()
	for _, a := range papers {
		if n := sum.calls[a.ID]; n != 1 {
			t.Errorf("paper %s: %d TL;DR requests, want 1", a.ID, n)
		}
	}
}
