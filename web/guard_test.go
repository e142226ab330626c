package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/web"
)

// TestCrossSiteWritesAreRefused: a page on any site could otherwise queue papers — paid for
// on this server's API account — with a "simple" POST (no Content-Type, no preflight), and a
// browser would attach remembered Basic credentials to it.
func TestCrossSiteWritesAreRefused(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	body := []byte(`{"id": "2502.00009", "title": "From elsewhere", "abstract": "Queued by a web page."}`)
	bearer := []string{"Authorization", "Bearer tok"}
	for _, tc := range []struct {
		name    string
		token   string
		headers []string
		want    int
	}{
		{"no token configured, cross-site", "", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"token, cross-site", "tok", append(bearer, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden},
		{"token, foreign Origin without Sec-Fetch-Site", "tok", append(bearer, "Origin", "https://evil.example"), http.StatusForbidden},
		{"Basic password on a write", "tok", []string{"Authorization", "Basic " + basic("paperpipe", "tok")}, http.StatusUnauthorized},
		{"token, same-origin", "tok", append(bearer, "Sec-Fetch-Site", "same-origin"), http.StatusAccepted},
		{"token, no browser headers (curl)", "tok", bearer, http.StatusAccepted},
	} {
		cfg := b.config()
		cfg.APIToken = tc.token
		b.serve(cfg)
		if r := b.do(http.MethodPost, "/api/papers", body, tc.headers...); r.code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, r.code, r.body, tc.want)
		}
	}
}

// TestRequestsUnderForeignNamesAreRefused: the server listens on 127.0.0.1 without a token by
// default. A page of attacker.example that makes its name resolve to 127.0.0.1 (DNS
// rebinding) is same-origin with the server for the browser (Sec-Fetch-Site same-origin,
// Origin == Host), so the cross-site checks let it queue papers, paid for on the server's
// API account, and read the archive, the status and the metrics. Its requests carry its own
// name as Host: on a loopback connection only localhost, IP addresses and the configured
// names are answered. On other addresses operators reach the server by their own names, and
// only the configured ones are checked, when there are some.
func TestRequestsUnderForeignNamesAreRefused(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	body := []byte(`{"id": "2502.00042", "title": "Rebound", "abstract": "Queued by a web page through DNS rebinding."}`)
	open := b.serve(b.config())
	cfg := b.config()
	cfg.AllowedHosts = []string{"Papers.Lab"}
	listed := b.serve(cfg)
	port := func(srv string) string { _, p, _ := net.SplitHostPort(strings.TrimPrefix(srv, "http://")); return p }

	for _, tc := range []struct {
		base, host string
		want       bool // answered
	}{
		{open.URL, "attacker.example:" + port(open.URL), false},
		{open.URL, "attacker.example", false},
		{open.URL, "localhost:" + port(open.URL), true},
		{open.URL, "LocalHost.", true},
		{open.URL, "127.0.0.1:" + port(open.URL), true},
		{open.URL, "[::1]:" + port(open.URL), true},
		{open.URL, "papers.lab:" + port(open.URL), false},
		{listed.URL, "papers.lab:" + port(listed.URL), true},
		{listed.URL, "PAPERS.LAB", true},
		{listed.URL, "localhost:" + port(listed.URL), true},
		{listed.URL, "attacker.example:" + port(listed.URL), false},
	} {
		host := []string{"Host", tc.host}
		sameOrigin := append(host, "Origin", "http://"+tc.host, "Sec-Fetch-Site", "same-origin")
		for _, rq := range []struct {
			method, path string
			body         []byte
			header       []string
			ok           int
		}{
			{http.MethodPost, "/api/papers", body, sameOrigin, http.StatusAccepted},
			{http.MethodGet, "/api/status", nil, sameOrigin, http.StatusOK},
			{http.MethodGet, "/api/papers", nil, host, http.StatusOK},
			{http.MethodGet, "/metrics", nil, host, http.StatusOK},
			{http.MethodGet, "/search?mode=semantic&q=rebinding", nil, host, http.StatusOK},
		} {
			r := doTo(t, tc.base, rq.method, rq.path, rq.body, rq.header...)
			switch {
			case tc.want && r.code != rq.ok:
				t.Errorf("%s %s with Host %s: %d %.200s, want %d", rq.method, rq.path, tc.host, r.code, r.body, rq.ok)
			case !tc.want && (r.code != http.StatusMisdirectedRequest || !strings.Contains(string(r.body), "PAPERPIPE_HTTP_ALLOWED_HOSTS")):
				t.Errorf("%s %s with Host %s: %d %.200s, want 421 naming PAPERPIPE_HTTP_ALLOWED_HOSTS", rq.method, rq.path, tc.host, r.code, r.body)
			}
		}
	}

	// A connection to another address of the server (a LAN address, a pod's IP).
	remote := func(s *web.Server, host string) int {
		req := httptest.NewRequest(http.MethodGet, "/api/papers", nil)
		req.Host = host
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8080}))
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	openServer, err := web.New(b.config())
	if err != nil {
		t.Fatal(err)
	}
	listedServer, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    *web.Server
		host string
		want int
	}{
		{openServer, "papers.example.org:8080", http.StatusOK},
		{listedServer, "papers.example.org:8080", http.StatusMisdirectedRequest},
		{listedServer, "papers.lab", http.StatusOK},
		{listedServer, "192.0.2.10:8080", http.StatusOK}, // a probe to the pod's IP
	} {
		if got := remote(tc.s, tc.host); got != tc.want {
			t.Errorf("GET /api/papers on 192.0.2.10 with Host %s (AllowedHosts %v): %d, want %d", tc.host, tc.s == listedServer, got, tc.want)
		}
	}
	if _, err := web.New(web.Config{Store: testStore{Store: b.st}, AllowedHosts: []string{"http://papers.lab"}}); err == nil {
		t.Error("web.New took the allowed host http://papers.lab")
	}
}

