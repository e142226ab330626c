package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
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

	keepPaceHooks(t)
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

// The pace was each process's own: two cron jobs reading arXiv's API at the same minute, or
// `ingest` beside a `summarize` of another query, each waited three seconds between its own
// requests, and together asked arXiv more often than once in three seconds. Given a PaceDir
// (PAPERPIPE_DATA), the processes share it through a file per host, pace-HOST, holding the
// earliest time the next request may start, locked while it is read and written: a request
// reserves its turn there, and its end pushes the next one three seconds after it. Another
// process is stood for by the file, written and locked here. Not parallel: it replaces the
// package's hooks.
func TestOpenURLSharesArXivPaceAcrossProcesses(t *testing.T) {
	feed, err := os.ReadFile("testdata/atom.xml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		clock     = time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
		waits     []time.Duration
		requests  []time.Time
		onRequest func() // called (mu held) as a request is answered, when set
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests = append(requests, clock)
		if onRequest != nil {
			onRequest()
		}
		mu.Unlock()
		w.Write(feed)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	dir := t.TempDir()
	file := filepath.Join(dir, "pace-"+strings.ReplaceAll(u.Host, ":", "_"))

	keepPaceHooks(t)
	pacedHosts = map[string]time.Duration{u.Host: 3 * time.Second}
	paceNow = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	newWaitTimer = func(d time.Duration) *time.Timer {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		clock = clock.Add(d)
		return time.NewTimer(0)
	}
	open := func(q, paceDir string) {
		t.Helper()
		r, c, err := Open(srv.URL+"/api/query?"+q, Options{PaceDir: paceDir})
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, r)
		c.Close()
	}
	stamp := func(at time.Time) {
		t.Helper()
		if err := os.WriteFile(file, []byte(at.Format(time.RFC3339Nano)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	later := func() { // this process's own pace is long kept
		mu.Lock()
		clock = clock.Add(time.Hour)
		waits, requests = nil, nil
		mu.Unlock()
	}

	// Another process's request ended a second ago: this one waits the two seconds left.
	stamp(clock.Add(2 * time.Second))
	open("start=0", dir)
	if !slices.Equal(waits, []time.Duration{2 * time.Second}) || len(requests) != 1 {
		t.Errorf("after another process's request a second ago: waits %v, %d requests; want one, after 2s", waits, len(requests))
	}
	// And this one's end is what the next process reads: three seconds after it.
	if b, err := os.ReadFile(file); err != nil || string(b) != clock.Add(3*time.Second).Format(time.RFC3339Nano) {
		t.Errorf("the file holds %q (%v), want three seconds after this request's end, %s", b, err, clock.Add(3*time.Second).Format(time.RFC3339Nano))
	}

	// Another process is reserving its turn (it holds the lock): this one waits for it, and
	// then for the turn after the other's.
	later()
	other, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	polls := 0
	lockPoll = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		polls++
		// The other process reserves now, and its request may start at once: this one's turn
		// is three seconds later.
		if err := other.Truncate(0); err != nil {
			t.Error(err)
		}
		other.WriteAt([]byte(clock.Add(3*time.Second).Format(time.RFC3339Nano)), 0)
		syscall.Flock(int(other.Fd()), syscall.LOCK_UN)
		return nil
	}
	open("start=100", dir)
	if polls != 1 || len(requests) != 1 || !slices.Equal(waits, []time.Duration{3 * time.Second}) {
		t.Errorf("after another process's reservation: %d polls, %d requests, waits %v; want 1 poll, then 3s, then the request", polls, len(requests), waits)
	}

	// A lock never released (a process stopped while it held it) is given up after lockPolls
	// tries: the pace is then this process's own, not a hang.
	later()
	stamp(clock.Add(3 * time.Second))
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	polls = 0
	lockPoll = func(context.Context) error { polls++; return nil }
	open("start=200", dir)
	syscall.Flock(int(other.Fd()), syscall.LOCK_UN)
	if polls != 2*(lockPolls-1) || len(requests) != 1 || len(waits) != 0 {
		t.Errorf("a lock never released: %d polls, %d requests, waits %v; want %d polls (before the request and after it), the request at once",
			polls, len(requests), waits, 2*(lockPolls-1))
	}

	// A time further ahead than a request under way and a Retry-After held make it is a clock
	// set back since it was written: the request is made at once, not a day later.
	later()
	stamp(clock.Add(24 * time.Hour))
	open("start=250", dir)
	if len(waits) != 0 || len(requests) != 1 {
		t.Errorf("after a clock set back a day: waits %v, %d requests; want the request at once", waits, len(requests))
	}

	// Another process reserved the host while this one's request was under way (this one's
	// reservation over: a download of minutes): this one's end does not shorten the other's turn.
	later()
	stamp(clock)
	var otherTurn time.Time
	onRequest = func() {
		clock = clock.Add(paceUnderWay + 10*time.Second) // the answer comes after this one's reservation ended
		otherTurn = clock.Add(paceUnderWay)              // and the other process reserved its turn
		stamp(otherTurn)
	}
	open("start=260", dir)
	onRequest = nil
	if b, err := os.ReadFile(file); err != nil || string(b) != otherTurn.Format(time.RFC3339Nano) {
		t.Errorf("the file holds %q (%v) after this request's end; want the other process's reservation, %s", b, err, otherTurn.Format(time.RFC3339Nano))
	}

	// A link planted at the file's name is not followed: the file it names is not written.
	later()
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, file); err != nil {
		t.Fatal(err)
	}
	open("start=270", dir)
	if b, err := os.ReadFile(target); err != nil || string(b) != "keep" {
		t.Errorf("the file a link at %s names holds %q (%v), want it untouched", file, b, err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}

	// Without a PaceDir (or with one that does not exist) the pace is the process's own.
	later()
	stamp(clock.Add(3 * time.Second))
	open("start=300", filepath.Join(dir, "missing"))
	open("start=400", "")
	if len(waits) != 1 || waits[0] != 3*time.Second {
		t.Errorf("without a shared pace: waits %v, want only this process's 3s between its two requests", waits)
	}
}

func TestOpenURLPaceCountsFromTheEndOfTheAnswer(t *testing.T) {
	feed, err := os.ReadFile("testdata/atom.xml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		clock    = time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
		requests []time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests = append(requests, clock)
		clock = clock.Add(2 * time.Second) // the answer takes two seconds
		mu.Unlock()
		switch req.URL.Path {
		case "/refused":
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/dropped":
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		default:
			w.Write(feed)
		}
	}))
	defer srv.Close()
	srv.Config.SetKeepAlivesEnabled(false) // a new connection for each: the client asks again on a reused one that drops
	u, _ := url.Parse(srv.URL)
	keepPaceHooks(t)
	pacedHosts = map[string]time.Duration{u.Host: 3 * time.Second}
	paceNow = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	newWaitTimer = func(d time.Duration) *time.Timer {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(d)
		return time.NewTimer(0)
	}
	for _, path := range []string{"/ok", "/refused", "/dropped", "/ok"} {
		r, c, err := Open(srv.URL+path, Options{})
		if err == nil {
			readAll(t, r)
			c.Close()
		}
	}
	if len(requests) != 4 {
		t.Fatalf("%d requests, want 4", len(requests))
	}
	for i, after := range []string{"a feed read", "a refusal", "a dropped connection"} {
		if gap := requests[i+1].Sub(requests[i]); gap != 5*time.Second {
			t.Errorf("after %s: the next request came %s after it began; want 5s (2s of answer and 3s of pace)", after, gap)
		}
	}
}

