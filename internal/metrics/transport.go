package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Transport returns next (http.DefaultTransport when nil) wrapped to record the latency of
// every request in paperpipe_api_request_duration_seconds, by endpoint ("chat/completions",
// "embeddings", "models", or "other", so the label stays bounded whatever the base URL) and
// status code, "error" when the request failed without an answer. The time runs until the
// response headers arrive.
func (m *Metrics) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	if m == nil {
		return next
	}
	return roundTripper{m: m, next: next}
}

type roundTripper struct {
	m    *Metrics
	next http.RoundTripper
}

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := rt.next.RoundTrip(r)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	rt.m.apiDuration.WithLabelValues(Endpoint(r.URL.Path), code).Observe(time.Since(start).Seconds())
	return resp, err
}

// Endpoint names the OpenAI-compatible endpoint a request path is for: the path's known
// suffix ("/v1/chat/completions" → "chat/completions"), or "other".
func Endpoint(path string) string {
	path = strings.TrimSuffix(path, "/")
	for _, e := range []string{"chat/completions", "embeddings", "completions", "models"} {
		if strings.HasSuffix(path, "/"+e) {
			return e
		}
	}
	return "other"
}
