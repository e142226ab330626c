package web

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// loadDoc parses and validates the served OpenAPI document.
func loadDoc(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// TestEveryRouteIsDocumented checks the route table against the OpenAPI document both ways:
// every registered route is described, with its method, and every described operation is
// registered. The document's security matches each route's access rule.
func TestEveryRouteIsDocumented(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	s, err := New(Config{Store: nilStore{}})
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]route{}
	for _, rt := range s.routes {
		if rt.path == "" {
			continue // an alias of documented routes
		}
		key := rt.method + " " + rt.path
		if _, dup := registered[key]; dup {
			t.Errorf("route %s registered twice", key)
		}
		registered[key] = rt
	}
	documented := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = op
		}
	}
	for key, rt := range registered {
		op, ok := documented[key]
		if !ok {
			t.Errorf("route %s (pattern %q) is not in openapi.json", key, rt.pattern)
			continue
		}
		var schemes []string
		for _, req := range *op.Security {
			for name := range req {
				schemes = append(schemes, name)
			}
		}
		optional := slices.ContainsFunc(*op.Security, func(r openapi3.SecurityRequirement) bool { return len(r) == 0 })
		switch rt.access {
		case open:
			if len(schemes) != 0 {
				t.Errorf("%s is open but documented with security %v", key, schemes)
			}
		case read:
			if !optional || !slices.Contains(schemes, "bearerAuth") {
				t.Errorf("%s: reads take an optional token; documented security %v", key, *op.Security)
			}
		case write:
			if optional || !slices.Contains(schemes, "bearerAuth") {
				t.Errorf("%s: writes take the token; documented security %v", key, *op.Security)
			}
		}
		// The API refuses the query parameters it does not take (route.params): exactly the
		// documented ones; every JSON API route checks them.
		var params []string
		for _, p := range op.Parameters {
			if p.Value.In == "query" {
				params = append(params, p.Value.Name)
			}
		}
		switch {
		case strings.HasPrefix(key, "GET /api/") || strings.HasPrefix(key, "POST /api/"):
			if rt.params == nil || !slices.Equal(slices.Sorted(slices.Values(rt.params)), slices.Sorted(slices.Values(params))) {
				t.Errorf("%s takes the query parameters %q, openapi.json documents %q", key, rt.params, params)
			}
		case rt.params != nil:
			t.Errorf("%s checks its query parameters: only the JSON API does", key)
		}
		if _, ok := op.Responses.Map()["200"]; !ok && rt.method == "GET" {
			t.Errorf("%s documents no 200 answer", key)
		}
	}
	for key := range documented {
		if _, ok := registered[key]; !ok {
			t.Errorf("openapi.json describes %s, which no route serves", key)
		}
	}
	// The UI's pages are documented as HTML, the API's answers as JSON.
	for key, rt := range registered {
		op := documented[key]
		if op == nil {
			continue
		}
		resp := op.Responses.Value("200")
		if resp == nil {
			resp = op.Responses.Value("202")
		}
		if resp == nil || resp.Value == nil {
			continue
		}
		_, html := resp.Value.Content["text/html"]
		if html != rt.html {
			t.Errorf("%s: route answers HTML = %v, documented as HTML = %v", key, rt.html, html)
		}
		if strings.HasPrefix(key, "GET /api/") && resp.Value.Content["application/json"] == nil {
			t.Errorf("%s is not documented as JSON", key)
		}
	}
}
