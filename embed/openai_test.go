package embed

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/nettest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
)

func synthPapers(n int) []paper.Abstract {
	out := make([]paper.Abstract, n)
	for i := range out {
		out[i] = paper.Abstract{
			ID:       fmt.Sprintf("id:%d", i),
			Title:    fmt.Sprintf("Paper number %d", i),
			Abstract: fmt.Sprintf("We study problem %d and propose a method for it that works well on benchmark %d.", i, i%17),
		}
	}
	return out
}

func newTestClient(t *testing.T, srv *openaitest.Server, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: srv.URL(), Model: "text-embedding-3-small", MaxRetries: 3, Timeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkVectors asserts every embedding is the fake's vector of its own paper's text: the
// client mapped the answers back by index.
func checkVectors(t *testing.T, papers []paper.Abstract, embs []paper.Embedding, dims int) {
	t.Helper()
	if len(embs) != len(papers) {
		t.Fatalf("%d embeddings for %d papers", len(embs), len(papers))
	}
	for i, p := range papers {
		e := embs[i]
		if e.PaperID != p.ID || e.ContentHash != p.ContentHash() || len(e.Vector) != dims {
			t.Fatalf("embedding %d: id %q hash ok %v dims %d", i, e.PaperID, e.ContentHash == p.ContentHash(), len(e.Vector))
		}
		if e.Truncated {
			continue
		}
		want := openaitest.Vector(TitleAbstract(p), dims)
		for d := range want {
			if want[d] != e.Vector[d] {
				t.Fatalf("embedding %d is not the vector of its own text (dimension %d)", i, d)
			}
		}
	}
}

func TestClientEmbedsInOrderWithUsage(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{})
	c := newTestClient(t, srv, nil)
	papers := synthPapers(7)
	embs, u, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, papers, embs, 1536)
	if sp := c.Space(); sp != (paper.Space{Model: "text-embedding-3-small", Dimensions: 1536, Template: TemplateTitleAbstract}) {
		t.Fatalf("Space = %+v", sp)
	}
	q, qu, err := c.EmbedQuery(context.Background(), "mixture of experts")
	if err != nil || len(q) != 1536 || qu.Requests != 1 {
		t.Fatalf("EmbedQuery: %d dims, %+v, %v", len(q), qu, err)
	}
	st := settledStats(srv)
	if u.Requests != 1 || u.InputTokens == 0 || int64(u.InputTokens+qu.InputTokens) != st.PromptTokens ||
		u.Kind != paper.KindEmbedding || u.Model != "text-embedding-3-small" {
		t.Fatalf("usage %+v, query usage %+v, server %+v", u, qu, st)
	}
}

// settledStats closes srv and returns its counters. The fake counts a delivery after writing
// the answer, so a client can hold the answer before it is counted; Close waits for the
// handlers.
func settledStats(srv *openaitest.Server) openaitest.Stats {
	srv.Close()
	return srv.Stats()
}

func TestClientSplitsByInputCount(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{})
	// Short vectors keep the server's response validation fast.
	c := newTestClient(t, srv, func(c *Config) { c.MaxBatchInputs = 2048; c.Dimensions = 8 })
	papers := synthPapers(5000)
	embs, u, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, papers, embs, 8)
	st := settledStats(srv)
	if st.EmbedRequests != 3 || u.Requests != 3 || st.EmbedInputsDelivered != 5000 {
		t.Fatalf("server %+v, usage %+v; want 3 requests (2048+2048+904)", st, u)
	}
}

func TestClientSplitsByTokens(t *testing.T) {
	t.Parallel()
	const maxTokens = 2000
	// The server enforces the same per-request budget; its count (runes/4) is below ours.
	srv := openaitest.Start(t, openaitest.Config{MaxRequestTokens: maxTokens})
	c := newTestClient(t, srv, func(c *Config) { c.MaxBatchTokens = maxTokens; c.ContextTokens = maxTokens; c.Dimensions = 8 })
	papers := synthPapers(500)
	total := 0
	for _, p := range papers {
		total += EstimateTokens(TitleAbstract(p))
	}
	embs, u, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, papers, embs, 8)
	if st := srv.Stats(); st.EmbedRequests != int64(u.Requests) {
		t.Fatalf("server got %d requests, %d delivered: a batch over the token budget was rejected", st.EmbedRequests, u.Requests)
	}
	minRequests := (total + maxTokens - 1) / maxTokens
	if u.Requests < minRequests || u.Requests > minRequests+2 {
		t.Fatalf("%d requests for %d estimated tokens at %d per request, want about %d", u.Requests, total, maxTokens, minRequests)
	}
}

func TestClientTruncatesOverlongInputAndMarksIt(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{ContextTokens: 200})
	c := newTestClient(t, srv, func(c *Config) { c.ContextTokens = 200 })
	papers := synthPapers(3)
	papers[1].Abstract = strings.Repeat("a very long abstract indeed ", 400) // ~11k bytes
	embs, _, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatalf("an over-long input should be truncated, not rejected: %v", err)
	}
	if !embs[1].Truncated || embs[0].Truncated || embs[2].Truncated {
		t.Fatalf("Truncated marks = %v %v %v, want only the long one", embs[0].Truncated, embs[1].Truncated, embs[2].Truncated)
	}
	checkVectors(t, papers, embs, 1536)
}

func TestClientBadRequestIsPermanent(t *testing.T) {
	t.Parallel()
	// The server takes at most 10 inputs; the client was told 20.
	srv := openaitest.Start(t, openaitest.Config{MaxInputs: 10})
	c := newTestClient(t, srv, func(c *Config) { c.MaxBatchInputs = 20 })
	_, _, err := c.Embed(context.Background(), synthPapers(15))
	if !errors.Is(err, paper.ErrPermanent) {
		t.Fatalf("err = %v, want ErrPermanent", err)
	}
	if st := srv.Stats(); st.EmbedRequests != 1 {
		t.Fatalf("%d requests: a 400 must not be retried", st.EmbedRequests)
	}
}

