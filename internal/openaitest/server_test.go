package openaitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sashabaranov/go-openai"
)

const abstract = "We propose a load-balancing loss for sparse mixture-of-experts models that keeps every expert busy. " +
	"On language modelling it improves throughput by 30% at equal quality."

func client(s *Server, key string) *openai.Client {
	cfg := openai.DefaultConfig(key)
	cfg.BaseURL = s.URL()
	return openai.NewClientWithConfig(cfg)
}

func newChatRequest(content string) openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{
		Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: "You write one-sentence TL;DRs of research papers."},
			{Role: openai.ChatMessageRoleUser, Content: content},
		},
		Temperature: 0.2,
	}
}

func prompt(abs string) string {
	return "Write a TL;DR of this paper.\n\nTitle: Balanced experts\n\n" + abs
}

func TestChatRoundTrip(t *testing.T) {
	s := Start(t, Config{})
	req := newChatRequest(prompt(abstract))
	resp, err := client(s, "k").CreateChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := "We propose a load-balancing loss for sparse mixture-of-experts models that keeps every expert busy."
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != want {
		t.Fatalf("choices = %+v, want one with content %q", resp.Choices, want)
	}
	c := resp.Choices[0]
	if c.Message.Role != openai.ChatMessageRoleAssistant || c.FinishReason != openai.FinishReasonStop {
		t.Errorf("role %q finish %q, want assistant and stop", c.Message.Role, c.FinishReason)
	}
	if resp.Object != "chat.completion" || resp.Model != req.Model || resp.ID == "" || resp.Created == 0 {
		t.Errorf("object %q model %q id %q created %d", resp.Object, resp.Model, resp.ID, resp.Created)
	}
	promptChars := len(req.Messages[0].Content) + len(req.Messages[1].Content)
	wantUsage := openai.Usage{PromptTokens: (promptChars + 3) / 4, CompletionTokens: (len(want) + 3) / 4}
	wantUsage.TotalTokens = wantUsage.PromptTokens + wantUsage.CompletionTokens
	if resp.Usage.PromptTokens != wantUsage.PromptTokens || resp.Usage.CompletionTokens != wantUsage.CompletionTokens ||
		resp.Usage.TotalTokens != wantUsage.TotalTokens {
		t.Errorf("usage = %+v, want %+v", resp.Usage, wantUsage)
	}
	h := resp.Header()
	for _, k := range []string{"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
		"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"} {
		if h.Get(k) == "" {
			t.Errorf("header %s missing", k)
		}
	}
	if got := resp.GetRateLimitHeaders(); int64(got.LimitRequests) != defaultChatLimits.Requests || int64(got.RemainingRequests) != defaultChatLimits.Requests-1 {
		t.Errorf("rate limit headers = %+v", got)
	}
	st := s.Stats()
	if st.ChatRequests != 1 || st.ChatDelivered != 1 || st.PromptTokens != int64(wantUsage.PromptTokens) ||
		st.CompletionTokens != int64(wantUsage.CompletionTokens) {
		t.Errorf("stats = %+v", st)
	}
}

func TestChatHonoursMaxTokensAndN(t *testing.T) {
	s := Start(t, Config{})
	req := newChatRequest(prompt(abstract))
	req.MaxCompletionTokens = 5
	req.N = 2
	resp, err := client(s, "k").CreateChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 2 {
		t.Fatalf("%d choices, want 2", len(resp.Choices))
	}
	for _, c := range resp.Choices {
		if c.FinishReason != openai.FinishReasonLength || len(c.Message.Content) != 20 {
			t.Errorf("choice %d: finish %q content %q, want length and 20 characters", c.Index, c.FinishReason, c.Message.Content)
		}
	}
}

