package llm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/paper"
)

// Class is how a failed call should be handled.
type Class int

// Error classes returned by Classify.
const (
	// Transient failures (timeouts, 5xx, connection resets, truncated or malformed bodies) are
	// retried with backoff, each retry counting against the item.
	Transient Class = iota
	// RateLimited failures (HTTP 429) are waited out through the Limiter and do not count
	// against the item.
	RateLimited
	// Permanent failures (HTTP 400, 413, 422, or anything wrapping paper.ErrPermanent) are
	// never retried.
	Permanent
	// Account failures (HTTP 401, 402, 403, 404, 501, 429 insufficient_quota and a daily quota used up) are the account's or the
	// configuration's problem, not the item's: a retry a moment later gets the same answer, so
	// they are not retried here; the error wraps ErrAccount, and whoever holds a queue of
	// items pauses it until the API answers again instead of failing the items (see
	// pipeline.Worker).
	Account
)

// String returns the class name.
func (c Class) String() string {
	switch c {
	case RateLimited:
		return "rate-limited"
	case Permanent:
		return "permanent"
	case Account:
		return "account"
	default:
		return "transient"
	}
}

// ErrAccount marks a failure of class Account: a bad or revoked key, no access to the model,
// an unknown model or a wrong base URL, an exhausted quota — or an answer that shows the
// configuration wrong, which a caller wraps in ErrAccount itself (embed: vectors of another
// length than the space's). Its message is the API's, with the API key, should the answer
// quote it, replaced by "[redacted]"; a caller's own is returned by Retrier.Do as it is.
var ErrAccount = errors.New("the API refuses the account or the configuration")

// ErrUnreachable marks a call whose connection could not be made: refused, no such host, no
// route, a dial timeout — the API is down or not where the base URL says; no paper is at
// fault. Retrier.Do retries it like a transient failure (a blip), and once the retries are
// used up returns it wrapped with ErrAccount, so that a worker pauses on it with its
// messages queued instead of using up their deliveries (an hour's outage of a local model
// server dead-lettered the whole backlog). So is a model server that answers only that it is
// still loading its model (llama.cpp's 503 "Loading model", see loading). A connection that
// broke during a call, or another answer of 5xx, stays Transient: the server answered, and a
// paper may be what it failed on.
var ErrUnreachable = errors.New("the API cannot be reached")