// countingEmbedder counts the query embeddings asked of it.
type countingEmbedder struct {
	web.QueryEmbedder
	calls *atomic.Int64
}

func (e countingEmbedder) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	e.calls.Add(1)
	return e.QueryEmbedder.EmbedQuery(ctx, text)
}

// TestCrossSiteLoadsAreRefused: any page could make the server pay for a query embedding at
// each load of <img src="http://127.0.0.1:8080/search?q=RANDOM">, or each scripted navigation
// of a window it opened. A browser's cross-site request is answered only when it is a top-level
// navigation the user made (a link clicked: Sec-Fetch-User ?1); the UI's
// own requests, and clients that send no Fetch Metadata, are answered as before.
func TestCrossSiteLoadsAreRefused(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	calls := &atomic.Int64{}
	cfg := b.config()
	cfg.Embedder = countingEmbedder{b.emb, calls}
	b.serve(cfg)
	fetch := func(site, mode, dest string) []string {
		return []string{"Sec-Fetch-Site", site, "Sec-Fetch-Mode", mode, "Sec-Fetch-Dest", dest}
	}
	for i, tc := range []struct {
		path    string
		headers []string
		want    int
	}{
		{"/search?mode=semantic&q=", fetch("cross-site", "no-cors", "image"), http.StatusForbidden},
		{"/api/search?mode=semantic&q=", fetch("cross-site", "cors", "empty"), http.StatusForbidden},
		{"/search?mode=semantic&q=", fetch("cross-site", "navigate", "iframe"), http.StatusForbidden},
		// A click in another site's page whose link targets its own frame: a navigation, with
		// the user's activation, but not of a window of the user's.
		{"/search?mode=semantic&q=", append(fetch("cross-site", "navigate", "iframe"), "Sec-Fetch-User", "?1"), http.StatusForbidden},
		{"/search?mode=semantic&q=", fetch("cross-site", "no-cors", "script"), http.StatusForbidden},
		{"/static/style.css?", fetch("cross-site", "no-cors", "style"), http.StatusForbidden},
		// A page on another port of the host (same-site), loading an image.
		{"/search?mode=semantic&q=", fetch("same-site", "no-cors", "image"), http.StatusForbidden},
		{"/api/search?mode=semantic&q=", fetch("same-site", "cors", "empty"), http.StatusForbidden},
		// A page navigating a window it opened, again and again, without a click.
		{"/search?mode=semantic&q=", fetch("cross-site", "navigate", "document"), http.StatusForbidden},
	} {
		r := b.get(tc.path+fmt.Sprint("sparse+experts+", i), tc.headers...)
		if r.code != tc.want {
			t.Errorf("GET %s with %v: %d %.200s, want %d", tc.path, tc.headers, r.code, r.body, tc.want)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the refused cross-site loads made %d query embeddings", n)
	}
	// Form posts of another site stay refused.
	post := b.do(http.MethodPost, "/api/papers", []byte(`{"title": "T", "abstract": "A."}`), fetch("cross-site", "navigate", "document")...)
	if post.code != http.StatusForbidden {
		t.Errorf("cross-site form POST: %d %.200s, want 403", post.code, post.body)
	}
	for i, tc := range []struct {
		path    string
		headers []string
	}{
		{"/search?mode=semantic&q=", append(fetch("cross-site", "navigate", "document"), "Sec-Fetch-User", "?1")}, // a link on another site, clicked
		{"/?", fetch("cross-site", "navigate", "document")},                                                       // a link through a shortener's script: no click, no query embedding
		{"/search?mode=semantic&q=", fetch("none", "navigate", "document")},                                       // typed or bookmarked
		{"/search?mode=semantic&q=", fetch("same-origin", "navigate", "document")},                                // the search form
		{"/api/search?mode=semantic&q=", nil},                                                                     // curl
		{"/static/style.css?", fetch("same-origin", "no-cors", "style")},
	} {
		if r := b.get(tc.path+fmt.Sprint("expert+routing+", i), tc.headers...); r.code != http.StatusOK {
			t.Errorf("GET %s with %v: %d %.200s, want 200", tc.path, tc.headers, r.code, r.body)
		}
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("the 4 searches answered made %d query embeddings", n)
	}
}

// TestSearchLinkOpenedWithoutAClickOffersTheSearch: a search link shared in a message and
// opened through a link shortener's or a mail filter's redirect (a meta refresh, a script: no
// click on this server's link) is refused, as it must be, since it would buy a query embedding
// (TestCrossSiteLoadsAreRefused). The page said only that "another site's page may link to
// this server but not load from it", to a reader who had followed a link, and left the search
// to be typed again: the page offers the search, as a link of the server's own that a click
// runs, with its words in the search box.
func TestSearchLinkOpenedWithoutAClickOffersTheSearch(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	calls := &atomic.Int64{}
	cfg := b.config()
	cfg.Embedder = countingEmbedder{b.emb, calls}
	b.serve(cfg)
	const path = "/search?q=sparse+expert+%26+routing&mode=semantic&k=5"
	r := b.get(path, "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
	if r.code != http.StatusForbidden {
		t.Fatalf("GET %s opened by another site without a click: %d, want 403", path, r.code)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the refused search made %d query embeddings", n)
	}
	body := string(r.body)
	if !strings.Contains(body, `value="sparse expert &amp; routing"`) {
		t.Errorf("the page's search box does not hold the query: %.2000s", body)
	}
	var link string
	for _, m := range regexp.MustCompile(`<a href="([^"]*)"[^>]*>([^<]*)`).FindAllStringSubmatch(body, -1) {
		if strings.Contains(m[2], "Run") {
			link = html.UnescapeString(m[1])
		}
	}
	if link != path {
		t.Fatalf("the page offers no link that runs the search %s (found %q): %.2000s", path, link, body)
	}
	// The reader's click on it: a navigation from the server's own page.
	run := b.get(link, "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Sec-Fetch-User", "?1")
	if run.code != http.StatusOK || !strings.Contains(string(run.body), `class="papers results"`) {
		t.Errorf("following the offered link: %d %.300s", run.code, run.body)
	}
}

func basic(user, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, password)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// TestMetricsMethodLabelIsBounded: a method is any token a client sends, and each would be
// a new time series.
func TestMetricsMethodLabelIsBounded(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.serve(b.config())
	for _, m := range []string{"M000", "M001", "BREW", "PROPFIND"} {
		b.do(m, "/api/papers", nil)
	}
	r := b.get("/metrics")
	if r.code != http.StatusOK || !strings.Contains(string(r.body), `method="other"`) {
		t.Fatalf("metrics: %d, no method=\"other\" series", r.code)
	}
	for _, m := range []string{"M000", "M001", "BREW", "PROPFIND"} {
		if strings.Contains(string(r.body), `method="`+m+`"`) {
			t.Errorf("metrics carry a series for the method %s", m)
		}
	}
}

// stuckEmbedder answers no query until its context ends, like an API waiting out 429s.
type stuckEmbedder struct{ web.QueryEmbedder }

func (s stuckEmbedder) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	select {
	case <-ctx.Done():
		return nil, paper.Usage{}, ctx.Err()
	case <-time.After(10 * time.Second): // the request had no deadline: the test fails, not hangs
		return nil, paper.Usage{}, errors.New("no deadline came")
	}
}

// TestHandlersEndBeforeTheWriteTimeout: past WriteTimeout the server cuts the client off; the
// handler's work must end before then, and answer that it took too long.
func TestHandlersEndBeforeTheWriteTimeout(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.Embedder = stuckEmbedder{b.emb}
	cfg.WriteTimeout = 500 * time.Millisecond
	b.serve(cfg)
	start := time.Now()
	r := b.get("/api/search?q=experts&mode=semantic")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "too long") {
		t.Errorf("a search whose embedding never comes: %d %s, want 503", r.code, r.body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the answer took %v with a WriteTimeout of 500ms", d)
	}
}

// TestSearchPageFallsBackWhenTheEmbeddingAPIDoesNotAnswer: the search page without a mode
// falls back to keyword results when the vectors cannot be used (README). An embedding API
// that does not answer (rate-limited, overloaded, a local model loading) held the page for
// the request's whole time, then showed an error (503, "took too long") and no results: the
// page waits for the query's embedding a third of its time at most (10 s at most), then shows
// the keyword results, saying why. A search that names its mode, and the API, wait as before.
func TestSearchPageFallsBackWhenTheEmbeddingAPIDoesNotAnswer(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.publish(sampledata.Papers(t))
	b.process()
	cfg := b.config()
	cfg.Embedder = stuckEmbedder{b.emb}
	cfg.WriteTimeout = 3 * time.Second
	b.serve(cfg)
	r := b.get("/search?q=mixture+of+experts")
	body := string(r.body)
	if r.code != http.StatusOK || !strings.Contains(body, `class="papers results"`) || !strings.Contains(body, "showing keyword results") {
		t.Errorf("search page, no mode, the embedding API silent: %d, want 200 with keyword results saying why: %.3000s", r.code, body)
	}
	if !strings.Contains(body, "did not answer") {
		t.Errorf("the page does not say the embedding API did not answer: %.3000s", body)
	}
	for _, path := range []string{"/search?q=mixture+of+experts&mode=hybrid", "/api/search?q=mixture+of+experts"} {
		if r := b.get(path); r.code != http.StatusServiceUnavailable {
			t.Errorf("GET %s, the embedding API silent: %d, want 503 (it took too long)", path, r.code)
		}
	}
}

// TestRequestThatTookTooLongIsLogged: a search that runs out of time is the server's
// slowness (a slow database or embedding API), not the client's mistake: the operator asked
// why searches answer 503 finds it in the log at the default level, with the path and the
// cause, once per request. It was logged at debug level only, as a refusal.
func TestRequestThatTookTooLongIsLogged(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	logs := &lockedBuffer{}
	cfg := b.config()
	cfg.Embedder = stuckEmbedder{b.emb}
	cfg.WriteTimeout = 500 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil)) // info, the default level
	b.serve(cfg)
	if r := b.get("/api/search?q=experts&mode=semantic"); r.code != http.StatusServiceUnavailable {
		t.Fatalf("a search whose embedding never comes: %d %s, want 503", r.code, r.body)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, "/api/search") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "status=503") ||
		!strings.Contains(lines[0], "deadline exceeded") {
		t.Errorf("log lines of the search that took too long: %q; want one warning naming the path, 503 and the cause", lines)
	}
}

