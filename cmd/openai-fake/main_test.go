package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

func TestControlEndpoints(t *testing.T) {
	url, post := fakeRoutes(t)
	if r := post("/v1/embeddings", `{"model":"m","input":"a"}`); r.StatusCode != http.StatusOK {
		t.Fatalf("embeddings: %d", r.StatusCode)
	}
	if r := post("/_faults", `{"rate_limit":1,"retry_after":"2s"}`); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /_faults: %d", r.StatusCode)
	}
	r := post("/v1/embeddings", `{"model":"m","input":"a"}`)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "2" {
		t.Errorf("after setting faults: %d, Retry-After %q; want 429 and 2", r.StatusCode, r.Header.Get("Retry-After"))
	}
	for _, bad := range []string{`{"rate_limit":2}`, `{"retry_after":"soon"}`, `{"colour":1}`} {
		if r := post("/_faults", bad); r.StatusCode != http.StatusBadRequest {
			t.Errorf("POST /_faults %s: %d, want 400", bad, r.StatusCode)
		}
	}

	resp, err := http.Get(url + "/_stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st openaitest.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.EmbedRequests != 2 || st.EmbedInputsDelivered != 1 || st.Faults[openaitest.FaultRateLimit] != 1 {
		t.Errorf("stats = %+v", st)
	}

	dresp, err := http.Get(url + "/_deliveries")
	if err != nil {
		t.Fatal(err)
	}
	defer dresp.Body.Close()
	var ds []openaitest.Delivery
	if err := json.NewDecoder(dresp.Body).Decode(&ds); err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Kind != openaitest.KindEmbedding || ds[0].Subject != openaitest.SubjectHash("a") || ds[0].Count != 1 {
		t.Errorf("deliveries = %+v, want the one embedding of \"a\"", ds)
	}

	// Every server error answered with the one status asked for (a proxy's 504), not 500, 502
	// and 503 in turn.
	if r := post("/_faults", `{"server_error":1,"server_error_status":504}`); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /_faults: %d", r.StatusCode)
	}
	if r := post("/v1/embeddings", `{"model":"m","input":"a"}`); r.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("after server_error_status 504: %d, want 504", r.StatusCode)
	}
}

func TestRunRejectsUnknownVectors(t *testing.T) {
	var stdout, stderr strings.Builder
	err := run([]string{"-listen", "127.0.0.1:0", "-vectors", "clustered"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-vectors") {
		t.Fatalf("run -vectors clustered = %v, want an error naming -vectors", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("printed %q: started listening despite the bad flag", stdout.String())
	}
}

// A budget of 0 (or less) is refused by name: openaitest would advertise its default instead.
func TestRunRejectsBudgetsBelowOne(t *testing.T) {
	for _, flag := range []string{"-chat-rpm", "-chat-tpm", "-embed-rpm", "-embed-tpm"} {
		for _, v := range []string{"0", "-5"} {
			var stdout, stderr strings.Builder
			done := make(chan error, 1)
			go func() { done <- run([]string{"-listen", "127.0.0.1:0", flag, v}, &stdout, &stderr) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), flag+" "+v+": ") {
					t.Errorf("run %s %s = %v, want an error naming %s", flag, v, err, flag)
				}
				if stdout.Len() != 0 {
					t.Errorf("run %s %s printed %q: started listening despite the bad flag", flag, v, stdout.String())
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("run %s %s is serving: the bad budget was taken", flag, v)
			}
		}
	}
}

// openai-fake -h prints the usage and exits 0 (it exited 1 with "flag: help requested"); a bad
// flag is a usage error, exit 2.
func TestHelpExitsZeroAndABadFlagTwo(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := exitCode(run([]string{"-h"}, &stdout, &stderr), &stderr); code != 0 ||
		!strings.Contains(stderr.String(), "-listen") || strings.Contains(stderr.String(), "help requested") {
		t.Errorf("-h: exit %d, stderr:\n%s", code, stderr.String())
	}
	stderr.Reset()
	if code := exitCode(run([]string{"-bogus"}, &stdout, &stderr), &stderr); code != 2 {
		t.Errorf("-bogus: exit %d, want 2; stderr:\n%s", code, stderr.String())
	}
}

// -server-error-status reaches the fake's faults: every -server-error answer is that status (a
// proxy's 504 for a model server that is down), not 500, 502 and 503 in turn — which the
// benchmarks' and chaos runs' cases of a server behind a proxy rely on.
func TestServerErrorStatusFlagSetsTheStatusOfEveryServerError(t *testing.T) {
	var stderr strings.Builder
	o, err := parseFlags([]string{"-server-error", "1", "-server-error-status", "504"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	fake := openaitest.New(o.cfg)
	ts := httptest.NewServer(routes(fake, slog.New(slog.DiscardHandler)))
	t.Cleanup(func() { ts.Close(); fake.Close() })
	for range 3 {
		resp, err := http.Post(ts.URL+"/v1/embeddings", "application/json", strings.NewReader(`{"model":"m","input":"a"}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("with -server-error-status 504: answered %d, want 504", resp.StatusCode)
		}
	}
}

// POST /_faults takes every fault openaitest.Faults has, as the flags do: it refused
// "unavailable_for" (a 503's Retry-After, the flag -unavailable-for) and "daily_quota" as unknown
// fields, so a chaos run could not turn an outage with a Retry-After on while the fake runs.
// Each field is sent with its zero value here, and the new one in earnest below.
func TestFaultsEndpointTakesEveryFault(t *testing.T) {
	_, post := fakeRoutes(t)
	ft := reflect.TypeFor[openaitest.Faults]()
	for i := range ft.NumField() {
		name, _, _ := strings.Cut(ft.Field(i).Tag.Get("json"), ",")
		zero, err := json.Marshal(reflect.Zero(ft.Field(i).Type).Interface())
		if err != nil {
			t.Fatal(err)
		}
		if body := fmt.Sprintf(`{%q:%s}`, name, zero); post("/_faults", body).StatusCode != http.StatusNoContent {
			t.Errorf("POST /_faults %s refused; want every fault of openaitest.Faults taken", body)
		}
	}
	if r := post("/_faults", `{"server_error":1,"server_error_status":503,"unavailable_for":"1h"}`); r.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /_faults with unavailable_for: %d", r.StatusCode)
	}
	if r := post("/v1/embeddings", `{"model":"m","input":"a"}`); r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "3600" {
		t.Errorf("after unavailable_for 1h: %d, Retry-After %q; want 503 and 3600", r.StatusCode, r.Header.Get("Retry-After"))
	}
}

// -unavailable-for reaches the fake's faults (the flag had no test, as -server-error-status
// had none before it).
func TestUnavailableForFlagSetsTheRetryAfterOfA503(t *testing.T) {
	var stderr strings.Builder
	o, err := parseFlags([]string{"-server-error", "1", "-server-error-status", "503", "-unavailable-for", "90s"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.cfg.Faults.UnavailableFor; got != 90*time.Second {
		t.Errorf("-unavailable-for 90s: the faults' UnavailableFor is %v", got)
	}
}

// fakeRoutes serves openai-fake's routes over a fake API, and returns their URL and a POST of a
// JSON body to one of the routes, whose answer's body is read and closed.
func fakeRoutes(t *testing.T) (string, func(path, body string) *http.Response) {
	t.Helper()
	fake := openaitest.New(openaitest.Config{})
	ts := httptest.NewServer(routes(fake, slog.New(slog.DiscardHandler)))
	t.Cleanup(func() { ts.Close(); fake.Close() })
	return ts.URL, func(path, body string) *http.Response {
		t.Helper()
		resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
}
