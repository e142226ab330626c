package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// RequestsPerMinute is the client-side request budget. Defaults to 0: unlimited.
	RequestsPerMinute int
	// TokensPerMinute is the client-side token budget (estimated input tokens). Defaults to 0:
	// unlimited.
	TokensPerMinute int
	// DefaultPause is how long every caller pauses after a 429 that names no reset time.
	// Defaults to 1s.
	DefaultPause time.Duration
	// MaxPause caps one pause read from a header, so a wild value cannot stall the process.
	// Defaults to 5m.
	MaxPause time.Duration
	// Logger receives a debug line per pause. Defaults to discarding.
	Logger *slog.Logger
	// now is the clock; tests replace it. Defaults to time.Now.
	now func() time.Time
}

// Limiter is the client-side rate limiter of one API base URL, shared by every caller of that
// API (summarizer and embedder included): two token buckets, requests per minute and tokens
// per minute, each holding up to one minute's budget, and a pause that the API's own
// rate-limit headers impose on all callers at once (see Observe). Its methods are safe for
// concurrent use. The zero value is not usable; use NewLimiter.
type Limiter struct {
	cfg LimiterConfig
	log *slog.Logger
	now func() time.Time

	mu          sync.Mutex
	requests    bucket
	tokens      bucket
	pausedUntil time.Time
	// saidUntil is when the API said its limit lifts, beyond MaxPause: the pause stops at
	// MaxPause and a request tries again, but LimitedUntil reports the API's word until an
	// answer other than an error comes, or a pause asked for after it replaces it.
	saidUntil time.Time
	// pausedUnavailable and saidUnavailable: the pause to pausedUntil, and the end saidUntil,
	// come from a 503 saying the service is unavailable, not from a rate limit (see LimitedBy).
	pausedUnavailable, saidUnavailable bool
}

// bucket is a token bucket that may go negative: a caller reserves what it needs and waits
// until the bucket has refilled to zero, so callers are served in the order they arrive.
type bucket struct {
	perMinute float64 // 0 = unlimited
	level     float64
	last      time.Time
}

func (b *bucket) refill(now time.Time) {
	if b.perMinute <= 0 {
		return
	}
	if b.last.IsZero() {
		b.level, b.last = b.perMinute, now
		return
	}
	if now.After(b.last) {
		b.level += now.Sub(b.last).Minutes() * b.perMinute
		if b.level > b.perMinute {
			b.level = b.perMinute
		}
		b.last = now
	}
}

// reserve takes n from the bucket and returns how long the caller must wait before using it.
// A request larger than a whole minute's budget is clamped to it, so it waits but never
// forever.
func (b *bucket) reserve(now time.Time, n float64) (float64, time.Duration) {
	if b.perMinute <= 0 || n <= 0 {
		return 0, 0
	}
	b.refill(now)
	n = min(n, b.perMinute)
	b.level -= n
	if b.level >= 0 {
		return n, 0
	}
	return n, time.Duration(-b.level / b.perMinute * float64(time.Minute))
}