// TestPostWithoutAQueueAnswersItsSchema: 503 is a PostResult, like the other answers of
// POST /api/papers.
func TestPostWithoutAQueueAnswersItsSchema(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.Publisher = nil
	b.serve(cfg)
	r := b.do(http.MethodPost, "/api/papers", []byte(`{"title": "T", "abstract": "A."}`), "Content-Type", "application/json")
	var ans struct {
		Error    string            `json:"error"`
		Accepted []json.RawMessage `json:"accepted"`
		Rejected []json.RawMessage `json:"rejected"`
	}
	r.json(t, &ans)
	if r.code != http.StatusServiceUnavailable || ans.Error == "" || ans.Accepted == nil || ans.Rejected == nil {
		t.Errorf("POST without a queue: %d %s, want 503 with error, accepted and rejected", r.code, r.body)
	}
}

// waitingEmbedder signals each query it gets on entered, then answers none until its context
// ends.
type waitingEmbedder struct {
	web.QueryEmbedder
	entered chan struct{}
}

func (e waitingEmbedder) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	e.entered <- struct{}{}
	select {
	case <-ctx.Done():
		return nil, paper.Usage{}, ctx.Err()
	case <-time.After(30 * time.Second):
		return nil, paper.Usage{}, errors.New("no end came")
	}
}

