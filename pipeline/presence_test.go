package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// announceEvery is the tests' refresh: the bucket's TTL is three of it.
const announceEvery = 200 * time.Millisecond

// announce announces w on js until the test ends (Stop, unless the test stopped it).
func announce(t *testing.T, js jetstream.JetStream, w *pipeline.Worker, cfg pipeline.AnnounceConfig) *pipeline.Announcer {
	t.Helper()
	if cfg.Interval == 0 {
		cfg.Interval = announceEvery
	}
	an := pipeline.Announce(js, w, cfg)
	t.Cleanup(an.Stop) // a second Stop only tries the removal again
	return an
}

// announced reads the bucket's workers.
func announced(t *testing.T, js jetstream.JetStream) []pipeline.AnnouncedWorker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := pipeline.AnnouncedWorkers(ctx, js)
	if err != nil && !errors.Is(err, pipeline.ErrNoWorkersBucket) {
		t.Fatal(err)
	}
	return ws
}

func describe(ws []pipeline.AnnouncedWorker) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "[%s %s pid %d %s pause %+v held %d processed %d slots %d] ", w.Consumer, w.Host, w.PID, w.State, w.Pause, w.Held, w.Processed, w.Concurrency)
	}
	if len(ws) == 0 {
		return "none announced"
	}
	return b.String()
}

// heldByTheAPI starts a worker whose every TL;DR request the fake API answers with faults (a
// pause of an hour), announced with cfg, and returns its announcement once it says it is paused
// for reason (its end checked: the hour), with its announcer and bundle.
func heldByTheAPI(t *testing.T, faults openaitest.Faults, reason string, cfg pipeline.AnnounceConfig) (pipeline.AnnouncedWorker, *pipeline.Announcer, *testBundle) {
	t.Helper()
	api := openaitest.Start(t, openaitest.Config{Faults: faults})
	limiter := llm.NewLimiter(llm.LimiterConfig{})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "k", Model: "m", Limiter: limiter, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{AckWait: 4 * time.Second})
	publish(t, b.js, sampledata.Papers(t)[:3])
	start := time.Now()
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{MsgTimeout: time.Second, APILimitedBy: limiter.LimitedBy})
	an := announce(t, b.js, w, cfg)
	var got pipeline.AnnouncedWorker
	waitFor(t, "the worker announced paused: "+reason, func() (bool, string) {
		ws := announced(t, b.js)
		if len(ws) == 1 && ws[0].State == pipeline.StatePaused && ws[0].Pause.Reason == reason {
			got = ws[0]
			return true, ""
		}
		return false, describe(ws)
	})
	if end := got.Pause.Until; end.Before(start.Add(59*time.Minute)) || end.After(time.Now().Add(time.Hour)) {
		t.Errorf("announced paused until %s, want the hour the API gave (from %s)", end, start)
	}
	return got, an, b
}

// TestAWorkerHeldByAnHourLongRateLimitAnnouncesItselfPausedUntilTheLimitLifts: a 429 with
// Retry-After: 3600 holds every request of the process (the limiter's pause, 5 minutes at a
// time) and the only signs were the worker's log and metrics: status showed a backlog that did
// not move. The worker's announcement says it is paused, rate limited, until the hour the API
// gave; and a clean stop removes it at once.
func TestAWorkerHeldByAnHourLongRateLimitAnnouncesItselfPausedUntilTheLimitLifts(t *testing.T) {
	t.Parallel()
	got, an, b := heldByTheAPI(t, openaitest.Faults{RateLimit: 1, RetryAfter: time.Hour}, pipeline.PauseRateLimited,
		pipeline.AnnounceConfig{Target: "m", Version: "test", Host: "host-a", PID: 42})
	if got.Host != "host-a" || got.PID != 42 || got.Consumer != pipeline.ConsumerNew || got.Target != "m" || got.Version != "test" || got.Concurrency != 16 {
		t.Errorf("announcement %+v", got.Announcement)
	}
	an.Stop()
	if ws := announced(t, b.js); len(ws) != 0 {
		t.Errorf("after a clean stop: %s, want none", describe(ws))
	}
}