func TestPacerReservesTheHostForRequestsMadeMeanwhile(t *testing.T) {
	var (
		clock = time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
		waits []time.Duration
	)
	keepPaceHooks(t)
	paceNow = func() time.Time { return clock }
	newWaitTimer = func(d time.Duration) *time.Timer { waits = append(waits, d); return time.NewTimer(0) }
	p := pacer{key: "pacer-test.invalid:1", gap: 3 * time.Second}
	ctx := t.Context()
	for range 2 { // a request, and one made while it is under way: the second waits its turn
		if err := p.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(time.Second)
	p.done() // the first ends; the second still holds the host until 3s+3s
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []time.Duration{3 * time.Second, 5 * time.Second}; !slices.Equal(waits, want) {
		t.Errorf("waits %v; want %v (the second request 3s after the first, the third 3s after the second)", waits, want)
	}
}

// A Retry-After that arXiv asks of one process is a wait for every process sharing the pace:
// it answers so a client that asks too often, and the pace file is where the processes given
// one PAPERPIPE_DATA keep to its terms together. The file held only the refusal's end plus
// three seconds: while the refused command waited the 20 s asked, another (a cron job at the
// same minute) asked again 3 s after the refusal, and was refused in turn. Another process is
// stood for by a request made during the refused one's wait with this process's own pace
// forgotten. Not parallel: it replaces the package's hooks.
//
// Another request of the same process, without a shared pace, waits the Retry-After too.
func TestOpenURLSharedPaceKeepsARetryAfter(t *testing.T) {
	for _, shared := range []bool{true, false} {
		paceKeepsARetryAfter(t, shared)
	}
}

func paceKeepsARetryAfter(t *testing.T, shared bool) {
	const retryAfter = 20 * time.Second
	feed, err := os.ReadFile("testdata/atom.xml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		clock    = time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
		requests []time.Time
		refused  time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests = append(requests, clock)
		first := len(requests) == 1
		if first {
			refused = clock
		}
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "20")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write(feed)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	dir := ""
	if shared {
		dir = t.TempDir()
	}

	keepPaceHooks(t)
	pacedHosts = map[string]time.Duration{u.Host: 3 * time.Second}
	paceNow = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	var other []time.Time // the other process's request (or this one's other request)
	otherRan := false
	newWaitTimer = func(d time.Duration) *time.Timer {
		mu.Lock()
		run := d == retryAfter && !otherRan
		otherRan = otherRan || run
		mu.Unlock()
		if run {
			// The other process asks while this one waits the Retry-After: its own pace
			// knows nothing of this one's requests, the file all.
			paceMu.Lock()
			mine := paceNext[u.Host]
			if shared {
				delete(paceNext, u.Host)
			}
			paceMu.Unlock()
			r, c, err := Open(srv.URL+"/api/query?start=100", Options{PaceDir: dir})
			if err != nil {
				t.Error(err)
			} else {
				readAll(t, r)
				c.Close()
			}
			mu.Lock()
			other = append(other, requests[len(requests)-1])
			mu.Unlock()
			paceMu.Lock()
			paceNext[u.Host] = mine
			paceMu.Unlock()
		}
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(d)
		return time.NewTimer(0)
	}
	r, c, err := Open(srv.URL+"/api/query?start=0", Options{PaceDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, r)
	c.Close()
	if !otherRan || len(other) != 1 {
		t.Fatalf("the Retry-After was not waited (the other process did not run): requests at %v", requests)
	}
	if got := other[0].Sub(refused); got < retryAfter {
		t.Errorf("another request (shared pace: %v) asked %s after a refusal whose Retry-After was 20s", shared, got)
	}
}

// arXiv's terms ask for a single connection at a time, and the README promises the shared
// pace keeps requests one at a time, each three seconds after the previous one ended. A
// request's turn in the pace file was three seconds after its start: a command whose answer
// took longer (an API query of a thousand results takes seconds to come) had another process
// connect while it was still reading — two connections at once. Here another process's
// request is under way (its answer not yet read) for 20 s when this one asks: this one's
// request comes three seconds after that answer was read, not during it. Another process is
// stood for by a request made with this process's own pace forgotten. Not parallel: it
// replaces the package's hooks.
func TestOpenURLSharedPaceWaitsForARequestUnderWay(t *testing.T) {
	feed, err := os.ReadFile("testdata/atom.xml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		clock     = time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
		requests  []time.Time
		otherOpen bool      // the other process's answer is being read
		overlap   bool      // a request came while it was
		otherEnd  time.Time // when it was read
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		requests = append(requests, clock)
		overlap = overlap || otherOpen
		mu.Unlock()
		w.Write(feed)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	dir := t.TempDir()

	keepPaceHooks(t)
	pacedHosts = map[string]time.Duration{u.Host: 3 * time.Second}
	paceNow = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	var closeOther func()
	start := clock
	newWaitTimer = func(d time.Duration) *time.Timer {
		mu.Lock()
		clock = clock.Add(d)
		done := otherOpen && !clock.Before(start.Add(20*time.Second))
		mu.Unlock()
		if done { // the other process's answer is read, 20 s after its request
			closeOther()
		}
		return time.NewTimer(0)
	}

	// The other process's request: its answer has begun, and is read for 20 s.
	r, c, err := Open(srv.URL+"/api/query?start=0", Options{PaceDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // closed once
	mu.Lock()
	otherOpen = true
	mu.Unlock()
	closeOther = func() {
		readAll(t, r)
		mu.Lock()
		otherOpen, otherEnd = false, clock
		mu.Unlock()
		c.Close()
	}
	paceMu.Lock()
	delete(paceNext, u.Host) // this process's own pace knows nothing of the other's request
	paceMu.Unlock()

	r2, c2, err := Open(srv.URL+"/api/query?start=100", Options{PaceDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, r2)
	c2.Close()
	mu.Lock()
	defer mu.Unlock()
	if otherOpen {
		t.Errorf("this process's request came while the other's answer was still being read (%s after it began; two connections at once)",
			requests[len(requests)-1].Sub(start))
	} else if overlap || len(requests) != 2 || requests[1].Sub(otherEnd) < 3*time.Second {
		t.Errorf("requests at %v, the other's answer read at %s (overlap %v): want this one 3s after it", requests, otherEnd, overlap)
	} else if got := requests[1].Sub(start); got > 20*time.Second+2*3*time.Second {
		// It reads the file again every gap (3 s): the other's end is seen within one.
		t.Errorf("this process's request came %s after the other's began, whose answer took 20s: want within 26s, not at the end of its reservation", got)
	}
}

// keepPaceHooks restores the package's pace hooks (pacedHosts, paceNow, newWaitTimer,
// lockPoll) when the test ends, for a test that replaces them — which is why such a test is not
// parallel.
func keepPaceHooks(t *testing.T) {
	hosts, now, timer, poll := pacedHosts, paceNow, newWaitTimer, lockPoll
	t.Cleanup(func() { pacedHosts, paceNow, newWaitTimer, lockPoll = hosts, now, timer, poll })
}