// heedlessStore's keyword searches signal entered, then take heedless whatever their context
// says.
type heedlessStore struct {
	web.Store
	entered  chan struct{}
	heedless time.Duration
}

func (s heedlessStore) KeywordSearch(ctx context.Context, q string, k int) ([]paper.Hit, web.Ranking, error) {
	s.entered <- struct{}{}
	time.Sleep(s.heedless)
	return nil, web.Ranking{}, errors.New("answered late")
}

// listen runs s.ListenAndServe until the returned stop is called; stop returns its error and
// how long the shutdown took.
func listen(t *testing.T, s *web.Server) (base string, stop func() (time.Duration, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	addr := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- s.ListenAndServe(ctx, "127.0.0.1:0", func(a net.Addr) { addr <- a.String() })
	}()
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-errc:
		t.Fatalf("ListenAndServe: %v", err)
	}
	return base, func() (time.Duration, error) {
		start := time.Now()
		cancel()
		select {
		case err := <-errc:
			return time.Since(start), err
		case <-time.After(30 * time.Second):
			t.Fatal("ListenAndServe did not return")
			return 0, nil
		}
	}
}

// TestShutdownAnswersRequestsInFlightPromptly: on Ctrl-C, a search waiting on a slow embedding
// API answers 503 (the server is shutting down) once the grace is over, instead of holding the
// shutdown for its whole timeout and then losing its connection; the server exits cleanly.
func TestShutdownAnswersRequestsInFlightPromptly(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	entered := make(chan struct{}, 4)
	cfg := b.config()
	cfg.Embedder = waitingEmbedder{QueryEmbedder: b.emb, entered: entered}
	cfg.ShutdownTimeout = 10 * time.Second
	s, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base, stop := listen(t, s)
	type answer struct {
		r   response
		err error
	}
	answers := make(chan answer, 2)
	// Two texts: searches of one text would share one query embedding.
	for _, path := range []string{"/api/search?mode=semantic&q=experts", "/search?mode=semantic&q=routing"} {
		go func() {
			resp, err := http.Get(base + path)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			answers <- answer{r: response{code: resp.StatusCode, header: resp.Header, body: body}, err: err}
		}()
		<-entered
	}
	took, err := stop()
	if err != nil {
		t.Errorf("ListenAndServe after the shutdown: %v, want nil", err)
	}
	if took > 5*time.Second {
		t.Errorf("the shutdown took %v with a search in flight, want about the 2 s grace", took)
	}
	for range 2 {
		a := <-answers
		if a.err != nil {
			t.Errorf("a request in flight got no answer: %v", a.err)
			continue
		}
		if a.r.code != http.StatusServiceUnavailable || !strings.Contains(string(a.r.body), "shutting down") {
			t.Errorf("a request in flight: %d %.200s, want 503 saying the server is shutting down", a.r.code, a.r.body)
		}
	}
}

