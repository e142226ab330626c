package main

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/natstest"
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
	owner, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		t.Fatal(err)
	}
	other, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		owner.close()
		t.Fatal(err)
	}
	defer other.close()
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
// own.
func TestOnlyWorkersSetTheConsumersAckWait(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	workers := newCLI(t, "NATS_URL="+srv.ClientURL(), "PAPERPIPE_ACK_WAIT=10m", "PAPERPIPE_MAX_DELIVER=20")
	workers.ok("ingest", sampleFile) // creates the consumer with the shell's settings
	consumer := func() (time.Duration, int) {
		t.Helper()
		cons, err := js.Consumer(t.Context(), pipeline.StreamPapers, pipeline.ConsumerNew)
		if err != nil {
			t.Fatal(err)
		}
		cfg := cons.CachedInfo().Config
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
	if aw, md := consumer(); aw != time.Minute || md != 8 {
		t.Errorf("after a worker with the default settings: AckWait %s, MaxDeliver %d; want its 1m, 8", aw, md)
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
