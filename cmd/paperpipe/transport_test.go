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
	ts, opened := countingServer(t, fake.Handler())

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

// streamedAnswers sends h's answers as a server or proxy that streams them does: chunked,
// without a Content-Length, the end of the body (the last, empty chunk) after the answer's
// bytes.
func streamedAnswers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(streamingWriter{w}, r)
	})
}

type streamingWriter struct{ http.ResponseWriter }

func (w streamingWriter) WriteHeader(code int) {
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(code)
}

func (w streamingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.ResponseWriter.(http.Flusher).Flush()
	return n, err
}

// go-openai stops reading an answer at the end of its JSON and closes the body; net/http drops
// a connection whose body was closed before its end, so an API answering chunked and
// uncompressed (a Go server whose handler sets no Content-Length sends embeddings so) cost a
// new connection per request until llm.Transport read the few bytes left on Close.
func TestModelClientsReuseConnectionsOfChunkedAnswers(t *testing.T) {
	t.Parallel()
	for _, encoding := range []string{"base64", "float"} {
		t.Run(encoding, func(t *testing.T) {
			t.Parallel()
			ts, opened := countingServer(t, streamedAnswers(openaitest.New(openaitest.Config{}).Handler()))

			c := loadConfig()
			c.BaseURL, c.APIKey, c.ChatModel, c.EmbedModel, c.EmbedDims = ts.URL+"/v1", "sk-test", "gpt-4o-mini", "text-embedding-3-small", 1536
			c.EmbedEncoding, c.LogLevel = encoding, "error"
			m, err := buildModels(t.Context(), c, newLogger(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			const requests = 10
			var batch []paper.Abstract
			for i := range 50 {
				batch = append(batch, paper.Abstract{ID: fmt.Sprintf("chunked:%d", i), Title: "Chunked answers",
					Abstract: fmt.Sprintf("Answer %d arrives in chunks. The connection stays open.", i)})
			}
			for range requests {
				if _, err := m.sum.Summarize(t.Context(), batch[0]); err != nil {
					t.Fatal(err)
				}
				if _, _, err := m.emb.Embed(t.Context(), batch); err != nil {
					t.Fatal(err)
				}
			}
			// One connection; one more is allowed, since a connection goes back to the pool a
			// moment after its response was read, and the next request may start first.
			if n := opened.Load(); n > 2 {
				t.Errorf("%d sequential TL;DR and %d embedding requests opened %d connections, want 1", requests, requests, n)
			}
		})
	}
}

// countingServer serves h and counts the connections it accepts.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	opened := new(atomic.Int64)
	ts := httptest.NewUnstartedServer(h)
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, opened
}