// TestAWorkerHeldByAnAPIThatSaysItIsUnavailableAnnouncesThat: a 503 with Retry-After: 3600
// holds every request as a long 429 does, and the worker was announced "rate limited by the
// API" — a limit of the account, where the service said it was down for an hour.
func TestAWorkerHeldByAnAPIThatSaysItIsUnavailableAnnouncesThat(t *testing.T) {
	t.Parallel()
	got, _, _ := heldByTheAPI(t, openaitest.Faults{ServerError: 1, ServerErrorStatus: http.StatusServiceUnavailable, UnavailableFor: time.Hour},
		pipeline.PauseUnavailable, pipeline.AnnounceConfig{})
	if text := got.Pause.Text(time.Now()); !strings.HasPrefix(text, "the API says it is unavailable until ") {
		t.Errorf("the pause in words: %q", text)
	}
}

// TestAWorkerRefusedByTheAPIAnnouncesThePauseWithTheAPIsAnswer: a revoked key pauses the
// worker (see TestAccountRefusalPausesTheWorkerUntilTheAPIAcceptsIt); the announcement says
// so, with the API's answer.
func TestAWorkerRefusedByTheAPIAnnouncesThePauseWithTheAPIsAnswer(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{APIKey: "sk-other"})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), APIKey: "sk-revoked-0123456789", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	publish(t, b.js, sampledata.Papers(t)[:2])
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{Backoff: func(int) time.Duration { return time.Hour }})
	announce(t, b.js, w, pipeline.AnnounceConfig{})
	waitFor(t, "the worker announced paused by the API's refusal", func() (bool, string) {
		ws := announced(t, b.js)
		ok := len(ws) == 1 && ws[0].Pause != nil && ws[0].Pause.Reason == pipeline.PauseAPIRefused &&
			strings.Contains(ws[0].Pause.Detail, "401") && ws[0].Pause.Until.After(time.Now().Add(50*time.Minute))
		return ok, describe(ws)
	})
}

