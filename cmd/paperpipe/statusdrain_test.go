package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
)

// During PAPERPIPE_SHUTDOWN_DELAY serve goes on serving every request, /readyz aside (a load
// balancer still routes some to it): the status page and GET /api/status among them. Their
// counts ran on serve's context, done at the stop: every status request of the delay answered
// with an error (context canceled).
func TestStatusIsServedDuringTheShutdownDelay(t *testing.T) {
	t.Parallel()
	c := loadConfig()
	c.DatabaseURL, c.NATSURL, c.DataDir = pgtest.URL(t), natstest.Start(t).ClientURL(), t.TempDir()
	c.BaseURL, c.APIKey, c.ChatModel, c.EmbedModel = "", "", offline, offline
	c.LogLevel, c.ShutdownDelay = "error", 5*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.HTTPAddr = ln.Addr().String()
	ln.Close()
	log := newLogger(c)
	ctx := t.Context()
	st, err := openStore(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := connectBroker(ctx, c, log, newPaperWorkers)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	m, err := buildModels(ctx, c, log, st)
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- serveHTTP(serveCtx, c, log, st, st, b, m, "serve") }()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + c.HTTPAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	wait := func(path string, want int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if code, _ := get(path); code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s never answered %d", path, want)
			}
		}
	}
	wait("/readyz", http.StatusOK)
	if code, body := get("/api/status"); code != http.StatusOK {
		t.Fatalf("GET /api/status before the stop: %d %s", code, body)
	}
	stop()
	wait("/readyz", http.StatusServiceUnavailable) // the shutdown delay has begun
	if code, body := get("/api/status"); code != http.StatusOK {
		t.Errorf("GET /api/status during the shutdown delay: %d %s; want 200, as every request but /readyz", code, body)
	}
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