// unreachable reports whether err is a failure to connect to the API: a DNS failure, or a
// dial error anywhere in its chain (through a proxy, net/http wraps the proxy's dial error in a
// "proxyconnect" one).
func unreachable(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	for e := err; e != nil; {
		if op, ok := e.(*net.OpError); ok && op.Op == "dial" {
			return true
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				if unreachable(inner) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// ErrTLS marks a call whose TLS connection to the API could not be made: a certificate this
// machine does not trust (a private CA not in the system's bundle, a proxy that intercepts TLS),
// one for another host, one expired, https:// to a server that speaks plain HTTP, or http:// to
// one that speaks only TLS (which answers 400: plainToTLS). It is the
// configuration's problem, the same at every attempt and for every paper: Retrier.Do returns it
// at once, wrapped with ErrAccount, so that a worker pauses on it instead of using up its
// messages' deliveries (they were retried as transient failures, and the backlog
// dead-lettered); its message says what to change (tlsHint).
var ErrTLS = errors.New("the connection to the API fails at TLS")

// tlsHint says what a failed TLS handshake with the API, err, needs changed, or "" when err is
// not one. Go verifies the API's certificate against the system's CAs, which on Linux it reads
// from SSL_CERT_FILE and SSL_CERT_DIR when they are set (crypto/x509, root_unix.go).
func tlsHint(err error) string {
	var (
		unknown x509.UnknownAuthorityError
		roots   x509.SystemRootsError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		record  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown), errors.As(err, &roots):
		return "the API's certificate is signed by a CA this machine does not trust: a private CA, or a proxy " +
			"that intercepts TLS? on Linux, Go reads the CAs it trusts from SSL_CERT_FILE (a PEM file, read instead of the " +
			"system's bundle) and SSL_CERT_DIR (directories of PEM files, read instead of the system's): " +
			"set one to a file or directory that holds that CA's certificate, or add it to the system's CAs"
	case errors.As(err, &host):
		return "the API's certificate is not for the base URL's host: write the host name the certificate " +
			"names in the base URL"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the API's certificate has expired or is not valid yet: renew it, or check this machine's clock"
	case errors.As(err, &invalid):
		return "the API's certificate is not valid for a TLS server"
	case errors.Is(err, http.ErrSchemeMismatch), errors.As(err, &record):
		return "the server does not speak TLS: write http:// instead of https:// in the base URL"
	case plainToTLS(err):
		return "the server speaks only TLS: write https:// instead of http:// in the base URL"
	}
	return ""
}

// plainToTLS reports whether err is a server's 400 to a plain HTTP request sent to its TLS
// port: Go's net/http answers "Client sent an HTTP request to an HTTPS server.", nginx an HTML
// page titled "400 The plain HTTP request was sent to HTTPS port". Every request gets it, not
// a paper's (a 400 is otherwise Permanent, and each paper was dead-lettered at once).
func plainToTLS(err error) bool {
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest {
		return false
	}
	msg := strings.ToLower(apiErr.Message)
	return strings.Contains(msg, "http request to an https server") || strings.Contains(msg, "plain http request was sent to https port")
}

// loading reports whether err is a model server's answer that it is still loading its model:
// llama.cpp's llama-server listens before it loads the model and answers every request but
// /v1/models with 503 {"error": {"code": 503, "message": "Loading model", "type":
// "unavailable_error"}} until it is loaded (tools/server/server.cpp, middleware_server_state),
// for as long as the model takes to load — minutes for a large one. No paper is at fault, and
// the answer a moment later is the same: Retrier.Do takes it as an API that cannot be reached
// yet (ErrUnreachable), which a worker pauses on instead of using up its messages' deliveries.
func loading(err error) bool {
	var apiErr *openai.APIError
	return errors.As(err, &apiErr) && apiErr.HTTPStatusCode == http.StatusServiceUnavailable &&
		strings.EqualFold(strings.TrimSpace(apiErr.Message), "Loading model")
}

// noSuchModelRe matches a model server's refusal, with a 400, of a request for a model it does
// not have loaded: LM Studio's "No models loaded. Please load a model in the developer page or
// use the `lms load` command." while it has none (its just-in-time loading off, or the model
// evicted after its idle time-to-live), and 'Invalid model identifier "x". Please specify a
// valid downloaded model (…)' for a name it does not have (as quoted in
// tinyhumansai/openhuman#4181 and assafelovic/gpt-researcher#1556).
var noSuchModelRe = regexp.MustCompile(`(?i)\bno models loaded\b|\binvalid model identifier\b`)

// noSuchModel reports whether err is a refusal of the request's model that comes with a 400
// (404s are Account already): LM Studio's (noSuchModelRe), or an error whose code is
// "model_not_found". No paper is at fault, and every request gets it until the model is loaded
// or the configuration names another: as a 400 it dead-lettered every paper at once.
func noSuchModel(err error) bool {
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode < 400 || apiErr.HTTPStatusCode >= 500 {
		return false
	}
	if code, ok := apiErr.Code.(string); ok && code == "model_not_found" {
		return true
	}
	return noSuchModelRe.MatchString(apiErr.Message)
}

// ErrServerFailing marks a transient failure whose every attempt the API answered with a server
// error (5xx), with a success status and a body that is not its answer (see notAnAnswer: not
// JSON, empty, JSON of another shape), or did not answer in its
// time (a request sent on a connection made, and no answer until the attempt's or the call's
// time ran out, after a wait longer than any round trip): Retrier.Do wraps its
// last error with it when it gives up, or when the call's deadline ends such an attempt. It
// tells nothing on its own — a server may fail on one input it cannot handle, or take longer
// for it — but when the calls for several papers in a row fail so, with none answered between
// them, the server fails everything (or the calls' time is too short for the model: nothing
// would succeed either), and a worker pauses (see pipeline.Worker) instead of using up the
// messages' deliveries.
var ErrServerFailing = errors.New("the API failed every attempt")

// ErrServerDown marks an ErrServerFailing whose every failed attempt was answered with a
// status that speaks of the server, not of the request — a proxy's 502 for the model server
// behind it that is down or refuses, a 503 overloaded (a 5xx other than 500 and 504) — or with
// a body that is not the API's answer at all (a proxy's page): no input's fault, whichever was
// sent. A 500 (Ollama's for one text it cannot embed), no answer in time (a model slow on one
// long input, or hung by it) and a gateway's 504 (the same hang, timed by the proxy instead)
// may be the input's, and are not marked: papers that hang the model still end as dead letters.
var ErrServerDown = errors.New("the API server is down")

// serverFailing wraps err, which wraps ErrServerFailing, with ErrServerDown when down holds,
// its message unchanged.
func serverFailing(err error, down bool) error {
	if !down {
		return err
	}
	return &serverDownError{err}
}

type serverDownError struct{ err error }

func (e *serverDownError) Error() string   { return e.err.Error() }
func (e *serverDownError) Unwrap() []error { return []error{e.err, ErrServerDown} }

// speaksOfServer reports whether err, a failed attempt's, is an answer that speaks of the
// server rather than the request (see ErrServerDown): a 5xx other than 500 and 504, or why,
// its UnusableReason, a body that is not the API's answer.
func speaksOfServer(err error, why string) bool {
	code := HTTPStatus(err)
	return code > http.StatusInternalServerError && code < 600 && code != http.StatusGatewayTimeout || notAnAnswer(why)
}

// SaysWhyCtxEnded reports whether err, a call's error returned once its ctx ended, says what
// held the call (and is to be returned rather than ctx.Err()): an API that could not be
// reached (ErrUnreachable), that failed or left unanswered every attempt (ErrServerFailing),
// or a wait for the rate limit, no request sent (ErrRateLimited).
func SaysWhyCtxEnded(err error) bool {
	return errors.Is(err, ErrUnreachable) || errors.Is(err, ErrServerFailing) || errors.Is(err, ErrRateLimited)
}

// ErrBadResponse marks an answer that is well-formed HTTP but unusable (no choices, a vector
// missing from the data): transient, since the next answer may be fine.
var ErrBadResponse = errors.New("unusable response")

// Reasons UnusableReason gives for an answer that came with a success status and could not be
// used.
const (
	UnusableNotJSON    = "not_json"    // a body that is not JSON (an HTML page, plain text)
	UnusableTruncated  = "truncated"   // JSON cut off before its end
	UnusableEmpty      = "empty"       // no body at all
	UnusableWrongShape = "wrong_shape" // JSON of another shape (a field of another type)
	UnusableIncomplete = "incomplete"  // no choices, a vector missing: ErrBadResponse
)

// UnusableReason says why err, a call's error, is an answer with a success status that could not
// be used (one of the Unusable* reasons), or "" when it is not one: an error status, a
// connection or a timeout, anything else. Such an answer is retried like a server error, and
// is billed by some APIs all the same; it shows in the status codes of the API's requests only
// as a success.
func UnusableReason(err error) string {
	var urlErr *url.Error
	if err == nil || errors.As(err, &urlErr) {
		return "" // no answer: the request itself failed (net/http's "Post …: EOF" among them)
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var pageErr *pageAnswerError
	switch {
	case errors.Is(err, ErrBadResponse):
		return UnusableIncomplete
	case errors.As(err, &pageErr):
		return UnusableNotJSON
	case errors.As(err, &typeErr):
		return UnusableWrongShape
	case errors.As(err, &syntaxErr):
		return UnusableNotJSON
	case errors.Is(err, io.ErrUnexpectedEOF):
		return UnusableTruncated
	case errors.Is(err, io.EOF):
		return UnusableEmpty
	}
	return ""
}

// notAnAnswer reports whether why, an UnusableReason, is a body that is not the API's answer at
// all: not JSON, empty, or JSON of another shape.
func notAnAnswer(why string) bool {
	return why == UnusableNotJSON || why == UnusableEmpty || why == UnusableWrongShape
}

// Classify says how a call's error should be handled:
//
//   - *openai.APIError and *openai.RequestError by HTTP status: 429 → RateLimited; 400, 413,
//     422, which reject what was sent → Permanent; the account's and the configuration's
//     problems, which are not the item's fault and would otherwise send the whole queue to
//     the dead letters → Account: 401/402/403, 404 (an unknown model or a wrong base URL), 405
//     (a base URL that is a web page's, taking no POST), 501
//     (a server that does not serve what is asked: llama.cpp's without --embeddings), and
//     OpenAI's 429 "insufficient_quota" and a 429 of a daily quota used up (Gemini's, see
//     dailyQuotaRe; OpenRouter's free-models-per-day) — no wait on the limiter fixes them, so
//     they are not RateLimited. A worker pauses on them, the messages staying queued, until it is fixed.
//     Everything else → Transient.
//   - an API's refusal of an input longer than its model takes (InputTooLong) → Permanent,
//     whatever its status: llama.cpp answers 500 for it, and retrying sends the same input.
//   - anything wrapping paper.ErrPermanent or ErrAccount → Permanent or Account.
//   - a connection that could not be made (refused, no such host, no route, a dial
//     timeout: see ErrUnreachable), or a model server still loading its model (llama.cpp's
//     503 "Loading model") → Account.
//   - a TLS handshake that failed on the certificate or on a server that speaks plain HTTP
//     (see ErrTLS) → Account.
//   - a 4xx refusal of the request's model (LM Studio's 400 "No models loaded", "Invalid model
//     identifier", or an error code "model_not_found": see noSuchModel) → Account.
//   - other network errors, timeouts, io.ErrUnexpectedEOF, JSON syntax and type errors of a
//     truncated or malformed body, ErrBadResponse, and anything unknown → Transient.
func Classify(err error) Class {
	if errors.Is(err, paper.ErrPermanent) {
		return Permanent
	}
	if errors.Is(err, ErrAccount) || unreachable(err) || loading(err) || tlsHint(err) != "" || noSuchModel(err) {
		return Account
	}
	if _, _, ok := InputTooLong(err); ok {
		return Permanent // llama.cpp answers 500 for it: the same input gets the same answer
	}
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		if apiErr.HTTPStatusCode == http.StatusTooManyRequests && (apiErr.Code == "insufficient_quota" || apiErr.Code == codeDailyQuota ||
			strings.Contains(apiErr.Message, openRouterDailyLimit)) {
			return Account
		}
		return classifyStatus(apiErr.HTTPStatusCode)
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return classifyStatus(reqErr.HTTPStatusCode)
	}
	// Network errors, timeouts, io.ErrUnexpectedEOF and JSON errors of a truncated or
	// malformed body, ErrBadResponse and anything unknown: the next attempt may succeed.
	return Transient
}

func classifyStatus(code int) Class {
	switch code {
	case http.StatusTooManyRequests:
		return RateLimited
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return Permanent
	case http.StatusUnauthorized, http.StatusPaymentRequired, http.StatusForbidden, http.StatusNotFound,
		http.StatusMethodNotAllowed, http.StatusNotImplemented:
		// 402: a gateway's "insufficient credits" (OpenRouter), the account exhausted as by
		// OpenAI's 429 insufficient_quota. 501: a server that does not do what is asked of it,
		// for any input — llama.cpp's started without --embeddings and asked for vectors, or
		// with it and asked for a TL;DR ("This server does not support embeddings. Start it
		// with `--embeddings`"). 405: a base URL that takes no POST, a web page's (a chat web
		// UI's, a static site's) rather than the API's.
		return Account
	}
	return Transient
}

// accountError is a failure of class Account: it wraps ErrAccount and the cause, and its
// message leaves out the API key.
type accountError struct {
	err     error
	key     string
	baseURL string // the API's base URL, named with a 404 or a 405 ("": not named, nor a 401 without a key)
}

func (e *accountError) Error() string {
	msg := ErrAccount.Error() + ": " + e.err.Error()
	if errors.Is(e.err, ErrUnreachable) || errors.Is(e.err, ErrTLS) {
		msg = e.err.Error() // "the API cannot be reached: …", not a refusal
	}
	if e.baseURL != "" {
		switch HTTPStatus(e.err) {
		case http.StatusNotFound:
			msg += notFoundHint(e.baseURL)
		case http.StatusUnauthorized:
			if e.key == "" {
				// No key configured: the server's answer ("Unauthorized") does not say so.
				msg += " (a 401 to a request sent without an API key: the server wants one)"
			} else {
				// A server other than OpenAI's (vLLM with --api-key, a gateway) answers a wrong
				// key with "Unauthorized" alone, which says neither that the key is what it
				// refused nor where the key comes from.
				msg += fmt.Sprintf(" (a 401: %s does not take the key in OPENAI_API_KEY: check that it is this server's, and not revoked or expired)",
					BaseURLForLog(e.baseURL))
			}
		case http.StatusMethodNotAllowed:
			msg += fmt.Sprintf(" (a 405: %s takes no POST, so it is not the API's base URL: a web page's?)", BaseURLForLog(e.baseURL))
		}
	}
	if len(e.key) >= 8 {
		msg = strings.ReplaceAll(msg, e.key, "[redacted]")
	}
	return msg
}

func (e *accountError) Unwrap() []error { return []error{ErrAccount, e.err} }

// apiVersion matches a path segment that names an API's version: v1, v1beta, v4.
var apiVersion = regexp.MustCompile(`^v\d+`)

// notFoundHint is what a 404 tells of the base URL a request went to: the model is not served
// there, or it is not the API's. A server's own 404 says neither (Ollama's and vLLM's "404 page
// not found", or "Not Found", for http://localhost:11434 without its /v1).
func notFoundHint(baseURL string) string {
	shown := BaseURLForLog(baseURL)
	hint := fmt.Sprintf(" (a 404: the model is not served at %s, or that is not the API's base URL", shown)
	if u, err := url.Parse(strings.TrimRight(baseURL, "/")); err == nil && !slices.ContainsFunc(strings.Split(u.Path, "/"), apiVersion.MatchString) {
		// Not when the path names a version already, /v1 or another (Gemini's /v1beta/openai,
		// Zhipu's /api/paas/v4): /v1 added to it is no API's.
		hint += fmt.Sprintf("; most servers' API is under /v1: %s/v1", shown)
	}
	return hint + ")"
}

// keyless is an error whose message leaves out the API key: a gateway or server that quotes
// the request's key in a 400 or 5xx answer would otherwise put it in logs, dead-letter reasons
// and the web's status page.
type keyless struct {
	err error
	key string
}

func (e *keyless) Error() string { return strings.ReplaceAll(e.err.Error(), e.key, "[redacted]") }

func (e *keyless) Unwrap() error { return e.err }

// hideKey returns err with the API key left out of its message, when the message holds it.
func (r Retrier) hideKey(err error) error {
	if err == nil || len(r.APIKey) < 8 || !strings.Contains(err.Error(), r.APIKey) {
		return err
	}
	return &keyless{err: err, key: r.APIKey}
}

// HTTPStatus returns the HTTP status carried by a go-openai error, or 0.
func HTTPStatus(err error) int {
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return apiErr.HTTPStatusCode
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return reqErr.HTTPStatusCode
	}
	return 0
}

// Retrier runs one API call with the limiter, a per-attempt timeout and retries. Its zero value
// is usable: 5 retries, 250 ms base, 20 s cap, 60 s per attempt, no limiter.
type Retrier struct {
	// MaxRetries is how many times a transiently failed call is retried (rate-limited attempts
	// do not count). Defaults to 5 when 0; negative means none.
	MaxRetries int
	// BaseDelay is the first backoff ceiling; it doubles with each retry. Defaults to 250ms.
	BaseDelay time.Duration
	// MaxDelay caps the backoff ceiling. Defaults to 20s.
	MaxDelay time.Duration
	// Timeout bounds each attempt, unless the call's ctx allows it longer: an attempt may last
	// until ctx's deadline when that is later (a worker's message budget, raised for a slow
	// local model: a request that takes longer than Timeout was cut and sent again from its
	// start, to be cut again, until the message was dead-lettered). Defaults to 60s.
	Timeout time.Duration
	// MaxRateLimitWait caps the total time one call spends waiting out 429s when ctx has no
	// earlier deadline; past it the 429 is returned as a transient error. Defaults to 10m.
	MaxRateLimitWait time.Duration
	// Limiter is waited on before every attempt and is what makes a 429 pause all callers.
	// Defaults to nil: no client-side limit, 429s are waited out with the backoff delay, which
	// grows with each 429 of the call as with transient failures (Retry-After is not seen).
	Limiter *Limiter
	// Logger receives a debug line per retry. Defaults to discarding.
	Logger *slog.Logger
	// APIKey is left out of the messages of the errors Do returns and logs, should the API's
	// answer quote it.
	APIKey string
	// Unusable, when set, is called with the reason (UnusableReason) of every attempt answered
	// with a success status that could not be used, which Do also logs as a warning. Defaults
	// to nil.
	Unusable func(reason string)
	// BaseURL is the API's base URL, which the error of a 404 names (its secrets masked): a
	// model the server does not have, or a base URL that is not the API's. Defaults to "": not
	// named.
	BaseURL string
}

// readable returns err, a call's error, with the message of an error body go-openai could not
// read. go-openai reads OpenAI's shape only ({"error": {"message": …}}); for another — vLLM's
// {"object":"error","message":…,"type":…,"code":400}, {"error":"…"} (Ollama's native API),
// FastAPI's {"detail":"…"}, a line of plain text such as "404 page not found" — it returns a
// *openai.RequestError whose text reads "message: %!s(<nil>)" (or a JSON decoding error) and
// then the raw body. Such an error, when it is err itself, becomes the *openai.APIError that
// go-openai makes of OpenAI's shape, with the same status, type and code: classified alike
// (Classify, HTTPStatus), its message the server's. A body with no message — the HTML page of
// a proxy or a CDN (nginx's 413 or 502, a gateway's 5xx page of several kilobytes), JSON of
// another kind, an empty body — is described instead of quoted whole (bodySummary): the raw
// page went into every retry's log line and a dead letter's reason. Anything else is
// returned as it is.
func readable(err error) error {
	reqErr, ok := err.(*openai.RequestError) // err itself: a wrapped one keeps its wrapping
	if !ok {
		return err
	}
	msg, typ, code := bodyMessage(reqErr.Body)
	if msg == "" {
		msg = bodySummary(reqErr.Body)
	}
	if reqErr.HTTPStatusCode == http.StatusTooManyRequests {
		if m := dailyQuotaRe.FindSubmatch(reqErr.Body); m != nil {
			msg += " (the quota used up is a daily one, " + string(m[1]) + ": it resets at midnight Pacific time)"
			code = codeDailyQuota
		}
	}
	return &openai.APIError{Message: msg, Type: typ, Code: code,
		HTTPStatus: reqErr.HTTPStatus, HTTPStatusCode: reqErr.HTTPStatusCode}
}

// dailyQuotaRe finds the id of a daily quota among the violations of a 429's
// google.rpc.QuotaFailure: Gemini's GenerateRequestsPerDayPerProjectPerModel(-FreeTier) when
// the requests of the day are used up. Its 429 still carries a retryDelay of seconds (and often
// names the per-minute quotas too), but nothing is answered before the day's quota resets.
var dailyQuotaRe = regexp.MustCompile(`"quotaId"\s*:\s*"([^"]*PerDay[^"]*)"`)

// openRouterDailyLimit names, in the message of OpenRouter's 429, its limit of requests a day
// of its free models ("Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000
// free model requests per day", or "…-per-day-high-balance"), which resets at midnight UTC;
// its limit a minute is "free-models-per-min".
const openRouterDailyLimit = "free-models-per-day"

// codeDailyQuota is the code readable gives the error of a 429 whose quota used up is a daily
// one (dailyQuotaRe): of class Account, as OpenAI's insufficient_quota.
const codeDailyQuota = "daily_quota_exceeded"

// pageAnswerError is a success whose body is an HTML page (APIClient finds it by its
// Content-Type), not the API's JSON: a web page's address where the API's base URL was meant
// (a chat web UI's, a single-page app's fallback for every path) or a proxy's or portal's page.
// Its body is described as bodySummary does ("an HTML page: Open WebUI"), where go-openai's
// decoding said only "invalid character '<' looking for beginning of value". It is a body that
// is not JSON (UnusableNotJSON), retried as a server error.
type pageAnswerError struct {
	status int
	page   string // bodySummary of the body
}

func (e *pageAnswerError) Error() string {
	return fmt.Sprintf("a %d answer that is %s, not the API's JSON", e.status, e.page)
}

// maxPageRead bounds what APIClient reads of an HTML answer for its title.
const maxPageRead = 64 << 10

// pageAnswer returns the pageAnswerError of resp, a success with an HTML body, which it reads
// (up to maxPageRead) and closes; nil for any other answer, left unread. A body labelled HTML
// that opens as JSON does (a gateway that labels every body text/html) is given back whole,
// as the answer it is.
func pageAnswer(resp *http.Response) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || (mt != "text/html" && mt != "application/xhtml+xml") {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxPageRead))
	if start := bytes.TrimLeft(body, " \t\r\n"); len(start) > 0 && (start[0] == '{' || start[0] == '[') {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
		return nil
	}
	_ = resp.Body.Close()
	return &pageAnswerError{status: resp.StatusCode, page: bodySummary(body)}
}

