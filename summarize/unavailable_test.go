package summarize

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/llm"
)

// TestClientWaitsOutA503sRetryAfter: an API that answers 503 with a Retry-After (OpenAI's
// server_is_overloaded, a gateway in front of an overloaded engine) says how long it will be
// unavailable. The client retried at its own backoff regardless, a few hundred milliseconds
// apart: a worker's call spent its retries within seconds, each answered 503 again. The client
// now waits the time said before it asks again (and every caller of the API with it): a call
// whose time ends first has made the one request.
func TestClientWaitsOutA503sRetryAfter(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"message":"The server is overloaded. Please retry after the time given.","type":"server_error","code":"server_is_overloaded"}}`)
	}))
	defer ts.Close()
	c, err := New(Config{BaseURL: ts.URL + "/v1", MaxRetries: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = c.Summarize(ctx, testPaper)
	if got := n.Load(); got != 1 || !errors.Is(err, llm.ErrRateLimited) {
		t.Errorf("%d requests in 2 s to an API unavailable for 60 s, err %v; want the one, then the wait (llm.ErrRateLimited: none sent)", got, err)
	}
}