// TestShutdownThatTimesOutIsAWarningNotAFailure: a handler that does not heed its context
// outlasts the shutdown's timeout; the server cuts it off, warns, and returns nil (`serve` and
// `up` exit 0 on Ctrl-C).
func TestShutdownThatTimesOutIsAWarningNotAFailure(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	entered := make(chan struct{}, 1)
	logs := &lockedBuffer{}
	cfg := b.config()
	cfg.Store = heedlessStore{Store: cfg.Store, entered: entered, heedless: 4 * time.Second}
	cfg.ShutdownTimeout = time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	s, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base, stop := listen(t, s)
	go func() {
		if resp, err := http.Get(base + "/api/search?mode=keyword&q=experts"); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	if _, err := stop(); err != nil {
		t.Errorf("ListenAndServe after a shutdown that timed out: %v, want nil", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "cut off") {
		t.Errorf("no warning about the requests cut off:\n%s", logs.String())
	}
}

// listenWithShutdownDelay is listen, of a server of a new bundle with a ShutdownDelay of d.
func listenWithShutdownDelay(t *testing.T, d time.Duration) (base string, stop func() (time.Duration, error)) {
	t.Helper()
	cfg := newBundle(t).config()
	cfg.ShutdownDelay = d
	s, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return listen(t, s)
}

// TestShutdownDelayServesOnWhileNotReady: at SIGTERM Kubernetes goes on routing requests to the
// pod for a few seconds; a server that closed its listener at once refused them on every rolling
// update. With a ShutdownDelay, /readyz answers 503 at once while the listener stays open and
// every request is served, then the server shuts down as before.
func TestShutdownDelayServesOnWhileNotReady(t *testing.T) {
	t.Parallel()
	base, stop := listenWithShutdownDelay(t, 3*time.Second)
	// A new connection for each request: each one shows the listener still accepts.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	code := func(path string) int {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := code("/readyz"); c != http.StatusOK {
		t.Fatalf("/readyz before the shutdown: %d", c)
	}
	stopped := make(chan error, 1)
	go func() { _, err := stop(); stopped <- err }()
	for deadline := time.Now().Add(2 * time.Second); code("/readyz") != http.StatusServiceUnavailable; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still answers 200 after the shutdown began")
		}
	}
	if c := code("/api/papers"); c != http.StatusOK {
		t.Errorf("GET /api/papers during the shutdown delay: %d, want 200", c)
	}
	if c := code("/healthz"); c != http.StatusOK {
		t.Errorf("GET /healthz during the shutdown delay: %d, want 200", c)
	}
	if err := <-stopped; err != nil {
		t.Errorf("ListenAndServe after the delayed shutdown: %v, want nil", err)
	}
	if resp, err := client.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("the server still accepts connections after its shutdown")
	}
}

