package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/metrics"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/summarize"
)

// A server whose answers report negative token counts (junk from a proxy or a local model
// server) must not stop the worker: a Prometheus counter panics when it is added a negative
// value, and the decorators count the tokens the clients report. Such counts are no tokens.
func TestNegativeTokenCountsOfTheAPIAreNotCounted(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/embeddings") {
			io.WriteString(w, `{"object":"list","model":"text-embedding-3-small","data":[{"object":"embedding","index":0,"embedding":[0.6,0.8]}],`+
				`"usage":{"prompt_tokens":-7,"total_tokens":-7}}`)
			return
		}
		io.WriteString(w, `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,`+
			`"message":{"role":"assistant","content":"A routing method that halves the training cost of large language models."},`+
			`"finish_reason":"stop"}],"usage":{"prompt_tokens":-100,"completion_tokens":-10,"total_tokens":-110}}`)
	}))
	defer ts.Close()
	sc, err := summarize.New(summarize.Config{BaseURL: ts.URL + "/v1", Model: "m", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	ec, err := embed.New(embed.Config{BaseURL: ts.URL + "/v1", Model: "e", Dimensions: 2, EncodingFormat: "float", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Config{})
	a := paper.Abstract{ID: "x:1", Title: "Sparse expert routing",
		Abstract: "We present a routing method for mixtures of experts that halves the training cost of large language models while keeping their quality on standard benchmarks."}
	s, err := m.Summarizer(sc).Summarize(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	_, u, err := m.Embedder(ec).Embed(t.Context(), []paper.Abstract{a})
	if err != nil {
		t.Fatal(err)
	}
	if s.Usage.InputTokens < 0 || s.Usage.OutputTokens < 0 || u.InputTokens < 0 {
		t.Errorf("usage reported with negative tokens: TL;DR %+v, embedding %+v", s.Usage, u)
	}
	// The TL;DR's junk counts are no tokens; the embeddings answer's are none either, and the
	// client counts its estimate for an answer that reports none (as Gemini's, which Google
	// bills all the same), the ledger and the metric alike.
	if u.InputTokens <= 0 {
		t.Errorf("embedding usage %+v, want the client's estimate of the input tokens", u)
	}
	if got := tokenCount(t, m, "e", "embedding", "input"); got != float64(u.InputTokens) {
		t.Errorf("paperpipe_tokens_total{embedding,input} = %v, want the usage's %d", got, u.InputTokens)
	}
	for _, dir := range []string{"input", "output"} {
		if got := tokenCount(t, m, "m", "chat", dir); got != 0 {
			t.Errorf("paperpipe_tokens_total{chat,%s} = %v after an answer reporting negative tokens, want 0", dir, got)
		}
	}
}

// tokenCount is paperpipe_tokens_total's value for model, kind and direction, 0 without a series.
func tokenCount(t *testing.T, m *metrics.Metrics, model, kind, direction string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "paperpipe_tokens_total" {
			continue
		}
		for _, c := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range c.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["model"] == model && l["kind"] == kind && l["direction"] == direction {
				return c.GetCounter().GetValue()
			}
		}
	}
	return 0
}
