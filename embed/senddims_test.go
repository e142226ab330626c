package embed

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
)

// matryoshkaAPI answers like a gateway or server that honours "dimensions" for any model
// (LiteLLM/OpenRouter forwarding "openai/text-embedding-3-small", an Azure deployment, vLLM
// with a Matryoshka model such as Qwen/Qwen3-Embedding-0.6B): the vectors are "dimensions"
// long when it is sent, else native long. It records the "dimensions" of each request (0: none).
type matryoshkaAPI struct {
	native int
	mu     sync.Mutex
	sent   []int
}

func (a *matryoshkaAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Input      []string `json:"input"`
		Dimensions int      `json:"dimensions"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	a.mu.Lock()
	a.sent = append(a.sent, req.Dimensions)
	a.mu.Unlock()
	n := a.native
	if req.Dimensions > 0 {
		n = req.Dimensions
	}
	data := make([]any, len(req.Input))
	for i := range req.Input {
		v := make([]float32, n)
		v[i%n] = 1
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": v}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data,
		"usage": map[string]int{"prompt_tokens": 5, "total_tokens": 5}})
}

// An OpenAI model behind a gateway that names it with a provider prefix, an Azure deployment
// name, or a Matryoshka model on vLLM, configured with shortened dimensions: "dimensions" was
// not sent to them, the server answered its native length, and every request was an
// llm.ErrAccount (the worker paused for ever with nothing to set). The prefixed name gets it
// by default, the others with SendDimensionsAlways; SendDimensionsNever sends it to none, and
// without it a model that does not shorten on its own is told which setting to change.
func TestClientSendsDimensionsAsSendDimensionsSays(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		model    string
		mode     SendDimensions
		wantSent bool
	}{
		{"openai/text-embedding-3-small", "", true},
		{"openai/text-embedding-3-large", SendDimensionsAuto, true},
		{"azure-text-embedding-3-small-deployment", SendDimensionsAlways, true},
		{"Qwen/Qwen3-Embedding-0.6B", SendDimensionsAlways, true},
		{"nomic-ai/nomic-embed-text-v1.5", SendDimensionsAlways, true},
		{"text-embedding-3-small", SendDimensionsNever, false},
		{"Qwen/Qwen3-Embedding-0.6B", SendDimensionsAuto, false},
	} {
		api := &matryoshkaAPI{native: 1536}
		ts := httptest.NewServer(api)
		c, err := New(Config{BaseURL: ts.URL + "/v1", Model: tc.model, Dimensions: 512, SendDimensions: tc.mode,
			EncodingFormat: "float", MaxRetries: -1})
		if err != nil {
			ts.Close()
			t.Fatalf("%s, %q: %v", tc.model, tc.mode, err)
		}
		embs, _, err := c.Embed(context.Background(), synthPapers(2))
		ts.Close()
		api.mu.Lock()
		sent := api.sent
		api.mu.Unlock()
		if tc.wantSent {
			if err != nil || len(embs[1].Vector) != 512 || len(sent) != 1 || sent[0] != 512 {
				t.Errorf("%s, %q: err %v, \"dimensions\" sent %v; want 512 sent and 512-dimensional vectors", tc.model, tc.mode, err, sent)
			}
			continue
		}
		if len(sent) != 1 || sent[0] != 0 {
			t.Errorf("%s, %q: \"dimensions\" sent %v, want none", tc.model, tc.mode, sent)
		}
		// The server answers 1536: the configuration's error, naming what to set.
		if !errors.Is(err, llm.ErrAccount) || !strings.Contains(err.Error(), "PAPERPIPE_EMBED_SEND_DIMENSIONS=always") ||
			!strings.Contains(err.Error(), "PAPERPIPE_EMBED_DIMENSIONS") {
			t.Errorf("%s, %q: err %v, want llm.ErrAccount naming PAPERPIPE_EMBED_SEND_DIMENSIONS=always and PAPERPIPE_EMBED_DIMENSIONS",
				tc.model, tc.mode, err)
		}
	}
}

func TestAcceptsDimensionsAfterAProviderPrefix(t *testing.T) {
	t.Parallel()
	for m, want := range map[string]bool{
		"text-embedding-3-small":        true,
		"openai/text-embedding-3-small": true,
		"azure/text-embedding-3-large":  true,
		"openai/text-embedding-ada-002": false,
		"BAAI/bge-m3":                   false,
		"Qwen/Qwen3-Embedding-0.6B":     false,
		"my-text-embedding-3-small":     false,
	} {
		if got := AcceptsDimensions(m); got != want {
			t.Errorf("AcceptsDimensions(%q) = %v, want %v", m, got, want)
		}
	}
	for _, tc := range []struct {
		mode  SendDimensions
		model string
		want  bool
	}{
		{"", "openai/text-embedding-3-small", true},
		{SendDimensionsAuto, "BAAI/bge-m3", false},
		{SendDimensionsAlways, "BAAI/bge-m3", true},
		{SendDimensionsNever, "text-embedding-3-small", false},
	} {
		if got := SendsDimensions(tc.mode, tc.model); got != tc.want {
			t.Errorf("SendsDimensions(%q, %q) = %v, want %v", tc.mode, tc.model, got, tc.want)
		}
	}
}

func TestParseSendDimensions(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]SendDimensions{"": SendDimensionsAuto, "auto": SendDimensionsAuto,
		"always": SendDimensionsAlways, "never": SendDimensionsNever} {
		if got, err := ParseSendDimensions(s); err != nil || got != want {
			t.Errorf("ParseSendDimensions(%q) = %q, %v; want %q", s, got, err, want)
		}
	}
	for _, s := range []string{"yes", "Always", "1"} {
		if _, err := ParseSendDimensions(s); err == nil {
			t.Errorf("ParseSendDimensions(%q) accepted it", s)
		}
	}
	if _, err := New(Config{Model: "text-embedding-3-small", SendDimensions: "sometimes"}); err == nil {
		t.Error("New accepted SendDimensions \"sometimes\"")
	}
}

// A text-embedding-3 model asked for more dimensions than its own (3-small 1536, 3-large 3072):
// OpenAI answers every such request with a 400, a permanent error that dead-lettered every
// paper. New refuses the Config; the model's own length or less is accepted.
func TestNewRefusesDimensionsAboveATextEmbedding3ModelsOwn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		model string
		dims  int
		mode  SendDimensions
		ok    bool
	}{
		{"text-embedding-3-small", 3072, "", false},
		{"text-embedding-3-small", 1537, SendDimensionsAlways, false},
		{"text-embedding-3-large", 4096, "", false},
		{"openai/text-embedding-3-small", 2048, "", false},
		{"text-embedding-3-small", 3072, SendDimensionsNever, false},
		{"text-embedding-3-small", 1536, "", true},
		{"text-embedding-3-small", 512, "", true},
		{"text-embedding-3-large", 3072, "", true},
		{"Qwen/Qwen3-Embedding-0.6B", 4096, SendDimensionsAlways, true}, // native length not known
	} {
		_, err := New(Config{Model: tc.model, Dimensions: tc.dims, SendDimensions: tc.mode, APIKey: "k"})
		if (err == nil) != tc.ok {
			t.Errorf("New(%s, Dimensions %d, %q): err %v, want accepted %v", tc.model, tc.dims, tc.mode, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "Dimensions") {
			t.Errorf("New(%s, Dimensions %d): %v does not name the field", tc.model, tc.dims, err)
		}
	}
}

// A text-embedding-3 model under a gateway's prefix has its own length known: no
// PAPERPIPE_EMBED_DIMENSIONS is needed, as for the plain name.
func TestPrefixedModelHasItsNativeLength(t *testing.T) {
	t.Parallel()
	c, err := New(Config{BaseURL: "http://127.0.0.1:1/v1", APIKey: "k", Model: "openai/text-embedding-3-small"})
	if err != nil {
		t.Fatalf("New(openai/text-embedding-3-small, no Dimensions): %v", err)
	}
	if d := c.Space().Dimensions; d != 1536 {
		t.Errorf("its space has %d dimensions, want 1536", d)
	}
}

// TestDimensionsAModelRefusesAreTheConfigurations: PAPERPIPE_EMBED_SEND_DIMENSIONS=always for a
// model that cannot shorten its vectors — vLLM serving BAAI/bge-m3 answers every request that
// carries "dimensions" 400 "does not support matryoshka representation", OpenAI's
// text-embedding-ada-002 400 "does not support specifying dimensions". No paper causes it: as a
// permanent error it had the worker halve every batch down to single papers and dead-letter each
// of them. It is the configuration's (llm.ErrAccount: the worker pauses), naming the setting.
func TestDimensionsAModelRefusesAreTheConfigurations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, model, flavor string
		dims                int
	}{
		{"vLLM, BAAI/bge-m3", "BAAI/bge-m3", openaitest.FlavorVLLM, 8},
		{"OpenAI, text-embedding-ada-002", "text-embedding-ada-002", openaitest.FlavorOpenAI, 1536},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := openaitest.Start(t, openaitest.Config{Dimensions: 8, Flavor: tc.flavor})
			c := newTestClient(t, srv, func(c *Config) {
				c.Model, c.Dimensions, c.SendDimensions = tc.model, tc.dims, SendDimensionsAlways
			})
			_, _, err := c.Embed(context.Background(), synthPapers(4))
			if !errors.Is(err, llm.ErrAccount) || errors.Is(err, paper.ErrPermanent) || llm.Classify(err) != llm.Account ||
				!strings.Contains(err.Error(), "PAPERPIPE_EMBED_SEND_DIMENSIONS") {
				t.Fatalf("err = %v; want llm.ErrAccount (not ErrPermanent) naming PAPERPIPE_EMBED_SEND_DIMENSIONS", err)
			}
			if st := srv.Stats(); st.EmbedRequests != 1 {
				t.Errorf("%d requests: the refusal must not be retried", st.EmbedRequests)
			}
		})
	}
}