// TestAKilledWorkersAnnouncementDisappearsAfterItsTTL: a worker killed without a word (its
// connection closed, nothing removed) is not listed for ever: its entry expires three
// refreshes after its last write.
func TestAKilledWorkersAnnouncementDisappearsAfterItsTTL(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	admin := srv.Connect(t)
	if err := pipeline.Setup(context.Background(), admin, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	own := srv.Connect(t)
	w, err := pipeline.NewWorker(own, nil, summarize.NewOffline(30), nil, pipeline.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	announce(t, own, w, pipeline.AnnounceConfig{})
	waitFor(t, "the worker announced", func() (bool, string) {
		ws := announced(t, admin)
		return len(ws) == 1 && ws[0].State == pipeline.StateIdle, describe(ws)
	})
	own.Conn().Close() // killed: no removal, no refresh
	waitFor(t, "the killed worker's entry to expire", func() (bool, string) {
		ws := announced(t, admin)
		return len(ws) == 0, describe(ws)
	})
}

// TestAWorkerAnnouncesItselfAgainWhenTheBucketIsLost: a NATS server that lost its store (or an
// operator's `nats kv rm`) takes the bucket; the workers make it again at their next refresh.
func TestAWorkerAnnouncesItselfAgainWhenTheBucketIsLost(t *testing.T) {
	t.Parallel()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(context.Background(), js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	w, err := pipeline.NewWorker(js, nil, summarize.NewOffline(30), nil, pipeline.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	announce(t, js, w, pipeline.AnnounceConfig{})
	waitFor(t, "the worker announced", func() (bool, string) {
		ws := announced(t, js)
		return len(ws) == 1, describe(ws)
	})
	if err := js.DeleteKeyValue(context.Background(), pipeline.BucketWorkers); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker announced again", func() (bool, string) {
		ws := announced(t, js)
		return len(ws) == 1, describe(ws)
	})
}

// TestAWorkerOnAnAccountThatMayNotCreateTheBucketWorksAndWarnsOnce: on a NATS account that may
// not create streams the worker cannot announce itself; it says so once, and works.
func TestAWorkerOnAnAccountThatMayNotCreateTheBucketWorksAndWarnsOnce(t *testing.T) {
	t.Parallel()
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "worker", Password: "worker", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.STREAM.CREATE.>"}}}},
		}
	})
	connect := func(user string) jetstream.JetStream { return connectAs(t, srv, user) } // errors unreported: the denied creation, expected
	admin, restricted := connect("admin"), connect("worker")
	if err := pipeline.Setup(context.Background(), admin, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setupOn(t, admin, emb)
	papers := sampledata.Papers(t)[:5]
	publish(t, admin, papers)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rb := *b
	rb.js = restricted
	w, err := pipeline.NewWorker(restricted, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, ExitWhenIdle: true,
		FetchWait: 200 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	announce(t, restricted, w, pipeline.AnnounceConfig{Logger: log})
	waitFor(t, "two tries after the first", func() (bool, string) {
		return strings.Count(logs.String(), "announcing the worker failed") >= 2, logs.String()
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, &rb, sum); c.WithTLDR != int64(len(papers)) {
		t.Errorf("%d of %d papers have a TL;DR", c.WithTLDR, len(papers))
	}
	if n := strings.Count(logs.String(), "cannot announce itself"); n != 1 {
		t.Errorf("%d warnings that the worker cannot announce itself, want 1:\n%s", n, logs.String())
	}
}

// TestAWorkerAllowedOnlyTheBucketsSubjectsAnnouncesItselfInABucketMadeForIt guards what README
// and the worker's warning tell an operator whose NATS account may not create streams: make the
// bucket once (nats kv add paperpipe_workers --history 1 --ttl 30s --max-bytes 8MiB) and let the
// workers publish to $KV.paperpipe_workers.> and $JS.API.STREAM.INFO.KV_paperpipe_workers. With
// those two alone the worker announces itself, and warns of nothing.
func TestAWorkerAllowedOnlyTheBucketsSubjectsAnnouncesItselfInABucketMadeForIt(t *testing.T) {
	t.Parallel()
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "announcer", Password: "announcer", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{
					"$KV." + pipeline.BucketWorkers + ".>", "$JS.API.STREAM.INFO.KV_" + pipeline.BucketWorkers}}}},
		}
	})
	admin, restricted := connectAs(t, srv, "admin"), connectAs(t, srv, "announcer")
	ctx := t.Context()
	if err := pipeline.Setup(ctx, admin, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pipeline.BucketWorkers, History: 1,
		TTL: 30 * time.Second, MaxBytes: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setupOn(t, admin, emb)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := pipeline.NewWorker(admin, b.store, summarize.NewOffline(30), emb, pipeline.WorkerConfig{SpaceID: b.space.ID, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	announce(t, restricted, w, pipeline.AnnounceConfig{Host: "restricted-host", Logger: log})
	waitFor(t, "the worker announced", func() (bool, string) {
		ws := announced(t, admin)
		return len(ws) == 1 && ws[0].Host == "restricted-host", describe(ws) + "\n" + logs.String()
	})
	if strings.Contains(logs.String(), "cannot announce itself") || strings.Contains(logs.String(), "announcing the worker failed") {
		t.Errorf("the worker, allowed the bucket's subjects, warned that it could not announce itself:\n%s", logs.String())
	}
}

func TestAnAnnouncementFarLargerThanAWorkerWritesIsLeftOut(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	js := natstest.Start(t).Connect(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pipeline.BucketWorkers, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	detail := strings.Repeat("x", 400) + "…" // the longest a worker writes
	for key, host := range map[string]string{"real": strings.Repeat("h", 253), "huge": strings.Repeat("h", 256<<10)} {
		raw, err := json.Marshal(pipeline.Announcement{Host: host, PID: 1, Started: now, Consumer: pipeline.ConsumerNew, State: pipeline.StatePaused,
			Pause:  &pipeline.Pause{Reason: pipeline.PauseAPIRefused, Detail: detail, Until: now.Add(time.Minute)},
			Target: strings.Repeat("t", 300), Version: "v1", Refresh: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, key, raw); err != nil {
			t.Fatal(err)
		}
	}
	if ws := announced(t, js); len(ws) != 1 || len(ws[0].Host) != 253 {
		t.Errorf("announced: %d workers, hosts of %v bytes; want the one of 253 bytes only", len(ws), hostLengths(ws))
	}
}

func hostLengths(ws []pipeline.AnnouncedWorker) []int {
	var ns []int
	for _, w := range ws {
		ns = append(ns, len(w.Host))
	}
	return ns
}

func TestAWorkerThatWritesNoTLDRsAnnouncesNoTLDRSlots(t *testing.T) {
	t.Parallel()
	js := natstest.Start(t).Connect(t)
	w, err := pipeline.NewWorker(js, nil, nil, embed.NewOffline(), pipeline.WorkerConfig{SpaceID: 1})
	if err != nil {
		t.Fatal(err)
	}
	announce(t, js, w, pipeline.AnnounceConfig{})
	waitFor(t, "the worker announced with no TL;DR slots", func() (bool, string) {
		ws := announced(t, js)
		return len(ws) == 1 && ws[0].Concurrency == 0, describe(ws)
	})
}

func TestTheWorkersBucketHasTheQueuesReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.StartCluster(t)[0].Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	w, err := pipeline.NewWorker(js, nil, summarize.NewOffline(30), nil, pipeline.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	announce(t, js, w, pipeline.AnnounceConfig{Replicas: 1})
	var s jetstream.Stream
	waitFor(t, "the worker's bucket made", func() (bool, string) {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var err error
		s, err = js.Stream(sctx, "KV_"+pipeline.BucketWorkers)
		return err == nil, fmt.Sprint(err)
	})
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("the workers' bucket has %d replicas, want PAPERS' 3", r)
	}
}

func TestAnnouncedWorkersAreListedByConsumerHostAndStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if _, _, err := pipeline.AnnouncedWorkers(ctx, js); !errors.Is(err, pipeline.ErrNoWorkersBucket) {
		t.Fatalf("AnnouncedWorkers with no bucket: %v, want ErrNoWorkersBucket", err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pipeline.BucketWorkers})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	before := time.Now()
	for i, a := range []pipeline.Announcement{
		{Consumer: "reprocess-s2", Host: "a", Started: t0},
		{Consumer: pipeline.ConsumerNew, Host: "b", Started: t0.Add(time.Minute)},
		{Consumer: pipeline.ConsumerNew, Host: "c", Started: t0},
		{Consumer: pipeline.ConsumerNew, Host: "b", Started: t0},
	} {
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, fmt.Sprintf("w%d", i), raw); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.Put(ctx, "junk", []byte("not an announcement")); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	ws := announced(t, js)
	var got []string
	for _, w := range ws {
		got = append(got, fmt.Sprintf("%s %s %s", w.Consumer, w.Host, w.Started.Format(time.TimeOnly)))
		// The server's clock and this one are the machine's.
		if w.LastSeen.Before(before.Add(-time.Second)) || w.LastSeen.After(after.Add(time.Second)) {
			t.Errorf("%s %s: last seen %s, want the time of its write (%s to %s)", w.Consumer, w.Host, w.LastSeen, before, after)
		}
	}
	n := pipeline.ConsumerNew
	want := []string{n + " b 03:04:05", n + " b 03:05:05", n + " c 03:04:05", "reprocess-s2 a 03:04:05"}
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
}

func TestTwoWorkersOfOneProcessAreEachAnnounced(t *testing.T) {
	t.Parallel()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(context.Background(), js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		w, err := pipeline.NewWorker(js, nil, summarize.NewOffline(30), nil, pipeline.WorkerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		announce(t, js, w, pipeline.AnnounceConfig{Host: "host-a", PID: 1})
	}
	waitFor(t, "both workers announced", func() (bool, string) {
		ws := announced(t, js)
		return len(ws) == 2, describe(ws)
	})
}

func TestAWorkerAnnouncedAgainWarnsAgainWhenItCannotAnymore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	limit := func(size int32) {
		t.Helper()
		// Values of 16 bytes at most: no announcement fits.
		if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pipeline.BucketWorkers, MaxValueSize: size}); err != nil {
			t.Fatal(err)
		}
	}
	limit(16)
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	w, err := pipeline.NewWorker(js, nil, summarize.NewOffline(30), nil, pipeline.WorkerConfig{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	announce(t, js, w, pipeline.AnnounceConfig{})
	warnings := func() int { return strings.Count(logs.String(), "cannot announce itself") }
	waitFor(t, "the first warning", func() (bool, string) { return warnings() == 1, logs.String() })
	limit(-1)
	waitFor(t, "the worker announced again", func() (bool, string) {
		return strings.Contains(logs.String(), "announces itself in the NATS key-value bucket "+pipeline.BucketWorkers+" again"), logs.String()
	})
	limit(16)
	waitFor(t, "a second warning", func() (bool, string) { return warnings() == 2, logs.String() })
}

// TestAWorkerThatCannotAnnounceItselfTriesAgainAtItsRefreshOnly: a worker whose writes to the
// bucket fail (here a bucket made by hand with values too small for an announcement; an account
// out of storage fails so too) tries again once per refresh (Interval), as its warning says, not
// at each look at its state (every second): a failed write left the state last written unset,
// so every look took the state for changed, and the worker sent NATS a request that failed, and
// logged a line, every second for as long as it ran.
func TestAWorkerThatCannotAnnounceItselfTriesAgainAtItsRefreshOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pipeline.BucketWorkers, MaxValueSize: 16}); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// State asks APILimitedBy at each look: the looks are counted so.
	var looks atomic.Int32
	w, err := pipeline.NewWorker(js, nil, summarize.NewOffline(30), nil, pipeline.WorkerConfig{Logger: log,
		APILimitedBy: func() (time.Time, bool) { looks.Add(1); return time.Time{}, false }})
	if err != nil {
		t.Fatal(err)
	}
	an := announce(t, js, w, pipeline.AnnounceConfig{Interval: time.Hour})
	waitFor(t, "four looks at the worker's state", func() (bool, string) {
		return looks.Load() >= 4, fmt.Sprintf("%d looks", looks.Load())
	})
	an.Stop()
	warned, retried := strings.Count(logs.String(), "cannot announce itself"), strings.Count(logs.String(), "announcing the worker failed")
	if warned != 1 || retried != 0 {
		t.Errorf("%d warnings and %d tries after them in %d looks with an hour's refresh, want 1 and none:\n%s", warned, retried, looks.Load(), logs.String())
	}
}