// pageHint is what a call that got only HTML pages tells of its base URL.
func pageHint(baseURL string) string {
	if baseURL == "" {
		return "a web page's address, not the API's base URL?"
	}
	return fmt.Sprintf("%s is a web page's address, not the API's base URL?", BaseURLForLog(baseURL))
}

// htmlTitleRe finds the title of an HTML page.
var htmlTitleRe = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// maxBodySummary bounds what bodySummary quotes of a body.
const maxBodySummary = 200

// bodySummary describes an error body that holds no message (bodyMessage): "an empty body",
// an HTML page by its title ("an HTML page: 502 Bad Gateway"), anything else by its start on
// one line, at most maxBodySummary bytes, with its size when it was cut.
func bodySummary(body []byte) string {
	text := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " ")
	lower := strings.ToLower(text[:min(len(text), 512)])
	switch {
	case text == "":
		return "an empty body"
	case strings.HasPrefix(lower, "<!doctype html") || strings.Contains(lower, "<html") || strings.HasPrefix(lower, "<head") || strings.HasPrefix(lower, "<body"):
		if m := htmlTitleRe.FindStringSubmatch(text); m != nil {
			if title := strings.Join(strings.Fields(html.UnescapeString(m[1])), " "); title != "" {
				return "an HTML page: " + cutString(title, maxBodySummary)
			}
		}
		return fmt.Sprintf("an HTML page of %d bytes", len(body))
	case len(text) > maxBodySummary:
		return fmt.Sprintf("a body of %d bytes starting %s", len(body), cutString(text, maxBodySummary))
	}
	return "body: " + text
}

