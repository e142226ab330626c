package llm

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A gateway's error in a 200 whose answer fields are there but hold nothing — "choices": null
// (a server that marshals an unset list) or [] — is the error, not an answer: its status is
// the error's. An answer with choices stays a 200.
func TestTransportTakesAnErrorBesideEmptyChoicesForItsStatus(t *testing.T) {
	t.Parallel()
	const errObj = `{"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-day"}`
	for _, tc := range []struct {
		body string
		want int
	}{
		{errObj + `, "choices": null}`, http.StatusTooManyRequests},
		{errObj + `, "choices": []}`, http.StatusTooManyRequests},
		{errObj + `, "data": null}`, http.StatusTooManyRequests},
		{errObj + `, "choices": [{"index": 0, "message": {"role": "assistant", "content": "A TL;DR."}}]}`, http.StatusOK},
		{errObj + `, "data": [{"index": 0, "embedding": [0.5]}]}`, http.StatusOK},
	} {
		tr := &Transport{Base: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(tc.body))}, nil
		})}
		resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodPost, "http://api.test/v1/chat/completions", nil))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("body %s: status %d, want %d", tc.body, resp.StatusCode, tc.want)
		}
		if string(got) != tc.body {
			t.Errorf("body given back as %q, want it whole", got)
		}
	}
}
