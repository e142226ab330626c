package llm

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// hangingServer is the address of a server that takes every request and answers none until
// the test ends.
func hangingServer(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); ts.Close() })
	return strings.TrimPrefix(ts.URL, "http://")
}

// TestUnansweredCallIsMarkedServerFailing: an API that hangs — it takes every request and
// answers none — got each call cut by its deadline (a worker's message time) and returned as
// the bare context error, which the worker retried as the paper's failure until the backlog was
// dead-lettered. The call's deadline ending a request that waited for its answer is marked
// ErrServerFailing (with the deadline's error), as every attempt answered 5xx is, for a worker
// to pause on once the calls of several papers in a row end so; so is a call whose every
// attempt its own Timeout cut, unanswered. A call cancelled (a shutdown) is not.
func TestUnansweredCallIsMarkedServerFailing(t *testing.T) {
	t.Parallel()
	get := getModels(http.DefaultClient, hangingServer(t))

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := fastRetrier(5).Do(ctx, 1, get)
	if !errors.Is(err, ErrServerFailing) || !errors.Is(err, context.DeadlineExceeded) || Classify(err) != Transient {
		t.Errorf("the call's deadline ended its request unanswered: %v; want ErrServerFailing with the deadline's error", err)
	}

	r := fastRetrier(2)
	r.Timeout = 600 * time.Millisecond
	calls := 0
	_, err = r.Do(context.Background(), 1, func(ctx context.Context) error { calls++; return get(ctx) })
	if calls != 3 || !errors.Is(err, ErrServerFailing) {
		t.Errorf("every attempt cut by its Timeout, unanswered: %d calls, %v; want 3 and ErrServerFailing", calls, err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	_, err = fastRetrier(5).Do(ctx, 1, get)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrServerFailing) {
		t.Errorf("a call cancelled while it waited: %v; want context.Canceled only", err)
	}
}