// cutString is s cut to at most n bytes at a rune boundary, "…" added when it was cut.
func cutString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// maxBodyMessage bounds the message read from an error body.
const maxBodyMessage = 1000

// bodyMessage reads the message of an error body that is not in OpenAI's shape: the string
// "message", "error" or "detail" of a JSON object (with its "type", or else its "status", and
// its "code"), of the object that is its "error", or of the first object of a JSON list — a
// Google API's error ([{"error": {"code": 404, "message": …, "status": "NOT_FOUND"}}], which
// Gemini's OpenAI compatibility answers) — or a short line of plain text. msg is "" when there
// is none.
func bodyMessage(body []byte) (msg, typ string, code any) {
	return bodyMessageIn(body, 0)
}

// bodyMessageIn is bodyMessage of body found depth lists or objects deep in the error body.
func bodyMessageIn(body []byte, depth int) (msg, typ string, code any) {
	var list []json.RawMessage
	if json.Unmarshal(body, &list) == nil {
		if len(list) == 0 || depth >= 2 {
			return "", "", nil
		}
		return bodyMessageIn(list[0], depth+1)
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		text := strings.TrimSpace(string(body))
		if text == "" || len(text) > maxBodyMessage || strings.ContainsAny(text, "\n<{[") || !utf8.ValidString(text) {
			return "", "", nil // an HTML page, JSON of another kind, or too long to be a message
		}
		return text, "", nil
	}
	for _, k := range []string{"message", "error", "detail"} {
		if json.Unmarshal(obj[k], &msg) == nil && strings.TrimSpace(msg) != "" {
			break
		}
		msg = ""
	}
	if msg == "" {
		if inner := bytes.TrimSpace(obj["error"]); len(inner) > 0 && inner[0] == '{' && depth < 2 {
			return bodyMessageIn(inner, depth+1)
		}
		return "", "", nil
	}
	msg = cutString(msg, maxBodyMessage)
	if json.Unmarshal(obj["type"], &typ) != nil || typ == "" {
		_ = json.Unmarshal(obj["status"], &typ) // Google's: "NOT_FOUND", "RESOURCE_EXHAUSTED"
	}
	var n int
	if json.Unmarshal(obj["code"], &n) == nil {
		code = n
	} else {
		var s string
		if json.Unmarshal(obj["code"], &s) == nil {
			code = s
		}
	}
	return strings.TrimSpace(msg), typ, code
}