// NewLimiter returns a Limiter configured by cfg.
func NewLimiter(cfg LimiterConfig) *Limiter {
	if cfg.DefaultPause <= 0 {
		cfg.DefaultPause = time.Second
	}
	if cfg.MaxPause <= 0 {
		cfg.MaxPause = 5 * time.Minute
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Limiter{
		cfg:      cfg,
		log:      log,
		now:      cfg.now,
		requests: bucket{perMinute: float64(max(cfg.RequestsPerMinute, 0))},
		tokens:   bucket{perMinute: float64(max(cfg.TokensPerMinute, 0))},
	}
}

// ErrRateLimited wraps the error of a wait for the rate limit that ctx ended (see Wait): the
// request was never sent, and what stopped it is the API's budget or the configured one, not
// the request.
var ErrRateLimited = errors.New("the request waited for the API's rate limit")

// waitStopKey is the context key of WithWaitStop's context.
type waitStopKey struct{}

// WithWaitStop returns a copy of ctx under which a Limiter's Wait also gives up when stop is
// done, with context.Cause(stop) wrapped in ErrRateLimited: a worker that starts to drain hands
// back at once the messages whose requests wait for the rate limit — never sent, nothing paid
// — while the requests already sent, in ctx, go on to their answers. (A 429 with Retry-After:
// 3600 held a stopping worker's drain for the whole pause or the message's time.)
func WithWaitStop(ctx, stop context.Context) context.Context {
	return context.WithValue(ctx, waitStopKey{}, stop)
}

// Wait blocks until one request of about tokens input tokens may be sent: until any pause set
// by Observe is over and both buckets allow it. It returns ctx.Err() if ctx is done on entry;
// if ctx ends while it waits, ctx.Err() wrapped in ErrRateLimited, and if the stop of
// WithWaitStop ends it, that stop's cause so wrapped; either way it gives the reservation
// back. A request that need not wait is let go whatever the stop. A nil Limiter never waits.
func (l *Limiter) Wait(ctx context.Context, tokens int) error {
	if l == nil {
		return ctx.Err()
	}
	var stopped <-chan struct{} // nil, which never fires, without a stop
	stop, _ := ctx.Value(waitStopKey{}).(context.Context)
	if stop != nil {
		stopped = stop.Done()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, undo := l.reserve(tokens)
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		var gaveUp error
		select {
		case <-ctx.Done():
			gaveUp = ctx.Err()
		case <-stopped:
			gaveUp = context.Cause(stop)
		case <-t.C:
		}
		if gaveUp != nil {
			t.Stop()
			if undo != nil {
				undo()
			}
			return fmt.Errorf("%w: %w", ErrRateLimited, gaveUp)
		}
		if undo == nil {
			// We waited out a pause, which may have been extended meanwhile: look again.
			continue
		}
		if l.PausedUntil().After(l.now()) {
			// The bucket's wait is over, but another caller's 429 paused everyone meanwhile:
			// give the reservation back and wait for the pause.
			undo()
			continue
		}
		return nil
	}
}

// reserve either reports the remaining pause (undo nil: nothing was reserved) or reserves a
// request and its tokens and reports how long to wait before sending it, with a function that
// gives the reservation back.
func (l *Limiter) reserve(tokens int) (time.Duration, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if d := l.pausedUntil.Sub(now); d > 0 {
		return d, nil
	}
	nr, dr := l.requests.reserve(now, 1)
	nt, dt := l.tokens.reserve(now, float64(tokens))
	undo := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.requests.level += nr
		l.tokens.level += nt
	}
	return max(dr, dt), undo
}

