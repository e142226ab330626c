package main

import (
	"context"
	"log/slog"
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
