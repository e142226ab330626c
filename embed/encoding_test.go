package embed

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
)

// recordTransport records the encoding_format of every request it sends (empty when the
// request has none) and the bytes of every response body, then hands the request to next
// (http.DefaultTransport when nil).
type recordTransport struct {
	next http.RoundTripper

	mu        sync.Mutex
	formats   []string
	respBytes int64
}

func (r *recordTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body struct {
		EncodingFormat string `json:"encoding_format"`
	}
	if req.GetBody != nil {
		rc, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		err = json.NewDecoder(rc).Decode(&body)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("recordTransport: request body: %w", err)
		}
	}
	next := r.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	r.mu.Lock()
	r.formats = append(r.formats, body.EncodingFormat)
	if resp != nil && resp.ContentLength > 0 {
		r.respBytes += resp.ContentLength
	}
	r.mu.Unlock()
	return resp, err
}

// Formats returns the encoding formats sent so far, in order.
func (r *recordTransport) Formats() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.formats...)
}

// floatOnlyAPI is an embeddings API that ignores "encoding_format": it answers every request
// with JSON float arrays, the fake's vectors of the inputs. It counts the requests that asked
// for base64.
type floatOnlyAPI struct {
	requests, base64Requests atomic.Int64
	tokens                   atomic.Int64  // prompt tokens of every answer
	delay                    time.Duration // before each answer
}

