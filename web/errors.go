package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/paperpipe/paperpipe/paper"
)

// apiError is the body of every JSON error: {"error": "...", "status": N}.
type apiError struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// httpError is an error with the status code it answers with and a message safe to show.
type httpError struct {
	status int
	msg    string
	err    error // the cause, for errors.Is and the log
}

// Error is the client's message and the cause, for the log: a 502 logged without its cause
// (connection refused, a 401, a 429) would not tell the operator what failed. The causes are
// the store's and the embedder's errors, which leave out secrets (the API key, a base URL's
// password); the client sees msg only (statusOf).
func (e *httpError) Error() string {
	if e.err == nil {
		return e.msg
	}
	return e.msg + ": " + e.err.Error()
}
func (e *httpError) Unwrap() error { return e.err }

// badRequest is a 400 with msg.
func badRequest(msg string) error { return &httpError{status: http.StatusBadRequest, msg: msg} }

// statusOf maps an error to its status code and the message the client sees. Errors of the
// paper sentinels carry their own message (it names what is wrong, never a secret); anything
// else is a 500 whose details go to the log only.
func statusOf(err error) (int, string) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status, he.msg
	case errors.Is(err, paper.ErrInvalid):
		return http.StatusBadRequest, reason(err)
	case errors.Is(err, paper.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, paper.ErrSpaceMismatch), errors.Is(err, paper.ErrAmbiguous):
		return http.StatusConflict, err.Error()
	case errors.Is(err, paper.ErrUnavailable):
		// The database could not be reached or could not answer (the store marks it so): a
		// state of the server, not of the request, which a client may try again.
		return http.StatusServiceUnavailable, "the database is unavailable; try again shortly"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "the request took too long; try again"
	case errors.Is(err, context.Canceled):
		return 499, "request cancelled" // nginx's "client closed request"; nobody reads it
	}
	return http.StatusInternalServerError, "internal error"
}

// reason is the message of an error wrapping paper.ErrInvalid without the sentinel's own text
// at its end ("title is empty", not "title is empty: invalid input"): the rest says what is
// wrong, and the client is told it was refused by the status or the field it reads.
func reason(err error) string {
	return strings.TrimSuffix(err.Error(), ": "+paper.ErrInvalid.Error())
}

// fail answers r with err: JSON for the API, a page for the UI.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	err = duringShutdown(r, err)
	code, msg := statusOf(err)
	s.logFailure(r, code, err)
	if errors.Is(err, paper.ErrUnavailable) {
		w.Header().Set("Retry-After", strconv.Itoa(databaseRetryAfter))
	}
	s.writeError(w, r, code, msg)
}

// databaseRetryAfter is the Retry-After, in seconds, of an answer the database could not give:
// a restart or a failover takes seconds to tens of seconds.
const databaseRetryAfter = 10

// logFailure logs the failure of r with code: a server-side failure (5xx but 503) at error
// level; a request that ran out of time (503: a slow database or embedding API) or that the
// database could not answer (503: down, restarting), which the operator must see, at warning
// level; a refusal (4xx, and the other 503s: shutting down, no queue, each logged where it
// begins) at debug level.
func (s *Server) logFailure(r *http.Request, code int, err error) {
	switch {
	case code >= 500 && code != http.StatusServiceUnavailable:
		s.log.Error("HTTP request failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	case code == http.StatusServiceUnavailable && errors.Is(err, paper.ErrUnavailable):
		s.log.Warn("HTTP request found the database unavailable", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	case code == http.StatusServiceUnavailable && errors.Is(err, context.DeadlineExceeded):
		s.log.Warn("HTTP request took too long", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	default:
		s.log.Debug("HTTP request refused", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
}

// writeError writes an error answer: JSON for everything but the UI's pages.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if wantsHTML(r) {
		s.renderError(w, r, code, msg)
		return
	}
	writeJSON(w, code, apiError{Error: msg, Status: code})
}

// wantsHTML reports whether r is for a UI page rather than the API or a probe.
func wantsHTML(r *http.Request) bool {
	p := r.URL.Path
	for _, prefix := range []string{"/api/", "/healthz", "/readyz", "/metrics", "/static/"} {
		if strings.HasPrefix(p, prefix) {
			return false
		}
	}
	return true
}

// writeJSON writes v as JSON with status code. encoding/json escapes <, > and & in strings,
// so a JSON answer shown as HTML by mistake runs no markup.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error": "internal error: encode answer", "status": 500}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// allowed reports whether r may use a route of access a.
func (s *Server) allowed(a access, r *http.Request) bool {
	if s.cfg.APIToken == "" || a == open || (a == read && !s.cfg.ProtectReads) {
		return true
	}
	return s.tokenMatches(r, a == read)
}

// tokenMatches compares the request's bearer token with the configured one in constant time:
// both are hashed first, so neither content nor length leaks through timing. basic also takes
// an HTTP Basic password, which is how a browser sends the token to the pages; only reads
// take it, since a browser attaches remembered Basic credentials to any site's requests.
func (s *Server) tokenMatches(r *http.Request, basic bool) bool {
	var given string
	if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		given = strings.TrimSpace(auth[7:])
	} else if _, pw, ok := r.BasicAuth(); ok && basic {
		given = pw
	} else {
		return false
	}
	a := sha256.Sum256([]byte(given))
	b := sha256.Sum256([]byte(s.cfg.APIToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// unauthorized answers 401: a bearer challenge for the API, a Basic one for pages so that a
// browser asks for the token, and whose page says how to give it there (a reader of the page
// cannot send a header).
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, html bool) {
	msg := "missing or wrong API token: send Authorization: Bearer TOKEN (PAPERPIPE_API_TOKEN)"
	if html {
		msg = "missing or wrong API token: these pages need the server's API token (PAPERPIPE_API_TOKEN), " +
			"given as the password when the browser asks for one, with any user name; reload the page to be asked again"
		w.Header().Set("WWW-Authenticate", `Basic realm="paperpipe", charset="UTF-8"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Bearer realm="paperpipe"`)
	}
	s.writeError(w, r, http.StatusUnauthorized, msg)
}