// TestClientWrongDimensionIsAConfigurationError: vectors of another length than the space's
// are no paper's fault but the configuration's (the server runs another model, or the
// dimensions configured are not the model's): llm.ErrAccount, which a worker pauses on, not
// paper.ErrPermanent, which dead-lettered every paper, each request paid for.
func TestClientWrongDimensionIsAConfigurationError(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{Dimensions: 1536})
	c := newTestClient(t, srv, func(c *Config) { c.Model = "nomic-embed-text" }) // known as 768
	_, _, err := c.Embed(context.Background(), synthPapers(2))
	if !errors.Is(err, llm.ErrAccount) || errors.Is(err, paper.ErrPermanent) || llm.Classify(err) != llm.Account ||
		!strings.Contains(err.Error(), "nomic-embed-text") ||
		!strings.Contains(err.Error(), "1536") || !strings.Contains(err.Error(), "768") {
		t.Fatalf("err = %v, want llm.ErrAccount (not ErrPermanent) naming the model and both sizes", err)
	}
	if n := strings.Count(err.Error(), llm.ErrAccount.Error()); n != 1 {
		t.Errorf("err = %q: the sentinel's words %d times", err, n)
	}
	if st := srv.Stats(); st.EmbedRequests != 1 {
		t.Errorf("%d requests: the wrong length must not be retried", st.EmbedRequests)
	}
}

func TestClientSendsDimensions(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{})
	c := newTestClient(t, srv, func(c *Config) { c.Dimensions = 256 })
	papers := synthPapers(4)
	embs, _, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, papers, embs, 256)
	if c.Space().Dimensions != 256 {
		t.Fatalf("Space().Dimensions = %d", c.Space().Dimensions)
	}
}

// vllmLikeAPI answers embeddings as vLLM does for a model without Matryoshka support
// (BAAI/bge-m3): a 400 in vLLM's error shape for a request with "dimensions", else dims-long
// vectors. It records whether each request carried "dimensions".
type vllmLikeAPI struct {
	dims int
	mu   sync.Mutex
	sent []bool
}