// TestAWorkerHoldsNoMessageOnceItsMessagesAreSettled: the messages a worker holds, which its
// announcement shows, are those fetched and not yet settled: once a run has processed the queue,
// it holds none (not a count that went below zero, nor one left over from every fetch).
func TestAWorkerHoldsNoMessageOnceItsMessagesAreSettled(t *testing.T) {
	t.Parallel()
	sum, emb := summarize.NewOffline(30), embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:5]
	publish(t, b.js, papers)
	w, err := pipeline.NewWorker(b.js, b.store, sum, emb, pipeline.WorkerConfig{SpaceID: b.space.ID, ExitWhenIdle: true,
		FetchWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, b, sum); c.WithTLDR != int64(len(papers)) {
		t.Fatalf("%d of %d papers have a TL;DR", c.WithTLDR, len(papers))
	}
	if s := w.State(); s.Held != 0 {
		t.Errorf("State once the queue is processed: %+v, want none held", s)
	}
}

// TestABucketFullOfOtherEntriesIsReadFromItsNewest: any client of the NATS account may write
// the workers' bucket, whose 8 MiB holds tens of thousands of small entries; status, the status
// page and GET /api/status read and listed every one (36,840 of them in 0.6–1 s). Only the
// newest MaxAnnouncementsRead are read, the rest counted, and a running worker, which rewrites
// its entry every refresh, is among them.
func TestABucketFullOfOtherEntriesIsReadFromItsNewest(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	js := natstest.Start(t).Connect(t)
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pipeline.BucketWorkers, History: 1, MaxBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	put := func(key, host string) {
		t.Helper()
		raw, err := json.Marshal(pipeline.Announcement{Consumer: pipeline.ConsumerNew, Host: host, State: pipeline.StateIdle, Refresh: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, key, raw); err != nil {
			t.Fatal(err)
		}
	}
	const others = pipeline.MaxAnnouncementsRead + 200
	put("running", "running-host") // its first write, older than the others'
	for i := range others {
		put(fmt.Sprintf("other%d", i), fmt.Sprintf("other-%d", i))
	}
	put("running", "running-host") // its refresh
	ws, unread, err := pipeline.AnnouncedWorkers(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) > pipeline.MaxAnnouncementsRead || !slices.ContainsFunc(ws, func(w pipeline.AnnouncedWorker) bool { return w.Host == "running-host" }) {
		t.Errorf("listed %d of the bucket's %d entries, the running worker's among them: %v; want at most %d, with it",
			len(ws), others+1, slices.ContainsFunc(ws, func(w pipeline.AnnouncedWorker) bool { return w.Host == "running-host" }), pipeline.MaxAnnouncementsRead)
	}
	if want := uint64(others + 1 - pipeline.MaxAnnouncementsRead); unread != want {
		t.Errorf("%d entries said unread, want %d", unread, want)
	}
}