func TestChatTakesTheLastUserMessageAndTextParts(t *testing.T) {
	s := Start(t, Config{})
	req := openai.ChatCompletionRequest{
		Model: "m",
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleUser, Content: "An earlier question. Ignore it."},
			{Role: openai.ChatMessageRoleAssistant, Content: "An earlier answer."},
			{Role: openai.ChatMessageRoleUser, MultiContent: []openai.ChatMessagePart{
				{Type: openai.ChatMessagePartTypeText, Text: "Summarize:"},
				{Type: openai.ChatMessagePartTypeText, Text: abstract},
			}},
		},
	}
	resp, err := client(s, "k").CreateChatCompletion(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; !strings.HasPrefix(got, "We propose a load-balancing loss") {
		t.Errorf("content = %q, want the abstract's first sentence", got)
	}
}

func TestEmbeddingsManyInputs(t *testing.T) {
	s := Start(t, Config{})
	inputs := make([]string, 300)
	total := 0
	for i := range inputs {
		inputs[i] = fmt.Sprintf("abstract number %d about sparse experts", i)
		total += (len(inputs[i]) + 3) / 4
	}
	resp, err := client(s, "k").CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{
		Input: inputs, Model: openai.SmallEmbedding3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != len(inputs) {
		t.Fatalf("%d vectors, want %d", len(resp.Data), len(inputs))
	}
	for i, d := range resp.Data {
		if d.Index != i || d.Object != "embedding" || len(d.Embedding) != 1536 {
			t.Fatalf("data[%d]: index %d object %q dims %d", i, d.Index, d.Object, len(d.Embedding))
		}
		if n := norm(d.Embedding); math.Abs(n-1) > 1e-5 {
			t.Errorf("data[%d] norm = %v, want 1", i, n)
		}
	}
	if !equal(resp.Data[7].Embedding, Vector(inputs[7], 1536)) {
		t.Error("data[7] is not Vector(inputs[7])")
	}
	if resp.Object != "list" || resp.Model != openai.SmallEmbedding3 || resp.Usage.PromptTokens != total || resp.Usage.TotalTokens != total {
		t.Errorf("object %q model %q usage %+v, want list, the model, %d tokens", resp.Object, resp.Model, resp.Usage, total)
	}
	if st := s.Stats(); st.EmbedRequests != 1 || st.EmbedInputsDelivered != 300 || st.PromptTokens != int64(total) {
		t.Errorf("stats = %+v", st)
	}
}

func TestEmbeddingsBase64MatchesFloat(t *testing.T) {
	s := Start(t, Config{})
	c := client(s, "k")
	in := []string{"first text", "second text"}
	flt, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: in, Model: openai.SmallEmbedding3})
	if err != nil {
		t.Fatal(err)
	}
	b64, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{
		Input: in, Model: openai.SmallEmbedding3, EncodingFormat: openai.EmbeddingEncodingFormatBase64,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if !equal(flt.Data[i].Embedding, b64.Data[i].Embedding) {
			t.Errorf("input %d: base64 vector differs from float vector", i)
		}
	}

	// On the wire, the base64 body carries a string per embedding.
	body := post(t, s.URL()+"/embeddings", `{"model":"m","input":"x","encoding_format":"base64"}`, http.StatusOK)
	var raw struct{ Data []struct{ Embedding any } }
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw.Data[0].Embedding.(string); !ok {
		t.Errorf("base64 embedding is %T, want string", raw.Data[0].Embedding)
	}
}

func TestEmbeddingsDimensions(t *testing.T) {
	s := Start(t, Config{Dimensions: 64})
	c := client(s, "k")
	resp, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: []string{"a"}, Model: "m", Dimensions: 256})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(resp.Data[0].Embedding); got != 256 {
		t.Errorf("dims = %d, want the requested 256", got)
	}
	resp, err = c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: []string{"a"}, Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(resp.Data[0].Embedding); got != 64 {
		t.Errorf("dims = %d, want Config.Dimensions 64", got)
	}
}

