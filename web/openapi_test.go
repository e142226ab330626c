package web_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/web"
)

func init() {
	// Non-JSON answers are validated as strings.
	for _, ct := range []string{"text/html", "text/css", "image/svg+xml", "application/x-ndjson"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
	}
}

// TestAnswersMatchOpenAPI sends a request to every operation the OpenAPI document describes
// (and to most documented error answers) and validates each request and answer against the
// document: status code, content type and body schema. An operation no request reaches fails
// the test, so a new route must come with its description and a request here.
func TestAnswersMatchOpenAPI(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	cfg := b.config()
	cfg.APIToken = "tok"
	b.serve(cfg)
	sample := sampledata.Papers(t)
	id := url.PathEscape(idOf(t, sample, "Branch-Train-Merge"))

	bearer := []string{"Authorization", "Bearer tok"}
	calls := []apiCall{
		{"GET", "/api/papers?limit=2", "", nil, 200},
		{"GET", "/api/papers?text=the", "", nil, 200}, // none, with a notice
		{"GET", "/api/papers?limit=0", "", nil, 400},
		{"GET", "/api/papers/" + id, "", nil, 200},
		{"GET", "/api/papers/nope", "", nil, 404},
		{"GET", "/api/papers/" + id + "/related?k=3", "", nil, 200},
		{"GET", "/api/papers/nope/related", "", nil, 404},
		{"GET", "/api/search?q=experts&mode=keyword", "", nil, 200},
		{"GET", "/api/search?q=experts&mode=semantic&k=3", "", nil, 200},
		{"GET", "/api/search?q=experts", "", nil, 200},
		{"GET", "/api/search?q=experts&k=500", "", nil, 400},
		{"GET", "/api/search?q=the", "", nil, 200},               // keyword results, with a notice
		{"GET", "/api/search?q=the&mode=semantic", "", nil, 400}, // no word the model can use
		{"GET", "/api/status", "", nil, 200},
		{"GET", "/api/openapi.json", "", nil, 200},
		{"GET", "/healthz", "", nil, 200},
		{"GET", "/readyz", "", nil, 200},
		{"GET", "/metrics", "", nil, 200},
		{"POST", "/api/papers", `[{"id": "2502.00001", "title": "New", "abstract": "Fresh."}, {"title": "Half"}]`, bearer, 202},
		{"POST", "/api/papers", `{"title": "Half"}`, bearer, 422},
		{"POST", "/api/papers", `{"title": "x", "abstract": "y"}`, nil, 401},
		{"POST", "/api/papers", `{"title": "x", "abstract": "y"}`, append(bearer, "Sec-Fetch-Site", "cross-site"), 403},
		{"GET", "/", "", nil, 200},
		{"GET", "/?since=2024-01-01&limit=5", "", nil, 200},
		{"GET", "/search?q=experts", "", nil, 200},
		{"GET", "/search?q=experts&mode=keyword", "", nil, 200},
		{"GET", "/search?q=experts&k=0", "", nil, 400},
		{"GET", "/papers/" + id, "", nil, 200},
		{"GET", "/papers/nope", "", nil, 404},
		{"GET", "/status", "", nil, 200},
		{"GET", "/map", "", nil, 200},
		{"GET", "/static/style.css", "", nil, 200},
		{"GET", "/static/favicon.svg", "", nil, 200},
		{"GET", "/static/nothing.css", "", nil, 404},
	}
	doc, reached := checkAnswers(t, b.http.URL, calls)
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !reached[method+" "+path] {
				t.Errorf("%s %s is documented but no request of this test reaches it", method, path)
			}
		}
	}
}

// TestStatusUsageKindsMatchOpenAPI: the usage ledger holds the kinds of Batch API work
// (chat-batch, embedding-batch: `reprocess --batch-api` records them) beside chat and
// embedding, and GET /api/status answers every one as the document describes it.
func TestStatusUsageKindsMatchOpenAPI(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	var usage []paper.Usage
	for _, kind := range []string{paper.KindChat, paper.KindEmbedding, batch.KindChatBatch, batch.KindEmbeddingBatch} {
		usage = append(usage, paper.Usage{Model: "gpt-4o-mini", Kind: kind, Requests: 1, InputTokens: 10, OutputTokens: 2})
	}
	if err := b.st.RecordUsage(t.Context(), usage); err != nil {
		t.Fatal(err)
	}
	b.serve(b.config())
	checkAnswers(t, b.http.URL, []apiCall{{method: "GET", path: "/api/status", want: http.StatusOK}})
}

