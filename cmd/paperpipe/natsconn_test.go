package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

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
	owner, err := connectBroker(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}
	other, err := connectBroker(ctx, c, log)
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
	if b, err := connectBroker(ctx, c, log); err == nil || !strings.Contains(err.Error(), "replicas") {
		if err == nil {
			b.close()
		}
		t.Fatalf("connectBroker with 3 replicas on a single server = %v, want the server's refusal", err)
	}
	c.Replicas = 1
	b, err := connectBroker(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}
	b.close()
	c.Replicas = 3
	b, err = connectBroker(ctx, c, log)
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