// TestEmbeddingsWithoutDimensionsHaveTheModelsNativeLength: OpenAI's models answer their own
// length to a request without "dimensions" (text-embedding-3-large 3072: the fake answered
// Config.Dimensions whatever the model, and a client of text-embedding-3-large against it saw
// 1536); Config.Dimensions is for the models it does not know. text-embedding-ada-002 cannot
// shorten its vectors and refuses "dimensions" with a 400, as OpenAI does.
func TestEmbeddingsWithoutDimensionsHaveTheModelsNativeLength(t *testing.T) {
	s := Start(t, Config{Dimensions: 64})
	c := client(s, "k")
	for _, tc := range []struct {
		model      string
		dims, want int
	}{
		{"text-embedding-3-small", 0, 1536},
		{"text-embedding-3-large", 0, 3072},
		{"text-embedding-ada-002", 0, 1536},
		{"nomic-embed-text", 0, 64},
		{"text-embedding-3-large", 256, 256},
	} {
		resp, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{
			Input: []string{"sparse routing"}, Model: openai.EmbeddingModel(tc.model), Dimensions: tc.dims})
		if err != nil {
			t.Errorf("%s, dimensions %d: %v", tc.model, tc.dims, err)
			continue
		}
		if got := len(resp.Data[0].Embedding); got != tc.want {
			t.Errorf("%s, dimensions %d: %d-dimensional vector, want %d", tc.model, tc.dims, got, tc.want)
		}
	}
	_, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{
		Input: []string{"a"}, Model: openai.AdaEmbeddingV2, Dimensions: 512})
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, "does not support specifying dimensions") {
		t.Errorf("text-embedding-ada-002 with dimensions: %v, want OpenAI's 400", err)
	}
}

// TestEmbeddingsAboveTheNativeLengthAreRefused: a text-embedding-3 model can shorten its vectors,
// not lengthen them; OpenAI answers "dimensions" above the model's own length with a 400, and the
// fake answered 3072-long vectors of text-embedding-3-small.
func TestEmbeddingsAboveTheNativeLengthAreRefused(t *testing.T) {
	s := Start(t, Config{Dimensions: 64})
	c := client(s, "k")
	for _, tc := range []struct {
		model string
		dims  int
		ok    bool
	}{
		{"text-embedding-3-small", 3072, false},
		{"text-embedding-3-large", 3073, false},
		{"text-embedding-3-small", 1536, true},
		{"text-embedding-3-large", 3072, true},
		{"Qwen/Qwen3-Embedding-0.6B", 4096, true}, // a model the fake does not know gets what it asks
	} {
		resp, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{
			Input: []string{"a"}, Model: openai.EmbeddingModel(tc.model), Dimensions: tc.dims})
		var apiErr *openai.APIError
		switch {
		case tc.ok && (err != nil || len(resp.Data[0].Embedding) != tc.dims):
			t.Errorf("%s, dimensions %d: %v, want %d-dimensional vectors", tc.model, tc.dims, err, tc.dims)
		case !tc.ok && (!errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest || apiErr.Type != "invalid_request_error"):
			t.Errorf("%s, dimensions %d: %v, want a 400 invalid_request_error", tc.model, tc.dims, err)
		}
	}
}

func TestEmbeddingsAreDeterministic(t *testing.T) {
	s1 := Start(t, Config{})
	s2 := Start(t, Config{Seed: 99})
	get := func(s *Server, in []string) []openai.Embedding {
		resp, err := client(s, "k").CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: in, Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Data
	}
	a := get(s1, []string{"same text", "other text"})
	b := get(s2, []string{"unrelated", "same text"})
	if !equal(a[0].Embedding, b[1].Embedding) {
		t.Error("the same text got different vectors")
	}
	if equal(a[0].Embedding, a[1].Embedding) {
		t.Error("different texts got the same vector")
	}
}