// PausedUntil returns the time until which every caller is paused (zero or past: not paused).
func (l *Limiter) PausedUntil() time.Time {
	if l == nil {
		return time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pausedUntil
}

// LimitedUntil returns until when the API's rate limit holds the process's requests, as far
// as it is known: the pause in progress, or, when the API asked for longer than MaxPause (a
// 429 with Retry-After: 3600), the end it asked for, until a request sent after the pause is
// answered with anything but an error or asks for another pause. Zero or past: not limited.
func (l *Limiter) LimitedUntil() time.Time {
	until, _ := l.LimitedBy()
	return until
}

// LimitedBy is LimitedUntil, and whether that end is the API's word that it is unavailable (a
// 503 with Retry-After) rather than its rate limit (a 429, x-ratelimit headers, Pause): a
// worker held by either is shown paused, and the two are different news to its operator.
func (l *Limiter) LimitedBy() (until time.Time, unavailable bool) {
	if l == nil {
		return time.Time{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.saidUntil.After(l.pausedUntil) {
		return l.saidUntil, l.saidUnavailable
	}
	return l.pausedUntil, l.pausedUnavailable
}

// Pause makes every caller wait at least d from now.
func (l *Limiter) Pause(d time.Duration) {
	if l == nil {
		return
	}
	l.pause(d, false)
}

// pause is Pause, reporting the pause set (d capped at MaxPause) and whether it begins a long
// one (see longPause): no pause that long was in progress — none at all, or a short one that
// this one makes long. unavailable: the API said it is unavailable (see LimitedBy).
func (l *Limiter) pause(d time.Duration, unavailable bool) (time.Duration, bool) {
	if d <= 0 {
		return 0, false
	}
	asked := d
	d = min(d, l.cfg.MaxPause)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	began := l.pausedUntil.Sub(now) < longPause
	// An answer to a request sent after the pause is the API's newest word on its limit, and
	// replaces the end it gave before, sooner or later; one to a request sent before it (in
	// flight with the answer that began it) may only push it back.
	newest := !now.Before(l.pausedUntil)
	if said := now.Add(asked); asked > d && (newest || said.After(l.saidUntil)) {
		l.saidUntil, l.saidUnavailable = said, unavailable
	} else if asked <= d && newest {
		l.saidUntil = time.Time{}
	}
	if until := now.Add(d); until.After(l.pausedUntil) {
		l.pausedUntil, l.pausedUnavailable = until, unavailable
	}
	return d, began
}

// longPause is the shortest pause the API imposes that is logged as a warning: a worker's
// messages wait through it and go back to the queue, every request of the process held, and
// nothing else would say why (a daily request limit used up: Retry-After of hours).
const longPause = time.Minute

// pauseFor pauses every caller for d, the API's answer (what), logging it at debug level, or
// as a warning when it begins a pause of at least longPause (or makes a short one in progress
// that long): once per pause, not for each of the answers of the requests in flight that
// extend it.
func (l *Limiter) pauseFor(d time.Duration, what string, unavailable bool) {
	d, began := l.pause(d, unavailable)
	if began && d >= longPause {
		l.log.Warn(what+": every request of this process to the API waits until the pause is over (not the papers' fault)", "pause", d, "until", l.now().Add(d).UTC().Format(time.RFC3339))
		return
	}
	l.log.Debug(what+": pausing all callers", "pause", d)
}

// Observe feeds the limiter with one response's status and headers:
//
//   - A 429 pauses every caller for retry-after-ms or Retry-After (seconds or an HTTP date);
//     without them, for the
//     longer of x-ratelimit-reset-requests and x-ratelimit-reset-tokens ("1s", "6m0s",
//     "20ms"); without those, for DefaultPause.
//   - A 503 with retry-after-ms or Retry-After pauses every caller for as long: the time the
//     service says it is unavailable. (Other 5xx answers pause nobody.)
//   - Any other response whose x-ratelimit-remaining-requests or -tokens is near zero (≤ 0, or
//     at most 1% of the matching x-ratelimit-limit-*) pauses every caller until the matching
//     reset.
//
// A nil Limiter ignores everything.
func (l *Limiter) Observe(h http.Header, status int) {
	if l == nil {
		return
	}
	now := l.now()
	if status < http.StatusBadRequest {
		l.answered(now)
	}
	if status == http.StatusTooManyRequests {
		d, ok := RetryAfter(h, now)
		if !ok {
			d = l.cfg.DefaultPause
		}
		l.pauseFor(d, "rate limited by the API", false)
		return
	}
	if status == http.StatusServiceUnavailable {
		// How long the service is expected to be unavailable (RFC 9110, 10.2.3): OpenAI's 503
		// server_is_overloaded may give the least wait before a retry. Every caller would get
		// the same answer meanwhile, each attempt a retry spent of its paper.
		if d, ok := retryAfterHeader(h, now); ok {
			l.pauseFor(d, "the API is unavailable for a while, it says", true)
		}
	}
	var d time.Duration
	for _, kind := range []string{"requests", "tokens"} {
		rem, ok := headerInt(h, "x-ratelimit-remaining-"+kind)
		if !ok {
			continue
		}
		limit, _ := headerInt(h, "x-ratelimit-limit-"+kind)
		if rem > 0 && (limit <= 0 || rem*100 > limit) {
			continue
		}
		if r, ok := ParseResetDuration(h.Get("x-ratelimit-reset-" + kind)); ok {
			d = max(d, r)
		}
	}
	if d > 0 {
		l.pauseFor(d, "API rate limit nearly exhausted", false)
	}
}

// answered forgets the end the API said its limit lifts at (see LimitedUntil) once a request
// sent after the pause was answered without an error: the limit lifted sooner.
func (l *Limiter) answered(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.saidUntil.IsZero() && !now.Before(l.pausedUntil) {
		l.saidUntil = time.Time{}
	}
}

// RetryAfter reads how long a 429 asks the client to wait: retry-after-ms (OpenAI's precise
// form), else Retry-After (delay seconds or an HTTP date, relative to the response's Date
// header, or to now without one), else the longer of x-ratelimit-reset-requests and
// x-ratelimit-reset-tokens. ok is false when none of them parses.
func RetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if d, ok := retryAfterHeader(h, now); ok {
		return d, true
	}
	for _, k := range []string{"x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"} {
		if r, rok := ParseResetDuration(h.Get(k)); rok {
			d, ok = max(d, r), true
		}
	}
	return d, ok
}

// retryAfterHeader reads retry-after-ms, else Retry-After, as RetryAfter does.
func retryAfterHeader(h http.Header, now time.Time) (d time.Duration, ok bool) {
	if ms, err := strconv.ParseFloat(strings.TrimSpace(h.Get("retry-after-ms")), 64); err == nil && ms >= 0 {
		return seconds(ms / 1000), true
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
			return seconds(secs), true
		}
		if t, err := http.ParseTime(v); err == nil {
			// The date is by the API's clock: measured from the response's Date (the same
			// clock) when it has one, a client whose clock is minutes off neither retries at
			// once nor pauses every caller minutes too long.
			if sent, err := http.ParseTime(h.Get("Date")); err == nil {
				now = sent
			}
			return max(t.Sub(now), 0), true
		}
	}
	return 0, false
}

// ParseResetDuration parses an x-ratelimit-reset-* value as OpenAI sends it: a Go-style
// duration such as "1s", "6m0s", "20ms" or "1h2m3.5s", or a bare number of seconds.
func ParseResetDuration(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, true
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		return seconds(secs), true
	}
	return 0, false
}