// TestShutdownDelayClosesKeptAliveConnections: a client that keeps its connection alive (a
// service polling the API, a proxy) sends every request on it to the stopping server, whatever
// the load balancer has learnt from /readyz: a Kubernetes Service balances connections, not
// requests. During the ShutdownDelay each answer closes its connection, so that the client's
// next request opens one the balancer routes to a ready server, instead of being sent to this
// one until the shutdown closes the connection under it.
func TestShutdownDelayClosesKeptAliveConnections(t *testing.T) {
	t.Parallel()
	base, stop := listenWithShutdownDelay(t, 3*time.Second)
	client := &http.Client{Transport: &http.Transport{}}
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get("/healthz"); resp.Close {
		t.Fatal("the connection is closed before the shutdown: keep-alive is off")
	}
	stopped := make(chan error, 1)
	go func() { _, err := stop(); stopped <- err }()
	for deadline := time.Now().Add(2 * time.Second); get("/readyz").StatusCode != http.StatusServiceUnavailable; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("/readyz still answers 200 after the shutdown began")
		}
	}
	resp := get("/api/papers")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/papers during the shutdown delay: %d, want 200", resp.StatusCode)
	}
	if !resp.Close {
		t.Error("an answer during the shutdown delay keeps its connection alive: the client goes on sending its requests to the stopping server")
	}
	if err := <-stopped; err != nil {
		t.Errorf("ListenAndServe after the delayed shutdown: %v, want nil", err)
	}
}

// stallingPublisher takes nothing until its context ends, then fails with it, as PublishAll
// does when the request's time runs out before the queue's answers come.
type stallingPublisher struct{}

func (stallingPublisher) Publish(ctx context.Context, papers []paper.Abstract) ([]string, map[int]error, error) {
	<-ctx.Done()
	return nil, nil, fmt.Errorf("publish %s: %w", papers[0].ID, ctx.Err())
}

// TestPostThatRunsOutOfTimeSaysSoNotThatTheQueueIsDown: a POST whose time ran out before its
// records were queued (a burst of large posts parsed on a busy server took a minute and more)
// answered "the queue is unavailable" and logged an error of the queue, while the queue was
// fine: the client was sent to look for an outage, and the operator too. It answers that the
// request took too long (503, the records not accepted may be sent again), logged as a warning.
func TestPostThatRunsOutOfTimeSaysSoNotThatTheQueueIsDown(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	logs := &lockedBuffer{}
	cfg := b.config()
	cfg.Publisher = stallingPublisher{}
	cfg.WriteTimeout = 2 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	b.serve(cfg)
	r := b.do("POST", "/api/papers", []byte(`[{"id": "2501.00001", "title": "Quokkas", "abstract": "We show that quokkas smile."}]`),
		"Content-Type", "application/json")
	var body postBody
	r.json(t, &body)
	if r.code != http.StatusServiceUnavailable || !strings.Contains(body.Error, "took too long") || strings.Contains(body.Error, "queue") ||
		len(body.Rejected) != 1 || !strings.Contains(body.Rejected[0].Error, "send it again") {
		t.Errorf("a post whose time ran out: %d %s, want 503 saying the request took too long, its record to send again", r.code, r.body)
	}
	if strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the log of a post whose time ran out, want a warning and no error:\n%s", logs.String())
	}
}