func TestEmbeddingsTokenInputs(t *testing.T) {
	s := Start(t, Config{})
	resp, err := client(s, "k").CreateEmbeddings(context.Background(), openai.EmbeddingRequestTokens{
		Input: [][]int{{1212, 318, 257}, {1332, 13}}, Model: "m",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 2 || resp.Usage.PromptTokens != 5 {
		t.Errorf("%d vectors, %d tokens; want 2 vectors, 5 tokens", len(resp.Data), resp.Usage.PromptTokens)
	}
	post(t, s.URL()+"/embeddings", `{"model":"m","input":[1,2,3]}`, http.StatusOK)
}

func TestEmbeddingLimits(t *testing.T) {
	s := Start(t, Config{MaxInputs: 3, ContextTokens: 10, MaxRequestTokens: 25})
	c := client(s, "k")
	tests := []struct {
		name   string
		inputs []string
		want   string
	}{
		{"too many inputs", []string{"a", "b", "c", "d"}, "'$.input' is invalid"},
		{"an input longer than the context", []string{strings.Repeat("x", 44)}, "This model's maximum context length is 10 tokens, however you requested 11 tokens"},
		{"too many tokens in the request", []string{strings.Repeat("x", 40), strings.Repeat("y", 40), strings.Repeat("z", 40)}, "Requested 30 tokens, max 25 tokens per request"},
		{"an empty input", []string{""}, "'$.input' is invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: tc.inputs, Model: "m"})
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest {
				t.Fatalf("err = %v, want a 400 APIError", err)
			}
			if !strings.Contains(apiErr.Message, tc.want) {
				t.Errorf("message %q does not contain %q", apiErr.Message, tc.want)
			}
		})
	}
	if st := s.Stats(); st.EmbedInputsDelivered != 0 || len(st.ValidationErrors) != 0 {
		t.Errorf("stats = %+v, want nothing delivered and no spec violation", st)
	}
}

func TestRateLimitFault(t *testing.T) {
	s := Start(t, Config{Faults: Faults{RateLimit: 1, RetryAfter: 3 * time.Second}})
	_, err := client(s, "k").CreateChatCompletion(context.Background(), newChatRequest(abstract))
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusTooManyRequests {
		t.Fatalf("err = %v, want an APIError with status 429", err)
	}
	if apiErr.Code != "rate_limit_exceeded" {
		t.Errorf("code = %v, want rate_limit_exceeded", apiErr.Code)
	}

	resp := do(t, http.MethodPost, s.URL()+"/embeddings", `{"model":"m","input":"x"}`)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status = %d, want 429", resp.StatusCode)
	}
	if got := resp.Header.Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After = %q, want 3", got)
	}
	if got := resp.Header.Get("x-ratelimit-remaining-requests"); got != "0" {
		t.Errorf("x-ratelimit-remaining-requests = %q, want 0", got)
	}
	if got := resp.Header.Get("x-ratelimit-reset-requests"); got != "3s" {
		t.Errorf("x-ratelimit-reset-requests = %q, want 3s", got)
	}
	st := s.Stats()
	if st.Faults[FaultRateLimit] != 2 || st.ChatDelivered != 0 || st.EmbedInputsDelivered != 0 {
		t.Errorf("stats = %+v, want 2 rate-limit faults and nothing delivered", st)
	}
}

func TestServerErrorFault(t *testing.T) {
	s := Start(t, Config{Faults: Faults{ServerError: 1}})
	c := client(s, "k")
	for _, want := range []int{500, 502, 503, 500} {
		_, err := c.CreateChatCompletion(context.Background(), newChatRequest(abstract))
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != want {
			t.Fatalf("err = %v, want an APIError with status %d", err, want)
		}
	}
	if st := s.Stats(); st.Faults[FaultServerError] != 4 || st.ChatDelivered != 0 || st.ChatRequests != 4 {
		t.Errorf("stats = %+v", st)
	}
}

