package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
)

// The model clients keep a connection for each request a worker may have in flight: waves of
// Concurrency TL;DR requests reuse the first wave's connections instead of opening new ones
// (http.DefaultTransport keeps 2 per host: 16 requests a wave would open ~14 new connections
// each time, a TCP and TLS handshake each against a remote API).
func TestModelClientsReuseTheirConnections(t *testing.T) {
	t.Parallel()
	fake := openaitest.New(openaitest.Config{ChatLatency: 20 * time.Millisecond})
	var opened atomic.Int64
	ts := httptest.NewUnstartedServer(fake.Handler())
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)

	c := loadConfig()
	c.BaseURL, c.APIKey, c.ChatModel, c.EmbedModel, c.EmbedDims = ts.URL+"/v1", "sk-test", "gpt-4o-mini", "text-embedding-3-small", 64
	c.Concurrency, c.LogLevel = 16, "error"
	m, err := buildModels(t.Context(), c, newLogger(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	const waves = 3
	for wave := range waves {
		var wg sync.WaitGroup
		for i := range c.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := paper.Abstract{ID: fmt.Sprintf("conn:%d-%d", wave, i), Title: "Reusing connections",
					Abstract: "We reuse connections. Handshakes cost time."}
				if _, err := m.sum.Summarize(t.Context(), a); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	if _, _, err := m.emb.Embed(t.Context(), []paper.Abstract{{ID: "conn:e", Title: "T", Abstract: "A."}}); err != nil {
		t.Fatal(err)
	}
	// One per request of the first wave; a few more are allowed, since a connection goes back
	// to the pool a moment after its response was read, and the next wave may start first.
	if n, most := opened.Load(), int64(c.Concurrency+c.Concurrency/2); n > most {
		t.Errorf("%d waves of %d requests and an embedding request opened %d connections, want at most %d",
			waves, c.Concurrency, n, most)
	}
}
