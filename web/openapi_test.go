package web_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/paperpipe/paperpipe/internal/sampledata"
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

	doc, err := openapi3.NewLoader().LoadFromData(web.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: b.http.URL}} // the test server's address
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	bearer := []string{"Authorization", "Bearer tok"}
	type call struct {
		method, path string
		body         string
		header       []string
		want         int
	}
	calls := []call{
		{"GET", "/api/papers?limit=2", "", nil, 200},
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
	reached := map[string]bool{}
	for _, c := range calls {
		name := c.method + " " + c.path
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		req, err := http.NewRequestWithContext(context.Background(), c.method, b.http.URL+c.path, body)
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
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if !reached[method+" "+path] {
				t.Errorf("%s %s is documented but no request of this test reaches it", method, path)
			}
		}
	}
}
