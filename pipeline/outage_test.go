package pipeline_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// nginx502 is the page nginx answers while the server it proxies to refuses connections.
const nginx502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n"

// behindProxy returns the URL of a reverse proxy to api (nginx in front of a model server) and
// a switch: while it is on, the server behind is down and the proxy answers every request with
// its 502 page.
func behindProxy(t *testing.T, api *openaitest.Server) (string, *atomic.Bool) {
	t.Helper()
	down := &atomic.Bool{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, nginx502)
			return
		}
		api.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/v1", down
}

// TestLongOutageBehindAProxyDeadLettersNothing: a model server behind a proxy down for longer
// than a few pauses (a vLLM box rebooting behind nginx, which answers 502 meanwhile). The worker
// paused, but the one message it tried after each pause used a delivery when it failed: the
// queued papers were dead-lettered one by one as the tries used up their deliveries (here, five
// papers of three deliveries, within ten pauses; at the defaults five papers in a few hours of
// an outage, tries five minutes apart), and the lab had to replay them after it. A 502 is the
// proxy's, never a paper's: the message goes back as at any pause.
func TestLongOutageBehindAProxyDeadLettersNothing(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16})
	url, down := behindProxy(t, api)
	down.Store(true)
	sum, err := summarize.New(summarize.Config{BaseURL: url, Model: "m", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Three deliveries and five papers: fifteen failed probes would dead-letter them all.
	b, papers, w, _ := pausingWorkerWith(t, sum, embed.NewOffline(), 3, pipeline.WorkerConfig{Backoff: func(int) time.Duration { return 50 * time.Millisecond }})
	waitFor(t, "the worker pausing 20 times", func() (bool, string) {
		s := w.Stats()
		return s.Paused >= 20 || s.Dead > 0, fmt.Sprintf("stats %+v", s)
	})
	checkAllQueued(t, b, w, papers, "a long outage of a server behind a proxy answering 502")
	down.Store(false)
	checkAllDone(t, b, w, papers, "the server answers again")
}

// TestInsufficientQuotaPausesTheWorker: OpenAI's 429 insufficient_quota (the account's credit
// used up), which no wait fixes, pauses the worker saying so, every delivery the last here:
// none is dead-lettered, and once the account is topped up every paper is done.
func TestInsufficientQuotaPausesTheWorker(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16})
	var broke atomic.Bool
	broke.Store(true)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broke.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`)
			return
		}
		api.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	sum, err := summarize.New(summarize.Config{BaseURL: ts.URL + "/v1", APIKey: "sk-test", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	b, papers, w, logs := pausingWorker(t, sum, embed.NewOffline())
	checkPausedAllQueued(t, b, w, papers, 3, "an exhausted quota")
	if out := logs.String(); !strings.Contains(out, "exceeded your current quota") || strings.Count(out, pauseLine) > int(w.Stats().Paused) {
		t.Errorf("the pauses do not give the API's answer once each:\n%s", out)
	}
	broke.Store(false)
	checkAllDone(t, b, w, papers, "the quota is topped up")
}
