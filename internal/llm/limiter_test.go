package llm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// fakeClock is a settable clock for the limiter's pure reservation logic.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newFakeLimiter(rpm, tpm int) (*Limiter, *fakeClock) {
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	return NewLimiter(LimiterConfig{RequestsPerMinute: rpm, TokensPerMinute: tpm, now: clk.now}), clk
}

func TestLimiterRequestBucketAllowsOneMinuteBurstThenSpacesRequests(t *testing.T) {
	t.Parallel()
	l, clk := newFakeLimiter(60, 0)
	for i := range 60 {
		if d, _ := l.reserve(0); d != 0 {
			t.Fatalf("request %d waits %v within the first minute's budget", i, d)
		}
	}
	if d, _ := l.reserve(0); d != time.Second {
		t.Fatalf("61st request waits %v, want 1s at 60 rpm", d)
	}
	if d, _ := l.reserve(0); d != 2*time.Second {
		t.Fatalf("62nd request waits %v, want 2s (queued behind the 61st)", d)
	}
	clk.advance(3 * time.Second)
	if d, _ := l.reserve(0); d != 0 {
		t.Fatalf("after refilling, request waits %v", d)
	}
}

func TestLimiterTokenBucketWaitsForDeficit(t *testing.T) {
	t.Parallel()
	l, _ := newFakeLimiter(0, 1000)
	if d, _ := l.reserve(600); d != 0 {
		t.Fatalf("first 600 tokens wait %v", d)
	}
	if d, _ := l.reserve(600); d != 12*time.Second {
		t.Fatalf("next 600 tokens wait %v, want 12s (200 missing at 1000/min)", d)
	}
	// A request bigger than a minute's budget is clamped, not refused forever.
	l2, _ := newFakeLimiter(0, 1000)
	if d, _ := l2.reserve(5000); d != 0 {
		t.Fatalf("oversized request on a full bucket waits %v", d)
	}
}

func TestLimiterUnlimitedNeverWaits(t *testing.T) {
	t.Parallel()
	l, _ := newFakeLimiter(0, 0)
	for range 1000 {
		if d, _ := l.reserve(1 << 20); d != 0 {
			t.Fatalf("unlimited limiter waits %v", d)
		}
	}
}

func TestLimiterUndoGivesReservationBack(t *testing.T) {
	t.Parallel()
	l, _ := newFakeLimiter(1, 0)
	if d, _ := l.reserve(0); d != 0 {
		t.Fatal("first request should not wait")
	}
	d, undo := l.reserve(0)
	if d != time.Minute {
		t.Fatalf("second request waits %v, want 1m", d)
	}
	undo()
	if d, _ := l.reserve(0); d != time.Minute {
		t.Fatalf("after undo the next request waits %v, want 1m again", d)
	}
}