// TestServerErrorStatusFault: with ServerErrorStatus every server error is of that status, a
// 502 or 504 as nginx's HTML page for the server behind it, another as the API's error.
func TestServerErrorStatusFault(t *testing.T) {
	for _, tc := range []struct {
		status int
		html   bool
	}{{502, true}, {504, true}, {503, false}} {
		s := Start(t, Config{Faults: Faults{ServerError: 1, ServerErrorStatus: tc.status}})
		req, err := json.Marshal(newChatRequest(abstract))
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			resp, err := http.Post(s.URL()+"/chat/completions", "application/json", bytes.NewReader(req))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || strings.HasPrefix(string(body), "<html>") != tc.html {
				t.Errorf("ServerErrorStatus %d: answered %d %q", tc.status, resp.StatusCode, body)
			}
		}
	}
	if err := (Faults{ServerErrorStatus: 404}).Validate(); err == nil {
		t.Error("ServerErrorStatus 404 validated")
	}
}

func TestTimeoutFaultHoldsUntilTheClientGivesUp(t *testing.T) {
	s := Start(t, Config{Faults: Faults{Timeout: 1, TimeoutHold: time.Hour}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := client(s, "k").CreateChatCompletion(ctx, newChatRequest(abstract))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the client's deadline", err)
	}
	if st := s.Stats(); st.Faults[FaultTimeout] != 1 || st.ChatDelivered != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestTimeoutFaultAnswers504AfterTheHold(t *testing.T) {
	s := Start(t, Config{Faults: Faults{Timeout: 1, TimeoutHold: time.Millisecond}})
	_, err := client(s, "k").CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: []string{"a"}, Model: "m"})
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusGatewayTimeout {
		t.Fatalf("err = %v, want an APIError with status 504", err)
	}
}

func TestTruncatedAndMalformedBodiesFailToDecode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults Faults
		kind   string
	}{
		{"truncated", Faults{Truncated: 1}, FaultTruncated},
		{"malformed", Faults{Malformed: 1}, FaultMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Config{Faults: tc.faults})
			c := client(s, "k")
			_, err := c.CreateChatCompletion(context.Background(), newChatRequest(abstract))
			var syntaxErr *json.SyntaxError
			if err == nil || !(errors.As(err, &syntaxErr) || errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Errorf("chat err = %v (%T), want a JSON decode error", err, err)
			}
			_, err = c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: []string{"a", "b"}, Model: "m"})
			if err == nil || !(errors.As(err, &syntaxErr) || errors.Is(err, io.ErrUnexpectedEOF)) {
				t.Errorf("embeddings err = %v (%T), want a JSON decode error", err, err)
			}
			st := s.Stats()
			if st.Faults[tc.kind] != 2 || st.ChatDelivered != 0 || st.EmbedInputsDelivered != 0 || st.PromptTokens != 0 {
				t.Errorf("stats = %+v, want 2 %s faults and nothing delivered", st, tc.kind)
			}
		})
	}
}

func TestJunkFault(t *testing.T) {
	s := Start(t, Config{Faults: Faults{Junk: 1}})
	resp, err := client(s, "k").CreateChatCompletion(context.Background(), newChatRequest(prompt(abstract)))
	if err != nil {
		t.Fatal(err)
	}
	got := resp.Choices[0].Message.Content
	if !strings.HasPrefix(got, "Sure! Here's a TL;DR:") || !strings.Contains(got, "**\"We propose") {
		t.Errorf("content = %q, want a preamble and the answer in bold quotes", got)
	}
	if n := strings.Count(got, ". ") + strings.Count(got, "! "); n < 2 {
		t.Errorf("content = %q, want several sentences", got)
	}
	// Junk is delivered (and billed).
	if st := s.Stats(); st.ChatDelivered != 1 || st.Faults[FaultJunk] != 1 {
		t.Errorf("stats = %+v", st)
	}
	// Embeddings ignore Junk.
	if _, err := client(s, "k").CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: []string{"a"}, Model: "m"}); err != nil {
		t.Errorf("embeddings under Junk: %v", err)
	}
}

