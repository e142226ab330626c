package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

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
