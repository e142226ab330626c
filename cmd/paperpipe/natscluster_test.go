package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/pipeline"
)

// TestClientOfASilentClusterServerMovesToAnother: on a JetStream cluster, NATS_URL names one
// server (a Service, a first pod) and the process learns the others from it. When that server
// stops answering without closing the connection (frozen, cut off by a partition, its node
// gone), the other two keep the R3 queue going, and the process must go over to them soon:
// with nats.go's defaults it noticed only after three unanswered pings two minutes apart, and
// its workers sat idle for up to six minutes, every request timing out.
func TestClientOfASilentClusterServerMovesToAnother(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-server cluster and a silent connection: ~30 s")
	}
	t.Parallel()
	servers := natstest.StartCluster(t)
	p := nettest.StartProxy(t, servers[0].Addr().String())
	c := &config{NATSURL: "nats://" + p.Addr(), DataDir: t.TempDir(), Replicas: 3}
	b, err := connectBroker(t.Context(), c, slog.New(slog.DiscardHandler), newPaperWorkers)
	if err != nil {
		t.Fatalf("connect to one server of the cluster, streams of 3 replicas: %v", err)
	}
	defer b.close()
	streamReplicas := func() (int, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		s, err := b.js.Stream(ctx, pipeline.StreamPapers)
		if err != nil {
			return 0, err
		}
		return s.CachedInfo().Config.Replicas, nil
	}
	if r, err := streamReplicas(); err != nil || r != 3 {
		t.Fatalf("%s: %d replicas, %v; want 3", pipeline.StreamPapers, r, err)
	}

	p.Freeze(true) // the server the process is connected to goes silent
	t.Cleanup(func() { p.Freeze(false) })
	start := time.Now()
	bound := 2 * natsStaleAfter
	for {
		_, err := streamReplicas()
		if err == nil && b.nc.ConnectedAddr() != p.Addr() {
			t.Logf("answered by %s %v after the server went silent", b.nc.ConnectedAddr(), time.Since(start).Round(time.Second))
			return
		}
		if time.Since(start) > bound {
			t.Fatalf("still no answer from JetStream %v after the server went silent (connected to %s, the silent one %s): %v",
				bound, b.nc.ConnectedAddr(), p.Addr(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterWithoutAMajoritySaysSo: with two of a three-server cluster down, no stream and no
// JetStream API request has a leader to answer it. A command started then failed with
// "context deadline exceeded (is JetStream enabled on …?)" — it is, on every server — or a bare
// "JetStream system temporarily unavailable": neither said why, nor that it passes once a
// majority of the servers is back.
func TestClusterWithoutAMajoritySaysSo(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-server cluster, two of them stopped: ~15 s")
	}
	t.Parallel()
	servers := natstest.StartCluster(t)
	c := &config{NATSURL: servers[0].ClientURL(), DataDir: t.TempDir(), Replicas: 3}
	log := slog.New(slog.DiscardHandler)
	b, err := connectBroker(t.Context(), c, log, newPaperWorkers)
	if err != nil {
		t.Fatal(err)
	}
	b.close()
	for _, s := range servers[1:] {
		s.Shutdown()
		s.WaitForShutdown()
	}
	// Until the remaining server notices (seconds), it may still answer from what it knows.
	deadline := time.Now().Add(30 * time.Second)
	for _, role := range []brokerRole{brokerClient, newPaperWorkers} {
		b, err := connectBroker(t.Context(), c, log, role)
		for err == nil {
			b.close()
			if time.Now().After(deadline) {
				t.Fatalf("role %d: still connects 30 s after two servers of three stopped", role)
			}
			time.Sleep(200 * time.Millisecond)
			b, err = connectBroker(t.Context(), c, log, role)
		}
		if msg := err.Error(); !strings.Contains(msg, "majority") || strings.Contains(msg, "is JetStream enabled") {
			t.Errorf("role %d: %v\nwant it to say that a majority of the cluster's servers is not up", role, err)
		} else {
			t.Logf("role %d: %v", role, err)
		}
	}
}