func TestFaultsAreSeeded(t *testing.T) {
	outcomes := func(seed int64) string {
		s := Start(t, Config{Seed: seed, Faults: Faults{ServerError: 0.5}})
		c := client(s, "k")
		var b strings.Builder
		for range 30 {
			_, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: []string{"a"}, Model: "m"})
			b.WriteString(map[bool]string{true: "x", false: "."}[err != nil])
		}
		return b.String()
	}
	a, b := outcomes(7), outcomes(7)
	if a != b {
		t.Errorf("same seed, different faults: %s vs %s", a, b)
	}
	if !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Errorf("outcomes %s, want a mix at rate 0.5", a)
	}
}

func TestSetFaults(t *testing.T) {
	s := Start(t, Config{})
	c := client(s, "k")
	s.SetFaults(Faults{ServerError: 1})
	if _, err := c.CreateChatCompletion(context.Background(), newChatRequest(abstract)); err == nil {
		t.Error("no error after SetFaults(ServerError: 1)")
	}
	s.SetFaults(Faults{})
	if _, err := c.CreateChatCompletion(context.Background(), newChatRequest(abstract)); err != nil {
		t.Errorf("error after clearing faults: %v", err)
	}
}

func TestLatencyEndsWithTheRequest(t *testing.T) {
	s := Start(t, Config{ChatLatency: time.Hour, EmbedLatency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := client(s, "k").CreateChatCompletion(ctx, newChatRequest(abstract)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the client's deadline", err)
	}
	if st := s.Stats(); st.ChatDelivered != 0 {
		t.Errorf("delivered %d, want 0", st.ChatDelivered)
	}
	// Close (at cleanup) must not wait for the hour.
}

func TestAPIKey(t *testing.T) {
	s := Start(t, Config{APIKey: "sk-right"})
	_, err := client(s, "sk-wrong").CreateChatCompletion(context.Background(), newChatRequest(abstract))
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusUnauthorized {
		t.Fatalf("err = %v, want a 401 APIError", err)
	}
	if strings.Contains(apiErr.Message, "sk-wrong") {
		t.Error("the error echoes the key")
	}
	if _, err := client(s, "sk-right").CreateChatCompletion(context.Background(), newChatRequest(abstract)); err != nil {
		t.Errorf("right key: %v", err)
	}
	s.SetAPIKey("sk-wrong") // the right key revoked, the other one issued
	if _, err := client(s, "sk-right").CreateChatCompletion(context.Background(), newChatRequest(abstract)); !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusUnauthorized {
		t.Errorf("revoked key: err = %v, want a 401 APIError", err)
	}
	if _, err := client(s, "sk-wrong").CreateChatCompletion(context.Background(), newChatRequest(abstract)); err != nil {
		t.Errorf("key issued by SetAPIKey: %v", err)
	}
}

func TestRoutes(t *testing.T) {
	s := Start(t, Config{})
	base := strings.TrimSuffix(s.URL(), "/v1")
	tests := []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPost, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"Hi."}]}`, 200},
		{http.MethodPost, "/chat/completions", `{"model":"m","messages":[{"role":"user","content":"Hi."}]}`, 200},
		{http.MethodPost, "/embeddings", `{"model":"m","input":"hi"}`, 200},
		{http.MethodPost, "/v1/completions", `{}`, 404},
		{http.MethodGet, "/v1/models", ``, 404},
		{http.MethodGet, "/v1/chat/completions", ``, 405},
		{http.MethodPut, "/v1/embeddings", `{}`, 405},
		{http.MethodGet, "/v1/files/file-nope", ``, 404},
		{http.MethodGet, "/v1/batches/batch_nope", ``, 404},
	}
	for _, tc := range tests {
		resp := do(t, tc.method, base+tc.path, tc.body)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if tc.status != 200 {
			var e struct{ Error *apiError }
			if json.Unmarshal(body, &e) != nil || e.Error == nil || e.Error.Message == "" {
				t.Errorf("%s %s: body %s is not an OpenAI error", tc.method, tc.path, body)
			}
		}
	}
}

func TestInvalidRequestIsRejectedAndRecorded(t *testing.T) {
	s := New(Config{})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })

	body := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, http.StatusBadRequest)
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatal(err)
	}
	if e.Error["type"] != "invalid_request_error" || !strings.Contains(fmt.Sprint(e.Error["message"]), "model") {
		t.Errorf("error = %v, want an invalid_request_error naming model", e.Error)
	}
	for _, k := range []string{"param", "code"} {
		if v, ok := e.Error[k]; !ok || v != nil {
			t.Errorf("error.%s = %v (present %v), want null", k, v, ok)
		}
	}
	errs := s.Stats().ValidationErrors
	if len(errs) != 1 || !strings.Contains(errs[0], "CreateChatCompletionRequest") || !strings.Contains(errs[0], "'model'") {
		t.Errorf("validation errors = %q, want one naming the schema and model", errs)
	}
	if st := s.Stats(); st.ChatRequests != 1 || st.ChatDelivered != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestValidateEveryChecksTheFirstBodiesThenASample(t *testing.T) {
	s := New(Config{ValidateEvery: 10})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })

	// A request without "model" breaks the published description; a checked one is refused.
	refused := 0
	const n = validateFirst + 30
	for i := range n {
		resp := do(t, http.MethodPost, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`)
		_, _ = io.Copy(io.Discard, resp.Body)
		switch resp.StatusCode {
		case http.StatusBadRequest:
			refused++
			if i >= validateFirst && (i-validateFirst)%10 != 0 {
				t.Errorf("request %d refused, want only the first %d and then one in 10 checked", i, validateFirst)
			}
		case http.StatusOK:
			if i < validateFirst {
				t.Errorf("request %d answered 200, want the first %d checked", i, validateFirst)
			}
		default:
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	if want := validateFirst + 3; refused != want || len(s.Stats().ValidationErrors) != want {
		t.Errorf("refused %d, recorded %d violations, want %d of each", refused, len(s.Stats().ValidationErrors), want)
	}
}