func (a *vllmLikeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req map[string]any
	_ = json.NewDecoder(r.Body).Decode(&req)
	_, withDims := req["dimensions"]
	a.mu.Lock()
	a.sent = append(a.sent, withDims)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if withDims {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"object":"error","message":"Model \"%s\" does not support matryoshka representation, changing output dimensions will lead to poor results.","type":"BadRequestError","param":null,"code":400}`, req["model"])
		return
	}
	inputs, _ := req["input"].([]any)
	data := make([]any, len(inputs))
	for i := range inputs {
		v := make([]float32, a.dims)
		v[i%a.dims] = 1
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": v}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "model": req["model"], "data": data,
		"usage": map[string]int{"prompt_tokens": 5, "total_tokens": 5}})
}

// TestClientSendsDimensionsOnlyToModelsThatAcceptThem: README's vLLM setting
// (PAPERPIPE_EMBED_MODEL=BAAI/bge-m3 PAPERPIPE_EMBED_DIMENSIONS=1024) is the length the model
// returns; sent as "dimensions", vLLM refuses every request with a 400 and every paper is
// dead-lettered. Only OpenAI's text-embedding-3 models are sent it.
func TestClientSendsDimensionsOnlyToModelsThatAcceptThem(t *testing.T) {
	t.Parallel()
	api := &vllmLikeAPI{dims: 1024}
	ts := httptest.NewServer(api)
	defer ts.Close()
	c, err := New(Config{BaseURL: ts.URL + "/v1", Model: "BAAI/bge-m3", Dimensions: 1024, EncodingFormat: "float", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	embs, _, err := c.Embed(context.Background(), synthPapers(3))
	if err != nil {
		t.Fatalf("Embed with a model that cannot shorten its vectors: %v", err)
	}
	if len(embs[2].Vector) != 1024 {
		t.Errorf("%d-dimensional vector, want 1024", len(embs[2].Vector))
	}
	for _, m := range []string{"BAAI/bge-m3", "text-embedding-ada-002", "nomic-embed-text", "local"} {
		if AcceptsDimensions(m) {
			t.Errorf("AcceptsDimensions(%q) = true", m)
		}
	}
	for _, m := range []string{"text-embedding-3-small", "text-embedding-3-large"} {
		if !AcceptsDimensions(m) {
			t.Errorf("AcceptsDimensions(%q) = false", m)
		}
	}
	// text-embedding-3 models still get it (and shorten their vectors): see
	// TestClientSendsDimensions.
	c3, err := New(Config{BaseURL: ts.URL + "/v1", Model: "text-embedding-3-large", Dimensions: 1024, EncodingFormat: "float", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = c3.Embed(context.Background(), synthPapers(1))
	api.mu.Lock()
	defer api.mu.Unlock()
	if want := []bool{false, true}; fmt.Sprint(api.sent) != fmt.Sprint(want) {
		t.Errorf(`requests carried "dimensions": %v, want %v (bge-m3 without, text-embedding-3-large with)`, api.sent, want)
	}
}

// TestClientErrorGivesTheMessageOfAVLLMErrorBody: vLLM's error body
// ({"object":"error","message":…}) is not OpenAI's ({"error":{…}}), and go-openai's error
// showed "message: %!s(<nil>)" for it. The error gives the server's message. (A refusal of
// "dimensions" is the configuration's: TestDimensionsAModelRefusesAreTheConfigurations.)
func TestClientErrorGivesTheMessageOfAVLLMErrorBody(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(&vllmLikeAPI{dims: 1024})
	defer ts.Close()
	// text-embedding-3-large behind vLLM: the client sends "dimensions", vLLM refuses it.
	c, err := New(Config{BaseURL: ts.URL + "/v1", Model: "text-embedding-3-large", Dimensions: 1024, EncodingFormat: "float", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Embed(context.Background(), synthPapers(1))
	if !errors.Is(err, llm.ErrAccount) || llm.HTTPStatus(err) != http.StatusBadRequest {
		t.Fatalf("err = %v, want the 400, as the configuration's", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "message: Model \"text-embedding-3-large\" does not support matryoshka representation") ||
		strings.Contains(msg, "%!") {
		t.Errorf("err = %q, want the server's message, readable", msg)
	}
}

// flipTransport clears the server's faults after the n-th response.
type flipTransport struct {
	mu    sync.Mutex
	seen  int
	n     int
	srv   *openaitest.Server
	clear openaitest.Faults
}

func (f *flipTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	f.mu.Lock()
	f.seen++
	if f.seen == f.n {
		f.srv.SetFaults(f.clear)
	}
	f.mu.Unlock()
	return resp, err
}

func TestClientRetriesTransientFaults(t *testing.T) {
	t.Parallel()
	for _, faults := range []openaitest.Faults{{ServerError: 1}, {Truncated: 1}, {Malformed: 1}} {
		srv := openaitest.Start(t, openaitest.Config{Faults: faults})
		c := newTestClient(t, srv, func(c *Config) {
			c.HTTPClient = &http.Client{Transport: &flipTransport{n: 2, srv: srv}}
		})
		papers := synthPapers(5)
		embs, u, err := c.Embed(context.Background(), papers)
		if err != nil {
			t.Fatalf("faults %+v: %v", faults, err)
		}
		checkVectors(t, papers, embs, 1536)
		if st := srv.Stats(); st.EmbedRequests != 3 || u.Requests != 1 {
			t.Fatalf("faults %+v: server %+v usage %+v; want 3 requests, 1 delivered", faults, st, u)
		}
	}
}

func TestClientRateLimitDoesNotConsumeRetries(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{Faults: openaitest.Faults{RateLimit: 1, RetryAfter: 10 * time.Millisecond}})
	c := newTestClient(t, srv, func(c *Config) {
		c.MaxRetries = -1
		c.HTTPClient = &http.Client{Transport: &flipTransport{n: 3, srv: srv}}
	})
	papers := synthPapers(3)
	embs, u, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, papers, embs, 1536)
	if st := srv.Stats(); st.Faults[openaitest.FaultRateLimit] != 3 || u.Requests != 1 {
		t.Fatalf("server %+v usage %+v", st, u)
	}
}

func TestClientUsesAPIKeyAndNeverLogsIt(t *testing.T) {
	t.Parallel()
	const key = "sk-embed-SECRET-42"
	srv := openaitest.Start(t, openaitest.Config{APIKey: key, ContextTokens: 50})
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newTestClient(t, srv, func(c *Config) { c.APIKey = key; c.Logger = logger; c.ContextTokens = 50 })
	papers := synthPapers(2)
	papers[0].Abstract = strings.Repeat("long ", 100) // truncated: logged at debug level
	if _, _, err := c.Embed(context.Background(), papers); err != nil {
		t.Fatalf("with the right key: %v", err)
	}
	bad := newTestClient(t, srv, func(c *Config) { c.APIKey = "sk-wrong"; c.Logger = logger; c.MaxRetries = -1 })
	if _, _, err := bad.Embed(context.Background(), papers); err == nil {
		t.Fatal("a wrong key was accepted: the client did not send Config.APIKey")
	}
	mu.Lock()
	defer mu.Unlock()
	if buf.Len() == 0 {
		t.Fatal("nothing was logged; the test would prove nothing")
	}
	if strings.Contains(buf.String(), key) || strings.Contains(buf.String(), "sk-wrong") {
		t.Fatalf("API key in the log:\n%s", buf.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestClientContextCancelReturnsPromptly(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{EmbedLatency: time.Minute})
	c := newTestClient(t, srv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, _, err := c.Embed(ctx, synthPapers(2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{BaseURL: "nope"},
		{Model: "my-own-model"}, // unknown dimensions
		{Dimensions: -1},
		{MaxBatchTokens: 100, ContextTokens: 200},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", cfg)
		}
	}
	if _, err := New(Config{Model: "my-own-model", Dimensions: 384}); err != nil {
		t.Errorf("an unknown model with Dimensions set was refused: %v", err)
	}
}

// TestClientRejectsUnusableVectorsAlone: a NaN, infinite or all-zero vector for one input
// fails that paper only. The whole answer was asked again (each time bought again, and an input
// the model cannot embed gets the same answer) and then failed with every paper of the
// request, so the paper's neighbours used their deliveries with it until dead-lettered.
func TestClientRejectsUnusableVectorsAlone(t *testing.T) {
	t.Parallel()
	for name, bad := range map[string]float32{"NaN": float32(math.NaN()), "infinite": float32(math.Inf(1)), "zero": 0} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, calls := fakeEmbeddings(t, func(i int, format string) string {
				if i == 1 {
					return encodedVector([]float32{bad, 0, 0, 0}, format)
				}
				return encodedVector([]float32{1, 1, 1, 1}, format)
			})
			c, err := New(Config{BaseURL: url, Model: "m", Dimensions: 4, MaxRetries: 1, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			papers := synthPapers(3)
			embs, usage, err := c.Embed(context.Background(), papers)
			if !errors.Is(err, llm.ErrBadResponse) || errors.Is(err, paper.ErrPermanent) || !strings.Contains(err.Error(), papers[1].ID) ||
				strings.Contains(err.Error(), papers[0].ID) {
				t.Fatalf("Embed: %v; want a transient error wrapping llm.ErrBadResponse naming %s alone", err, papers[1].ID)
			}
			if len(embs) != 3 || embs[0].Vector == nil || embs[1].Vector != nil || embs[2].Vector == nil {
				t.Fatalf("Embed = %+v; want the vectors of papers 1 and 3, none for paper 2", embs)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("%d requests, want 1: the answer is not bought again", n)
			}
			// The answer was complete, so billed: the usage ledger must show it.
			if usage.Requests != 1 || usage.InputTokens != 10 {
				t.Errorf("usage %+v, want the billed request of 10 tokens", usage)
			}
		})
	}
}

// TestHostThatDropsConnectionsIsUnreachable: Embed and EmbedQuery returned the context's end
// for an API whose host drops the connection attempts, hiding the Retrier's
// llm.ErrUnreachable (the worker retried the messages instead of pausing).
func TestHostThatDropsConnectionsIsUnreachable(t *testing.T) {
	t.Parallel()
	c, err := New(Config{BaseURL: "http://" + nettest.BlackholeAddr(t) + "/v1", APIKey: "sk-test", Model: "m", Dimensions: 16})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _, err = c.Embed(ctx, []paper.Abstract{{ID: "arxiv:2401.00001", Title: "A title", Abstract: "An abstract."}})
	if !errors.Is(err, llm.ErrUnreachable) || !errors.Is(err, llm.ErrAccount) {
		t.Errorf("Embed: err %v: want llm.ErrUnreachable and llm.ErrAccount", err)
	}
	qctx, qcancel := context.WithTimeout(context.Background(), time.Second)
	defer qcancel()
	_, _, err = c.EmbedQuery(qctx, "a query")
	if !errors.Is(err, llm.ErrUnreachable) {
		t.Errorf("EmbedQuery: err %v: want llm.ErrUnreachable", err)
	}
}

// fakeEmbeddings is an embeddings server in the wire format whose answer for input i of a
// request is embedding(i, format): a JSON value for the "embedding" member (a float array, a
// base64 string, null). It counts the requests.
func fakeEmbeddings(t *testing.T, embedding func(i int, format string) string) (url string, calls *atomic.Int32) {
	t.Helper()
	calls = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req struct {
			Input          []string `json:"input"`
			EncodingFormat string   `json:"encoding_format"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		var data []string
		for i := range req.Input {
			data = append(data, fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":%s}`, i, embedding(i, req.EncodingFormat)))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","model":"m","data":[%s],"usage":{"prompt_tokens":10,"total_tokens":10}}`, strings.Join(data, ","))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1", calls
}

// encodedVector is v as the "embedding" member of an answer in format ("base64" or "float").
func encodedVector(v []float32, format string) string {
	if format == "base64" {
		buf := make([]byte, 4*len(v))
		for j, x := range v {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(x))
		}
		return strconv.Quote(base64.StdEncoding.EncodeToString(buf))
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// TestClientNullOrEmptyVectorFailsItsOwnPaper: a server that answers null or an empty vector
// for one input (it could not embed that text) has not been configured wrong: the vectors of
// the other inputs have the space's length. It was reported as vectors "of another length",
// llm.ErrAccount, which pauses the whole worker for one paper; it now fails that paper alone,
// transiently, as a NaN vector does, and its neighbours' vectors are returned.
func TestClientNullOrEmptyVectorFailsItsOwnPaper(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, format, bad string }{
		{"null float", "float", "null"},
		{"null base64", "base64", "null"},
		{"empty float", "float", "[]"},
		{"empty base64", "base64", `""`},
		{"shorter than the others", "float", "[1,2]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, calls := fakeEmbeddings(t, func(i int, format string) string {
				if i == 1 {
					return tc.bad
				}
				return encodedVector([]float32{1, 2, 3, 4}, format)
			})
			c, err := New(Config{BaseURL: url, Model: "m", Dimensions: 4, MaxRetries: 1, Timeout: 5 * time.Second, EncodingFormat: tc.format})
			if err != nil {
				t.Fatal(err)
			}
			papers := synthPapers(3)
			embs, _, err := c.Embed(context.Background(), papers)
			if errors.Is(err, llm.ErrAccount) || errors.Is(err, paper.ErrPermanent) || !errors.Is(err, llm.ErrBadResponse) ||
				!strings.Contains(err.Error(), papers[1].ID) || strings.Contains(err.Error(), papers[0].ID) {
				t.Fatalf("Embed: %v; want a transient error wrapping llm.ErrBadResponse naming %s alone, not llm.ErrAccount", err, papers[1].ID)
			}
			if len(embs) != 3 || embs[0].Vector == nil || embs[1].Vector != nil || embs[2].Vector == nil {
				t.Fatalf("Embed = %+v; want the vectors of papers 1 and 3, none for paper 2", embs)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("%d requests, want 1: the answer is not bought again", n)
			}
		})
	}
}

// TestClientVectorsAllOfAnotherLengthAreTheConfigurations: when no vector of an answer has the
// space's length, the model or the dimensions configured are wrong for every paper alike:
// llm.ErrAccount, which pauses the worker, whether the answer has one input or several.
func TestClientVectorsAllOfAnotherLengthAreTheConfigurations(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 3} {
		url, _ := fakeEmbeddings(t, func(i int, format string) string {
			return encodedVector([]float32{1, 2, 3}, format)
		})
		c, err := New(Config{BaseURL: url, Model: "m", Dimensions: 4, MaxRetries: 1, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Embed(context.Background(), synthPapers(n)); !errors.Is(err, llm.ErrAccount) ||
			!strings.Contains(err.Error(), "returned 3-dimensional vectors, the space expects 4") {
			t.Errorf("%d inputs: Embed: %v; want llm.ErrAccount naming both lengths", n, err)
		}
	}
}

// TestClientFindsTheInputTheServerFailsOn: Ollama answers 500 to a request one of whose
// inputs embeds to NaN (ollama#9639), every time for that text. A 5xx is retried, not halved,
// so the paper failed every request it joined, its neighbours with it at every delivery until
// all were dead-lettered. Once the retries are spent, a batch answered 500 every time is sent
// again in halves, one attempt each, narrowing down a half that fails while the other is
// answered: the neighbours get their vectors in the same call, for 2 requests per halving,
// and the error names the paper alone.
func TestClientFindsTheInputTheServerFailsOn(t *testing.T) {
	t.Parallel()
	papers := synthPapers(16)
	bad := papers[11]
	srv := openaitest.Start(t, openaitest.Config{Dimensions: 8,
		EmbedFailsOn: func(in string) bool { return in == TitleAbstract(bad) }})
	c := newTestClient(t, srv, func(c *Config) { c.Model = "m"; c.Dimensions = 8; c.MaxRetries = 1 })
	embs, _, err := c.Embed(context.Background(), papers)
	if err == nil || errors.Is(err, paper.ErrPermanent) || errors.Is(err, llm.ErrAccount) || llm.Classify(err) != llm.Transient ||
		!strings.HasPrefix(err.Error(), "embed "+bad.ID+" (a request of it alone failed too) with m: ") {
		t.Fatalf("Embed: %v; want a transient error naming %s alone", err, bad.ID)
	}
	for i, e := range embs {
		if (e.Vector == nil) != (i == 11) {
			t.Fatalf("paper %d: vector %v; want a vector for every paper but %s", i, e.Vector != nil, bad.ID)
		}
	}
	// 2 attempts of the whole batch (MaxRetries 1), then 2 requests per halving: 16, 8, 4, 2, 1.
	if st := settledStats(srv); st.EmbedRequests != 2+2*4 || st.EmbedInputsDelivered != 15 {
		t.Errorf("%d requests, %d vectors delivered; want 10 requests (2 + 2 for each of 4 halvings) and the 15 good vectors",
			st.EmbedRequests, st.EmbedInputsDelivered)
	}
}

// TestClientHalvesAFailingServerOnceAtMost: a server that fails every request alike costs the
// halving 2 requests (both halves fail: no input is to blame) for a 500, none for a 502, 503 or
// 504, which are a gateway's or an overloaded server's and never one input's.
func TestClientHalvesAFailingServerOnceAtMost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status, extra int
	}{{500, 2}, {502, 0}, {503, 0}, {504, 0}} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				io.WriteString(w, `{"error":{"message":"it failed","type":"server_error"}}`)
			}))
			defer ts.Close()
			c, err := New(Config{BaseURL: ts.URL + "/v1", Model: "m", Dimensions: 8, MaxRetries: 2, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			embs, _, err := c.Embed(context.Background(), synthPapers(64))
			if llm.HTTPStatus(err) != tc.status || llm.Classify(err) != llm.Transient {
				t.Fatalf("Embed: %v; want the transient %d", err, tc.status)
			}
			for _, e := range embs {
				if e.Vector != nil {
					t.Fatal("a vector from a server that answered none")
				}
			}
			if n := calls.Load(); n != int32(3+tc.extra) {
				t.Errorf("%d requests, want %d: 3 attempts (MaxRetries 2) and %d for the halving", n, 3+tc.extra, tc.extra)
			}
		})
	}
}

// TestClientServerThatTakesOneInputPerRequest: a server that answers a list of inputs with
// the vector of one of them, or with a vector for each but every "index" 0 (which vector is
// whose is then unknown: the order of the list is no promise), failed every request of
// several inputs as a bad response — retried, each answer billed, then every paper of the
// batch failed until dead-lettered; only papers sent alone got through. The client now sends
// one input per request from then on, saying once, in a warning, to set
// PAPERPIPE_EMBED_BATCH_INPUTS=1; the request that told it is sent again one input at a time.
func TestClientServerThatTakesOneInputPerRequest(t *testing.T) {
	t.Parallel()
	for _, reversed := range []bool{false, true} {
		name := "one vector for the list"
		if reversed {
			name = "a vector each, no index, out of order"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var calls, inputs atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				var req struct {
					Input []string `json:"input"`
				}
				_ = json.NewDecoder(r.Body).Decode(&req)
				inputs.Add(int32(len(req.Input)))
				var data []string
				for i := range req.Input {
					if !reversed && i > 0 {
						break
					}
					text := req.Input[i]
					if reversed {
						text = req.Input[len(req.Input)-1-i]
					}
					data = append(data, `{"object":"embedding","index":0,"embedding":`+encodedVector(openaitest.Vector(text, 8), "float")+`}`)
				}
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"object":"list","model":"m","data":[%s],"usage":{"prompt_tokens":%d,"total_tokens":%d}}`,
					strings.Join(data, ","), 10*len(req.Input), 10*len(req.Input))
			}))
			defer ts.Close()
			var logs bytes.Buffer
			c, err := New(Config{BaseURL: ts.URL + "/v1", Model: "m", Dimensions: 8, MaxRetries: 2, Timeout: 5 * time.Second,
				EncodingFormat: "float", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			papers := synthPapers(5)
			embs, usage, err := c.Embed(context.Background(), papers)
			if err != nil {
				t.Fatalf("Embed: %v", err)
			}
			checkVectors(t, papers, embs, 8)
			// The answer that told, billed, then one request per input.
			if n := calls.Load(); n != 1+5 || usage.Requests != 6 || usage.InputTokens != 50+50 {
				t.Errorf("%d requests, usage %+v; want 6: the one that told (billed) and one per paper", n, usage)
			}
			more := synthPapers(8)[5:]
			embs, _, err = c.Embed(context.Background(), more)
			if err != nil {
				t.Fatalf("Embed after the switch: %v", err)
			}
			checkVectors(t, more, embs, 8)
			if n, in := calls.Load(), inputs.Load(); n != 6+3 || in != 5+5+3 {
				t.Errorf("%d requests of %d inputs in all; want 3 more of one input each", n, in)
			}
			if out := logs.String(); strings.Count(out, "PAPERPIPE_EMBED_BATCH_INPUTS=1") != 1 || !strings.Contains(out, "level=WARN") {
				t.Errorf("want one warning naming PAPERPIPE_EMBED_BATCH_INPUTS=1; logged:\n%s", out)
			}
		})
	}
}