func (f *floatOnlyAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Input          []string `json:"input"`
		Model          string   `json:"model"`
		EncodingFormat string   `json:"encoding_format"`
		Dimensions     int      `json:"dimensions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.URL.Path != "/v1/embeddings" {
		http.Error(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	f.requests.Add(1)
	if req.EncodingFormat == "base64" {
		f.base64Requests.Add(1)
	}
	dims := cmpOr(req.Dimensions, 1536)
	type datum struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	data := make([]datum, len(req.Input))
	tokens := 0
	for i, in := range req.Input {
		data[i] = datum{Object: "embedding", Index: i, Embedding: openaitest.Vector(in, dims)}
		tokens += EstimateTokens(in)
	}
	f.tokens.Add(int64(tokens))
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens},
	})
}

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

const fallbackMsg = "the embeddings API does not return base64 embeddings; using float"

func TestClientRequestsBase64ByDefaultAndDecodesBitExact(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{})
	papers := synthPapers(40)
	run := func(format string) ([]paper.Embedding, []float32, []string) {
		rec := &recordTransport{}
		c := newTestClient(t, srv, func(c *Config) {
			c.EncodingFormat = format
			c.Dimensions = 768
			c.HTTPClient = &http.Client{Transport: rec}
		})
		embs, _, err := c.Embed(context.Background(), papers)
		if err != nil {
			t.Fatalf("EncodingFormat %q: %v", format, err)
		}
		checkVectors(t, papers, embs, 768)
		q, _, err := c.EmbedQuery(context.Background(), "sparse mixture of experts")
		if err != nil {
			t.Fatalf("EncodingFormat %q: EmbedQuery: %v", format, err)
		}
		return embs, q, rec.Formats()
	}
	b64, b64Query, b64Formats := run("") // the default
	flt, fltQuery, fltFormats := run("float")
	if strings.Join(b64Formats, ",") != "base64,base64" {
		t.Fatalf("default client sent encoding_format %q, want base64 for both requests", b64Formats)
	}
	if strings.Join(fltFormats, ",") != "float,float" {
		t.Fatalf("float client sent encoding_format %q", fltFormats)
	}
	for i := range papers {
		assertBitEqual(t, fmt.Sprintf("paper %d", i), b64[i].Vector, flt[i].Vector)
	}
	assertBitEqual(t, "query", b64Query, fltQuery)
}

func assertBitEqual(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d numbers from base64, %d from float", what, len(got), len(want))
	}
	for d := range want {
		if math.Float32bits(got[d]) != math.Float32bits(want[d]) {
			t.Fatalf("%s, dimension %d: base64 %v, float %v", what, d, got[d], want[d])
		}
	}
}

func TestClientFloatEncodingSendsFloat(t *testing.T) {
	t.Parallel()
	api := &floatOnlyAPI{}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	var log logBuffer
	c, err := New(Config{BaseURL: ts.URL + "/v1", EncodingFormat: "float", MaxRetries: -1,
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	papers := synthPapers(3)
	embs, _, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, papers, embs, 1536)
	if n, b := api.requests.Load(), api.base64Requests.Load(); n != 1 || b != 0 {
		t.Fatalf("%d requests, %d asking for base64; want 1 float request", n, b)
	}
	if strings.Contains(log.String(), fallbackMsg) {
		t.Fatalf("a float client logged a fallback:\n%s", log.String())
	}
}

func TestClientFallsBackToFloatWhenAPIIgnoresBase64(t *testing.T) {
	t.Parallel()
	api := &floatOnlyAPI{}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	var log logBuffer
	c, err := New(Config{
		BaseURL: ts.URL + "/v1",
		// No retries: the re-sent float request must not be one.
		MaxRetries: -1,
		Logger:     slog.New(slog.NewTextHandler(&log, nil)), // info level
	})
	if err != nil {
		t.Fatal(err)
	}
	papers := synthPapers(5)
	embs, u, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatalf("Embed against an API answering float arrays: %v", err)
	}
	checkVectors(t, papers, embs, 1536)
	if n, b := api.requests.Load(), api.base64Requests.Load(); n != 2 || b != 1 {
		t.Fatalf("%d requests, %d asking for base64; want a base64 one then a float one", n, b)
	}
	// The base64 request's answer was complete, and billed, though unusable.
	if u.Requests != 2 || u.InputTokens != int(api.tokens.Load()) {
		t.Fatalf("usage %+v, want both answers: 2 requests, %d input tokens", u, api.tokens.Load())
	}

	embs, _, err = c.Embed(context.Background(), papers[:2])
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, papers[:2], embs, 1536)
	if _, _, err := c.EmbedQuery(context.Background(), "a query"); err != nil {
		t.Fatal(err)
	}
	if n, b := api.requests.Load(), api.base64Requests.Load(); n != 4 || b != 1 {
		t.Fatalf("%d requests, %d asking for base64; after the fallback every request must ask for float", n, b)
	}
	if got := strings.Count(log.String(), fallbackMsg); got != 1 {
		t.Fatalf("fallback logged %d times, want once:\n%s", got, log.String())
	}
	if !strings.Contains(log.String(), "level=INFO") {
		t.Fatalf("fallback not logged at info level:\n%s", log.String())
	}
}

// Timeout bounds each HTTP request: the float request that follows a base64 one answered with
// float arrays has a deadline of its own, not what the first left of it.
func TestClientFloatFallbackRequestHasItsOwnTimeout(t *testing.T) {
	t.Parallel()
	api := &floatOnlyAPI{delay: 300 * time.Millisecond}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	c, err := New(Config{BaseURL: ts.URL + "/v1", MaxRetries: -1, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	papers := synthPapers(2)
	embs, u, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatalf("two requests of 300ms each, Timeout 500ms: %v", err)
	}
	checkVectors(t, papers, embs, 1536)
	if u.Requests != 2 || u.InputTokens != int(api.tokens.Load()) {
		t.Errorf("usage %+v, want 2 requests and %d input tokens", u, api.tokens.Load())
	}
}

func TestClientFallsBackOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	api := &floatOnlyAPI{}
	ts := httptest.NewServer(api)
	t.Cleanup(ts.Close)
	var log logBuffer
	c, err := New(Config{BaseURL: ts.URL + "/v1", MaxRetries: -1, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	const workers = 8
	papers := synthPapers(workers * 2)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			mine := papers[2*w : 2*w+2]
			embs, _, err := c.Embed(context.Background(), mine)
			if err == nil && (len(embs) != 2 || len(embs[0].Vector) != 1536 || len(embs[1].Vector) != 1536) {
				err = errors.New("missing vectors")
			}
			errs[w] = err
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}
	if got := strings.Count(log.String(), fallbackMsg); got != 1 {
		t.Fatalf("fallback logged %d times, want once:\n%s", got, log.String())
	}
	before := api.base64Requests.Load()
	if _, _, err := c.Embed(context.Background(), papers[:1]); err != nil {
		t.Fatal(err)
	}
	if after := api.base64Requests.Load(); after != before {
		t.Fatalf("a request after the fallback asked for base64")
	}
}

// TestClientLeavesOutAnEncodingTheAPIRefuses: LiteLLM's proxy refuses "encoding_format", at
// any value, for the embedding models of providers it does not pass it to (Gemini, Vertex AI,
// Bedrock) unless set to drop_params: a 400, which failed every request as Permanent, and the
// worker halved each batch down to single papers and dead-lettered every one of them. The
// client now sends its requests without the field (the API's float arrays), from the refused
// request on, saying so once in a warning; the refusal is not billed.
func TestClientLeavesOutAnEncodingTheAPIRefuses(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"base64", "float"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			srv := openaitest.Start(t, openaitest.Config{Dimensions: 8, Flavor: openaitest.FlavorLiteLLM})
			rec := &recordTransport{}
			var log logBuffer
			c := newTestClient(t, srv, func(c *Config) {
				c.Model, c.Dimensions, c.EncodingFormat, c.MaxRetries = "gemini/gemini-embedding-001", 8, format, 2
				c.HTTPClient = &http.Client{Transport: rec}
				c.Logger = slog.New(slog.NewTextHandler(&log, nil))
			})
			papers := synthPapers(5)
			embs, u, err := c.Embed(context.Background(), papers)
			if err != nil {
				t.Fatalf("Embed against an API refusing encoding_format %q: %v", format, err)
			}
			checkVectors(t, papers, embs, 8)
			if got := strings.Join(rec.Formats(), ","); got != format+"," {
				t.Fatalf("requests asked for %q; want the refused %s, then one without the field", got, format)
			}
			if u.Requests != 1 {
				t.Errorf("usage %+v; want the one answer billed, not the refusal", u)
			}
			if _, _, err := c.EmbedQuery(context.Background(), "a query"); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rec.Formats(), ","); got != format+",," {
				t.Fatalf("requests asked for %q; after the refusal none may carry the field", got)
			}
			if got := strings.Count(log.String(), "encoding_format"); got < 1 || !strings.Contains(log.String(), "level=WARN") {
				t.Fatalf("want a warning naming encoding_format; logged:\n%s", log.String())
			}
		})
	}
}

func TestClientOtherErrorsKeepBase64(t *testing.T) {
	t.Parallel()
	for _, faults := range []openaitest.Faults{{Malformed: 1}, {Truncated: 1}, {ServerError: 1}} {
		srv := openaitest.Start(t, openaitest.Config{Faults: faults})
		rec := &recordTransport{next: &flipTransport{n: 1, srv: srv}}
		var log logBuffer
		c := newTestClient(t, srv, func(c *Config) {
			c.HTTPClient = &http.Client{Transport: rec}
			c.Logger = slog.New(slog.NewTextHandler(&log, nil))
		})
		papers := synthPapers(3)
		embs, _, err := c.Embed(context.Background(), papers)
		if err != nil {
			t.Fatalf("faults %+v: %v", faults, err)
		}
		checkVectors(t, papers, embs, 1536)
		if got := strings.Join(rec.Formats(), ","); got != "base64,base64" {
			t.Fatalf("faults %+v: requests asked for %s; want a failed base64 request retried as base64", faults, got)
		}
		if c.float.Load() || strings.Contains(log.String(), fallbackMsg) {
			t.Fatalf("faults %+v: the client switched to float on an error that is not about the encoding", faults)
		}
	}
}

func TestClientBase64WrongDimensionIsAConfigurationError(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{Dimensions: 1536})
	c := newTestClient(t, srv, func(c *Config) { c.Model = "nomic-embed-text" }) // known as 768
	_, _, err := c.Embed(context.Background(), synthPapers(2))
	if !errors.Is(err, llm.ErrAccount) || !strings.Contains(err.Error(), "1536") {
		t.Fatalf("err = %v, want llm.ErrAccount naming the size", err)
	}
	if c.float.Load() {
		t.Fatal("a base64 answer of the wrong length switched the client to float")
	}
}

// TestGoOpenAIBase64AnsweredWithFloats pins what notBase64 relies on: go-openai v1.43.0
// decodes a base64 request's answer into string vectors, so float arrays give the decoder's
// *json.UnmarshalTypeError on the "embedding" member, returned unwrapped.
func TestGoOpenAIBase64AnsweredWithFloats(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(&floatOnlyAPI{})
	t.Cleanup(ts.Close)
	oc := openai.DefaultConfig("")
	oc.BaseURL = ts.URL + "/v1"
	api := openai.NewClientWithConfig(oc)
	req := openai.EmbeddingRequestStrings{Input: []string{"a", "b"}, Model: openai.SmallEmbedding3,
		EncodingFormat: openai.EmbeddingEncodingFormatBase64}
	_, err := api.CreateEmbeddings(context.Background(), req)
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) {
		t.Fatalf("err = %#v, want a *json.UnmarshalTypeError", err)
	}
	t.Logf("go-openai error: %T %v (Field %q, Value %q, Type %v)", err, err, typeErr.Field, typeErr.Value, typeErr.Type)
	if !notBase64(err) {
		t.Fatalf("notBase64(%v) = false", err)
	}
	req.EncodingFormat = openai.EmbeddingEncodingFormatFloat
	if resp, err := api.CreateEmbeddings(context.Background(), req); err != nil || len(resp.Data) != 2 {
		t.Fatalf("float request: %d vectors, %v", len(resp.Data), err)
	}
}

func TestNotBase64(t *testing.T) {
	t.Parallel()
	typeErr := func(data string) error {
		var v struct {
			Data []struct {
				Index     int    `json:"index"`
				Embedding string `json:"embedding"`
			} `json:"data"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		err := json.Unmarshal([]byte(data), &v)
		if err == nil {
			t.Fatalf("%s decoded without error", data)
		}
		return err
	}
	_, corrupt := base64.StdEncoding.DecodeString("not base64!")
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"float array", typeErr(`{"data":[{"index":0,"embedding":[0.5,-1]}]}`), true},
		{"object", typeErr(`{"data":[{"index":0,"embedding":{"x":1}}]}`), true},
		{"wrapped float array", fmt.Errorf("create: %w", typeErr(`{"data":[{"embedding":[1]}]}`)), true},
		{"corrupt base64", corrupt, true},
		{"index of the wrong type", typeErr(`{"data":[{"index":"0","embedding":"AAAA"}]}`), false},
		{"usage of the wrong type", typeErr(`{"data":[],"usage":{"prompt_tokens":"x"}}`), false},
		{"truncated body", typeErr(`{"data":[{"index":0,`), false},
		{"malformed body", typeErr(`upstream connect error`), false},
		{"unexpected EOF", io.ErrUnexpectedEOF, false},
		{"API error", &openai.APIError{HTTPStatusCode: 400, Message: "bad"}, false},
		{"deadline", context.DeadlineExceeded, false},
	} {
		if got := notBase64(c.err); got != c.want {
			t.Errorf("%s: notBase64(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestNewRejectsUnknownEncodingFormat(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"Base64", "floats", "binary", " float"} {
		_, err := New(Config{EncodingFormat: f})
		if err == nil || !strings.Contains(err.Error(), "EncodingFormat") {
			t.Errorf("New(EncodingFormat %q) = %v, want an error naming EncodingFormat", f, err)
		}
	}
	for _, f := range []string{"", "base64", "float"} {
		if _, err := New(Config{EncodingFormat: f}); err != nil {
			t.Errorf("New(EncodingFormat %q) = %v", f, err)
		}
	}
}

// BenchmarkEmbedDecode embeds 512 papers into 768 dimensions per op against the fake API
// (no latency), asking for float and for base64 vectors. Client and fake share the process,
// so the figures include the fake's work; BenchmarkEmbedClientDecode isolates the client.
func BenchmarkEmbedDecode(b *testing.B) {
	papers := synthPapers(512)
	for _, format := range []string{"float", "base64"} {
		b.Run(format, func(b *testing.B) {
			srv := openaitest.Start(b, openaitest.Config{})
			rec := &recordTransport{}
			c, err := New(Config{BaseURL: srv.URL(), Dimensions: 768, EncodingFormat: format, Timeout: time.Minute,
				HTTPClient: &http.Client{Transport: rec}})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.Embed(context.Background(), papers); err != nil {
					b.Fatal(err)
				}
			}
			rec.mu.Lock()
			b.ReportMetric(float64(rec.respBytes)/float64(len(rec.formats)), "resp-B/op")
			rec.mu.Unlock()
		})
	}
}

