package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/web"
)

// contract checks answers against openapi.json the way a client author reads it: the status is
// one the operation lists, the Content-Type and body match its schema, a JSON object carries no
// field the schema does not describe, and an error is the one documented error shape. It
// remembers the fields it has seen, so that a test can ask whether every documented field of
// an answer was ever sent.
type contract struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	base   string
	seen   map[string]bool // "Schema.field" of every field an answer carried
}

func newContract(t *testing.T, base string) *contract {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(web.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, doc: doc, router: router, base: base, seen: map[string]bool{}}
}

// req is one request of a contract test and the status it wants (0: any the document lists).
type req struct {
	method, path string
	body         string
	header       []string // name, value pairs; "Host" sets the Host header
	want         int
}

// do sends r to c's server and checks its answer; it returns the answer.
func (c *contract) do(r req) response {
	c.t.Helper()
	name := r.method + " " + short(r.path)
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequestWithContext(context.Background(), r.method, c.base+r.path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(r.header); i += 2 {
		if r.header[i] == "Host" {
			hr.Host = r.header[i+1]
			continue
		}
		hr.Header.Set(r.header[i], r.header[i+1])
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		c.t.Fatalf("%s: %v", name, err)
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	got := response{code: resp.StatusCode, header: resp.Header, body: data}
	if r.want != 0 && got.code != r.want {
		c.t.Errorf("%s: status %d, want %d: %.300s", name, got.code, r.want, data)
	}
	c.check(name, hr, got)
	return got
}

// check validates the answer got to hr against the document.
func (c *contract) check(name string, hr *http.Request, got response) {
	c.t.Helper()
	ct := got.header.Get("Content-Type")
	html := strings.HasPrefix(ct, "text/html")
	if got.code >= 400 && !html {
		c.errorShape(name, hr, got)
	}
	route, params, err := c.router.FindRoute(hr)
	switch {
	case hr.Method == http.MethodHead:
		// HEAD is GET without the body (net/http's ServeMux): the same status and headers.
		if len(got.body) != 0 {
			c.t.Errorf("%s: %d bytes of body", name, len(got.body))
		}
		if get := c.doGET(hr); get.code != got.code || get.header.Get("Content-Type") != ct {
			c.t.Errorf("%s: %d %s, GET answers %d %s", name, got.code, ct, get.code, get.header.Get("Content-Type"))
		}
		return
	case errors.Is(err, routers.ErrMethodNotAllowed) || got.code == http.StatusMethodNotAllowed:
		c.methodNotAllowed(name, hr, got)
		return
	case err != nil:
		if got.code != http.StatusNotFound && got.code != http.StatusMisdirectedRequest && got.code != http.StatusForbidden {
			c.t.Errorf("%s: %d for a path openapi.json does not describe, want 404", name, got.code)
		}
		return
	}
	// A path kin-openapi matches leniently ("/api/search/" for "/api/search") is not the
	// documented one: the server's 404 for it is right.
	if hr.URL.Path != c.base+route.Path && strings.HasSuffix(hr.URL.Path, "/") && got.code == http.StatusNotFound {
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: got.code,
		Header: got.header, Body: io.NopCloser(bytes.NewReader(got.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("%s: the answer %d does not match openapi.json: %v\n%.300s", name, got.code, err, got.body)
		return
	}
	resp := route.Operation.Responses.Status(got.code)
	if resp == nil || resp.Value == nil || !strings.HasPrefix(ct, "application/json") {
		return
	}
	var v any
	if err := json.Unmarshal(got.body, &v); err != nil {
		c.t.Errorf("%s: %v", name, err)
		return
	}
	if mt := resp.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
		c.walk(name, mt.Schema, "", v)
	}
}

// doGET sends hr again as a GET.
func (c *contract) doGET(hr *http.Request) response {
	c.t.Helper()
	g := hr.Clone(context.Background())
	g.Method = http.MethodGet
	resp, err := http.DefaultClient.Do(g)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: data}
}

// errorShape checks a JSON error answer is {"error": message, "status": its code}, as the
// document's introduction says every error is (POST /api/papers' PostResult adds its
// accepted and rejected lists; /readyz's 503 is its Ready object).
func (c *contract) errorShape(name string, hr *http.Request, got response) {
	c.t.Helper()
	if !strings.HasPrefix(got.header.Get("Content-Type"), "application/json") {
		c.t.Errorf("%s: error %d is %q, neither JSON nor a page", name, got.code, got.header.Get("Content-Type"))
		return
	}
	if hr.URL.Path == "/readyz" && got.code == http.StatusServiceUnavailable {
		return
	}
	if hr.Method == http.MethodHead {
		return
	}
	var e map[string]any
	if err := json.Unmarshal(got.body, &e); err != nil {
		c.t.Errorf("%s: error body is not a JSON object: %v: %.200s", name, err, got.body)
		return
	}
	msg, _ := e["error"].(string)
	status, _ := e["status"].(float64)
	if msg == "" || int(status) != got.code {
		c.t.Errorf("%s: error body %.200s is not {\"error\": message, \"status\": %d}", name, got.body, got.code)
	}
	extra := slices.Sorted(maps.Keys(e))
	extra = slices.DeleteFunc(extra, func(k string) bool {
		return k == "error" || k == "status" || (hr.Method == http.MethodPost && (k == "accepted" || k == "rejected"))
	})
	if len(extra) > 0 {
		c.t.Errorf("%s: error body has fields %v besides error and status", name, extra)
	}
}

// methodNotAllowed checks the answer to a method a documented path does not serve: 405, in the
// error format of the path, with an Allow header that lists exactly the documented methods
// (and HEAD, which GET serves).
func (c *contract) methodNotAllowed(name string, hr *http.Request, got response) {
	c.t.Helper()
	if got.code != http.StatusMethodNotAllowed {
		c.t.Errorf("%s: %d, want 405 for a method openapi.json does not describe", name, got.code)
		return
	}
	var want []string
	for _, path := range c.doc.Paths.InMatchingOrder() {
		if _, _, ok := matchPath(path, hr.URL.Path); ok {
			for m := range c.doc.Paths.Value(path).Operations() {
				want = append(want, m)
				if m == http.MethodGet {
					want = append(want, http.MethodHead)
				}
			}
			break
		}
	}
	slices.Sort(want)
	allow := strings.Split(got.header.Get("Allow"), ", ")
	slices.Sort(allow)
	if !slices.Equal(allow, want) {
		c.t.Errorf("%s: 405 with Allow %q, want the documented methods %v", name, got.header.Get("Allow"), want)
	}
}

// matchPath reports whether path matches the OpenAPI path template tmpl (each {name} one
// segment).
func matchPath(tmpl, path string) (string, string, bool) {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return "", "", false
	}
	for i := range ts {
		if !strings.HasPrefix(ts[i], "{") && ts[i] != ps[i] {
			return "", "", false
		}
	}
	return tmpl, path, true
}

// walk checks that the JSON value v carries no object field its schema s does not describe,
// and records the fields it carries. at names s when it is not a component.
func (c *contract) walk(name string, s *openapi3.SchemaRef, at string, v any) {
	if s == nil || s.Value == nil || v == nil {
		return
	}
	if s.Ref != "" {
		at = s.Ref[strings.LastIndexByte(s.Ref, '/')+1:]
	}
	switch v := v.(type) {
	case map[string]any:
		if len(s.Value.Properties) == 0 {
			if ap := s.Value.AdditionalProperties.Schema; ap != nil {
				for _, x := range v {
					c.walk(name, ap, at+"[]", x)
				}
			}
			return
		}
		for k, x := range v {
			p, ok := s.Value.Properties[k]
			if !ok {
				c.t.Errorf("%s: the answer has the field %s.%s, which openapi.json does not describe", name, at, k)
				continue
			}
			c.seen[at+"."+k] = true
			c.walk(name, p, at+"."+k, x)
		}
	case []any:
		for _, x := range v {
			c.walk(name, s.Value.Items, at+"[]", x)
		}
	}
}

// unsent returns the documented fields of the answers of the operations in ops that no answer
// carried.
func (c *contract) unsent(ops ...string) []string {
	var all []string
	var visit func(s *openapi3.SchemaRef, at string, done map[string]bool)
	visit = func(s *openapi3.SchemaRef, at string, done map[string]bool) {
		if s == nil || s.Value == nil {
			return
		}
		if s.Ref != "" {
			at = s.Ref[strings.LastIndexByte(s.Ref, '/')+1:]
			if done[at] {
				return
			}
			done[at] = true
		}
		for k, p := range s.Value.Properties {
			if !c.seen[at+"."+k] {
				all = append(all, at+"."+k)
			}
			visit(p, at+"."+k, done)
		}
		visit(s.Value.Items, at+"[]", done)
	}
	done := map[string]bool{}
	for _, path := range c.doc.Paths.InMatchingOrder() {
		for m, op := range c.doc.Paths.Value(path).Operations() {
			if !slices.Contains(ops, m+" "+path) {
				continue
			}
			for _, r := range op.Responses.Map() {
				if r.Value == nil {
					continue
				}
				if mt := r.Value.Content.Get("application/json"); mt != nil {
					visit(mt.Schema, "", done)
				}
			}
		}
	}
	slices.Sort(all)
	return slices.Compact(all)
}

func short(s string) string {
	if len(s) > 90 {
		return s[:90] + "…"
	}
	return s
}

// TestAPIContract drives every route of the JSON API with typical requests, every documented
// parameter at its limits and just past them, malformed and unknown parameters, every method,
// trailing slashes and the documented error statuses, and checks each answer against
// openapi.json (contract): listed status, Content-Type, schema, no undocumented field, the one
// error shape, 405 with the documented methods in Allow. Every documented field of the JSON
// answers must be sent by one of them.
func TestAPIContract(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	papers := sampledata.Papers(t)
	// A few papers with every optional field, and one the workers never reach (no TL;DR, no
	// vector).
	papers = append(papers,
		paper.Abstract{ID: "arxiv:2502.00001", Title: "Contract tests for research APIs", Abstract: "We check answers against their descriptions.",
			Authors: []string{"A. Author"}, Categories: []string{"cs.SE"}, URL: "https://arxiv.org/abs/2502.00001", Source: "arxiv",
			Published: time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)},
	)
	b.publish(papers)
	b.process()
	if _, err := b.st.UpsertPapers(t.Context(), []paper.Abstract{{ID: "arxiv:2502.00002", Title: "Unprocessed", Abstract: "Waiting for a worker."}}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	var usage []paper.Usage
	for _, kind := range []string{paper.KindChat, paper.KindEmbedding} {
		usage = append(usage, paper.Usage{Model: "gpt-4o-mini", Kind: kind, Requests: 1, InputTokens: 10, OutputTokens: 2})
	}
	if err := b.st.RecordUsage(t.Context(), usage); err != nil {
		t.Fatal(err)
	}
	cfg := b.config()
	srv := b.serve(cfg)
	c := newContract(t, srv.URL)
	id := url.PathEscape(idOf(t, papers, "Branch-Train-Merge"))
	long := strings.Repeat("a", web.MaxQueryChars+1)

	calls := []req{
		// GET /api/papers.
		{method: "GET", path: "/api/papers", want: 200},
		{method: "GET", path: "/api/papers?limit=1", want: 200},
		{method: "GET", path: "/api/papers?limit=100", want: 200},
		{method: "GET", path: "/api/papers?limit=0", want: 400},
		{method: "GET", path: "/api/papers?limit=101", want: 400},
		{method: "GET", path: "/api/papers?limit=-1", want: 400},
		{method: "GET", path: "/api/papers?limit=x", want: 400},
		{method: "GET", path: "/api/papers?cursor=garbage", want: 400},
		{method: "GET", path: "/api/papers?cursor=", want: 200},
		{method: "GET", path: "/api/papers?cursor=" + long, want: 400},
		{method: "GET", path: "/api/papers?cursor=%00", want: 400},
		{method: "GET", path: "/api/papers?since=x", want: 400},
		{method: "GET", path: "/api/papers?since=0001-01-01", want: 200},
		{method: "GET", path: "/api/papers?since=9999-12-31T23:59:59Z", want: 200},
		{method: "GET", path: "/api/papers?since=2025-01-31T08:00:00%2B02:00", want: 200},
		{method: "GET", path: "/api/papers?category=cs.SE", want: 200},
		{method: "GET", path: "/api/papers?category=%00", want: 400},
		{method: "GET", path: "/api/papers?text=experts", want: 200},
		{method: "GET", path: "/api/papers?text=the", want: 200}, // none, with a notice
		{method: "GET", path: "/api/papers?text=", want: 200},
		{method: "GET", path: "/api/papers?text=" + long, want: 400},
		{method: "GET", path: "/api/papers?text=%FF", want: 400},
		// A parameter the route does not take, or one given twice, is refused: answered as if it
		// had not been sent, it would hide the client's mistake (the UI's after for the API's
		// cursor pages through page one for ever).
		{method: "GET", path: "/api/papers?after=MTcwMDAwMDAwMDAwMDAwMHx4", want: 400},
		{method: "GET", path: "/api/papers?limit=1&limit=500", want: 400},
		{method: "GET", path: "/api/papers?category=cs.SE&category=cs.LG", want: 400},
		{method: "GET", path: "/api/papers?q=experts", want: 400},
		{method: "GET", path: "/api/search?q=experts&limit=3", want: 400},
		{method: "GET", path: "/api/search?q=experts&k=1&k=100", want: 400},
		{method: "GET", path: "/api/search?q=experts&q=routing", want: 400},
		{method: "GET", path: "/api/papers/" + id + "?k=3", want: 400},
		{method: "GET", path: "/api/papers/" + id + "/related?limit=3", want: 400},
		{method: "GET", path: "/api/status?verbose=1", want: 400},
		{method: "POST", path: "/api/papers?format=ndjson", body: `{"title": "x", "abstract": "y"}`, want: 400},
		// A query string net/url cannot parse whole: the pair it cannot parse was dropped, and
		// the request answered without it (text=50% listed the whole archive).
		{method: "GET", path: "/api/papers?limit=1&text=50%", want: 400},
		{method: "GET", path: "/api/papers?category=cs.SE;limit=1", want: 400},
		{method: "GET", path: "/api/search?q=experts&k=1%zz", want: 400},
		{method: "GET", path: "/api/papers/" + id + "/related?k=%", want: 400},
		// GET /api/papers/{id} and /related.
		{method: "GET", path: "/api/papers/" + id, want: 200},
		{method: "GET", path: "/api/papers/arxiv%3A2502.00001", want: 200},
		{method: "GET", path: "/api/papers/2502.00001v3", want: 200},
		{method: "GET", path: "/api/papers/nope", want: 404},
		{method: "GET", path: "/api/papers/%20", want: 404},
		{method: "GET", path: "/api/papers/%FF", want: 400},
		{method: "GET", path: "/api/papers/%00", want: 400},
		{method: "GET", path: "/api/papers/" + strings.Repeat("x", 1025), want: 400},
		{method: "GET", path: "/api/papers/" + id + "/related", want: 200},
		{method: "GET", path: "/api/papers/" + id + "/related?k=1", want: 200},
		{method: "GET", path: "/api/papers/" + id + "/related?k=100", want: 200},
		{method: "GET", path: "/api/papers/" + id + "/related?k=0", want: 400},
		{method: "GET", path: "/api/papers/" + id + "/related?k=101", want: 400},
		{method: "GET", path: "/api/papers/" + id + "/related?k=x", want: 400},
		{method: "GET", path: "/api/papers/nope/related", want: 404},
		{method: "GET", path: "/api/papers/arxiv:2502.00002/related", want: 409}, // no vector yet
		// GET /api/search.
		{method: "GET", path: "/api/search?q=experts", want: 200},
		{method: "GET", path: "/api/search?q=experts", want: 200}, // cached_embedding
		{method: "GET", path: "/api/search?q=experts&mode=hybrid&k=1", want: 200},
		{method: "GET", path: "/api/search?q=experts&mode=semantic&k=100", want: 200},
		{method: "GET", path: "/api/search?q=experts&mode=keyword&k=100", want: 200},
		{method: "GET", path: "/api/search?q=experts&k=0", want: 400},
		{method: "GET", path: "/api/search?q=experts&k=101", want: 400},
		{method: "GET", path: "/api/search?q=experts&mode=bogus", want: 400},
		{method: "GET", path: "/api/search?q=experts&mode=KEYWORD", want: 400},
		{method: "GET", path: "/api/search?q=experts&mode=", want: 200},
		{method: "GET", path: "/api/search", want: 400},
		{method: "GET", path: "/api/search?q=", want: 400},
		{method: "GET", path: "/api/search?q=%20%20", want: 400},
		{method: "GET", path: "/api/search?q=" + long, want: 400},
		{method: "GET", path: "/api/search?q=" + strings.Repeat("é", web.MaxQueryChars), want: 200},
		{method: "GET", path: "/api/search?q=%FF", want: 400},
		{method: "GET", path: "/api/search?q=%00", want: 400},
		{method: "GET", path: "/api/search?q=the", want: 200},               // keyword, with a notice
		{method: "GET", path: "/api/search?q=the&mode=semantic", want: 400}, // no word the model can use
		{method: "GET", path: "/api/search?q=the&mode=keyword", want: 200},  // none, with a notice
		{method: "GET", path: "/api/search?q=-experts", want: 200},          // only excluded words
		{method: "GET", path: "/api/search?q=-experts&mode=semantic", want: 400},
		{method: "GET", path: "/api/search?q=%22%22&mode=keyword", want: 200},
		// The rest of the API.
		{method: "GET", path: "/api/status", want: 200},
		{method: "GET", path: "/api/openapi.json", want: 200},
		{method: "GET", path: "/healthz", want: 200},
		{method: "GET", path: "/readyz", want: 200},
		{method: "GET", path: "/metrics", want: 200},
		{method: "GET", path: "/static/style.css", want: 200},
		{method: "GET", path: "/static/nothing.css", want: 404},
		// POST /api/papers.
		{method: "POST", path: "/api/papers", body: `{"id": "2502.00010", "title": "New", "abstract": "Fresh."}`, want: 202},
		{method: "POST", path: "/api/papers", body: `[{"title": "New 2", "abstract": "Fresh."}, {"title": "Half"}]`, want: 202},
		{method: "POST", path: "/api/papers", body: `{"papers": [{"title": "New 3", "abstract": "Fresh.", "authors": ["A", "B"], "categories": ["cs.LG"]}]}`, want: 202},
		{method: "POST", path: "/api/papers", body: "{\"title\": \"L1\", \"abstract\": \"x\"}\n\n{\"title\": \"L2\"}\n", header: []string{"Content-Type", "application/x-ndjson"}, want: 202},
		{method: "POST", path: "/api/papers", body: `{"title": "Half"}`, want: 422},
		{method: "POST", path: "/api/papers", body: `[1, null, "x"]`, want: 422},
		{method: "POST", path: "/api/papers", want: 400},
		{method: "POST", path: "/api/papers", body: `[]`, want: 400},
		{method: "POST", path: "/api/papers", body: `{"papers": 5}`, want: 400},
		{method: "POST", path: "/api/papers", body: `{"title": "x"`, want: 400},
		{method: "POST", path: "/api/papers", body: `{"title": "x", "abstract": "y"}`, header: []string{"Content-Type", "text/plain"}, want: 415},
		{method: "POST", path: "/api/papers", body: `{"title": "x", "abstract": "y"}`, header: []string{"Content-Encoding", "gzip"}, want: 415},
		{method: "POST", path: "/api/papers", body: "[" + strings.Repeat(`{},`, web.MaxRecordsPerPost) + "{}]", want: 413},
		{method: "POST", path: "/api/papers", body: `"` + strings.Repeat("x", 4<<20) + `"`, want: 413},
		{method: "POST", path: "/api/papers", body: `{"title": "x", "abstract": "y"}`, header: []string{"Sec-Fetch-Site", "cross-site"}, want: 403},
		// Trailing slashes and paths no route serves.
		{method: "GET", path: "/api/papers/", want: 404},
		{method: "GET", path: "/api/search/", want: 404},
		{method: "GET", path: "/api/status/", want: 404},
		{method: "GET", path: "/api/openapi.json/", want: 404},
		{method: "GET", path: "/healthz/", want: 404},
		{method: "GET", path: "/api/", want: 404},
		{method: "GET", path: "/api/nothing", want: 404},
	}
	// Every method on every path: HEAD is GET without a body, the others 405 with Allow.
	for _, p := range []string{"/api/papers", "/api/papers/" + id, "/api/papers/" + id + "/related", "/api/search?q=experts&mode=keyword",
		"/api/status", "/api/openapi.json", "/healthz", "/readyz", "/metrics", "/static/style.css",
		"/", "/search?q=experts", "/papers/" + id, "/status", "/map"} {
		for _, m := range []string{"HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "POST"} {
			if m == "POST" && p == "/api/papers" {
				continue
			}
			calls = append(calls, req{method: m, path: p})
		}
	}
	// A browser's request from another site's page, and one under a name the server does not
	// answer to (DNS rebinding), on every route: 403 and 421, in the documented error format.
	for _, p := range []string{"/api/papers", "/api/papers/" + id, "/api/papers/" + id + "/related", "/api/search?q=experts",
		"/api/status", "/api/openapi.json", "/healthz", "/readyz", "/metrics", "/static/style.css",
		"/", "/search?q=experts", "/papers/" + id, "/status", "/map"} {
		calls = append(calls,
			req{method: "GET", path: p, header: []string{"Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image"}, want: 403},
			req{method: "GET", path: p, header: []string{"Host", "rebound.example"}, want: 421})
	}
	for _, r := range calls {
		c.do(r)
	}
	// Each documented limit of a parameter is the server's: at it a request is answered, past
	// it refused with a 400 that names the parameter.
	base := map[string]string{"/api/papers": "", "/api/papers/{id}/related": "", "/api/search": "q=experts&mode=keyword"}
	for path, q := range base {
		op := c.doc.Paths.Value(path).Get
		at := strings.ReplaceAll(path, "{id}", id)
		for _, p := range op.Parameters {
			sc := p.Value.Schema.Value
			if p.Value.In != "query" || (sc.Max == nil && sc.MaxLength == nil) {
				continue
			}
			name := p.Value.Name
			var ok, past []string
			switch {
			case sc.Max != nil:
				ok = []string{fmt.Sprint(*sc.Min), fmt.Sprint(*sc.Max)}
				past = []string{fmt.Sprint(*sc.Min - 1), fmt.Sprint(*sc.Max + 1)}
			case name != "cursor": // a cursor of any length is one the server did not make
				ok = []string{strings.Repeat("é", int(*sc.MaxLength))}
				past = []string{strings.Repeat("é", int(*sc.MaxLength)+1)}
			default:
				past = []string{strings.Repeat("é", int(*sc.MaxLength)+1)}
			}
			v := url.Values{}
			if q != "" {
				v, _ = url.ParseQuery(q)
			}
			for _, x := range ok {
				v.Set(name, x)
				c.do(req{method: "GET", path: at + "?" + v.Encode(), want: 200})
			}
			for _, x := range past {
				v.Set(name, x)
				if msg := wantError(t, path+" "+name+" past its limit", b.get(at+"?"+v.Encode()), 400); !strings.HasPrefix(msg, name+" ") {
					t.Errorf("GET %s with %s past its documented limit: %q, want a 400 naming %s", path, name, msg, name)
				}
			}
		}
	}
	// An id with an unescaped slash reaches the same checks (a path the document leaves to
	// its ids' escaping).
	wantError(t, "related of an id with a slash, with limit", b.get("/api/papers/doi:10.1000/x/related?limit=3"), 400)
	wantError(t, "an id with a slash, with k", b.get("/api/papers/doi:10.1000/x?k=3"), 400)
	for _, cur := range []string{"garbage", "MTcwMA", "eHx5"} {
		if msg := wantError(t, "cursor="+cur, b.get("/api/papers?cursor="+cur), 400); !strings.Contains(msg, "was not made by this server") {
			t.Errorf("GET /api/papers?cursor=%s: %q, want it to say the cursor was not made by this server", cur, msg)
		}
	}
	if msg := wantError(t, "text=50%", b.get("/api/papers?text=50%"), 400); !strings.Contains(msg, "escape") {
		t.Errorf("GET /api/papers?text=50%%: %q, want how to escape it", msg)
	}
	if msg := wantError(t, "after", b.get("/api/papers?after=x"), 400); !strings.Contains(msg, "takes limit, cursor, since, category, text") {
		t.Errorf("GET /api/papers?after=x: %q, want the parameters it takes", msg)
	}
	wantError(t, "related of an id with a slash", b.get("/api/papers/doi:10.1000/x/related?k=3"), 404)

	// 401 on every route a token protects, and 503s of a server without a queue or status.
	tcfg := cfg
	tcfg.APIToken, tcfg.ProtectReads = "tok", true
	tc := newContract(t, b.serve(tcfg).URL)
	tc.seen = c.seen
	for _, p := range []string{"/api/papers", "/api/papers/" + id, "/api/papers/" + id + "/related", "/api/search?q=experts", "/api/status", "/metrics"} {
		r := tc.do(req{method: "GET", path: p, want: 401})
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("GET %s: 401 with WWW-Authenticate %q, want a Bearer challenge", p, r.header.Get("WWW-Authenticate"))
		}
		tc.do(req{method: "GET", path: p, header: []string{"Authorization", "Bearer tok"}, want: 200})
	}
	tc.do(req{method: "POST", path: "/api/papers", body: `{"title": "x", "abstract": "y"}`, want: 401})
	tc.do(req{method: "POST", path: "/api/papers", body: `{"title": "x", "abstract": "y"}`, header: []string{"Authorization", "Bearer nope"}, want: 401})
	for _, p := range []string{"/api/openapi.json", "/healthz", "/readyz", "/static/style.css"} {
		tc.do(req{method: "GET", path: p, want: 200})
	}
	ncfg := cfg
	ncfg.Publisher, ncfg.Status = nil, nil
	nc := newContract(t, b.serve(ncfg).URL)
	nc.seen = c.seen
	nc.do(req{method: "POST", path: "/api/papers", body: `{"title": "x", "abstract": "y"}`, want: 503})
	nc.do(req{method: "GET", path: "/api/status", want: 503})
	// A queue at its limit (503 with Retry-After, the first record taken), and NATS gone.
	full := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(t.Context(), full, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	stream, err := full.Stream(t.Context(), pipeline.StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	scfg := stream.CachedInfo().Config
	scfg.MaxMsgs = 1
	if _, err := full.UpdateStream(t.Context(), scfg); err != nil {
		t.Fatal(err)
	}
	qcfg := cfg
	qcfg.Publisher = testPublisher{JS: full}
	qc := newContract(t, b.serve(qcfg).URL)
	qc.seen = c.seen
	r := qc.do(req{method: "POST", path: "/api/papers", body: `[{"title": "x", "abstract": "y"}, {"title": "z", "abstract": "w"}]`, want: 503})
	if r.header.Get("Retry-After") == "" || !strings.Contains(string(r.body), "the queue is full") {
		t.Errorf("POST to a full queue: Retry-After %q, %s; want Retry-After and the queue is full", r.header.Get("Retry-After"), r.body)
	}
	gone := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(t.Context(), gone, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	gone.Conn().Close()
	qcfg.Publisher = testPublisher{JS: gone}
	qc = newContract(t, b.serve(qcfg).URL)
	qc.seen = c.seen
	qc.do(req{method: "POST", path: "/api/papers", body: `{"title": "x", "abstract": "y"}`, want: 503})
	// A search without an embedder for the active space (409), with a failing embedding API
	// (502), and a ranking bounded to fewer matches than the query has.
	ecfg := cfg
	ecfg.Embedder = nil
	ec := newContract(t, b.serve(ecfg).URL)
	ec.seen = c.seen
	ec.do(req{method: "GET", path: "/api/search?q=experts&mode=semantic", want: 409})
	ec.do(req{method: "GET", path: "/api/search?q=experts", want: 409})
	fcfg := cfg
	fcfg.Embedder = failingEmbedder{b.emb}
	fc := newContract(t, b.serve(fcfg).URL)
	fc.seen = c.seen
	fc.do(req{method: "GET", path: "/api/search?q=experts", want: 502})
	rcfg := cfg
	rcfg.Store = openTestStore(t, store.Config{URL: b.url, KeywordRankLimit: 2})
	sc := newContract(t, b.serve(rcfg).URL)
	sc.seen = c.seen
	sc.do(req{method: "GET", path: "/api/search?q=experts&mode=keyword", want: 200})
	// An active fitted model missing from the database, no bucket of workers' announcements, and
	// a reprocess consumer of a dropped space (cmd/paperpipe's status source says so).
	mcfg := cfg
	mcfg.Status = testStatus{st: b.st, js: b.js, sum: b.sum, missing: &web.MissingModel{Model: "paperpipe-offline-tfidf-0123456789ab",
		Note: "the fitted offline model paperpipe-offline-tfidf-0123456789ab is not in the database"}, noBucket: true,
		dropped: "text-embedding-3-small/64/title-abstract-v1", unread: 201,
		notes: []string{"the workers of backlog workers write different things (their `writes:` lines above): " +
			"each paper gets what the worker that takes it writes; start them all with the same settings"},
		spaceError: "whether its space m/3/title-abstract-v1 still exists could not be read from the database: closed pool"}
	mc := newContract(t, b.serve(mcfg).URL)
	mc.seen = c.seen
	mc.do(req{method: "GET", path: "/api/status", want: 200})

	// Every documented field of the API's answers was sent by one of them. queue_error and
	// workers_error need cmd/paperpipe's status source (TestStatusWithoutNATS provokes the
	// first there).
	ops := []string{"GET /api/papers", "POST /api/papers", "GET /api/papers/{id}", "GET /api/papers/{id}/related",
		"GET /api/search", "GET /api/status", "GET /healthz", "GET /readyz"}
	if un := slices.DeleteFunc(c.unsent(ops...), func(f string) bool { return f == "Status.queue_error" || f == "Status.workers_error" }); len(un) > 0 {
		t.Errorf("documented fields no answer sent: %v", un)
	}
}

// failingEmbedder's API refuses every query.
type failingEmbedder struct{ web.QueryEmbedder }

func (f failingEmbedder) EmbedQuery(context.Context, string) ([]float32, paper.Usage, error) {
	return nil, paper.Usage{}, fmt.Errorf("embedding API: 500 Internal Server Error")
}

// TestAPIPagingVisitsEachPaperOnce: following next from the first page of GET /api/papers,
// with and without filters and at any page size, visits each paper the filters select exactly
// once, newest first (by created_at, then id, both descending), in full pages but the last,
// which has no next.
func TestAPIPagingVisitsEachPaperOnce(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	papers := sampledata.Papers(t)
	for i := range 12 {
		cat := []string{"cs.LG", "cs.CL", "cs.SE"}[i%3]
		papers = append(papers, paper.Abstract{ID: fmt.Sprintf("arxiv:2503.%05d", i), Title: fmt.Sprintf("Pager study %d", i),
			Abstract: "A study of pagination in archives.", Categories: []string{cat, "stat.ML"}})
	}
	// Two batches, so that the archive has papers of more than one created_at, and ties.
	b.publish(papers[:len(papers)/2])
	b.process()
	b.publish(papers[len(papers)/2:])
	b.process()
	c := newContract(t, b.serve(b.config()).URL)

	list := func(query string) ([]paper.Record, string) {
		t.Helper()
		var body struct {
			Papers []paper.Record `json:"papers"`
			Next   string         `json:"next"`
		}
		c.do(req{method: "GET", path: "/api/papers?" + query, want: 200}).json(t, &body)
		return body.Papers, body.Next
	}
	// What the filters select, in one page of the store (up to 1,000 papers).
	all, _, err := b.st.ListFiltered(t.Context(), store.ListFilter{}, store.MaxListLimit, nil)
	if err != nil || len(all) != len(papers) {
		t.Fatalf("the archive lists %d papers (%v), want %d", len(all), err, len(papers))
	}
	mid := all[len(all)/2].CreatedAt
	for _, f := range []struct {
		query  string
		filter store.ListFilter
	}{
		{"", store.ListFilter{}},
		{"category=stat.ML", store.ListFilter{Category: "stat.ML"}},
		{"category=cs.SE", store.ListFilter{Category: "cs.SE"}},
		{"text=pagination", store.ListFilter{Text: "pagination"}},
		{"text=study+-pager", store.ListFilter{Text: "study -pager"}},
		{"since=" + url.QueryEscape(mid.Format(time.RFC3339Nano)), store.ListFilter{Since: mid}},
		{"category=cs.LG&text=study&since=" + url.QueryEscape(mid.Format(time.RFC3339Nano)), store.ListFilter{Category: "cs.LG", Text: "study", Since: mid}},
	} {
		filter := f.query
		want, _, err := b.st.ListFiltered(t.Context(), f.filter, store.MaxListLimit, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			t.Fatalf("%s selects no paper", filter)
		}
		for _, limit := range []int{1, 2, 3, 7, 100} {
			var got []paper.Record
			cursor, pages := "", 0
			for {
				page, next := list(fmt.Sprintf("%s&limit=%d&cursor=%s", filter, limit, url.QueryEscape(cursor)))
				pages++
				if next != "" && len(page) != limit {
					t.Errorf("%s limit=%d: page %d has %d papers and a next page", filter, limit, pages, len(page))
				}
				if next == "" && len(page) == 0 && pages > 1 {
					t.Errorf("%s limit=%d: an empty last page", filter, limit)
				}
				got = append(got, page...)
				if next == "" || pages > len(papers)+1 {
					break
				}
				cursor = next
			}
			var ids, wantIDs []string
			for i, p := range got {
				ids = append(ids, p.ID)
				if i > 0 && (p.CreatedAt.After(got[i-1].CreatedAt) || p.CreatedAt.Equal(got[i-1].CreatedAt) && p.ID > got[i-1].ID) {
					t.Errorf("%s limit=%d: %s (%v) after %s (%v): not newest first", filter, limit, p.ID, p.CreatedAt, got[i-1].ID, got[i-1].CreatedAt)
				}
			}
			for _, p := range want {
				wantIDs = append(wantIDs, p.ID)
			}
			if !slices.Equal(ids, wantIDs) {
				t.Errorf("%s limit=%d: paging visited %d papers, %v; one page of 100 lists %d, %v", filter, limit, len(ids), ids, len(wantIDs), wantIDs)
			}
		}
	}
}

// TestPostedTimePastTheYear9999IsRejected: a record whose published time falls outside the
// years 0 to 9999 in UTC (9999-12-31T23:59:59-14:00), which no JSON time holds, is rejected on
// its own, saying why; the request's other records are queued. It was accepted, then could
// not be queued: the answer was a 503 saying the queue was unavailable and the records might
// be sent again, for it and every record after it, which sent again failed the same way.
func TestPostedTimePastTheYear9999IsRejected(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	c := newContract(t, b.serve(b.config()).URL)
	var ans struct {
		Accepted []struct{ ID string } `json:"accepted"`
		Rejected []struct {
			Index int    `json:"index"`
			Error string `json:"error"`
		} `json:"rejected"`
	}
	c.do(req{method: "POST", path: "/api/papers", want: 202, body: `[
		{"id": "2401.00001", "title": "Far", "abstract": "From the future.", "published": "9999-12-31T23:59:59-14:00"},
		{"id": "2401.00002", "title": "Near", "abstract": "From now.", "published": "2025-01-31"},
		{"id": "2401.00003", "title": "Old", "abstract": "From before.", "published": "0000-01-01T00:00:00+01:00"}]`}).json(t, &ans)
	if len(ans.Accepted) != 1 || ans.Accepted[0].ID != "arxiv:2401.00002" || len(ans.Rejected) != 2 ||
		!strings.Contains(ans.Rejected[0].Error, "published is 10000-01-01T13:59:59Z (UTC), outside the years 0000 to 9999") ||
		!strings.Contains(ans.Rejected[1].Error, "published is -0001-12-31T23:00:00Z (UTC), outside the years 0000 to 9999") {
		t.Errorf("answer %+v; want 2401.00002 accepted, the others rejected for their published times", ans)
	}
}

// TestPostOfTwoVersionsOfAPaperIntoAFullQueue: a request with two versions of one paper (the
// same id, another abstract) that the queue takes only the first of reports the second as to
// be sent again. The queue's acknowledgements name the paper, not the record: both were
// reported accepted, and the client never sent the newer version again.
func TestPostOfTwoVersionsOfAPaperIntoAFullQueue(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	stream, err := b.js.Stream(t.Context(), pipeline.StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.MaxMsgs = 1
	if _, err := b.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	c := newContract(t, b.serve(b.config()).URL)
	var ans struct {
		Accepted []struct{ Index int } `json:"accepted"`
		Rejected []struct {
			Index int
			Error string
		} `json:"rejected"`
	}
	c.do(req{method: "POST", path: "/api/papers", want: 503, body: `[
		{"id": "2401.00001v1", "title": "T", "abstract": "The first version."},
		{"id": "2401.00001v2", "title": "T", "abstract": "The second version, corrected."}]`}).json(t, &ans)
	for _, a := range ans.Accepted {
		if a.Index == 1 {
			t.Errorf("the second version is reported accepted; the queue holds only the first: %+v", ans)
		}
	}
	if len(ans.Rejected) == 0 || ans.Rejected[len(ans.Rejected)-1].Index != 1 {
		t.Errorf("answer %+v; want the second version among the records to send again", ans)
	}
}