// TestClientKeepsToTheServersLimitOfInputsPerRequest: servers that take fewer inputs per
// request than OpenAI's 2,048 refuse a longer list, saying how many they take:
// text-embeddings-inference (TEI) 32 unless started with --max-client-batch-size, with a 413,
// some Azure OpenAI deployments 16 (or 1), and Gemini 100, with a 400. The refusal was Permanent: a call of
// more inputs failed whole — `paperpipe embed`, 256 abstracts a call, stopped at its first
// request — and the worker halved each batch of 64 until its halves fitted, every batch again,
// a refused request per halving (126 of them per batch for a limit of 1). The client now sends
// at most the number the answer names, from that request on, saying once, in a warning, to set
// PAPERPIPE_EMBED_BATCH_INPUTS to it.
func TestClientKeepsToTheServersLimitOfInputsPerRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flavor string
		limit  int
	}{{openaitest.FlavorTEI, 32}, {openaitest.FlavorAzure, 16}, {openaitest.FlavorAzure, 1}, {openaitest.FlavorGemini, 100}} {
		t.Run(fmt.Sprintf("%s %d", tc.flavor, tc.limit), func(t *testing.T) {
			t.Parallel()
			srv := openaitest.Start(t, openaitest.Config{Dimensions: 8, MaxInputs: tc.limit, Flavor: tc.flavor})
			var logs bytes.Buffer
			c := newTestClient(t, srv, func(c *Config) {
				c.Model, c.Dimensions, c.Logger = "m", 8, slog.New(slog.NewTextHandler(&logs, nil))
			})
			n := max(64, 2*tc.limit+1) // paperpipe embed's calls hold 256
			papers := synthPapers(n)
			embs, usage, err := c.Embed(context.Background(), papers)
			if err != nil {
				t.Fatalf("Embed of %d papers: %v; want requests of at most %d inputs", n, err, tc.limit)
			}
			checkVectors(t, papers, embs, 8)
			perCall := (n + tc.limit - 1) / tc.limit
			if st := srv.Stats(); st.EmbedRequests != int64(1+perCall) || usage.Requests != perCall {
				t.Errorf("%d requests, %d billed; want %d: the one refused and %d of at most %d inputs",
					st.EmbedRequests, usage.Requests, 1+perCall, perCall, tc.limit)
			}
			embs, _, err = c.Embed(context.Background(), papers)
			if err != nil {
				t.Fatalf("second Embed: %v", err)
			}
			checkVectors(t, papers, embs, 8)
			if st := settledStats(srv); st.EmbedRequests != int64(1+2*perCall) {
				t.Errorf("second call: %d requests; want %d, none refused", st.EmbedRequests-int64(1+perCall), perCall)
			}
			want := fmt.Sprintf("PAPERPIPE_EMBED_BATCH_INPUTS=%d", tc.limit)
			if out := logs.String(); strings.Count(out, want) != 1 || !strings.Contains(out, "level=WARN") {
				t.Errorf("want one warning naming %s; logged:\n%s", want, out)
			}
		})
	}
}