// seconds converts a non-negative number of seconds to a Duration, the longest one for a value
// beyond its range (a wild header must not overflow into a negative wait, which pauses nobody).
func seconds(secs float64) time.Duration {
	if secs >= float64(math.MaxInt64)/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(secs * float64(time.Second))
}

func headerInt(h http.Header, k string) (int, bool) {
	v := strings.TrimSpace(h.Get(k))
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

// Transport is an http.RoundTripper that hands every response's status and headers to a
// Limiter, so that go-openai's requests feed it without knowing about it; a 429 without a
// header that says how long to wait pauses the Limiter for its body's retryDelay, when it has
// one (BodyRetryDelay: Gemini's).
//
// It also keeps connections reusable: a response body it returns, closed before its end,
// first reads and discards what is left of it, up to drainLimit bytes. go-openai decodes an
// answer with a json.Decoder, which stops at the value's last byte, and closes the body; over
// HTTP/1.1, net/http drops a connection whose body was closed before io.EOF, so an answer sent
// chunked and uncompressed (as a Go server whose handler sets no Content-Length sends any
// answer over 2 KB — embeddings — or a proxy streaming it) cost the next request a new
// connection, and a TCP (and TLS) handshake.
type Transport struct {
	// Base sends the requests. Defaults to http.DefaultTransport.
	Base http.RoundTripper
	// Limiter is fed with every response. A nil Limiter is not fed.
	Limiter *Limiter
}

// RoundTrip sends req with Base and reports the response to the Limiter.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err == nil {
		if resp.StatusCode == http.StatusOK {
			errorInSuccess(resp)
		}
		t.Limiter.Observe(resp.Header, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests && t.Limiter != nil {
			if _, ok := RetryAfter(resp.Header, time.Now()); !ok {
				// No header says how long: Google's APIs say it in the body.
				head, _ := io.ReadAll(io.LimitReader(resp.Body, maxRetryInfoBody))
				resp.Body = struct {
					io.Reader
					io.Closer
				}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
				if d, ok := BodyRetryDelay(head); ok {
					t.Limiter.pauseFor(d, "rate limited by the API (its answer's retryDelay)", false)
				}
			}
		}
		if resp.StatusCode >= http.StatusBadRequest {
			// go-openai reads an error answer whole (handleErrorResp's io.ReadAll): a proxy's or
			// a misbehaving server's page of any size would be held once per request.
			resp.Body = struct {
				io.Reader
				io.Closer
			}{io.LimitReader(resp.Body, maxErrorBody), resp.Body}
		}
		resp.Body = drainingBody{resp.Body}
	}
	return resp, err
}

// maxErrorBody is the most of an error answer's body (a 4xx or 5xx) a client reads: an API's
// error object is well under a kilobyte, a proxy's error page a few.
const maxErrorBody = 1 << 20