func TestResponseValidationRecordsServerDrift(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	broken := chatResponse{ID: "x", Object: "chat.completion", Model: "m",
		Choices: []chatChoice{{Message: chatResponseMessage{Role: "assistant", Content: "hi"}, FinishReason: "done"}}}
	s.marshalValidated(schemaChatResponse, "test response", broken)
	errs := s.Stats().ValidationErrors
	if len(errs) != 1 || !strings.Contains(errs[0], "/choices/0/finish_reason") {
		t.Errorf("validation errors = %q, want one for the bad finish_reason", errs)
	}
	s.marshalValidated(schemaEmbedResponse, "test response", embedResponse{Object: "list", Model: "m",
		Data: []embeddingDatum{{Object: "embedding", Index: 0, Embedding: "AAAA"}}})
	if errs := s.Stats().ValidationErrors; len(errs) != 2 || !strings.Contains(errs[1], "/data/0/embedding") {
		t.Errorf("validation errors = %q, want a second one for the string embedding", errs)
	}
}

// recordingTB records what Start reports at cleanup.
type recordingTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Cleanup(f func()) {
	r.cleanups = append(r.cleanups, f)
}
func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestStartFailsTheTestOnViolations(t *testing.T) {
	tb := &recordingTB{TB: t}
	s := Start(tb, Config{})
	post(t, s.URL()+"/embeddings", `{"model":"m","input":"x","extra":1}`, http.StatusBadRequest)
	for _, f := range tb.cleanups {
		f()
	}
	if len(tb.errs) != 1 || !strings.Contains(tb.errs[0], "extra") {
		t.Errorf("reported %q, want one error naming the extra field", tb.errs)
	}

	// TakeValidationErrors clears what a test provoked on purpose.
	s2 := Start(t, Config{})
	post(t, s2.URL()+"/embeddings", `{"input":"x"}`, http.StatusBadRequest)
	if got := s2.TakeValidationErrors(); len(got) != 1 {
		t.Errorf("TakeValidationErrors = %q, want one", got)
	}
}