// TestClientKeepsToTheServersLimitOfTokensPerRequest: Mistral's embeddings endpoint bounds
// the tokens of a request, its inputs together, well below OpenAI's 300,000 (8,192 to 65,536,
// as its users measured), and refuses a longer request with a 400 that does not say the
// bound ("Too many tokens overall, split into more batches."); OpenAI's own refusal names
// its bound. The refusal was Permanent: a call of more — `paperpipe embed`, 256 abstracts a
// call — failed, and the worker halved each batch, every batch again. The client now splits
// the refused request and keeps later requests to half its tokens (to the bound, when the
// answer names it), saying once to set PAPERPIPE_EMBED_BATCH_TOKENS.
func TestClientKeepsToTheServersLimitOfTokensPerRequest(t *testing.T) {
	t.Parallel()
	for _, flavor := range []string{openaitest.FlavorMistral, openaitest.FlavorOpenAI} {
		t.Run(flavor, func(t *testing.T) {
			t.Parallel()
			srv := openaitest.Start(t, openaitest.Config{Dimensions: 8, MaxRequestTokens: 300, Flavor: flavor})
			refused := &statusCounter{status: http.StatusBadRequest}
			var logs bytes.Buffer
			c := newTestClient(t, srv, func(c *Config) {
				c.Model, c.Dimensions, c.ContextTokens = "m", 8, 250
				c.HTTPClient = &http.Client{Transport: refused}
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			papers := synthPapers(64) // about 30 estimated tokens each
			embs, _, err := c.Embed(context.Background(), papers)
			if err != nil {
				t.Fatalf("Embed of 64 papers: %v; want requests the server takes", err)
			}
			checkVectors(t, papers, embs, 8)
			first := refused.n.Load()
			if first == 0 {
				t.Fatal("no request refused: the test's bound is not below the call's tokens")
			}
			embs, _, err = c.Embed(context.Background(), papers)
			if err != nil {
				t.Fatalf("second Embed: %v", err)
			}
			checkVectors(t, papers, embs, 8)
			if n := refused.n.Load(); n != first {
				t.Errorf("%d requests refused in the second call; want none", n-first)
			}
			if out := logs.String(); strings.Count(out, "PAPERPIPE_EMBED_BATCH_TOKENS") != 1 || !strings.Contains(out, "level=WARN") {
				t.Errorf("want one warning naming PAPERPIPE_EMBED_BATCH_TOKENS; logged:\n%s", out)
			}
		})
	}
}

// statusCounter is an http.RoundTripper (http.DefaultTransport's) that counts the answers of
// one status.
type statusCounter struct {
	status int
	n      atomic.Int64
}

func (c *statusCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.StatusCode == c.status {
		c.n.Add(1)
	}
	return resp, err
}

// TestClientCountsTheEstimateWhenTheAnswerReportsNoTokens: Gemini's OpenAI compatibility
// answers embeddings requests without "usage" (spring-projects/spring-ai#2485: "Gemini
// embedding responses doesn't provide usage stats"; ogx-ai/ogx#3813),
// and Google bills the tokens all the same. The usage ledger recorded 0 input tokens for every
// such request, and `status` and `reprocess --dry-run`'s averages showed them as free. The
// client now counts its estimate of the inputs' tokens for an answer that reports none.
func TestClientCountsTheEstimateWhenTheAnswerReportsNoTokens(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input []string `json:"input"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		var data []string
		for i, text := range req.Input {
			data = append(data, fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":%s}`, i, encodedVector(openaitest.Vector(text, 8), "float")))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","model":"gemini-embedding-001","data":[%s]}`, strings.Join(data, ","))
	}))
	defer ts.Close()
	c, err := New(Config{BaseURL: ts.URL + "/v1", Model: "gemini-embedding-001", Dimensions: 8, EncodingFormat: "float", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	papers := synthPapers(5)
	embs, usage, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, papers, embs, 8)
	want := 0
	for _, p := range papers {
		want += EstimateTokens(TitleAbstract(p))
	}
	if usage.Requests != 1 || usage.InputTokens != want {
		t.Errorf("usage %+v; want 1 request of %d input tokens (the estimate)", usage, want)
	}
	_, usage, err = c.EmbedQuery(context.Background(), "sparse expert routing")
	if err != nil || usage.InputTokens != EstimateTokens("sparse expert routing") {
		t.Errorf("EmbedQuery: usage %+v, %v; want the query's estimate", usage, err)
	}
}

