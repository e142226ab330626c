package llm

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"
)

// FuzzRetryAfter: whatever a 429's headers hold, the wait read from them is never negative (a
// negative pause pauses nobody, and the next request meets the same 429), is zero when nothing
// parses, and a whole number of seconds in Retry-After alone is that many seconds.
func FuzzRetryAfter(f *testing.F) {
	f.Add("", "30", "", "", "")
	f.Add("40", "1", "", "", "")
	f.Add("", "Thu, 01 Jan 2026 12:01:00 GMT", "Thu, 01 Jan 2026 11:55:00 GMT", "", "")
	f.Add("", "later", "", "1s", "6m0s")
	f.Add("NaN", "-1", "soon", "-5s", "1h2m3.5s")
	f.Add("1e17", "99999999999", "", "Inf", "0x1p-2")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ms, ra, date, resetReq, resetTok string) {
		h := http.Header{}
		for k, v := range map[string]string{"retry-after-ms": ms, "Retry-After": ra, "Date": date,
			"x-ratelimit-reset-requests": resetReq, "x-ratelimit-reset-tokens": resetTok} {
			if v != "" {
				h.Set(k, v)
			}
		}
		d, ok := RetryAfter(h, now)
		if d < 0 || !ok && d != 0 {
			t.Errorf("RetryAfter(%v) = %v, %v; want a wait of at least 0, and 0 when none parses", h, d, ok)
		}
		for _, v := range []string{resetReq, resetTok} {
			if r, ok := ParseResetDuration(v); r < 0 || !ok && r != 0 {
				t.Errorf("ParseResetDuration(%q) = %v, %v", v, r, ok)
			}
		}
		if n, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil && n >= 0 && n < 1<<30 && ms == "" {
			if d, ok := RetryAfter(http.Header{"Retry-After": {ra}}, now); !ok || d != time.Duration(n)*time.Second {
				t.Errorf("Retry-After %q: %v, %v; want %ds", ra, d, ok, n)
			}
		}
	})
}

// FuzzErrorBody: an error body of any kind (a server's JSON in another shape than OpenAI's, a
// proxy's HTML page, plain text, bytes) becomes an error with the status kept and a message of
// valid UTF-8, bounded: the server's message (maxBodyMessage) or a one-line description of
// the body (maxBodySummary), never the body quoted whole.
func FuzzErrorBody(f *testing.F) {
	for _, s := range []string{
		`{"object":"error","message":"Model \"BAAI/bge-m3\" does not support matryoshka representation","type":"BadRequestError","param":null,"code":400}`,
		`{"error":"model 'x' not found"}`, `{"detail":"Not Found"}`, "404 page not found\n", "",
		"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body></body></html>",
		`{"errors":[{"reason":"upstream"}]}`, `{"message":{"nested":true},"error":"  ","detail":"x","code":"rate_limit"}`,
		"\xff\xfe<\x00h\x00", `{"message":"` + strings.Repeat("é", 600) + `"}`,
	} {
		f.Add([]byte(s), 502)
	}
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		err := readable(&openai.RequestError{HTTPStatus: http.StatusText(status), HTTPStatusCode: status, Body: body})
		ae, ok := err.(*openai.APIError)
		if !ok {
			t.Fatalf("readable gave %T %v; want an *openai.APIError", err, err)
		}
		if ae.HTTPStatusCode != status {
			t.Errorf("status %d became %d", status, ae.HTTPStatusCode)
		}
		msg := ae.Message
		if !utf8.ValidString(msg) || msg == "" {
			t.Errorf("message %q of body %q: want valid UTF-8, not empty", msg, body)
		}
		if m, _, _ := bodyMessage(body); m == "" {
			// A description: one line, its quote of the body at most maxBodySummary bytes.
			if strings.ContainsAny(msg, "\r\n") || len(msg) > maxBodySummary+64 {
				t.Errorf("description %q (%d bytes) of body %q: want one line of at most %d bytes", msg, len(msg), body, maxBodySummary+64)
			}
		} else if len(msg) > maxBodyMessage+len("…") {
			t.Errorf("message of %d bytes from body %q: want at most %d", len(msg), body, maxBodyMessage)
		}
	})
}
