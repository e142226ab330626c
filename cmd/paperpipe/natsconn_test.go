package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/redact"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
)

// TestEmbeddedServerIsTakenOverWhenItsProcessStops: a second process uses the first one's
// embedded server; when the first stops, its server is gone, and the second would retry its
// address for ever (a worker processing nothing). It runs the server itself instead, on the
// same address, and goes on.
func TestEmbeddedServerIsTakenOverWhenItsProcessStops(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := &config{DataDir: t.TempDir()}
	log := slog.New(slog.DiscardHandler)
	owner, other := ownerAndJoined(t, c, log)
	if owner.embedded == nil || other.embedded != nil {
		t.Fatalf("the first broker should run the server and the second use it")
	}
	owner.close()

	// Right after the close the second may not have noticed the disconnection yet: wait until it
	// runs the server and is connected to it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		other.mu.Lock()
		took := other.embedded != nil
		other.mu.Unlock()
		if took && other.nc.IsConnected() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the server's process stopped, the second runs a server: %v, is connected: %v", took, other.nc.IsConnected())
		}
		time.Sleep(20 * time.Millisecond)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := other.js.Publish(pctx, pipeline.SubjectNew, []byte(`{}`)); err != nil {
		t.Errorf("publish after the takeover: %v", err)
	}
	// The server runs on the address and with the token the clients of the first know, and
	// nats.url says so to the processes that start now.
	urlFile := filepath.Join(c.DataDir, "nats.url")
	if raw, err := os.ReadFile(urlFile); err != nil {
		t.Error(err)
	} else if got := strings.TrimSpace(string(raw)); got != other.url {
		t.Errorf("after the takeover nats.url holds %s, want the address the clients know, %s", redact.URL(got), redact.URL(other.url))
	}
	if fi, err := os.Stat(urlFile); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("after the takeover nats.url has mode %v, want 0600", fi.Mode().Perm())
	}
	third, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatalf("a process started after the takeover: %v", err)
	}
	third.close()
}

// TestEmbeddedServerStartsAgainOnItsLastAddress: a process that starts the server after the
// one that ran it stopped (killed, or just before another process took it over) runs it on the
// last address and token, so the processes still connected to the old one reconnect instead of
// retrying a dead address for ever; whichever of the two takes the lock first, the joined
// process ends up connected.
func TestEmbeddedServerStartsAgainOnItsLastAddress(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := &config{DataDir: t.TempDir()}
	log := slog.New(slog.DiscardHandler)
	owner, joined := ownerAndJoined(t, c, log)
	first := joined.url
	owner.close()
	fresh, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.close()
	if got := fresh.nc.ConnectedUrl(); !strings.HasSuffix(first, strings.TrimPrefix(got, "nats://")) {
		t.Errorf("the process started after the first stopped is connected to %s, want the last address %s", redact.URL(got), redact.URL(first))
	}
	deadline := time.Now().Add(20 * time.Second)
	for !joined.nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("20 s after the server's process stopped, the joined process is not connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := joined.js.Publish(pctx, pipeline.SubjectNew, []byte(`{}`)); err != nil {
		t.Errorf("publish from the joined process: %v", err)
	}
}

// TestNATSReplicasApplyWhenTheStreamsAreCreated: PAPERPIPE_NATS_REPLICAS is asked of the
// server when the streams are created (this single server refuses 3), and leaves existing
// streams as they are (a process started with another value does not scale them).
func TestNATSReplicasApplyWhenTheStreamsAreCreated(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	c := &config{DataDir: t.TempDir(), Replicas: 3}
	if b, err := connectBroker(ctx, c, log, brokerClient); err == nil || !strings.Contains(err.Error(), "replicas") {
		if err == nil {
			b.close()
		}
		t.Fatalf("connectBroker with 3 replicas on a single server = %v, want the server's refusal", err)
	}
	c.Replicas = 1
	b, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	b.close()
	c.Replicas = 3
	b, err = connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatalf("connectBroker with 3 replicas on existing streams: %v, want them left as they are", err)
	}
	defer b.close()
	s, err := b.js.Stream(ctx, pipeline.StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 1 {
		t.Errorf("%s replicas = %d, want its own 1", pipeline.StreamPapers, r)
	}
}

