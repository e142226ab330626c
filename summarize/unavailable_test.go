package summarize

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
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

// TestAStricterRetryHeldByTheRateLimitAtAStopIsNoWarning: a worker stopped with Ctrl-C hands
// back the requests that wait for the rate limit (llm.WithWaitStop); a paper whose first answer
// was invalid then has its stricter retry unsent, and its first answer cleaned. Each such paper
// was a warning, "stricter retry failed", a dozen for one Ctrl-C of a worker under a rate
// limit (found in session 28, walking a lab's journey): nothing failed, nothing is lost. It is
// said at info level now, and the first answer is still cleaned and kept.
func TestAStricterRetryHeldByTheRateLimitAtAStopIsNoWarning(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{Faults: openaitest.Faults{Junk: 1}})
	var logs bytes.Buffer
	// One request a minute: the first goes at once, the stricter retry waits for the next minute.
	lim := llm.NewLimiter(llm.LimiterConfig{RequestsPerMinute: 1})
	c := newClient(t, srv, nil, func(cfg *Config) {
		cfg.Limiter = lim
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	stop, stopNow := context.WithCancelCause(context.Background())
	stopNow(errors.New("worker is shutting down"))
	s, err := c.Summarize(llm.WithWaitStop(t.Context(), stop), testPaper)
	if err != nil {
		t.Fatalf("Summarize: %v, want the first answer cleaned", err)
	}
	if s.Validation != paper.ValidCleaned || s.Text == "" {
		t.Errorf("TL;DR %q (%s), want the first answer cleaned", s.Text, s.Validation)
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a stricter retry held by the rate limit at a stop is a warning:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "stricter retry not sent") {
		t.Errorf("the unsent stricter retry is not logged:\n%s", logs.String())
	}
}
