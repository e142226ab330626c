package web_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/store"
)

// A database that is down (restarting, failing over) made every read answer 500 "internal
// error", logged as an ERROR per request: a client or a load balancer took it for a fault of the
// server rather than a state to wait out. The reads answer 503, saying the database is
// unavailable, with a Retry-After, and answer again once it is back.
func TestReadsWhileTheDatabaseIsDownAnswer503WithRetryAfter(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	sample := sampledata.Papers(t)
	b.publish(sample)
	b.process()
	p, via := nettest.ProxyURL(t, b.url)
	cfg := b.config()
	cfg.Store = openTestStore(t, store.Config{URL: via})
	b.serve(cfg)
	id := url.PathEscape(idOf(t, sample, "Mixture"))
	paths := []string{
		"/api/papers",
		"/api/papers/" + id,
		"/api/papers/" + id + "/related",
		"/api/search?q=mixture+of+experts&mode=keyword",
		"/api/search?q=mixture+of+experts&mode=semantic",
	}
	for _, path := range paths {
		if r := b.get(path); r.code != http.StatusOK {
			t.Fatalf("GET %s with the database up: %d %s", path, r.code, r.body)
		}
	}
	p.Refuse()
	for _, path := range append(paths, "/") {
		r := b.get(path, "Accept", "application/json")
		if path == "/" {
			r = b.get(path, "Accept", "text/html")
			if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "database is unavailable") {
				t.Errorf("GET / with the database down: %d, want 503 saying the database is unavailable; body %.300s", r.code, r.body)
			}
		} else if msg := wantError(t, "GET "+path+" with the database down", r, http.StatusServiceUnavailable); !strings.Contains(msg, "database is unavailable") {
			t.Errorf("GET %s with the database down says %q, want that the database is unavailable", path, msg)
		}
		if ra := r.header.Get("Retry-After"); ra != "10" {
			t.Errorf("GET %s with the database down: Retry-After %q, want 10", path, ra)
		}
	}
	p.Accept()
	for _, path := range paths {
		if r := b.get(path); r.code != http.StatusOK {
			t.Errorf("GET %s once the database is back: %d %s", path, r.code, r.body)
		}
	}
}

// TestPageOfASilentDatabaseAnswersWithinThePageTimeout: a database that accepts connections and
// answers nothing (a failover to another host, a dropped flow) held a page for the request's
// whole time, 59 s, before "took too long": a reader is gone by then, and a load balancer that
// times out at a minute answers its own 504 first. A page answers 503 at its PageTimeout.
func TestPageOfASilentDatabaseAnswersWithinThePageTimeout(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:3])
	b.process()
	p, via := nettest.ProxyURL(t, b.url)
	cfg := b.config()
	cfg.Store = openTestStore(t, store.Config{URL: via})
	cfg.WriteTimeout = 10 * time.Minute // the request's bound, which the page's is below
	cfg.PageTimeout = 2 * time.Second
	b.serve(cfg)
	if r := b.get("/"); r.code != http.StatusOK {
		t.Fatalf("GET / with the database answering: %d", r.code)
	}
	p.Freeze(true)
	defer p.Freeze(false)
	for _, path := range []string{"/", "/search?q=experts&mode=keyword", "/map"} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.http.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("GET %s with the database silent: no answer within a minute (%v), want 503 after the 2 s PageTimeout", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "try again") {
			t.Errorf("GET %s with the database silent: %d, want 503 saying to try again; body %.300s", path, resp.StatusCode, body)
		}
	}
}