// TestPostStopsParsingOnceItsTimeIsOut: a burst of large posts on a busy server went on parsing
// every record of each after its time had run out, or its client had left (answers of 60 to
// 120 s measured, clients gone at 20 s), taking the CPU from the readers. It stops at the end
// of its time, and answers that the request took too long.
func TestPostStopsParsingOnceItsTimeIsOut(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	var parsed atomic.Int32
	cfg.ParseRecord = func(raw []byte) (paper.Abstract, error) {
		if parsed.Add(1) == 1 {
			time.Sleep(3 * time.Second) // past the request's time, bounded by the WriteTimeout
		}
		return web.ParseRecord(raw)
	}
	cfg.WriteTimeout = 2 * time.Second
	b.serve(cfg)
	r := b.do("POST", "/api/papers", []byte(`[{"id": "2501.00001", "title": "One", "abstract": "First."},
		{"id": "2501.00002", "title": "Two", "abstract": "Second."}, {"id": "2501.00003", "title": "Three", "abstract": "Third."}]`),
		"Content-Type", "application/json")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "took too long") {
		t.Errorf("a post whose time ran out while its records were parsed: %d %s, want 503 saying it took too long", r.code, r.body)
	}
	if n := parsed.Load(); n != 1 {
		t.Errorf("%d of 3 records parsed, the request's time having run out during the first, want 1", n)
	}
}

// TestShutdownEndsTheQueryEmbeddingAPageStoppedWaitingFor: the query embedding a search page
// stopped waiting for goes on for the page's time so that its vector is cached; a shutdown ends
// it with the requests in flight, at the grace's end, rather than waiting for it or leaving it
// running.
func TestShutdownEndsTheQueryEmbeddingAPageStoppedWaitingFor(t *testing.T) {
	t.Parallel()
	b, client, _ := apiArchive(t)
	calls := &atomic.Int32{}
	ended := make(chan struct{})
	cfg := b.config()
	cfg.Embedder = endedEmbedder{QueryEmbedder: client, calls: calls, ended: ended}
	cfg.PageTimeout = 9 * time.Second // the page waits 3 s for the embedding
	cfg.ShutdownTimeout = time.Second
	s, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base, stop := listen(t, s)
	if r := doTo(t, base, "GET", "/search?q=mixture+of+experts", nil); r.code != http.StatusOK || !strings.Contains(string(r.body), "did not answer") {
		t.Fatalf("search page, the embedding API slower than its wait: %d %.2000s, want 200 with keyword results saying why", r.code, r.body)
	}
	if _, err := stop(); err != nil {
		t.Errorf("ListenAndServe after the shutdown: %v, want nil", err)
	}
	select {
	case <-ended:
	default:
		t.Error("the query embedding the page stopped waiting for was still running when the server had shut down")
	}
}

// downPublisher takes nothing: the queue cannot be reached.
type downPublisher struct{}

func (downPublisher) Publish(context.Context, []paper.Abstract) ([]string, map[int]error, error) {
	return nil, nil, errors.New("nats: connection closed")
}

// TestPostTheQueueRefusesListsItsRejectedRecordsInOrder: the records a post's publishing left
// unaccepted came after those its parsing rejected, out of the index order the answer of a post
// the queue took lists them in.
func TestPostTheQueueRefusesListsItsRejectedRecordsInOrder(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.Publisher = downPublisher{}
	b.serve(cfg)
	r := b.do("POST", "/api/papers", []byte(`[{"id": "2501.00001", "title": "One", "abstract": "First."},
		{"id": "2501.00002", "title": "", "abstract": "No title."}, {"id": "2501.00003", "title": "Three", "abstract": "Third."}]`),
		"Content-Type", "application/json")
	var body postBody
	r.json(t, &body)
	var got []int
	for _, rej := range body.Rejected {
		got = append(got, rej.Index)
	}
	if r.code != http.StatusServiceUnavailable || fmt.Sprint(got) != "[0 1 2]" {
		t.Errorf("a post of 3 records, the second invalid, the queue down: %d, rejected indexes %v, want 503 and [0 1 2]", r.code, got)
	}
}