// BenchmarkEmbedClientDecode measures the client alone: a server replays one fake answer
// for 512 papers × 768 dimensions, recorded in each format, so the server does next to no
// work.
func BenchmarkEmbedClientDecode(b *testing.B) {
	papers := synthPapers(512)
	for _, format := range []string{"float", "base64"} {
		b.Run(format, func(b *testing.B) {
			body := recordAnswer(b, papers, format)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			}))
			b.Cleanup(ts.Close)
			c, err := New(Config{BaseURL: ts.URL + "/v1", Dimensions: 768, EncodingFormat: format, Timeout: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.Embed(context.Background(), papers); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(body)), "resp-B/op")
		})
	}
}

// recordAnswer returns the fake's answer body to an embeddings request for papers in format.
func recordAnswer(b *testing.B, papers []paper.Abstract, format string) []byte {
	b.Helper()
	srv := openaitest.New(openaitest.Config{})
	b.Cleanup(srv.Close)
	texts := make([]string, len(papers))
	for i, p := range papers {
		texts[i] = TitleAbstract(p)
	}
	reqBody, err := json.Marshal(map[string]any{"input": texts, "model": "text-embedding-3-small",
		"encoding_format": format, "dimensions": 768})
	if err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/embeddings", bytes.NewReader(reqBody)))
	if w.Code != http.StatusOK {
		b.Fatalf("fake answered %d: %s", w.Code, w.Body.String())
	}
	return w.Body.Bytes()
}