func TestObservePausesAllCallers(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		status int
		hdr    map[string]string
		want   time.Duration // 0: no pause
	}{
		{"429 Retry-After seconds", 429, map[string]string{"Retry-After": "2"}, 2 * time.Second},
		{"429 Retry-After HTTP date", 429, map[string]string{"Retry-After": base.Add(7 * time.Second).Format(http.TimeFormat)}, 7 * time.Second},
		{"429 reset headers, longer wins", 429, map[string]string{"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, 5 * time.Minute /* MaxPause */},
		{"429 reset ms", 429, map[string]string{"x-ratelimit-reset-tokens": "20ms"}, 20 * time.Millisecond},
		{"429 no headers", 429, nil, time.Second},
		{"200 remaining requests zero", 200, map[string]string{"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3s"}, 3 * time.Second},
		{"200 remaining tokens under 1%", 200, map[string]string{"x-ratelimit-limit-tokens": "100000", "x-ratelimit-remaining-tokens": "900", "x-ratelimit-reset-tokens": "1.5s"}, 1500 * time.Millisecond},
		{"200 plenty remaining", 200, map[string]string{"x-ratelimit-limit-tokens": "100000", "x-ratelimit-remaining-tokens": "50000", "x-ratelimit-reset-tokens": "1s", "x-ratelimit-remaining-requests": "10", "x-ratelimit-reset-requests": "1s"}, 0},
		{"500 ignored", 500, map[string]string{"Retry-After": "9"}, 0},
		// A 503's Retry-After is how long the service is expected to be unavailable (RFC 9110):
		// OpenAI's 503 server_is_overloaded gives a minimum wait before retrying so. It was
		// ignored, and the retries of every caller were spent within seconds, each a failed
		// attempt of a paper. A reset header is a rate limit's, not the outage's: no pause.
		{"503 Retry-After seconds", 503, map[string]string{"Retry-After": "30"}, 30 * time.Second},
		{"503 retry-after-ms", 503, map[string]string{"retry-after-ms": "1500"}, 1500 * time.Millisecond},
		{"503 reset headers only", 503, map[string]string{"x-ratelimit-reset-requests": "6s"}, 0},
		{"503 no headers", 503, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := &fakeClock{t: base}
			l := NewLimiter(LimiterConfig{now: clk.now})
			h := http.Header{}
			for k, v := range tc.hdr {
				h.Set(k, v)
			}
			l.Observe(h, tc.status)
			got := l.PausedUntil().Sub(base)
			if tc.want == 0 {
				if !l.PausedUntil().IsZero() {
					t.Fatalf("paused for %v, want no pause", got)
				}
				return
			}
			if got != tc.want {
				t.Fatalf("paused for %v, want %v", got, tc.want)
			}
			// While paused, reserve reports the pause and reserves nothing.
			if d, undo := l.reserve(1); d != tc.want || undo != nil {
				t.Fatalf("reserve during pause = %v, undo %v", d, undo != nil)
			}
		})
	}
}

func TestParseResetDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1s", time.Second, true},
		{"6m0s", 6 * time.Minute, true},
		{"20ms", 20 * time.Millisecond, true},
		{"1h2m3.5s", time.Hour + 2*time.Minute + 3500*time.Millisecond, true},
		{"2", 2 * time.Second, true},
		{"0.25", 250 * time.Millisecond, true},
		{" 3s ", 3 * time.Second, true},
		{"", 0, false},
		{"soon", 0, false},
		{"-1s", 0, false},
		// Beyond a Duration's range: the longest wait, not a negative one that pauses nobody.
		{"1e12", math.MaxInt64, true},
		{"Inf", math.MaxInt64, true},
		{"NaN", 0, false},
	} {
		got, ok := ParseResetDuration(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseResetDuration(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want time.Duration
		ok   bool
	}{
		{"seconds", map[string]string{"Retry-After": "30"}, 30 * time.Second, true},
		{"zero", map[string]string{"Retry-After": "0"}, 0, true},
		{"ms wins over rounded seconds", map[string]string{"Retry-After": "1", "retry-after-ms": "40"}, 40 * time.Millisecond, true},
		{"date", map[string]string{"Retry-After": "Thu, 01 Jan 2026 12:01:00 GMT"}, time.Minute, true},
		{"date in past", map[string]string{"Retry-After": "Thu, 01 Jan 2026 11:00:00 GMT"}, 0, true},
		// The API's clock is 5 minutes behind ours (now): its Date says 11:55.
		{"date by the API's clock behind ours", map[string]string{"Retry-After": "Thu, 01 Jan 2026 11:56:00 GMT", "Date": "Thu, 01 Jan 2026 11:55:00 GMT"}, time.Minute, true},
		{"date by the API's clock ahead of ours", map[string]string{"Retry-After": "Thu, 01 Jan 2026 12:06:00 GMT", "Date": "Thu, 01 Jan 2026 12:05:00 GMT"}, time.Minute, true},
		{"date with an unreadable Date", map[string]string{"Retry-After": "Thu, 01 Jan 2026 12:01:00 GMT", "Date": "soon"}, time.Minute, true},
		{"garbage falls back to reset", map[string]string{"Retry-After": "later", "x-ratelimit-reset-tokens": "20ms"}, 20 * time.Millisecond, true},
		{"nothing", nil, 0, false},
		{"seconds beyond a Duration", map[string]string{"Retry-After": "99999999999"}, math.MaxInt64, true},
		{"ms beyond a Duration", map[string]string{"retry-after-ms": "1e17"}, math.MaxInt64, true},
	} {
		h := http.Header{}
		for k, v := range tc.hdr {
			h.Set(k, v)
		}
		got, ok := RetryAfter(h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: RetryAfter = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestWaitResumesOnlyAfterPause(t *testing.T) {
	t.Parallel()
	l := NewLimiter(LimiterConfig{})
	l.Pause(30 * time.Millisecond)
	until := l.PausedUntil()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			if err := l.Wait(context.Background(), 10); err != nil {
				errs <- err
				return
			}
			if time.Now().Before(until) {
				errs <- errors.New("a caller went through before the pause ended")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestWaitReturnsContextErrorWhilePaused(t *testing.T) {
	t.Parallel()
	l := NewLimiter(LimiterConfig{})
	l.Pause(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if err := l.Wait(ctx2, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want context.DeadlineExceeded", err)
	}
}

func TestNilLimiterIsPassThrough(t *testing.T) {
	t.Parallel()
	var l *Limiter
	if err := l.Wait(context.Background(), 100); err != nil {
		t.Fatal(err)
	}
	l.Observe(http.Header{"Retry-After": {"5"}}, 429) // must not panic
}

func TestTransportFeedsLimiter(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	l := NewLimiter(LimiterConfig{})
	c := HTTPClient(srv.Client(), l)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Until(l.PausedUntil()); d < 50*time.Second {
		t.Fatalf("limiter paused for %v after a 429 with Retry-After: 60", d)
	}
}

// TestTransportPausesForGeminisRetryDelay: Gemini's 429 carries no Retry-After or
// x-ratelimit-* header: the wait is in its body, a RetryInfo detail ("retryDelay": "40s").
// Every caller paused the default second and asked again, a burst of 429s every second for
// the whole wait (16 requests a second from one worker, on a quota of 10 a minute). The
// limiter now pauses every caller for the body's retryDelay, and the body is still read as
// the error's.
func TestTransportPausesForGeminisRetryDelay(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{Flavor: openaitest.FlavorGemini,
		Faults: openaitest.Faults{RateLimit: 1, RetryAfter: 40 * time.Second}})
	l := NewLimiter(LimiterConfig{})
	api, _, _ := Conn{BaseURL: srv.URL(), APIKey: "k", MaxRetries: -1, Timeout: 10 * time.Second, Limiter: l}.Open()
	start := time.Now()
	_, err := api.CreateChatCompletion(t.Context(), openai.ChatCompletionRequest{Model: "gemini-2.5-flash",
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Hi."}}})
	if HTTPStatus(err) != http.StatusTooManyRequests {
		t.Fatalf("err = %v, want the 429", err)
	}
	if d := l.PausedUntil().Sub(start); d < 40*time.Second {
		t.Errorf("limiter paused for %v after Gemini's 429 with retryDelay 40s; want 40s", d.Round(time.Millisecond))
	}
	if msg := readable(err).Error(); !strings.Contains(msg, "You exceeded your current quota") {
		t.Errorf("err = %q, want Gemini's message", msg)
	}
}

// TestTransportTakesAnErrorInASuccessForItsStatus: OpenRouter sends its 200 before the
// provider it routes to answers, and a failure after that — the provider's rate limit, its
// outage — comes as {"error": {"code": 429, "message": …}} in the 200's body (OpenRouter's
// API reference, "Errors"). go-openai took it for an answer without choices: the summarizer
// retried it as an unusable answer at once, counted each as a billed request, and gave up
// with "chat completion without choices", the backlog dead-lettered over its deliveries for
// a rate limit. The transport gives such an answer the error's status: a 429 that pauses
// every caller, with the message and its class.
func TestTransportTakesAnErrorInASuccessForItsStatus(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{Flavor: openaitest.FlavorOpenRouter,
		Faults: openaitest.Faults{RateLimit: 1}})
	l := NewLimiter(LimiterConfig{DefaultPause: 30 * time.Second})
	api, _, _ := Conn{BaseURL: srv.URL(), APIKey: "k", MaxRetries: -1, Timeout: 10 * time.Second, Limiter: l}.Open()
	start := time.Now()
	_, err := api.CreateChatCompletion(t.Context(), openai.ChatCompletionRequest{Model: "meta-llama/llama-3.3-70b-instruct:free",
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Hi."}}})
	if HTTPStatus(err) != http.StatusTooManyRequests || Classify(err) != RateLimited {
		t.Fatalf("err = %v (status %d); want OpenRouter's 429, rate-limited", err, HTTPStatus(err))
	}
	if !strings.Contains(err.Error(), "Rate limit exceeded: free-models-per-min") {
		t.Errorf("err = %v, want OpenRouter's message", err)
	}
	if d := l.PausedUntil().Sub(start); d < 30*time.Second {
		t.Errorf("limiter paused for %v; want the 429's pause", d.Round(time.Millisecond))
	}
}

// roundTripFunc is an http.RoundTripper of a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countingBody counts the bytes read of it.
type countingBody struct {
	r    io.Reader
	read int
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *countingBody) Close() error { return nil }

// A body closed early is read to its end only when little is left (the whitespace after a
// decoded answer): a large file closed unread (batch's look at an output file) costs its
// connection, not its download.
func TestTransportDrainsAtMostALittleOfABodyClosedEarly(t *testing.T) {
	t.Parallel()
	for _, left := range []int{1, drainLimit, 10 << 20} {
		body := &countingBody{r: strings.NewReader(strings.Repeat(" ", left))}
		tr := &Transport{Base: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: body}, nil
		})}
		resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/v1/files/f/content", nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := min(left, drainLimit); body.read != want {
			t.Errorf("closing a body with %d bytes left read %d of them, want %d", left, body.read, want)
		}
	}
}

// TestWaitHonoursAPauseSetWhileWaitingForTheBucket: a caller waiting for its turn in the
// request bucket when another caller's 429 pauses everyone must wait for the pause too.
func TestWaitHonoursAPauseSetWhileWaitingForTheBucket(t *testing.T) {
	t.Parallel()
	// The bucket's wait (1 s) leaves the test ample time to set the pause while Wait waits: with
	// 100 ms (600 a minute) a test goroutine late by 70 ms on a busy machine set it after Wait
	// had returned, and the test failed.
	l := NewLimiter(LimiterConfig{RequestsPerMinute: 60})
	for range 60 { // the first minute's budget: the next request waits 1 s for the bucket
		l.reserve(0)
	}
	done := make(chan time.Time, 1)
	go func() {
		if err := l.Wait(context.Background(), 0); err != nil {
			t.Error(err)
		}
		done <- time.Now()
	}()
	// Let Wait reserve its turn first (were it slower, it would meet the pause at its
	// reservation, and the test would pass without testing anything).
	time.Sleep(30 * time.Millisecond)
	l.Pause(2 * time.Second) // past the bucket's wait
	until := l.PausedUntil()
	if at := <-done; at.Before(until) {
		t.Errorf("Wait returned %v before the pause set while it waited for the bucket ended", until.Sub(at).Round(time.Millisecond))
	}
}

// TestBaseURLErrorsNeverShowItsSecrets: the error of a base URL that is refused — malformed,
// or with a query (go-openai appends the endpoint's path to the base URL as a string, so the
// query would swallow it: …/v1?api_key=K/chat/completions) or a fragment — shows neither the
// password of its userinfo nor a credential of its query.
func TestBaseURLErrorsNeverShowItsSecrets(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"https://user:PassW0rd@api.example.com:badport/v1?api_key=K3yValue", // does not parse
		"https://user:PassW0rd@api.example.com/v1?api_key=K3yValue",
		"https://api.example.com/v1?api_key=K3yValue",
		"https://user:PassW0rd@api.example.com/v1#api_key=K3yValue",
		"ftp://user:PassW0rd@api.example.com/v1?api_key=K3yValue",
	} {
		err := Conn{BaseURL: raw}.Validate("summarize config")
		if err == nil {
			t.Errorf("Validate accepted BaseURL %s", raw)
			continue
		}
		for _, secret := range []string{"PassW0rd", "K3yValue"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error of BaseURL %s shows %s: %v", raw, secret, err)
			}
		}
		if !strings.HasPrefix(err.Error(), "summarize config: BaseURL ") {
			t.Errorf("the error of BaseURL %s does not start with what and the field: %v", raw, err)
		}
	}
	for _, raw := range []string{"https://api.example.com/v1", "http://127.0.0.1:11434/v1/", "https://user:pw@proxy.example.com/v1"} {
		if err := (Conn{BaseURL: raw}).Validate("x"); err != nil {
			t.Errorf("Validate refused BaseURL %s: %v", raw, err)
		}
	}
}

// TestCallErrorsAndLogURLNeverShowTheBaseURLsSecrets: net/http's error of a failed call names
// the request's URL and hides only a password: a token given as the base URL's user name
// reached every error of a call. The base URL returned for log lines is masked too.
func TestCallErrorsAndLogURLNeverShowTheBaseURLsSecrets(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every call fails to connect
	for _, base := range []string{"http://T0kenUser@" + addr + "/v1", "http://user:PassW0rd@" + addr + "/v1/"} {
		api, _, logURL := Conn{BaseURL: base}.Open()
		_, err := api.CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{Model: "m",
			Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
		if err == nil {
			t.Fatalf("a call to %s succeeded", addr)
		}
		for _, secret := range []string{"T0kenUser", "PassW0rd"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error of a call through %s shows %s: %v", base, secret, err)
			}
			if strings.Contains(logURL, secret) {
				t.Errorf("the base URL for logs, %s, shows %s", logURL, secret)
			}
		}
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("the error of a call no longer names the server %s: %v", addr, err)
		}
	}
}

// An error answer's body is read at most maxErrorBody: go-openai reads an error body whole, and
// a proxy answering with an endless page held it in memory once per request. A success's body is
// not bounded (a large embeddings answer is tens of megabytes).
func TestTransportBoundsAnErrorAnswersBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		want   int
	}{{http.StatusBadGateway, maxErrorBody}, {http.StatusBadRequest, maxErrorBody}, {http.StatusOK, 3 * maxErrorBody}} {
		body := &countingBody{r: strings.NewReader(strings.Repeat("x", 3*maxErrorBody))}
		tr := &Transport{Base: roundTripFunc(func(*http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: tc.status, Header: http.Header{}, Body: body}, nil
		})}
		resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodPost, "http://api.test/v1/embeddings", nil))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || int(n) != tc.want {
			t.Errorf("a %d answer of %d bytes: read %d (%v), want %d", tc.status, 3*maxErrorBody, n, err, tc.want)
		}
	}
}

