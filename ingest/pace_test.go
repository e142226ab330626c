package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// arXiv's API terms ask for one request every three seconds to export.arxiv.org; `paperpipe
// ingest URL1 URL2 …` (the pages of a query, start=0, start=100, …) fetched them back to
// back, some milliseconds apart. Requests to a paced host now wait out the three seconds since
// the previous one ended; another host's (rss.arxiv.org's, a test server's) do not wait. The
// clock and the wait are the package's hooks (paceNow, newWaitTimer): nothing here times the
// wall clock. Not parallel: it replaces them and pacedHosts.
func TestOpenURLKeepsArXivAPIPace(t *testing.T) {
	feed, err := os.ReadFile("testdata/atom.xml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		clock    = time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
		waits    []time.Duration
		requests []time.Time // by the fake clock
		agents   []string
	)
	handler := func(refuseFirst bool) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			requests = append(requests, clock)
			agents = append(agents, req.UserAgent())
			n := len(requests)
			mu.Unlock()
			if refuseFirst && n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Write(feed)
		})
	}
	paced := httptest.NewServer(handler(false))
	defer paced.Close()
	other := httptest.NewServer(handler(false))
	defer other.Close()
	refusing := httptest.NewServer(handler(true))
	defer refusing.Close()
	host := func(s *httptest.Server) string { u, _ := url.Parse(s.URL); return u.Host }

	savedHosts, savedNow, savedTimer := pacedHosts, paceNow, newWaitTimer
	defer func() { pacedHosts, paceNow, newWaitTimer = savedHosts, savedNow, savedTimer }()
	pacedHosts = map[string]time.Duration{host(paced): 3 * time.Second, host(refusing): 3 * time.Second}
	paceNow = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	newWaitTimer = func(d time.Duration) *time.Timer {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		clock = clock.Add(d) // the wait is over at once, and the clock says it lasted d
		return time.NewTimer(0)
	}
	open := func(u string) {
		t.Helper()
		r, c, err := Open(u, Options{})
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		readAll(t, r)
		c.Close()
	}
	reset := func() { mu.Lock(); waits, requests = nil, nil; mu.Unlock() }

	// Three pages of a query, as `paperpipe ingest` reads them: one after the other.
	for start := 0; start < 300; start += 100 {
		open(fmt.Sprintf("%s/api/query?search_query=cat:cs.LG&start=%d", paced.URL, start))
	}
	for i := 1; i < len(requests); i++ {
		if gap := requests[i].Sub(requests[i-1]); gap < 3*time.Second {
			t.Errorf("paced host: request %d came %s after the one before; want at least 3s (waits %v)", i+1, gap, waits)
		}
	}
	if len(requests) != 3 || !slices.Equal(waits, []time.Duration{3 * time.Second, 3 * time.Second}) {
		t.Errorf("paced host: %d requests, waits %v; want 3, waiting 3s before the second and the third", len(requests), waits)
	}

	// Another host is not paced.
	reset()
	open(other.URL + "/rss/cs.LG")
	open(other.URL + "/rss/cs.AI")
	if len(waits) != 0 {
		t.Errorf("another host: waits %v, want none", waits)
	}

	// A refusal with Retry-After: 1 is a request too: the one asked again comes three seconds after it.
	reset()
	open(refusing.URL + "/api/query?id_list=2401.01234")
	if len(requests) != 2 || requests[1].Sub(requests[0]) != 3*time.Second {
		t.Errorf("after a Retry-After of 1s: requests at %v (waits %v); want 2, 3s apart", requests, waits)
	}

	// Ctrl-C ends the wait for the pace at once, saying what it waited for.
	open(paced.URL + "/api/query?start=300")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	newWaitTimer = func(d time.Duration) *time.Timer {
		cancel() // Ctrl-C as the wait starts
		return time.NewTimer(d)
	}
	_, _, err = OpenContext(ctx, paced.URL+"/api/query?start=400", Options{})
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting 3s after the previous request to 127.0.0.1") {
		t.Errorf("Ctrl-C during the pace's wait: error %v, want the wait named, ended by the context", err)
	}

	// arXiv asks for a User-Agent that names the client.
	for _, a := range agents {
		if a != "paperpipe-ingest/1" {
			t.Errorf("User-Agent %q, want paperpipe-ingest/1", a)
		}
	}
}

// The hosts paced are arXiv's API (and OAI-PMH) host, by its name whatever its case or port;
// its announcement feeds' host, rss.arxiv.org, gives no such rule.
func TestPacedHosts(t *testing.T) {
	t.Parallel()
	for u, want := range map[string]time.Duration{
		"http://export.arxiv.org/api/query?search_query=all:llm":  3 * time.Second,
		"https://EXPORT.arxiv.org:443/oai2?verb=ListRecords":      3 * time.Second,
		"https://rss.arxiv.org/rss/cs.LG":                         0,
		"https://arxiv.org.example.com/api/query":                 0,
		"https://huggingface.co/api/daily_papers?date=2026-12-04": 0,
	} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if got := newPacer(req.URL).gap; got != want {
			t.Errorf("%s: paced by %s, want %s", u, got, want)
		}
	}
}