// TestClientGoesOnPastARequestTheServerFailsOn: a call of several requests stopped at the
// first that failed, the papers of the later ones failing unsent. When the failure is an
// input's (a 500 at every attempt while the server answers the call's other requests, as
// Ollama for a text that embeds to NaN), the call goes on: with one input per request
// (PAPERPIPE_EMBED_BATCH_INPUTS=1, or a server that takes no more) every paper after a bad one
// failed with it at every delivery. A first request failing so is followed by one attempt of
// the next, which tells a bad input from a failing server.
func TestClientGoesOnPastARequestTheServerFailsOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		perReq    int
		bad       []int
		requests  int64 // at MaxRetries 1
		allFailed bool  // the server fails every request
	}{
		// 2 attempts of each bad paper's request, 1 of each other.
		{name: "one a request, a bad paper in the middle", perReq: 1, bad: []int{2}, requests: 2 + 5},
		{name: "one a request, a bad paper first", perReq: 1, bad: []int{0}, requests: 2 + 5},
		// Batch 2 of 4 (papers 4-7) holds both: 2 attempts, 2 halves, 2 quarters of each half.
		{name: "two bad papers in a request after one answered", perReq: 4, bad: []int{4, 7}, requests: 1 + 2 + 2 + 4},
		// 2 attempts of the first request, 1 of the second, which tells.
		{name: "one a request, every request failing", perReq: 1, bad: []int{0, 1, 2, 3, 4, 5, 6, 7}, requests: 3, allFailed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			papers := synthPapers(8)
			if tc.perReq == 1 {
				papers = papers[:6]
			}
			bad := map[string]bool{}
			for _, i := range tc.bad {
				if i < len(papers) {
					bad[TitleAbstract(papers[i])] = true
				}
			}
			srv := openaitest.Start(t, openaitest.Config{Dimensions: 8, EmbedFailsOn: func(in string) bool { return bad[in] }})
			c := newTestClient(t, srv, func(c *Config) { c.Model = "m"; c.Dimensions = 8; c.MaxRetries = 1; c.MaxBatchInputs = tc.perReq })
			embs, _, err := c.Embed(context.Background(), papers)
			if err == nil || llm.Classify(err) != llm.Transient || errors.Is(err, llm.ErrAccount) {
				t.Fatalf("Embed: %v; want a transient error", err)
			}
			for i, e := range embs {
				if isBad := bad[TitleAbstract(papers[i])]; (e.Vector == nil) != isBad {
					t.Errorf("paper %d (bad %v): vector %v; want one for every good paper (Embed: %v)", i, isBad, e.Vector != nil, err)
				}
				if !tc.allFailed && bad[TitleAbstract(papers[i])] != strings.Contains(err.Error(), papers[i].ID+" (") {
					t.Errorf("paper %d: named %v in %q, want the bad papers alone", i, !bad[TitleAbstract(papers[i])], err)
				}
			}
			if st := settledStats(srv); st.EmbedRequests != tc.requests {
				t.Errorf("%d requests, want %d", st.EmbedRequests, tc.requests)
			}
		})
	}
}