// TestLongRateLimitPauseIsLoggedOncePerPause: a 429 whose Retry-After asks for minutes or hours
// (a daily request limit used up) held every request of the process without a line in the log
// at the default level: a worker whose every message waited, and went back to the queue, for
// hours said nothing. The pause is logged once, as a warning naming how long it is, when it
// begins — not for each answer that extends it, nor for a short one.
func TestLongRateLimitPauseIsLoggedOncePerPause(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var logs bytes.Buffer
	l := NewLimiter(LimiterConfig{now: clk.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	h := func(retryAfter string) http.Header { return http.Header{"Retry-After": []string{retryAfter}} }
	l.Observe(h("1"), http.StatusTooManyRequests)
	clk.advance(2 * time.Second)
	if logs.Len() != 0 {
		t.Fatalf("a one-second pause was logged:\n%s", logs.String())
	}
	for range 3 { // three requests in flight answered alike
		l.Observe(h("3600"), http.StatusTooManyRequests)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "pause=5m0s") {
		t.Fatalf("%d warnings for one pause of 5 minutes (want 1, naming it):\n%s", n, logs.String())
	}
	clk.advance(6 * time.Minute) // the pause is over, and the API refuses again
	l.Observe(h("3600"), http.StatusTooManyRequests)
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 {
		t.Fatalf("%d warnings for two pauses (want 2):\n%s", n, logs.String())
	}
}

// TestLongRateLimitPauseAfterAShortOneIsLogged: a 429 asking for hours (a daily limit used up)
// that comes while a short pause is in progress — a request in flight answered just after
// another's x-ratelimit headers or Retry-After paused the callers for a second — was logged at
// debug level only, as extending a pause that had begun: the worker then held for the length
// of the long pause said nothing. A pause that becomes a long one is warned of.
func TestLongRateLimitPauseAfterAShortOneIsLogged(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var logs bytes.Buffer
	l := NewLimiter(LimiterConfig{now: clk.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	h := func(retryAfter string) http.Header { return http.Header{"Retry-After": []string{retryAfter}} }
	l.Observe(h("1"), http.StatusTooManyRequests) // a short pause begins
	clk.advance(100 * time.Millisecond)
	l.Observe(h("3600"), http.StatusTooManyRequests) // and a long one is asked for within it
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "pause=5m0s") {
		t.Fatalf("%d warnings for a pause of 5 minutes asked for during a pause of a second (want 1, naming it):\n%s", n, logs.String())
	}
}

// TestLimitedUntilIsTheEndTheAPIGaveUntilARequestGoesThrough: a 429 with Retry-After: 3600
// pauses the callers 5 minutes at a time (MaxPause), and what the workers announced was the
// pause's end — 5 minutes off, then again — where the API had said when its limit lifts. The
// API's word is kept past the pause, and forgotten once a request sent after it is answered.
func TestLimitedUntilIsTheEndTheAPIGaveUntilARequestGoesThrough(t *testing.T) {
	t.Parallel()
	l, clk := newFakeLimiter(0, 0)
	start := clk.now()
	l.Observe(http.Header{"Retry-After": {"3600"}}, http.StatusTooManyRequests)
	if got := l.PausedUntil(); !got.Equal(start.Add(5 * time.Minute)) {
		t.Fatalf("paused until %s, want MaxPause's 5 minutes", got)
	}
	if got := l.LimitedUntil(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("limited until %s, want the API's hour, %s", got, start.Add(time.Hour))
	}
	l.Observe(http.Header{}, http.StatusOK) // an answer to a request sent before the 429
	if got := l.LimitedUntil(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("after an answer sent before the pause: limited until %s, want the API's hour", got)
	}
	clk.advance(6 * time.Minute)
	if got := l.LimitedUntil(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("after the pause: limited until %s, want the API's hour still", got)
	}
	l.Observe(http.Header{}, http.StatusOK)
	if got := l.LimitedUntil(); got.After(clk.now()) {
		t.Errorf("after a request went through: limited until %s, want no limit", got)
	}
}

// TestLimitedUntilIsTheAPIsNewestWord: after a 429 of an hour and the 5 minutes' pause, a
// request answered 429 with Retry-After: 30 says the limit lifts in 30 s; LimitedUntil kept the
// hour (a worker announced 'rate limited … (in 55m)' while it tried again every 30 s) until a
// request went through. Answers to requests sent before the pause ends push it back only.
func TestLimitedUntilIsTheAPIsNewestWord(t *testing.T) {
	t.Parallel()
	l, clk := newFakeLimiter(0, 0)
	start := clk.now()
	l.Observe(http.Header{"Retry-After": {"3600"}}, http.StatusTooManyRequests)
	l.Observe(http.Header{"Retry-After": {"30"}}, http.StatusTooManyRequests) // sent with the first
	if got := l.LimitedUntil(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("after a shorter answer to a request sent before the pause: limited until %s, want the API's hour, %s", got, start.Add(time.Hour))
	}
	clk.advance(5 * time.Minute)
	l.Observe(http.Header{"Retry-After": {"30"}}, http.StatusTooManyRequests)
	if got, want := l.LimitedUntil(), clk.now().Add(30*time.Second); !got.Equal(want) {
		t.Errorf("after a 429 of 30 s to a request sent after the pause: limited until %s, want %s", got, want)
	}
	clk.advance(30 * time.Second)
	l.Observe(http.Header{"Retry-After": {"7200"}}, http.StatusTooManyRequests)
	if got, want := l.LimitedUntil(), clk.now().Add(2*time.Hour); !got.Equal(want) {
		t.Errorf("after a 429 of two hours: limited until %s, want %s", got, want)
	}
}

// TestLimitedByTellsAnUnavailableAPIFromARateLimit: a 503 with Retry-After: 3600 holds every
// request as a 429 does, and a worker so held was announced "rate limited by the API" — the
// operator looked at the account's limits while the service said it was down. LimitedBy says
// which of the two holds the end it reports, and the API's newest word decides.
func TestLimitedByTellsAnUnavailableAPIFromARateLimit(t *testing.T) {
	t.Parallel()
	l, clk := newFakeLimiter(0, 0)
	start := clk.now()
	l.Observe(http.Header{"Retry-After": {"3600"}}, http.StatusServiceUnavailable)
	if until, unavailable := l.LimitedBy(); !until.Equal(start.Add(time.Hour)) || !unavailable {
		t.Errorf("after a 503 of an hour: limited until %s, unavailable %v; want the hour, unavailable", until, unavailable)
	}
	clk.advance(5 * time.Minute)
	l.Observe(http.Header{"Retry-After": {"30"}}, http.StatusTooManyRequests)
	if until, unavailable := l.LimitedBy(); !until.Equal(clk.now().Add(30*time.Second)) || unavailable {
		t.Errorf("after a 429 of 30 s sent after the pause: limited until %s, unavailable %v; want 30 s, a rate limit", until, unavailable)
	}
	clk.advance(time.Minute)
	l.Observe(http.Header{"Retry-After": {"120"}}, http.StatusServiceUnavailable)
	if until, unavailable := l.LimitedBy(); !until.Equal(clk.now().Add(2*time.Minute)) || !unavailable {
		t.Errorf("after a 503 of 2 minutes: limited until %s, unavailable %v; want 2 minutes, unavailable", until, unavailable)
	}
}

// An error answer after the pause (a 400 refusing one request, a 500) is no sign that the
// limit lifted: the end the API gave is kept until a request is answered without an error.
func TestLimitedUntilOutlastsAnErrorAnswerAfterThePause(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusBadRequest, http.StatusInternalServerError} {
		l, clk := newFakeLimiter(0, 0)
		start := clk.now()
		l.Observe(http.Header{"Retry-After": {"3600"}}, http.StatusTooManyRequests)
		clk.advance(6 * time.Minute)
		l.Observe(http.Header{}, status)
		if got := l.LimitedUntil(); !got.Equal(start.Add(time.Hour)) {
			t.Errorf("after a %d answer past the pause: limited until %s, want the API's hour", status, got)
		}
	}
}

func TestEveryLongPauseTheAPIAsksForIsWarnedOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		warned bool
	}{
		{"a 429 of a minute", http.StatusTooManyRequests, http.Header{"Retry-After": {"60"}}, "", true},
		{"a 429 of 59 seconds", http.StatusTooManyRequests, http.Header{"Retry-After": {"59"}}, "", false},
		{"a 503 of an hour", http.StatusServiceUnavailable, http.Header{"Retry-After": {"3600"}}, "", true},
		{"requests used up for 10 minutes", http.StatusOK, http.Header{"X-Ratelimit-Remaining-Requests": {"0"}, "X-Ratelimit-Reset-Requests": {"10m0s"}}, "", true},
		{"a 429's retryDelay of an hour", http.StatusTooManyRequests, http.Header{},
			`{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"3600s"}]}}`, true},
	} {
		clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		var logs bytes.Buffer
		l := NewLimiter(LimiterConfig{now: clk.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		tr := &Transport{Limiter: l, Base: roundTripFunc(func(req *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: tc.status, Header: tc.header, Body: io.NopCloser(strings.NewReader(tc.body)), Request: req}, nil
		})}
		req, err := http.NewRequest(http.MethodPost, "http://api.invalid/v1/embeddings", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if got := strings.Count(logs.String(), "level=WARN") == 1; got != tc.warned || !l.PausedUntil().After(clk.now()) {
			t.Errorf("%s: warned %v, paused until %s; want warned %v, paused:\n%s", tc.name, got, l.PausedUntil(), tc.warned, logs.String())
		}
	}
}

func TestLimitedUntilKeepsTheLaterOfTheEndsTheAPIGave(t *testing.T) {
	t.Parallel()
	l, clk := newFakeLimiter(0, 0)
	start := clk.now()
	l.Observe(http.Header{"Retry-After": {"3600"}}, http.StatusTooManyRequests)
	clk.advance(time.Second)
	l.Observe(http.Header{"Retry-After": {"600"}}, http.StatusTooManyRequests)
	if got := l.LimitedUntil(); !got.Equal(start.Add(time.Hour)) {
		t.Errorf("limited until %s after 429s asking for an hour and then for 10 minutes, want the hour's end, %s", got, start.Add(time.Hour))
	}
}

// TestAWaitStoppedByItsStopGivesUpWithTheStopsCauseAndItsReservationBack: WithWaitStop's stop
// ends a Wait for the rate limit (a draining worker hands its message back at once), with the
// stop's cause wrapped in ErrRateLimited, and the request it had reserved is given back; a
// request that need not wait goes whatever the stop.
func TestAWaitStoppedByItsStopGivesUpWithTheStopsCauseAndItsReservationBack(t *testing.T) {
	t.Parallel()
	l, _ := newFakeLimiter(1, 0)
	draining := errors.New("the worker drains")
	stop, stopIt := context.WithCancelCause(context.Background())
	stopIt(draining)
	ctx := WithWaitStop(context.Background(), stop)
	if err := l.Wait(ctx, 0); err != nil {
		t.Fatalf("the minute's one request, stopped: Wait = %v, want nil (it need not wait)", err)
	}
	// Bounded only so that a Wait that ignores the stop fails rather than hangs for the minute.
	guard, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := l.Wait(guard, 0)
	if !errors.Is(err, ErrRateLimited) || !errors.Is(err, draining) {
		t.Fatalf("the next request, stopped: Wait = %v, want ErrRateLimited wrapping the stop's cause", err)
	}
	if d, _ := l.reserve(0); d != time.Minute {
		t.Fatalf("after the stopped Wait the next request waits %v, want 1m: the stopped one's reservation was not given back", d)
	}
}

// TestLimitedUntilIsThePauseWhenItOutlastsTheEndTheAPIGave: a 429 of 6 minutes pauses for
// MaxPause's 5 and keeps the API's 6 as the end; a 429 of 5 minutes to a request sent before
// the pause, 4 minutes in, makes the pause run to minute 9, past that end. The requests wait
// to minute 9, and LimitedUntil says so, not minute 6.
func TestLimitedUntilIsThePauseWhenItOutlastsTheEndTheAPIGave(t *testing.T) {
	t.Parallel()
	l, clk := newFakeLimiter(0, 0)
	start := clk.now()
	l.Observe(http.Header{"Retry-After": {"360"}}, http.StatusTooManyRequests)
	clk.advance(4 * time.Minute)
	l.Observe(http.Header{"Retry-After": {"300"}}, http.StatusTooManyRequests)
	if got := l.PausedUntil(); !got.Equal(start.Add(9 * time.Minute)) {
		t.Fatalf("paused until %s, want %s", got, start.Add(9*time.Minute))
	}
	if got := l.LimitedUntil(); !got.Equal(start.Add(9 * time.Minute)) {
		t.Errorf("limited until %s, want the pause's end, %s, which is later than the API's first word", got, start.Add(9*time.Minute))
	}
}