// errorInSuccess gives resp, a 200, the status of the error its body holds instead of an
// answer: a gateway that sends its 200 before the provider it routes to has answered sends the
// provider's failure after it — OpenRouter's {"error": {"code": 429, "message": "Rate limit
// exceeded: …", "metadata": {…}}, "user_id": …}, its API reference says ("Errors") — which
// go-openai took for an answer with no choices: an unusable answer, retried at once and counted
// as billed, for a rate limit or an outage. Answer fields beside the error that hold nothing
// ("choices": null or []) do not make it an answer. The body's "code" when it is an HTTP error status,
// else 502 (a failure behind the gateway). resp's body is given back whole either way; a body
// that does not start with its "error" is not looked at beyond its first bytes.
func errorInSuccess(resp *http.Response) {
	br := bufio.NewReaderSize(resp.Body, 512)
	resp.Body = struct {
		io.Reader
		io.Closer
	}{br, resp.Body}
	head, _ := br.Peek(512) // what there is of it, when it is shorter
	if !errorFirstRe.Match(head) {
		return
	}
	body, _ := io.ReadAll(io.LimitReader(br, maxRetryInfoBody))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), br), resp.Body}
	var e struct {
		Error *struct {
			Code any `json:"code"`
		} `json:"error"`
		Choices json.RawMessage `json:"choices"`
		Data    json.RawMessage `json:"data"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == nil || holdsAnswer(e.Choices) || holdsAnswer(e.Data) {
		return // not an error object, or an answer after all
	}
	code := http.StatusBadGateway
	if n, ok := e.Error.Code.(float64); ok && n >= 400 && n < 600 && n == math.Trunc(n) {
		code = int(n)
	}
	resp.StatusCode, resp.Status = code, fmt.Sprintf("%d %s", code, http.StatusText(code))
}

// holdsAnswer reports whether raw, the choices or data of a body, holds an answer: not when it
// is missing, null (a server that marshals its unset list beside the error) or an empty list.
func holdsAnswer(raw json.RawMessage) bool {
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		return len(list) > 0 // null decodes to a nil list
	}
	return len(raw) > 0 // not a list: taken for an answer, as before
}

// errorFirstRe matches the start of a JSON body whose first member is "error".
var errorFirstRe = regexp.MustCompile(`^\s*\{\s*"error"\s*:`)

// maxRetryInfoBody is the most of a 429's body BodyRetryDelay is given: Google's error object,
// with its details, is well under it.
const maxRetryInfoBody = 64 << 10

// retryDelayRe finds the retryDelay of a google.rpc.RetryInfo in a JSON body: a duration in
// seconds, "43s" or "12.771204034s".
var retryDelayRe = regexp.MustCompile(`"retryDelay"\s*:\s*"(\d+(?:\.\d+)?)s"`)

// BodyRetryDelay reads how long a 429's body asks the client to wait: the retryDelay of a
// google.rpc.RetryInfo detail of Google's error object, as Gemini answers it (natively, and in
// a list from its OpenAI compatibility), which sends no Retry-After header. ok is false when
// the body has none.
func BodyRetryDelay(body []byte) (time.Duration, bool) {
	m := retryDelayRe.FindSubmatch(body)
	if m == nil {
		return 0, false
	}
	secs, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || secs < 0 {
		return 0, false
	}
	return seconds(secs), true
}

// drainLimit is the most a response body's Close reads to reach its end: more than the
// whitespace a JSON decoder leaves (the chunked encoding's last chunk is not counted); a body
// with more left, such as a file closed unread, costs its connection rather than its download.
const drainLimit = 4 << 10

// drainingBody is a response body whose Close reads and discards up to drainLimit bytes of
// what is left first, so that net/http may reuse the connection (see Transport). The read is
// bounded by the request's context as any read of the body is.
type drainingBody struct{ io.ReadCloser }

func (b drainingBody) Close() error {
	_, _ = io.CopyN(io.Discard, b.ReadCloser, drainLimit)
	return b.ReadCloser.Close()
}

// PooledTransport is the model clients' transport: http.DefaultTransport's settings, but
// keeping an idle connection for every request that may be in flight — inFlight TL;DR requests,
// plus embedding and query requests. http.DefaultTransport keeps 2 per host, so at a
// concurrency of 16 most requests would open a new connection — a TCP and TLS handshake with a
// remote API — and leave the old one in TIME_WAIT.
func PooledTransport(inFlight int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(inFlight, 1) + 16
	t.MaxIdleConns = max(t.MaxIdleConns, 2*t.MaxIdleConnsPerHost) // chat and embeddings may be two hosts
	return t
}

// HTTPClient returns a copy of c (http.DefaultClient's settings when nil) whose transport
// feeds l.
func HTTPClient(c *http.Client, l *Limiter) *http.Client {
	var cp http.Client
	if c != nil {
		cp = *c
	}
	cp.Transport = &Transport{Base: cp.Transport, Limiter: l}
	return &cp
}