// TestOnlyWorkersSetTheConsumersAckWait: a running worker holds its messages for the AckWait
// it read at start, so a command that runs no worker (status, dlq, ingest, serve, reprocess),
// started from a shell without PAPERPIPE_ACK_WAIT and PAPERPIPE_MAX_DELIVER, must leave the
// consumer's as the workers set them — set back to 60 s, the server would hand the messages a
// slow worker holds to a second worker, which would pay for them again. A worker applies its
// own: a shorter AckWait and a lower MaxDeliver announced, set once the running workers have
// followed them.
func TestOnlyWorkersSetTheConsumersAckWait(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	workers := newCLI(t, "NATS_URL="+srv.ClientURL(), "PAPERPIPE_ACK_WAIT=10m", "PAPERPIPE_MAX_DELIVER=20")
	workers.ok("ingest", sampleFile) // creates the consumer with the shell's settings
	var meta map[string]string
	consumer := func() (time.Duration, int) {
		t.Helper()
		cons, err := js.Consumer(t.Context(), pipeline.StreamPapers, pipeline.ConsumerNew)
		if err != nil {
			t.Fatal(err)
		}
		cfg := cons.CachedInfo().Config
		meta = cfg.Metadata
		return cfg.AckWait, cfg.MaxDeliver
	}
	if aw, md := consumer(); aw != 10*time.Minute || md != 20 {
		t.Fatalf("the consumer ingest created: AckWait %s, MaxDeliver %d; want the shell's 10m, 20", aw, md)
	}
	// Another shell: the same database and data directory, none of the two settings.
	other := &cli{t: t, env: append(slices.Clone(workers.env[:5]), "NATS_URL="+srv.ClientURL())}
	for _, args := range [][]string{{"status"}, {"dlq", "list"}, {"ingest", sampleFile}} {
		other.ok(args...)
		if aw, md := consumer(); aw != 10*time.Minute || md != 20 {
			t.Fatalf("`paperpipe %s` from another shell set the workers' consumer to AckWait %s, MaxDeliver %d; want 10m, 20",
				strings.Join(args, " "), aw, md)
		}
	}
	other.ok("worker", "--exit-when-idle")
	if aw, md := consumer(); aw != 10*time.Minute || meta["paperpipe_ack_wait"] != "1m0s" || md != 20 || meta["paperpipe_max_deliver"] != "8" {
		t.Errorf("after a worker with the default settings: AckWait %s (announced: %q), MaxDeliver %d (announced: %q); "+
			"want 10m with its 1m announced, 20 with its 8 announced", aw, meta["paperpipe_ack_wait"], md, meta["paperpipe_max_deliver"])
	}
}

// A worker whose PAPERPIPE_ACK_WAIT it would refuse itself (too short for its InProgress
// ticks) must not set the shared consumer's AckWait first: the workers already running hold
// their messages for the AckWait they read at start (1m here, InProgress every 15 s), and with
// the server's at 15ms every message they hold would be handed to another worker, which pays
// for it again; in Kubernetes the refused pod crash-loops and sets it again each time. The
// setting is refused with the others, exit 2, before NATS is reached. So is one below
// pipeline.MinAckWait (4s; 3s here), which a NATS restart would cut short by up to a second.
func TestRefusedAckWaitLeavesTheConsumerAlone(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	good := newCLI(t, "NATS_URL="+srv.ClientURL())
	good.ok("worker", "--exit-when-idle") // creates the consumer: AckWait 1m, as the running workers use
	for _, kv := range []string{"PAPERPIPE_ACK_WAIT=15ms", "PAPERPIPE_ACK_WAIT=999ms", "PAPERPIPE_ACK_WAIT=3s"} {
		bad := &cli{t: t, env: append(slices.Clone(good.env), kv)}
		if r := bad.run("worker", "--exit-when-idle"); r.code != 2 || !strings.Contains(r.stderr, "PAPERPIPE_ACK_WAIT=") {
			t.Fatalf("worker with %s: exit %d, stderr %q; want 2 and the variable named", kv, r.code, r.stderr)
		}
		cons, err := js.Consumer(t.Context(), pipeline.StreamPapers, pipeline.ConsumerNew)
		if err != nil {
			t.Fatal(err)
		}
		if aw := cons.CachedInfo().Config.AckWait; aw != time.Minute {
			t.Errorf("after a worker with %s refused to start, the consumer's AckWait is %s; want the running workers' 1m", kv, aw)
		}
	}
}