// Result tells what one Do took.
type Result struct {
	Attempts    int // calls made, rate-limited ones included
	RateLimited int // attempts answered with 429
}

// Do calls fn until it succeeds, fails permanently, or has failed transiently MaxRetries+1
// times. Before each attempt it waits on the Limiter for one request of tokens estimated
// tokens. A 429 does not count as a retry: the Transport has paused the Limiter, and the
// next attempt waits for it. Errors: ctx.Err() as soon as ctx ends; a permanent failure wraps
// both paper.ErrPermanent and the cause; otherwise the last transient error, wrapped with the
// attempt count (and with ErrServerFailing when every attempt that was not rate-limited was
// answered 5xx, with a body that is not an answer, or not answered in its time); the call's deadline ending an attempt that waited
// for its answer, every earlier one answered 5xx or not in time, returns ErrServerFailing
// wrapping ctx.Err() (a server that hangs, or a model slower than the call's time), and ending
// the wait before a retry after such attempts, or that retry before minUnansweredConnect (too
// soon to tell a hang), ErrServerFailing wrapping the last one's error (the retries did not fit
// in the call's time: the server answered, and failed); an
// Account failure wraps ErrAccount and the cause, unretried — except an
// unreachable API, retried like a transient failure first, and returned as ErrUnreachable
// with ErrAccount when the retries are used up, or when the call's deadline ends after a failed
// dial or while a connection was still being made (a host that drops the packets) — one that
// had been waited for at least minUnansweredConnect, in this attempt or an earlier one of the
// call: a connect the deadline cuts short sooner leaves the deadline's error.
func (r Retrier) Do(ctx context.Context, tokens int, fn func(ctx context.Context) error) (Result, error) {
	maxRetries := r.MaxRetries
	if maxRetries == 0 {
		maxRetries = 5
	}
	maxRetries = max(maxRetries, 0)
	base := cmpOr(r.BaseDelay, 250*time.Millisecond)
	ceiling := cmpOr(r.MaxDelay, 20*time.Second)
	timeout := cmpOr(r.Timeout, 60*time.Second)
	rlBudget := cmpOr(r.MaxRateLimitWait, 10*time.Minute)
	log := r.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}

	var res Result
	retries := 0
	rlStart := time.Time{}
	var unreached error  // the last attempt could not connect: what ctx's end returns
	serverErrors := true // every failed attempt but the rate-limited ones was answered 5xx, or no answer
	serverDown := true   // every such attempt was answered so that the server is at fault, not the input (ErrServerDown)
	var retried error    // the transient failure the last retry was made after
	ctxErr := func() error {
		if unreached != nil {
			return &accountError{err: fmt.Errorf("%w: %w", ErrUnreachable, unreached), key: r.APIKey}
		}
		return ctx.Err()
	}
	for {
		if err := r.Limiter.Wait(ctx, tokens); err != nil {
			return res, err
		}
		res.Attempts++
		attempt := timeout
		if dl, ok := ctx.Deadline(); ok {
			attempt = max(attempt, time.Until(dl))
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		// A connection still being made when the attempt's or the call's time ran out is a
		// host that does not answer (a firewall dropping packets, a partition): net/http
		// reports the context's end then, not the dial's error.
		var connecting, connected atomic.Bool
		var connectStart atomic.Int64 // Unix nanoseconds of the first connect
		start := time.Now()
		tctx := httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
			ConnectStart: func(string, string) {
				connectStart.CompareAndSwap(0, time.Now().UnixNano())
				connecting.Store(true)
			},
			// A TCP connection made is a host that answers, whatever its TLS handshake takes.
			ConnectDone: func(_, _ string, err error) {
				if err == nil {
					connected.Store(true)
				}
			},
			GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
		})
		err := r.hideKey(readable(fn(tctx)))
		ended := actx.Err() != nil
		cancel()
		if err == nil {
			return res, nil
		}
		// A connect that the time cut short before it could have been answered (the attempt
		// began with almost no time left) tells nothing about the host: the call keeps what
		// its earlier attempts found.
		cutShort := ended && connecting.Load() && !connected.Load() &&
			time.Since(time.Unix(0, connectStart.Load())) < minUnansweredConnect
		switch {
		case cutShort:
		case unreachable(err):
			unreached = err
		case loading(err):
			unreached = fmt.Errorf("the model server is still loading its model: %w", err)
		case ended && connecting.Load() && !connected.Load():
			unreached = fmt.Errorf("no connection within the deadline: %w", err)
		default:
			unreached = nil
		}
		// A request sent that the time ran out on, unanswered, after a wait longer than any
		// round trip: a server that hangs, or a model slower than the time allows.
		unanswered := ended && connected.Load() && unreached == nil && time.Since(start) >= minUnansweredConnect
		if ctx.Err() != nil {
			if unanswered && serverErrors && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return res, fmt.Errorf("no answer before the call's deadline (attempt %d waited %s for it): %w: %w",
					res.Attempts, time.Since(start).Round(time.Millisecond), ErrServerFailing, ctx.Err())
			}
			if !unanswered && unreached == nil && retried != nil && serverErrors && errors.Is(ctx.Err(), context.DeadlineExceeded) &&
				errors.Is(err, context.DeadlineExceeded) {
				// The deadline cut this attempt short, too soon to tell a hang (the retries did
				// not fit), after attempts all answered 5xx: as when it ends in the wait before it.
				return res, serverFailing(fmt.Errorf("giving up after %d attempts, the call's time ending early in the last: %w: %w",
					res.Attempts, ErrServerFailing, retried), serverDown)
			}
			return res, ctxErr()
		}
		var delay time.Duration
		var retrying error // a transient failure the delay waits to try again after
		class := Account   // unreachable: retried below, then ErrUnreachable
		if unreached == nil {
			class = Classify(err)
		}
		switch class {
		case Permanent:
			if errors.Is(err, paper.ErrPermanent) {
				return res, err // it says so already ("…: permanent failure" twice otherwise)
			}
			return res, fmt.Errorf("%w: %w", paper.ErrPermanent, err)
		case Account:
			if errors.Is(err, ErrAccount) {
				return res, err // the caller's own finding (embed: vectors of the wrong length)
			}
			if unreached != nil {
				// A blip (a server or balancer restarting, a DNS hiccup) is retried like a
				// transient failure; the API still unreachable after the retries is an outage.
				if retries < maxRetries {
					delay = Backoff(retries, base, ceiling)
					retries++
					log.Debug("API unreachable; retrying", "attempt", res.Attempts, "delay", delay, "err", err)
					break
				}
				return res, &accountError{err: fmt.Errorf("%w: %w", ErrUnreachable, unreached), key: r.APIKey}
			}
			if hint := tlsHint(err); hint != "" {
				return res, &accountError{err: fmt.Errorf("%w: %w (%s)", ErrTLS, err, hint), key: r.APIKey}
			}
			return res, &accountError{err: err, key: r.APIKey, baseURL: r.BaseURL}
		case RateLimited:
			res.RateLimited++
			if rlStart.IsZero() {
				rlStart = time.Now()
			}
			if time.Since(rlStart) > rlBudget {
				return res, fmt.Errorf("still rate limited after %s: %w", rlBudget, err)
			}
			if r.Limiter == nil || !r.Limiter.PausedUntil().After(time.Now()) {
				// No pause to wait on (no Limiter, or a client whose transport does not feed
				// it): back off without using a retry, longer with each 429 of this call, as
				// an API that keeps refusing is not asked again at a constant rate.
				delay = Backoff(res.RateLimited-1, base, ceiling)
			}
			log.Debug("rate limited; waiting without using a retry", "attempt", res.Attempts)
		default:
			why := UnusableReason(err)
			// A success whose body is not the API's answer at all (an HTML page of a proxy or
			// of a web app where the API was meant, another API's JSON) fails every request
			// alike, as a 5xx does; a body cut off (a connection lost mid-answer) or an answer
			// that lacks a part may be this call's alone.
			serverErrors = serverErrors && (HTTPStatus(err) >= 500 || unanswered || notAnAnswer(why))
			serverDown = serverDown && !unanswered && speaksOfServer(err, why)
			if why != "" {
				// A 200 whose body is no answer: retried as a server error, but the status
				// codes of the API's requests show it only as a success.
				if r.Unusable != nil {
					r.Unusable(why)
				}
				log.Warn("the API answered with a success status but an unusable body", "reason", why, "papers", papersOf(ctx), "attempt", res.Attempts, "err", err)
			}
			if retries >= maxRetries {
				if pe := (*pageAnswerError)(nil); errors.As(err, &pe) {
					err = fmt.Errorf("%w (%s)", err, pageHint(r.BaseURL))
				}
				if serverErrors {
					return res, serverFailing(fmt.Errorf("giving up after %d attempts: %w: %w", res.Attempts, ErrServerFailing, err), serverDown)
				}
				return res, fmt.Errorf("giving up after %d attempts: %w", res.Attempts, err)
			}
			delay = Backoff(retries, base, ceiling)
			retries++
			retrying, retried = err, err
			log.Debug("transient API error; retrying", "attempt", res.Attempts, "delay", delay, "err", err)
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				if retrying != nil && serverErrors && errors.Is(ctx.Err(), context.DeadlineExceeded) {
					// The call's time ended before the next attempt, every attempt so far
					// answered 5xx (or with no answer at all): a server failing every attempt
					// the call had time for (a short PAPERPIPE_MSG_TIMEOUT), not a hang.
					return res, serverFailing(fmt.Errorf("giving up after %d attempts, the call's time ending before the next: %w: %w",
						res.Attempts, ErrServerFailing, retrying), serverDown)
				}
				return res, ctxErr()
			case <-t.C:
			}
		}
	}
}