// TestFrontPageParametersAreDocumented: the front page honours since and limit (and keeps
// them on its next page), and openapi.json says so.
func TestFrontPageParametersAreDocumented(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	if r := b.get("/?limit=1"); r.code != http.StatusOK || strings.Count(string(r.body), `class="paper"`) != 1 {
		t.Errorf("GET /?limit=1: %d, %d papers, want 1", r.code, strings.Count(string(r.body), `class="paper"`))
	}
	if r := b.get("/?since=2999-01-01"); r.code != http.StatusOK || strings.Contains(string(r.body), `class="paper"`) {
		t.Errorf("GET /?since=2999-01-01: %d, want no paper", r.code)
	}
	doc, err := openapi3.NewLoader().LoadFromData(web.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	op := doc.Paths.Value("/").Get
	for _, name := range []string{"after", "category", "text", "since", "limit"} {
		if op.Parameters.GetByInAndName("query", name) == nil {
			t.Errorf("GET / honours %s, which openapi.json does not describe", name)
		}
	}
}

// brokenStore is a database that fails every call, or (stall) answers none before the
// request's time runs out.
type brokenStore struct {
	web.Store
	stall bool
}

func (s brokenStore) fail(ctx context.Context) error {
	if s.stall {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second): // the request had no deadline: the test fails, not hangs
		}
	}
	return errors.New("read tcp 127.0.0.1:5432: connection reset by peer")
}

func (s brokenStore) Paper(ctx context.Context, _ string) (paper.Record, error) {
	return paper.Record{}, s.fail(ctx)
}
func (s brokenStore) ListPapers(ctx context.Context, _ web.ListQuery) (web.Page, error) {
	return web.Page{}, s.fail(ctx)
}
func (s brokenStore) ActiveSpace(ctx context.Context) (paper.Space, error) {
	return paper.Space{}, s.fail(ctx)
}
func (s brokenStore) KeywordSearch(ctx context.Context, _ string, _ int) ([]paper.Hit, web.Ranking, error) {
	return nil, web.Ranking{}, s.fail(ctx)
}
func (s brokenStore) ArchiveMap(ctx context.Context, _ int64, _ int) ([]web.MapPoint, int, error) {
	return nil, 0, s.fail(ctx)
}
func (s brokenStore) Status(ctx context.Context) (web.Status, error) {
	return web.Status{}, s.fail(ctx)
}

// TestServerErrorAnswersMatchOpenAPI: every route that reads the database answers 500 when
// it fails and 503 when the request's time runs out waiting for it, as openapi.json says, in
// the Error format (JSON) or as a page; so does a search whose query embedding never comes.
func TestServerErrorAnswersMatchOpenAPI(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	paths := []string{"/api/papers", "/api/papers/2401.01234", "/api/papers/2401.01234/related",
		"/api/search?q=experts", "/api/search?q=experts&mode=keyword", "/api/status",
		"/", "/search?q=experts", "/papers/2401.01234", "/status", "/map"}
	for _, stall := range []bool{false, true} {
		cfg := b.config()
		bs := brokenStore{Store: cfg.Store, stall: stall}
		cfg.Store, cfg.Status = bs, bs
		cfg.WriteTimeout = 300 * time.Millisecond
		srv := b.serve(cfg)
		want := http.StatusInternalServerError
		if stall {
			want = http.StatusServiceUnavailable
		}
		var calls []apiCall
		for _, p := range paths {
			calls = append(calls, apiCall{method: "GET", path: p, want: want})
		}
		checkAnswers(t, srv.URL, calls)
	}
	cfg := b.config()
	cfg.Embedder = stuckEmbedder{b.emb}
	cfg.WriteTimeout = 300 * time.Millisecond
	srv := b.serve(cfg)
	checkAnswers(t, srv.URL, []apiCall{
		{method: "GET", path: "/api/search?q=experts&mode=semantic", want: http.StatusServiceUnavailable},
		{method: "GET", path: "/search?q=experts&mode=semantic", want: http.StatusServiceUnavailable},
	})
}

// apiCall is a request checkAnswers sends, and the status it wants.
type apiCall struct {
	method, path string
	body         string
	header       []string
	want         int
}

// checkAnswers sends calls to the server at base and validates each request and answer
// against the OpenAPI document; it returns the document and the operations reached.
func checkAnswers(t *testing.T, base string, calls []apiCall) (*openapi3.T, map[string]bool) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(web.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: base}} // the test server's address
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	reached := map[string]bool{}
	for _, c := range calls {
		name := c.method + " " + c.path
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req, err := http.NewRequestWithContext(context.Background(), c.method, base+c.path, body)
		if err != nil {
			t.Fatal(err)
		}
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(c.header); i += 2 {
			req.Header.Set(c.header[i], c.header[i+1])
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s: no documented operation: %v", name, err)
			continue
		}
		reached[route.Method+" "+route.Path] = true
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if c.want < 400 {
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("%s: the request does not match the document: %v", name, err)
			}
		}
		if c.body != "" {
			req.Body = io.NopCloser(strings.NewReader(c.body))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d: %.300s", name, resp.StatusCode, c.want, data)
			continue
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
			Header: resp.Header, Body: io.NopCloser(bytes.NewReader(data)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s: the answer does not match the document: %v\n%.500s", name, err, data)
		}
	}
	return doc, reached
}