// `up` announces the server it is connected to: with NATS_URL unset, a process that joined
// another paperpipe process's embedded server says so (it named NATS_URL, which was unset).
func TestUpNamesTheEmbeddedServerItJoined(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := &config{DataDir: t.TempDir()}
	log := slog.New(slog.DiscardHandler)
	owner, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.close()
	other, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	if got := owner.where(c); got != "embedded, data in "+c.DataDir {
		t.Errorf("the server's own process says %q", got)
	}
	if got := other.where(c); strings.Contains(got, "NATS_URL") || !strings.Contains(got, "run by another paperpipe process") {
		t.Errorf("the process that joined it says %q", got)
	}
	srv := natstest.Start(t)
	withURL := &config{DataDir: t.TempDir(), NATSURL: srv.ClientURL()}
	b, err := connectBroker(ctx, withURL, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	if got := b.where(withURL); got != "NATS_URL" {
		t.Errorf("a process on NATS_URL says %q", got)
	}
}

// The embedded server takes only clients that present its token: any local user or process
// can reach a loopback port, and could otherwise publish papers the workers pay the API for,
// read the queue or delete the streams. The token is in nats.url, readable by its owner only,
// in the data directory, which paperpipe makes private (0700) when it creates it. An existing
// data directory keeps its mode (it may be shared on purpose); the 0644 tokenless nats.url of
// a killed process from before the token is replaced by a private one.
func TestEmbeddedServerTakesOnlyClientsWithItsToken(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := &config{DataDir: t.TempDir()}
	urlFile := filepath.Join(c.DataDir, "nats.url")
	if err := os.Mkdir(filepath.Join(c.DataDir, "nats"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(c.DataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(urlFile, []byte("nats://127.0.0.1:4222\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	owner, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.close()
	fresh := &config{DataDir: filepath.Join(t.TempDir(), "new", "paperpipe")}
	freshOwner, err := connectBroker(ctx, fresh, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	defer freshOwner.close()
	for p, want := range map[string]os.FileMode{c.DataDir: 0o755, filepath.Join(c.DataDir, "nats"): 0o755, urlFile: 0o600,
		fresh.DataDir: 0o700, filepath.Join(fresh.DataDir, "nats"): 0o700, filepath.Join(fresh.DataDir, "nats.url"): 0o600} {
		if fi, err := os.Stat(p); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	raw, err := os.ReadFile(urlFile)
	if err != nil {
		t.Fatal(err)
	}
	withToken, err := url.Parse(strings.TrimSpace(string(raw)))
	if err != nil || withToken.User == nil || len(withToken.User.Username()) < 20 {
		t.Fatalf("nats.url holds %q, want nats://TOKEN@host:port", raw)
	}
	for _, u := range []string{"nats://" + withToken.Host, "nats://WrongToken@" + withToken.Host} {
		if nc, err := nats.Connect(u, nats.NoReconnect()); err == nil {
			nc.Close()
			t.Errorf("a client connected to the embedded server at %s", redact.URL(u))
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("connect to %s: %v, want %v", redact.URL(u), err, nats.ErrAuthorization)
		}
	}
	nc, err := nats.Connect(withToken.String())
	if err != nil {
		t.Fatalf("connect with the token of nats.url: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, pipeline.StreamPapers); err != nil {
		t.Errorf("stream %s with the token: %v", pipeline.StreamPapers, err)
	}
	// Another process of the data directory joins the server with the token.
	other, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	if other.embedded != nil {
		t.Errorf("the second broker runs a server of its own")
	}
}

// The commands' messages do not show the embedded server's token: not in the debug log of the
// process that runs the server, nor in that of one that joins it.
func TestEmbeddedServerTokenIsNotPrinted(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_LOG_LEVEL=debug")
	r := c.ok("status")
	tokens := regexp.MustCompile(`nats://([^@\s"]*)@`)
	if m := tokens.FindAllStringSubmatch(r.stdout+r.stderr, -1); len(m) == 0 {
		t.Errorf("status's debug log names no embedded server:\n%s", r.stderr)
	} else {
		for _, sub := range m {
			if sub[1] != redact.Mask {
				t.Errorf("status's messages show the token %q:\n%s%s", sub[1], r.stdout, r.stderr)
			}
		}
	}

	// A process that joins the server of another.
	var dataDir string
	for _, kv := range c.env {
		if d, ok := strings.CutPrefix(kv, "PAPERPIPE_DATA="); ok {
			dataDir = d
		}
	}
	owner, err := connectBroker(t.Context(), &config{DataDir: dataDir}, slog.New(slog.DiscardHandler), brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.close()
	u, err := url.Parse(owner.embedded.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	r = c.ok("status")
	if !strings.Contains(r.stderr, "using the embedded NATS of another paperpipe process") {
		t.Errorf("status did not join the embedded server of the data directory:\n%s", r.stderr)
	}
	noSecret(t, "status's messages", r.stdout+r.stderr, u.User.Username())
}

// A process that joined the server of a paperpipe from before the token (its nats.url has
// none) connects as before; when that server stops, it does not take it over with a new token,
// which its clients, itself among them, would not know: it says so instead.
func TestServerWithoutTokenIsJoinedButNotTakenOver(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := &config{DataDir: t.TempDir()}
	lock, err := lockDataDir(c.DataDir) // the older process
	if err != nil || lock == nil {
		t.Fatalf("lock: %v, %v", lock, err)
	}
	srv := natstest.Start(t)
	if err := os.WriteFile(filepath.Join(c.DataDir, "nats.url"), []byte(srv.ClientURL()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	b, err := connectBroker(ctx, c, slog.New(slog.NewTextHandler(&logs, nil)), brokerClient)
	if err != nil {
		t.Fatalf("join the server of an older paperpipe: %v", err)
	}
	defer b.close()
	srv.Shutdown()
	srv.WaitForShutdown()
	unlockDataDir(lock)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "could not take over") {
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the older server stopped, no word of it:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "no token") {
		t.Errorf("the log does not say why:\n%s", logs.String())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.embedded != nil {
		t.Errorf("the process runs a server its clients cannot use")
	}
}

// Two paperpipe processes started at once on one data directory (`paperpipe up &` then
// `paperpipe ingest` in a script): the one that finds the lock taken waits for the server's
// address instead of failing on a file not written yet (or reading the last server's).
func TestTwoProcessesStartingAtOnceBothConnect(t *testing.T) {
	t.Parallel()
	for round := range 5 {
		c := &config{DataDir: t.TempDir()}
		log := slog.New(slog.DiscardHandler)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		brokers := make([]*broker, 2)
		for i := range 2 {
			wg.Go(func() { brokers[i], errs[i] = connectBroker(t.Context(), c, log, brokerClient) })
		}
		wg.Wait()
		for i, b := range brokers {
			if b != nil {
				b.close()
			}
			if errs[i] != nil {
				t.Errorf("round %d: process %d: %v", round, i, errs[i])
			}
		}
	}
}

// A command run right after Ctrl-C of the process that runs the embedded server (serve, then
// serve again at once) finds the lock still held while that process shuts the server down:
// it joins the address it reads and fails. It tries again until the lock is free or the next
// server's address is written, and runs the server itself here. (The window is made by
// stopping the server under the lock, as the first steps of broker.close do.)
func TestProcessStartedWhileTheEmbeddedServerStopsRunsItNext(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := &config{DataDir: t.TempDir()}
	log := slog.New(slog.DiscardHandler)
	owner, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	_ = owner.nc.Drain()
	owner.embedded.Shutdown()
	released := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		owner.close()
		close(released)
	}()
	defer func() { <-released }()
	next, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatalf("a process started while the embedded server's process stops: %v", err)
	}
	defer next.close()
	if next.embedded == nil {
		t.Errorf("the process started next does not run the server once the first has stopped")
	}
}

// With NATS_URL unset, a failure to reach the embedded server does not advise unsetting it.
func TestEmbeddedServerErrorsDoNotNameNATSURL(t *testing.T) {
	t.Parallel()
	c := &config{DataDir: t.TempDir()}
	// A lock held by "another process" whose server address answers nothing.
	lock, err := lockDataDir(c.DataDir)
	if err != nil || lock == nil {
		t.Fatalf("lock: %v", err)
	}
	defer unlockDataDir(lock)
	if err := writeURLFile(filepath.Join(c.DataDir, "nats.url"), fmt.Sprintf("nats://token@127.0.0.1:%d", freePort(t))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err = connectBroker(ctx, c, slog.New(slog.DiscardHandler), brokerClient)
	if err == nil || strings.Contains(err.Error(), "NATS_URL") {
		t.Errorf("connectBroker: %v; want an error that does not name NATS_URL", err)
	}
}

// A process that starts the embedded server removes nats.url first and writes it once the
// server runs; when it stops (Ctrl-C during JetStream's recovery, a start error) in between,
// the lock comes free and no address is written. A process waiting for the address notices
// the free lock and runs the server itself (it waited 30 s, then failed with "no such file").
func TestWaitForAnAddressEndsWhenTheStarterStops(t *testing.T) {
	t.Parallel()
	takenOverAfter(t, 200*time.Millisecond, 5*time.Second)
}

// ownerAndJoined connects two brokers on c's data directory: the first runs the embedded
// server (the caller closes it), the second joins it (closed when the test ends).
func ownerAndJoined(t *testing.T, c *config, log *slog.Logger) (owner, joined *broker) {
	t.Helper()
	owner, err := connectBroker(t.Context(), c, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	joined, err = connectBroker(t.Context(), c, log, brokerClient)
	if err != nil {
		owner.close()
		t.Fatal(err)
	}
	t.Cleanup(joined.close)
	return owner, joined
}

// A starter slower than the join retries (JetStream recovering a large store), stopped before it
// wrote its address: the waiting process takes the lock once it is free, however long it
// waited (it gave up with "stopped before it wrote its address" past the 15 s of retries).
func TestAStarterStoppingAfterTheJoinRetriesIsTakenOver(t *testing.T) {
	t.Parallel()
	takenOverAfter(t, joinRetry+time.Second, joinRetry+urlFileWait)
}

// takenOverAfter plays "another process" that took the data directory's lock and removed the
// last address (it is starting the server), then stops after stop without writing one; a
// process started meanwhile must run the server itself within limit.
func takenOverAfter(t *testing.T, stop, limit time.Duration) {
	t.Helper()
	c := &config{DataDir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(c.DataDir, "nats"), 0o700); err != nil {
		t.Fatal(err)
	}
	lock, err := lockDataDir(c.DataDir)
	if err != nil || lock == nil {
		t.Fatalf("lock: %v", err)
	}
	go func() {
		time.Sleep(stop)
		unlockDataDir(lock) // it stopped (Ctrl-C during JetStream's recovery, a start error)
	}()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	b, err := connectBroker(ctx, c, slog.New(slog.DiscardHandler), brokerClient)
	if err != nil {
		t.Fatalf("connectBroker once the starting process stopped (after %s): %v", stop, err)
	}
	defer b.close()
	if b.embedded == nil {
		t.Error("the lock is free but this process does not run the server")
	}
}

// TestMalformedNATSURLIsRefusedAtOnce: a NATS_URL that does not parse (a typo in the port)
// failed as if NATS were down: serve logged "NATS cannot be reached; serving reads and
// connecting in the background" and then exited 1 with the parse error, and worker, ingest and
// up applied the migrations, then exited 1 asking whether a NATS server was running. It is
// refused before anything is reached, as any malformed setting, exit 2 naming NATS_URL, and
// the password it may hold is not shown.
func TestMalformedNATSURLIsRefusedAtOnce(t *testing.T) {
	t.Parallel()
	abstracts := writeLines(t, `{"id":"p1","title":"T","abstract":"A"}`)
	for _, natsURL := range []string{"localhost:4222x", "nats://user:NatsSecret@localhost:4222x", "nats://127.0.0.1:4222, nats://h:42x"} {
		c := newCLI(t, "NATS_URL="+natsURL, "PAPERPIPE_LOG_LEVEL=info")
		for _, args := range [][]string{{"serve", "--http", "127.0.0.1:0"}, {"worker", "--exit-when-idle"}, {"ingest", abstracts}, {"up", "--http", "127.0.0.1:0"}} {
			r := c.run(args...)
			if r.code != 2 || !strings.Contains(r.stderr, "NATS_URL: ") || !strings.Contains(r.stderr, `invalid port ":42`) {
				t.Errorf("NATS_URL=%s paperpipe %s: exit %d, stderr %q; want 2 and NATS_URL's fault named", natsURL, strings.Join(args, " "), r.code, r.stderr)
			}
			for _, no := range []string{"cannot be reached", "applied migration", "NatsSecret", "is a NATS server running"} {
				if strings.Contains(r.stderr, no) {
					t.Errorf("NATS_URL=%s paperpipe %s: stderr says %q: %s", natsURL, strings.Join(args, " "), no, r.stderr)
				}
			}
		}
	}
}

// TestNATSURLNamingNoServerIsRefused: a NATS_URL of only commas or spaces (a template whose
// variables were empty: "$NATS_A,$NATS_B") names no server. nats.go then connected to
// 127.0.0.1:4222, neither the server meant nor the embedded one. It is refused at start, exit
// 2 naming NATS_URL: only an unset (or empty) NATS_URL means the embedded server, and running
// one in its place would give this process a queue of its own that no other process reads.
func TestNATSURLNamingNoServerIsRefused(t *testing.T) {
	t.Parallel()
	abstracts := writeLines(t, `{"id":"p1","title":"T","abstract":"A"}`)
	for _, natsURL := range []string{",", " , ,", "   "} {
		c := newCLI(t, "NATS_URL="+natsURL, "PAPERPIPE_LOG_LEVEL=info")
		for _, args := range [][]string{{"worker", "--exit-when-idle"}, {"ingest", abstracts}} {
			r := c.run(args...)
			if r.code != 2 || !strings.Contains(r.stderr, "NATS_URL: ") || !strings.Contains(r.stderr, "names no server") {
				t.Errorf("NATS_URL=%q paperpipe %s: exit %d, stderr %q; want 2, saying NATS_URL names no server", natsURL, strings.Join(args, " "), r.code, r.stderr)
			}
			for _, no := range []string{"applied migration", "4222"} {
				if strings.Contains(r.stderr, no) {
					t.Errorf("NATS_URL=%q paperpipe %s: stderr says %q: %s", natsURL, strings.Join(args, " "), no, r.stderr)
				}
			}
		}
	}
}

// NATS_URL is read as nats.go reads it — a server without a scheme is nats://, empty entries
// are left out — by the check of its syntax and by the hint of an unreachable one alike:
// `localhost:4222` is this host (the hint offers the embedded server), as `nats://localhost:4222`
// is, and a trailing comma changes nothing.
func TestLoopbackNATSURLsAreReadAsNATSReadsThem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		urls string
		want bool
	}{
		{"nats://localhost:4222", true},
		{"localhost:4222", true},
		{"127.0.0.1:4222, [::1]:4223", true},
		{"nats://127.0.0.1:4222,", true},
		{"user:pw@localhost:4222", true},
		{"nats://nats.example.com:4222", false},
		{"localhost:4222,nats.example.com:4222", false},
		{"10.0.0.5:4222", false},
		{"", false},
		{" , ", false},
	} {
		if got := loopbackURL(tc.urls); got != tc.want {
			t.Errorf("loopbackURL(%q) = %v, want %v", tc.urls, got, tc.want)
		}
	}
}

// TestEmbeddedQueueRefusesAWorkerOfAnotherDatabase: a restored copy of an archive tried out by
// the same user shares the archive's data directory unless PAPERPIPE_DATA says otherwise; its
// worker would take the archive's new papers off the queue and store them in the copy, and the
// archive would never get them. The first worker's database owns the queue: a worker of
// another one is refused, saying what to do, while the archive's own workers (also under
// another host name: a moved server) and the commands that run no worker (ingest, status) go
// on; deleting the file hands the queue over.
func TestEmbeddedQueueRefusesAWorkerOfAnotherDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	archive := &config{DataDir: dir, DatabaseURL: "postgres://paperpipe@127.0.0.1:55432/paperpipe?sslmode=disable"}
	owner, err := connectBroker(ctx, archive, log, newPaperWorkers)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.close()

	copyOf := &config{DataDir: dir, DatabaseURL: "postgres://paperpipe@127.0.0.1:55432/paperpipe_restored?sslmode=disable"}
	if b, err := connectBroker(ctx, copyOf, log, newPaperWorkers); err == nil {
		b.close()
		t.Fatal("a worker of another database joined the archive's queue")
	} else if msg := err.Error(); !strings.Contains(msg, "database paperpipe's") || !strings.Contains(msg, "names database paperpipe_restored") ||
		!strings.Contains(msg, "PAPERPIPE_DATA=DIR") || !strings.Contains(msg, filepath.Join(dir, queueOwnerFile)) {
		t.Errorf("the refusal does not name both databases and the ways out: %v", err)
	}
	schema := &config{DataDir: dir, DatabaseURL: archive.DatabaseURL + "&search_path=other,public"}
	if b, err := connectBroker(ctx, schema, log, newPaperWorkers); err == nil {
		b.close()
		t.Error("a worker of another schema of the database joined the archive's queue")
	}
	for name, c := range map[string]*config{
		"the archive's worker under another host name":  {DataDir: dir, DatabaseURL: "postgres://paperpipe@db.example:5432/paperpipe"},
		"the archive's worker, a URL in key=value form": {DataDir: dir, DatabaseURL: "host=localhost dbname=paperpipe user=paperpipe"},
	} {
		b, err := connectBroker(ctx, c, log, newPaperWorkers)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		b.close()
	}
	// A search_path written with spaces is the same schema's.
	inSchema := t.TempDir()
	if err := claimByURL(inSchema, archive.DatabaseURL+"&search_path=other,public"); err != nil {
		t.Fatal(err)
	}
	if err := claimByURL(inSchema, archive.DatabaseURL+"&search_path=other,%20public"); err != nil {
		t.Errorf("the same schema's worker, its search_path spaced: %v", err)
	}
	client, err := connectBroker(ctx, copyOf, log, brokerClient)
	if err != nil {
		t.Fatalf("a command of the copy that runs no worker: %v", err)
	}
	client.close()

	if err := os.Remove(filepath.Join(dir, queueOwnerFile)); err != nil {
		t.Fatal(err)
	}
	moved, err := connectBroker(ctx, copyOf, log, newPaperWorkers)
	if err != nil {
		t.Fatalf("after the file was deleted, as the refusal says: %v", err)
	}
	moved.close()
	if b, err := connectBroker(ctx, archive, log, newPaperWorkers); err == nil {
		b.close()
		t.Error("after the queue was handed over, a worker of the old database joined it")
	}
}

// The embedded queue's owner is the archive a worker stores papers in, however DATABASE_URL
// names it. A schema chosen the way libpq's tools take it (options=-c search_path=…, which
// pg_dump accepts where pgx's own search_path parameter makes it stop) was not seen: a worker
// of the copy in schema "restored" joined the archive's queue and took its papers. A URL
// without a database name (the server takes the user's) was another archive than the same
// database named: the archive's own worker was refused.
func TestEmbeddedQueueOwnerIsTheArchiveHoweverTheURLNamesIt(t *testing.T) {
	t.Parallel()
	const base = "postgres://paperpipe@127.0.0.1:55432/paperpipe?sslmode=disable"
	for _, tc := range []struct {
		name, first, second string
		same                bool
	}{
		{"a schema by libpq's options", base + "&options=-c%20search_path%3Drestored", base, false},
		{"a schema by options, no space after -c", base, base + "&options=-csearch_path%3Drestored", false},
		{"a schema by options' long form", base, base + "&options=--search-path%3Drestored", false},
		{"one schema by options and by pgx's parameter", base + "&options=-c%20search_path%3Drestored", base + "&search_path=restored", true},
		{"options setting something else", base, base + "&options=-c%20statement_timeout%3D5s", true},
		{"pgx's parameter over options, as the server takes them", base + "&search_path=other&options=-csearch_path%3Drestored", base + "&search_path=other", true},
		{"an escaped space in options", base + "&options=-c%20search_path%3Da%5C%20b", base + "&search_path=a%20b", true},
		{"no database name: the user's", "postgres://paperpipe@127.0.0.1:55432?sslmode=disable", base, true},
		{"no database name, another user's", "postgres://other@127.0.0.1:55432?sslmode=disable", base, false},
	} {
		dir := t.TempDir()
		if err := claimByURL(dir, tc.first); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err := claimByURL(dir, tc.second)
		if tc.same && err != nil {
			t.Errorf("%s: the same archive's worker (%s after %s) refused: %v", tc.name, tc.second, tc.first, err)
		}
		if !tc.same && err == nil {
			t.Errorf("%s: another archive's worker (%s after %s) took the queue", tc.name, tc.second, tc.first)
		}
	}
}

// TestEmbeddedQueueOwnerWhoseNameEndsInASpace: the owner was written as it is and read back
// trimmed, so a database whose name ends in a space (PostgreSQL allows it) refused its own
// worker from the second start on, saying the queue was another database's.
func TestEmbeddedQueueOwnerWhoseNameEndsInASpace(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		if err := claimByURL(dir, "postgres://alice@127.0.0.1:55432/papers%20?sslmode=disable"); err != nil {
			t.Errorf("database \"papers \", its worker again: %v", err)
		}
	}
	if err := claimByURL(dir, "postgres://alice@127.0.0.1:55432/papers?sslmode=disable"); err == nil {
		t.Error("database \"papers\" joined the queue of database \"papers \"")
	}
}

// claimByURL is claimDataDir for the archive databaseURL names as read from the URL alone
// (queueOwner), as connectBroker claims it when no store is open.
func claimByURL(dataDir, databaseURL string) error {
	return claimDataDir(dataDir, queueOwner(databaseURL), databaseURL)
}

// TestDataDirectoryOthersMayWriteToIsRefused: a data directory every user of the machine may
// write to (PAPERPIPE_DATA=/tmp/pp made 0777 or by a umask of 0, or a directory like /tmp
// itself), or one another user owns (made there first by them), was used as it was: another
// user could put a nats.url of their own there — the address and token of their server, which
// ingest then sent the papers to and a worker took papers from — or move the queue's files
// aside and read them. Such a directory is refused, naming it and what to do; one shared
// with a group is not.
func TestDataDirectoryOthersMayWriteToIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	for _, mode := range []os.FileMode{0o777, 0o777 | os.ModeSticky, 0o703} {
		dir := filepath.Join(t.TempDir(), "pp")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		b, err := connectBroker(ctx, &config{DataDir: dir}, log, brokerClient)
		if err == nil {
			b.close()
			t.Errorf("a data directory of mode %s was used", mode)
			continue
		}
		if mode&os.ModeSticky != 0 {
			// A directory every user shares on purpose, as /tmp: `chmod 700 /tmp`, which the
			// message advised (and which root may do), breaks every other user's and service's
			// use of it. A directory of one's own in it is the way.
			want := "mkdir -m 700 " + filepath.Join(dir, "paperpipe-")
			if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, want) || strings.Contains(msg, "chmod") {
				t.Errorf("mode %s: %v\nwant it to name the directory and a directory of one's own in it (%s), and no chmod", mode, err, want)
			}
		} else if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "chmod 700 "+dir) {
			t.Errorf("mode %s: %v\nwant it to name the directory and the chmod", mode, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "nats.url")); err == nil {
			t.Errorf("mode %s: the embedded server ran there", mode)
		}
	}
	shared := filepath.Join(t.TempDir(), "pp")
	if err := os.Mkdir(shared, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o770); err != nil {
		t.Fatal(err)
	}
	b, err := connectBroker(ctx, &config{DataDir: shared}, log, brokerClient)
	if err != nil {
		t.Fatalf("a data directory shared with a group: %v", err)
	}
	b.close()
	if os.Getuid() != 0 {
		return // only root can give a directory to another user
	}
	theirs := filepath.Join(t.TempDir(), "pp")
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if b, err := connectBroker(ctx, &config{DataDir: theirs}, log, brokerClient); err == nil {
		b.close()
		t.Error("a data directory of another user was used")
	} else if !strings.Contains(err.Error(), "belongs to user id 65534") {
		t.Errorf("another user's data directory: %v", err)
	}
}

// TestDataDirectoryOthersCanReplaceIsRefused: a private data directory in a directory every
// user may write to (no sticky bit), or reached through a symbolic link another user made in
// /tmp, passed the data directory's check, which looked at the directory the path led to
// then: that user could rename it, or point their link, to a directory of theirs, with their
// nats.url, after the check or while the server ran. One in a sticky directory such as /tmp,
// under a name of this user's, is used.
func TestDataDirectoryOthersCanReplaceIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	dirIn := func(parentMode os.FileMode) (parent, dir string) {
		parent = t.TempDir()
		if err := os.Chmod(parent, parentMode); err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(parent, "pp")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		return parent, dir
	}

	writable, dir := dirIn(0o777)
	if b, err := connectBroker(ctx, &config{DataDir: dir}, log, brokerClient); err == nil {
		b.close()
		t.Error("a data directory in a directory every user may write to was used")
	} else if !strings.Contains(err.Error(), "every user of this machine may write to "+writable) {
		t.Errorf("a data directory in a directory every user may write to: %v\nwant it to name %s", err, writable)
	}
	if _, err := os.Stat(filepath.Join(dir, "nats.url")); err == nil {
		t.Error("the embedded server ran in a data directory in a directory every user may write to")
	}

	// /tmp: every user may write to it, and rename or remove only their own names there.
	sticky, dir := dirIn(0o777 | os.ModeSticky)
	b, err := connectBroker(ctx, &config{DataDir: dir}, log, brokerClient)
	if err != nil {
		t.Fatalf("a data directory of this user's in a sticky directory: %v", err)
	}
	b.close()
	link := filepath.Join(sticky, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	b, err = connectBroker(ctx, &config{DataDir: link}, log, brokerClient)
	if err != nil {
		t.Fatalf("a data directory through this user's symbolic link in a sticky directory: %v", err)
	}
	b.close()
	if os.Getuid() != 0 {
		return // only root can give a symbolic link to another user
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if b, err := connectBroker(ctx, &config{DataDir: link}, log, brokerClient); err == nil {
		b.close()
		t.Error("a data directory through another user's symbolic link in a sticky directory was used")
	} else if !strings.Contains(err.Error(), link+" belongs to user id 65534") {
		t.Errorf("another user's symbolic link: %v", err)
	}
}

// TestSharedNATSRefusesAWorkerOfAnotherDatabase: the workers of two databases on one NATS_URL
// server shared its stream and consumer, each taking the other's new papers. A worker of
// another database than the one the stream records is refused; its commands that run no
// worker are not.
func TestSharedNATSRefusesAWorkerOfAnotherDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	srv := natstest.Start(t).ClientURL()
	archive := &config{NATSURL: srv, DatabaseURL: "postgres://paperpipe@127.0.0.1:55432/paperpipe?sslmode=disable",
		archive: "database paperpipe (schema public)"}
	owner, err := connectBroker(ctx, archive, log, newPaperWorkers)
	if err != nil {
		t.Fatal(err)
	}
	owner.close()
	copyOf := &config{NATSURL: srv, DatabaseURL: "postgres://paperpipe@127.0.0.1:55432/paperpipe_restored?sslmode=disable",
		archive: "database paperpipe_restored (schema public)"}
	if b, err := connectBroker(ctx, copyOf, log, newPaperWorkers); err == nil {
		b.close()
		t.Fatal("a worker of another database joined the shared NATS server's queue")
	} else if !errors.Is(err, pipeline.ErrOtherArchive) || !strings.Contains(err.Error(), "paperpipe_restored") {
		t.Errorf("the refusal: %v", err)
	}
	client, err := connectBroker(ctx, copyOf, log, brokerClient)
	if err != nil {
		t.Fatalf("a command of the other database that runs no worker: %v", err)
	}
	client.close()
}

// TestNATSURLOfAnotherServiceSaysSo: NATS_URL naming an address where something else listens —
// the NATS server's HTTP monitoring port (8222) instead of its client port, the database's
// port, a port-forward whose server is gone — was reported as "read tcp …: i/o timeout (is
// nats-server running? or unset NATS_URL to use the embedded server)": something did answer
// the connection, and the advice sends the user to start a server that may be running. It says
// that the address accepted the connection and did not speak NATS, and what it may be.
func TestNATSURLOfAnotherServiceSaysSo(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, then waits for its client to speak (HTTP, PostgreSQL)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	banner, err := net.Listen("tcp", "127.0.0.1:0") // greets with something else than NATS's INFO (SSH)
	if err != nil {
		t.Fatal(err)
	}
	defer banner.Close()
	for _, ln := range []net.Listener{silent, banner} {
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				if ln == banner {
					_, _ = io.WriteString(conn, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
				}
				go func() {
					_, _ = io.Copy(io.Discard, conn)
					conn.Close()
				}()
			}
		}()
	}
	for _, ln := range []net.Listener{silent, banner} {
		addr := ln.Addr().String()
		c := newCLI(t, "NATS_URL=nats://"+addr)
		r := c.run("status")
		if r.code != 1 {
			t.Errorf("NATS_URL at %s: status exit %d, want 1; stderr %s", addr, r.code, r.stderr)
		}
		for _, want := range []string{"nats://" + addr, "accepted the connection but did not answer as a NATS server", "8222", "4222"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("NATS_URL at %s: stderr %q; want it to say %q", addr, r.stderr, want)
			}
		}
		if strings.Contains(r.stderr, "is nats-server running") {
			t.Errorf("NATS_URL at %s: stderr %q asks whether a server runs there", addr, r.stderr)
		}
	}
}

// TestNATSSyncSetsHowTheEmbeddedServerSyncsItsFiles: PAPERPIPE_NATS_SYNC=always has the
// embedded server fsync every write before it answers (what is confirmed survives a power
// loss), a duration sets the interval, and unset leaves nats-server's 2 minutes.
func TestNATSSyncSetsHowTheEmbeddedServerSyncsItsFiles(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		env      string
		always   bool
		interval time.Duration
	}{{"", false, 2 * time.Minute}, {"always", true, 2 * time.Minute}, {"10s", false, 10 * time.Second}} {
		t.Setenv("PAPERPIPE_NATS_SYNC", tc.env)
		t.Setenv("PAPERPIPE_DATA", filepath.Join(t.TempDir(), "paperpipe"))
		t.Setenv("NATS_URL", "")
		c := loadConfig()
		b, err := connectBroker(ctx, c, log, brokerClient)
		if err != nil {
			t.Fatal(err)
		}
		if b.embedded == nil {
			t.Fatal("no embedded server started")
		}
		if always, interval := b.embedded.Sync(); always != tc.always || interval != tc.interval {
			t.Errorf("PAPERPIPE_NATS_SYNC=%q: the server syncs always=%v every %s; want always=%v every %s", tc.env, always, interval, tc.always, tc.interval)
		}
		b.close()
	}
	for _, bad := range []string{"sometimes", "0s", "-1m"} {
		if _, _, err := natsSync(bad); err == nil {
			t.Errorf("PAPERPIPE_NATS_SYNC=%q taken; want it refused", bad)
		}
	}
}

// TestStatusAndDLQListReadTheQueueAcrossATakeover: status and `dlq list` joined to another
// process's embedded server (an ingest that ran it) read the queue while that process stops and
// the server is taken over. Their reads met the old server going away, as the setup's did (see
// TestACommandsQueueSetupSurvivesATakeover), and the command failed: "context deadline
// exceeded" after 5 s, or "JetStream not enabled for account" at once. Each round stops the
// server at another moment of the reads.
func TestStatusAndDLQListReadTheQueueAcrossATakeover(t *testing.T) {
	t.Parallel()
	// No reprocess run: status reads nothing of the store.
	duringTakeovers(t, func(round int, _ *config, joined *broker) {
		q, err := readQueueStatus(t.Context(), nil, joined)
		if err != nil {
			t.Fatalf("round %d: status's read of the queue while the embedded server is taken over: %v", round, err)
		}
		if q.workersErr != nil {
			t.Fatalf("round %d: status's read of the workers while the embedded server is taken over: %v", round, q.workersErr)
		}
		if _, err := listDeadLetters(t.Context(), joined, 10, false, 0); err != nil {
			t.Fatalf("round %d: dlq list while the embedded server is taken over: %v", round, err)
		}
	})
}

// duringTakeovers runs step over and over on a process joined to another's embedded server,
// in three rounds that each stop that server at another moment, until the joined process runs
// the server and one more step has gone through on it.
func duringTakeovers(t *testing.T, step func(round int, c *config, joined *broker)) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	for round := range 3 {
		c := &config{DataDir: t.TempDir()}
		owner, joined := ownerAndJoined(t, c, log)
		go func() {
			time.Sleep(time.Duration(round) * 5 * time.Millisecond)
			owner.close()
		}()
		for took := false; !took; {
			joined.mu.Lock()
			took = joined.embedded != nil
			joined.mu.Unlock()
			step(round, c, joined)
		}
	}
}

// TestACommandsQueueSetupSurvivesATakeover: a command joined to another process's embedded
// server (a reprocess run started beside a `status` that ran the server) sets its queue up
// while that process stops and the server is taken over. Its requests met the old server going
// away — "JetStream not enabled for account" at once, or no answer and "context deadline
// exceeded" after 5 s — and the run failed, in every round, while its connection went on to
// the new server. Each round stops the server at another moment of the setups.
func TestACommandsQueueSetupSurvivesATakeover(t *testing.T) {
	t.Parallel()
	target := pipeline.NewReprocessTarget(paper.Work{Model: "m", PromptVersion: "v1"}, "")
	duringTakeovers(t, func(round int, c *config, joined *broker) {
		if err := joined.setUpReprocess(t.Context(), c, target, "reprocess"); err != nil {
			t.Fatalf("round %d: a reprocess run's setup while the embedded server is taken over: %v", round, err)
		}
	})
}