// heldPublisher holds its first Publish, signalled on entered, until release is closed; it
// takes every paper.
type heldPublisher struct {
	calls   *atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (p heldPublisher) Publish(ctx context.Context, papers []paper.Abstract) ([]string, map[int]error, error) {
	if p.calls.Add(1) == 1 {
		close(p.entered)
		<-p.release
	}
	ids := make([]string, len(papers))
	for i, a := range papers {
		ids[i] = a.ID
	}
	return ids, nil, nil
}

// TestPostsBeyondTheBytesInFlightAreAnswered503: each POST /api/papers holds its body and its
// parsed records until the queue took them, and nothing bounded how many were held at once
// (40 posts of 4 MiB at once: 677 MB resident, measured). Posts whose bodies, with those in
// flight, would pass MaxPostBytesInFlight are answered 503 with a Retry-After before their body
// is read; once the others are done, a post goes through. One that fits beside them goes through
// at once.
func TestPostsBeyondTheBytesInFlightAreAnswered503(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	pub := heldPublisher{calls: &atomic.Int32{}, entered: make(chan struct{}), release: make(chan struct{})}
	cfg := b.config()
	cfg.Publisher = pub
	cfg.MaxBodyBytes = 4000
	cfg.MaxPostBytesInFlight = 5000
	b.serve(cfg)
	post := func(i int) []byte {
		rec := fmt.Sprintf(`[{"id": "2501.%05d", "title": "Quokkas %d", "abstract": "We show that quokkas smile. %s"}]`, i, i, strings.Repeat("Again. ", 200))
		return []byte(rec)
	}
	held := make(chan response, 1)
	go func() { held <- b.do("POST", "/api/papers", post(1)) }() // about 1.5 kB, held in Publish
	<-pub.entered
	// A post weighs what it sends (its Content-Length), not the largest body there may be: a
	// small one beside the held one goes through.
	if r := b.do("POST", "/api/papers", post(3)); r.code != http.StatusAccepted {
		t.Errorf("a small post beside the held one, the two within the bytes in flight: %d %s, want 202", r.code, r.body)
	}
	big := []byte(strings.Repeat(" ", 2100) + string(post(2))) // about 3.6 kB: with the held one, past the bound
	r := b.do("POST", "/api/papers", big)
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "send it again") {
		t.Errorf("a post past the bytes in flight: %d %v %s, want 503 with a Retry-After, saying to send it again", r.code, r.header, r.body)
	}
	close(pub.release)
	if r := <-held; r.code != http.StatusAccepted {
		t.Errorf("the held post: %d %s, want 202", r.code, r.body)
	}
	// Its bytes are free again.
	if r := b.do("POST", "/api/papers", big); r.code != http.StatusAccepted {
		t.Errorf("a large post once the others were done: %d %s, want 202", r.code, r.body)
	}
}

// firstRefusedPublisher refuses the first paper of each call as too large for the queue and
// takes the others.
type firstRefusedPublisher struct{}

func (firstRefusedPublisher) Publish(_ context.Context, papers []paper.Abstract) ([]string, map[int]error, error) {
	var ids []string
	for _, a := range papers[1:] {
		ids = append(ids, a.ID)
	}
	return ids, map[int]error{0: errors.New("its message is larger than the queue's limit")}, nil
}

// TestPostOfTwoVersionsOfAPaperTheQueueRefusesOneOfAcceptsTheOther: of two records of one id,
// the first too large for the queue and the second taken, the second is accepted — the refused
// one, never sent, is no acknowledgement missing — and the first is rejected with its reason.
func TestPostOfTwoVersionsOfAPaperTheQueueRefusesOneOfAcceptsTheOther(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.Publisher = firstRefusedPublisher{}
	b.serve(cfg)
	r := b.do("POST", "/api/papers", []byte(`[{"id": "2501.00001", "title": "One", "abstract": "The long version."},
		{"id": "2501.00001", "title": "One", "abstract": "The short version."}]`), "Content-Type", "application/json")
	var body postBody
	r.json(t, &body)
	if r.code != http.StatusAccepted || len(body.Accepted) != 1 || body.Accepted[0].Index != 1 ||
		len(body.Rejected) != 1 || body.Rejected[0].Index != 0 || !strings.Contains(body.Rejected[0].Error, "larger than the queue's limit") {
		t.Errorf("two versions of a paper, the queue refusing the first: %d %s; want 202, the second accepted and the first rejected with its reason", r.code, r.body)
	}
}