// TestClientCutsAnInputTheServerRefusesAsTooLong: a model server takes inputs of fewer tokens
// than OpenAI's 8,191 — a llama.cpp server an embedding model's up to its physical batch (-ub,
// 512 unless set), a vLLM model up to its max_model_len, text-embeddings-inference (TEI) its
// model's max_input_length (512 for the BERT-sized models it mostly serves) — and refuses a
// longer one, in its own words: llama.cpp with a 500, which was retried and then halved as a
// server failure, the paper redelivered until dead-lettered; vLLM and OpenAI with a 400, TEI
// with a 413, dead-lettered at once.
// Each answer says how long the input is and what the model takes: the client finds the input
// by halving the request, cuts it to fit, sends it again and marks it truncated, and the
// neighbours get their vectors in the same call.
func TestClientCutsAnInputTheServerRefusesAsTooLong(t *testing.T) {
	t.Parallel()
	for _, flavor := range []string{openaitest.FlavorLlamaCpp, openaitest.FlavorVLLM, openaitest.FlavorTEI, openaitest.FlavorOpenAI} {
		t.Run(flavor, func(t *testing.T) {
			t.Parallel()
			srv := openaitest.Start(t, openaitest.Config{Dimensions: 8, ContextTokens: 100, Flavor: flavor})
			c := newTestClient(t, srv, func(c *Config) { c.Model = "m"; c.Dimensions = 8; c.MaxRetries = 2 })
			papers := synthPapers(8)
			papers[5].Abstract = strings.Repeat("a very long abstract indeed ", 80) // ~560 of the server's tokens
			embs, usage, err := c.Embed(context.Background(), papers)
			if err != nil {
				t.Fatalf("Embed: %v; want the long input cut to fit", err)
			}
			for i, e := range embs {
				if e.Truncated != (i == 5) || e.Vector == nil {
					t.Fatalf("paper %d: truncated %v, vector %v; want a vector each, only paper 5 truncated", i, e.Truncated, e.Vector != nil)
				}
			}
			checkVectors(t, papers, embs, 8)
			// 1 request of 8, 2 per halving (8, 4, 2) down to the long input, 1 of it cut; the
			// halves without it and the cut input answered.
			if st := srv.Stats(); st.EmbedRequests != 1+2*3+1 || st.EmbedInputsDelivered != 8 || usage.Requests != 4 {
				t.Errorf("%d requests, %d vectors delivered, %d billed; want 8 requests, 8 vectors, 4 billed",
					st.EmbedRequests, st.EmbedInputsDelivered, usage.Requests)
			}

			vec, usage, err := c.EmbedQuery(context.Background(), papers[5].Abstract)
			if err != nil || len(vec) != 8 || usage.Requests != 1 {
				t.Fatalf("EmbedQuery of a long query: %d dimensions, %d billed, %v; want it cut to fit", len(vec), usage.Requests, err)
			}
			if st := settledStats(srv); st.EmbedRequests != 8+2 {
				t.Errorf("EmbedQuery: %d requests; want 2 (refused, then cut)", st.EmbedRequests-8)
			}
		})
	}
}