func TestConcurrentClients(t *testing.T) {
	s := Start(t, Config{Faults: Faults{ServerError: 0.2, RateLimit: 0.1, Junk: 0.1}})
	c := client(s, "k")
	var wg sync.WaitGroup
	var mu sync.Mutex
	okChats, okVecs := 0, 0
	for i := range 16 {
		wg.Go(func() {
			for j := range 10 {
				text := fmt.Sprintf("Paper %d-%d shows a result. More text.", i, j)
				if _, err := c.CreateChatCompletion(context.Background(), newChatRequest(text)); err == nil {
					mu.Lock()
					okChats++
					mu.Unlock()
				}
				if r, err := c.CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{Input: []string{text, "b"}, Model: "m", Dimensions: 8}); err == nil {
					mu.Lock()
					okVecs += len(r.Data)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if st.ChatRequests != 160 || st.EmbedRequests != 160 {
		t.Errorf("requests = %d chat, %d embed; want 160 each", st.ChatRequests, st.EmbedRequests)
	}
	if st.ChatDelivered != int64(okChats) || st.EmbedInputsDelivered != int64(okVecs) {
		t.Errorf("delivered %d chats, %d vectors; clients got %d, %d", st.ChatDelivered, st.EmbedInputsDelivered, okChats, okVecs)
	}
	faults := st.Faults[FaultServerError] + st.Faults[FaultRateLimit]
	if int64(okChats)+int64(okVecs/2)+faults != 320 {
		t.Errorf("%d successes + %d failures != 320 requests", okChats+okVecs/2, faults)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Faults: Faults{RateLimit: 1.5}},
		{Faults: Faults{Junk: -0.1}},
		{ChatLatency: -time.Second},
		{Dimensions: -1},
		{Vectors: "clustered"},
		{ValidateEvery: -1},
		{Reasoning: "thinking"},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", cfg)
				}
			}()
			New(cfg)
		}()
	}
}

func do(t *testing.T, method, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func post(t *testing.T, url, body string, status int) []byte {
	t.Helper()
	resp := do(t, http.MethodPost, url, body)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("POST %s: status %d, want %d; body %s", url, resp.StatusCode, status, bytes.TrimSpace(b))
	}
	return b
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCloseReleasesHeldRequests(t *testing.T) {
	s := Start(t, Config{Faults: Faults{Timeout: 1, TimeoutHold: time.Hour}})
	errc := make(chan error, 1)
	go func() {
		_, err := client(s, "k").CreateChatCompletion(context.Background(), newChatRequest(abstract))
		errc <- err
	}()
	// Close once the request is being held.
	for s.Stats().Faults[FaultTimeout] == 0 {
		time.Sleep(time.Millisecond)
	}
	s.Close()
	err := <-errc
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusGatewayTimeout {
		t.Errorf("err = %v, want a 504 when the server closes", err)
	}
}

func TestEmbeddedSpecHasTheOperations(t *testing.T) {
	v, err := loadValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []struct{ path, method string }{
		{"/chat/completions", http.MethodPost}, {"/embeddings", http.MethodPost}, {"/files", http.MethodPost},
		{"/files/{file_id}", http.MethodGet}, {"/files/{file_id}/content", http.MethodGet},
		{"/batches", http.MethodPost}, {"/batches/{batch_id}", http.MethodGet},
	} {
		item := v.doc.Paths.Find(op.path)
		if item == nil || item.GetOperation(op.method) == nil {
			t.Errorf("embedded description lacks %s %s", op.method, op.path)
		}
	}
	if regexp.MustCompile(`(?m)^\s+nullable:`).Match(specYAML) {
		t.Error("embedded description still uses the 3.0 keyword nullable")
	}
}