// minUnansweredConnect is how long a connect must have gone unanswered, when an attempt's
// time ran out, to count as a host that does not answer (ErrUnreachable): longer than the round
// trip to any host that answers (a connect takes one). A connect cut short sooner — an attempt
// that began with almost no time left — is the call's time running out.
const minUnansweredConnect = 500 * time.Millisecond

// Backoff returns the delay before retry number retry (0-based): exponential backoff with full
// jitter, a uniformly random duration in [0, min(ceiling, base·2^retry)].
func Backoff(retry int, base, ceiling time.Duration) time.Duration {
	d := ceiling
	if retry < 30 {
		d = min(base<<retry, ceiling)
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

func cmpOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// papersKey is the context key of ForPapers' context.
type papersKey struct{}

// ForPapers returns a copy of ctx saying the requests made under it are for the papers ids (a
// chat request's one, an embeddings batch's): a warning about an answer names them. Without
// it, ~25 warnings of unusable answers per 756 papers named none to look into.
func ForPapers(ctx context.Context, ids ...string) context.Context {
	return context.WithValue(ctx, papersKey{}, ids)
}

// papersOf names the papers of ForPapers: the one, or the first and how many more; "" without.
func papersOf(ctx context.Context) string {
	ids, _ := ctx.Value(papersKey{}).([]string)
	switch len(ids) {
	case 0:
		return ""
	case 1:
		return ids[0]
	}
	return fmt.Sprintf("%s and %d more", ids[0], len(ids)-1)
}