// TestEmbedHeldByTheRateLimitSaysSo: a request that waited for the rate limit until the call's
// time ran out returned a bare "context deadline exceeded", which the worker took for a
// timeout and counted against every paper's deliveries (dead-lettering them at the last). The
// error now wraps llm.ErrRateLimited: no request was sent.
func TestEmbedHeldByTheRateLimitSaysSo(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{})
	limiter := llm.NewLimiter(llm.LimiterConfig{})
	limiter.Pause(time.Minute) // the API's budget is used up
	c := newTestClient(t, srv, func(cfg *Config) { cfg.Limiter = limiter })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, _, err := c.Embed(ctx, synthPapers(3))
	if !errors.Is(err, llm.ErrRateLimited) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the rate limit's wait named (llm.ErrRateLimited)", err)
	}
	if st := srv.Stats(); st.EmbedInputsDelivered != 0 {
		t.Errorf("%d inputs embedded, want none: no request was sent", st.EmbedInputsDelivered)
	}
}

// TestClientCutsAnInputOllamaRefusesAsTooLong: Ollama refuses an input longer than its model's
// context, when it does not cut it itself, with a 400 "the input length exceeds the context
// length" that gives no lengths. It was taken for a rejection of the paper: dead-lettered once
// the halving found it (a query: a 502 for the search). The client cuts it as it cuts one the
// other servers refuse, to half its length at each refusal, and marks it truncated.
func TestClientCutsAnInputOllamaRefusesAsTooLong(t *testing.T) {
	t.Parallel()
	srv := openaitest.Start(t, openaitest.Config{Dimensions: 8, ContextTokens: 100, Flavor: openaitest.FlavorOllama})
	c := newTestClient(t, srv, func(c *Config) { c.Model = "m"; c.Dimensions = 8; c.MaxRetries = 2 })
	papers := synthPapers(8)
	papers[5].Abstract = strings.Repeat("a very long abstract indeed ", 80) // ~560 of the server's tokens
	embs, _, err := c.Embed(context.Background(), papers)
	if err != nil {
		t.Fatalf("Embed: %v; want the long input cut to fit", err)
	}
	for i, e := range embs {
		if e.Truncated != (i == 5) || e.Vector == nil {
			t.Fatalf("paper %d: truncated %v, vector %v; want a vector each, only paper 5 truncated", i, e.Truncated, e.Vector != nil)
		}
	}
	checkVectors(t, papers, embs, 8)
	if vec, _, err := c.EmbedQuery(context.Background(), papers[5].Abstract); err != nil || len(vec) != 8 {
		t.Fatalf("EmbedQuery of a long query: %d dimensions, %v; want it cut to fit", len(vec), err)
	}
}

// A 200 whose body is no answer is retried with a warning, which named no paper: at 2% of
// such answers, ~25 warnings per 756 papers, with nothing to look up. It names the papers of
// the request: the batch's first and how many more.
func TestAWarningOfAnUnusableAnswerNamesTheBatchsPapers(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input []string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		if calls.Add(1) == 1 {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "upstream connect error or disconnect/reset before headers")
			return
		}
		var data []string
		for i, text := range req.Input {
			data = append(data, fmt.Sprintf(`{"object":"embedding","index":%d,"embedding":%s}`, i, encodedVector(openaitest.Vector(text, 8), "float")))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","model":"m","data":[%s],"usage":{"prompt_tokens":10,"total_tokens":10}}`, strings.Join(data, ","))
	}))
	defer ts.Close()
	var logs bytes.Buffer
	c, err := New(Config{BaseURL: ts.URL + "/v1", Model: "m", Dimensions: 8, MaxRetries: 2, Timeout: 5 * time.Second,
		EncodingFormat: "float", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	papers := synthPapers(3)
	if _, _, err := c.Embed(context.Background(), papers); err != nil {
		t.Fatalf("Embed: %v", err)
	}
	want := fmt.Sprintf(`papers="%s and 2 more"`, papers[0].ID)
	if out := logs.String(); !strings.Contains(out, "unusable body") || !strings.Contains(out, want) {
		t.Errorf("want the warning of the unusable answer naming %s; logged:\n%s", want, out)
	}
}
