package openaitest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Faults sets the rates at which the server injects failures. Each is a
// probability in [0,1], drawn independently for every request from the
// server's seeded random source; when several are drawn for one request, the
// first in field order wins.
type Faults struct {
	// RateLimit is the rate of 429 answers, with Retry-After (seconds),
	// x-ratelimit-* headers and an OpenAI error body. Defaults to 0.
	RateLimit float64 `json:"rate_limit"`
	// RetryAfter is the Retry-After of a 429 (with Flavor FlavorGemini, the retryDelay in its
	// body). Defaults to 1s.
	RetryAfter time.Duration `json:"retry_after"`
	// DailyQuota makes a 429 the one of a daily quota used up. With Flavor FlavorGemini its
	// QuotaFailure names the requests per day (GenerateRequestsPerDayPerProjectPerModel-FreeTier)
	// beside the per-minute one, and its retryDelay is RetryAfter still, as Gemini answers it
	// (discuss.ai.google.dev "503 The model is overloaded is being counted against the rate
	// limits": retryDelay "48s" for the per-day quota); with FlavorOpenRouter its message is
	// "Rate limit exceeded: free-models-per-day. …" (otherwise "…: free-models-per-min.").
	// Defaults to false.
	DailyQuota bool `json:"daily_quota"`
	// ServerError is the rate of 5xx answers (500, 502 and 503 in turn)
	// with an OpenAI error body. Defaults to 0.
	ServerError float64 `json:"server_error"`
	// ServerErrorStatus, when set (500 to 599), is the status of every ServerError answer
	// instead of 500, 502 and 503 in turn: 502 or 504 is a proxy's in front of a model server
	// that is down, answered with its HTML page as nginx does. Defaults to 0.
	ServerErrorStatus int `json:"server_error_status"`
	// UnavailableFor, when set, is the Retry-After of every 503 a ServerError fault answers: a
	// service saying how long it expects to be unavailable (RFC 9110), as OpenAI's overloaded
	// answers may. Defaults to 0: no Retry-After.
	UnavailableFor time.Duration `json:"unavailable_for"`
	// Timeout is the rate of requests held without an answer until the
	// client gives up (the request context ends) or TimeoutHold elapses,
	// then answered 504. Defaults to 0.
	Timeout float64 `json:"timeout"`
	// TimeoutHold is how long a Timeout fault holds a request. Defaults to 30s.
	TimeoutHold time.Duration `json:"timeout_hold"`
	// Truncated is the rate of 200 answers whose JSON body is cut in half.
	// Defaults to 0.
	Truncated float64 `json:"truncated"`
	// Malformed is the rate of 200 answers whose body is not JSON.
	// Defaults to 0.
	Malformed float64 `json:"malformed"`
	// Junk is the rate of chat answers that are valid on the wire but whose
	// TL;DR is junk: a preamble, markdown bold, quotes, several sentences.
	// Embeddings ignore it. Defaults to 0.
	Junk float64 `json:"junk"`
}

// Names of injected faults, the keys of Stats.Faults.
const (
	FaultRateLimit   = "rate_limit"
	FaultServerError = "server_error"
	FaultTimeout     = "timeout"
	FaultTruncated   = "truncated"
	FaultMalformed   = "malformed"
	FaultJunk        = "junk"
)

// Validate reports the first rate outside [0,1] or negative duration.
func (f Faults) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{
		{"RateLimit", f.RateLimit}, {"ServerError", f.ServerError}, {"Timeout", f.Timeout},
		{"Truncated", f.Truncated}, {"Malformed", f.Malformed}, {"Junk", f.Junk},
	} {
		if !(p.v >= 0 && p.v <= 1) {
			return fmt.Errorf("faults: %s is %v, want a probability in [0,1]", p.name, p.v)
		}
	}
	if f.ServerErrorStatus != 0 && (f.ServerErrorStatus < 500 || f.ServerErrorStatus > 599) {
		return fmt.Errorf("faults: ServerErrorStatus is %d, want 0 or a 5xx status", f.ServerErrorStatus)
	}
	if f.UnavailableFor < 0 {
		return fmt.Errorf("faults: UnavailableFor is %v, want >= 0", f.UnavailableFor)
	}
	if f.RetryAfter < 0 {
		return fmt.Errorf("faults: RetryAfter is %v, want >= 0", f.RetryAfter)
	}
	if f.TimeoutHold < 0 {
		return fmt.Errorf("faults: TimeoutHold is %v, want >= 0", f.TimeoutHold)
	}
	return nil
}

func (f Faults) withDefaults() Faults {
	if f.RetryAfter == 0 {
		f.RetryAfter = time.Second
	}
	if f.TimeoutHold == 0 {
		f.TimeoutHold = 30 * time.Second
	}
	return f
}

// Config configures a Server.
type Config struct {
	// ChatLatency is added before each chat answer. Defaults to 0.
	ChatLatency time.Duration
	// EmbedLatency is added before each embeddings answer. Defaults to 0.
	EmbedLatency time.Duration
	// Faults are the initial fault rates; SetFaults changes them. Defaults
	// to no faults.
	Faults Faults
	// Seed seeds the random source of faults. Defaults to 1.
	Seed int64
	// Dimensions is the embedding size when a request gives no
	// "dimensions", for a model other than OpenAI's, which answer their own
	// as OpenAI does (text-embedding-3-small 1536, text-embedding-3-large
	// 3072, text-embedding-ada-002 1536). Defaults to 1536.
	Dimensions int
	// Vectors is the kind of embedding vectors answered: VectorsText
	// (lexical vectors of the input, clustered like a real model's, see
	// Vector) or VectorsRandom (uniformly random unit vectors seeded by the
	// input, see RandomVector: the worst case for an HNSW index). Defaults to
	// VectorsText.
	Vectors string
	// MaxInputs is the most inputs one embeddings request may carry; more
	// get a 400 as from OpenAI, or what Flavor's server answers (see
	// tooManyInputs). Defaults to 2048 (the limit of the published
	// description, which also rejects more).
	MaxInputs int
	// MaxRequestTokens is the most tokens, summed over inputs, one
	// embeddings request may carry; more get a 400. Defaults to 300000.
	MaxRequestTokens int
	// ContextTokens is the most tokens one embeddings input may have; more
	// get a 400 ("maximum context length"), or what Flavor's server answers.
	// Defaults to 8192.
	ContextTokens int
	// Serves limits what the server serves, as llama.cpp's llama-server does by how it was
	// started: "" (the default) both endpoints; ServesChat answers embeddings requests as a
	// llama-server started without --embeddings, 501 not_supported_error "This server does not
	// support embeddings. Start it with `--embeddings`"; ServesEmbeddings answers chat requests
	// as one started with --embeddings ("restrict to only support embedding use case"), 501
	// "This server does not support completions. Start it without `--embeddings`"
	// (ggml-org/llama.cpp tools/server/server.cpp, handle_embeddings_impl and
	// handle_completions_impl; ERROR_TYPE_NOT_SUPPORTED is 501 in format_error_response).
	Serves string
	// Flavor is the server whose answers the fake gives where that server's
	// differ from OpenAI's: FlavorOpenAI (the default, ""), FlavorLlamaCpp,
	// FlavorVLLM, FlavorTEI, FlavorAzure, FlavorGemini, FlavorMistral,
	// FlavorLiteLLM, FlavorOpenRouter or FlavorOllama. Today that is the answer to an
	// embeddings input longer than ContextTokens (see contextError), to a
	// request of more than MaxInputs inputs (see tooManyInputs), Mistral's
	// to a request of more than MaxRequestTokens tokens, vLLM's 400 for
	// "dimensions", as for a model without Matryoshka support (every model
	// of the fake's vLLM), LiteLLM's 400 for "encoding_format" (see
	// unsupportedEncoding), and the rate limit's answer of Gemini (a 429,
	// its wait in its body) and of OpenRouter (a 200 with an error in its
	// body; see rateLimited).
	Flavor string
	// Reasoning, when set, makes the chat model a reasoning model that reasons before it
	// answers, its reasoning delivered as one server or model API that does not separate it
	// delivers it (see the Reasoning* constants, each cited); the answer is the same. The
	// token limit (max_tokens) cuts the answer only. Defaults to "": no reasoning.
	Reasoning string
	// ChatLimits and EmbedLimits are the per-minute budgets the x-ratelimit-*
	// headers advertise (not enforced: 429s come from Faults.RateLimit). A
	// client that honours the headers slows down as a window runs out, as with
	// OpenAI. Default to 10,000 requests and 2M tokens (chat) / 10M tokens
	// (embeddings) a minute.
	ChatLimits, EmbedLimits Limits
	// EmbedFailsOn, when set, names the embeddings inputs the model cannot
	// embed: a request holding one is answered 500 ("failed to encode
	// response: json: unsupported value: NaN"), as Ollama answers a request
	// one of whose inputs embeds to NaN (ollama#9639, #15582: deterministic
	// for the text), whatever its other inputs. Defaults to none.
	EmbedFailsOn func(input string) bool
	// ValidateEvery, when above 1, has the server check only a sample of bodies against the
	// published description: of each endpoint's requests and responses, the first
	// validateFirst and then one in ValidateEvery. For benchmarks, where checking every body
	// costs the server more CPU than answering it (about half of a chat answer's) and the
	// server shares the machine with the client it measures; a body not checked is answered as
	// if it were valid. Defaults to 0: every body is checked.
	ValidateEvery int
	// APIKey, when set, is required as "Authorization: Bearer <key>";
	// requests without it get 401. Defaults to "" (no check); SetAPIKey
	// changes it.
	APIKey string
	// Logger receives a debug line per request. Defaults to discarding.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.ChatLimits.Requests <= 0 || c.ChatLimits.Tokens <= 0 {
		c.ChatLimits = defaultChatLimits
	}
	if c.EmbedLimits.Requests <= 0 || c.EmbedLimits.Tokens <= 0 {
		c.EmbedLimits = defaultEmbedLimits
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Dimensions == 0 {
		c.Dimensions = 1536
	}
	if c.Vectors == "" {
		c.Vectors = VectorsText
	}
	if c.MaxInputs == 0 {
		c.MaxInputs = 2048
	}
	if c.MaxRequestTokens == 0 {
		c.MaxRequestTokens = 300000
	}
	if c.ContextTokens == 0 {
		c.ContextTokens = 8192
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Faults = c.Faults.withDefaults()
	return c
}

func (c Config) validate() error {
	switch {
	case c.ChatLatency < 0:
		return fmt.Errorf("config: ChatLatency is %v, want >= 0", c.ChatLatency)
	case c.EmbedLatency < 0:
		return fmt.Errorf("config: EmbedLatency is %v, want >= 0", c.EmbedLatency)
	case c.Dimensions < 0:
		return fmt.Errorf("config: Dimensions is %d, want > 0", c.Dimensions)
	case c.Vectors != "" && c.Vectors != VectorsText && c.Vectors != VectorsRandom:
		return fmt.Errorf("config: Vectors is %q, want %q or %q", c.Vectors, VectorsText, VectorsRandom)
	case c.MaxInputs < 0:
		return fmt.Errorf("config: MaxInputs is %d, want > 0", c.MaxInputs)
	case c.MaxRequestTokens < 0:
		return fmt.Errorf("config: MaxRequestTokens is %d, want > 0", c.MaxRequestTokens)
	case c.ContextTokens < 0:
		return fmt.Errorf("config: ContextTokens is %d, want > 0", c.ContextTokens)
	case c.Serves != "" && c.Serves != ServesChat && c.Serves != ServesEmbeddings:
		return fmt.Errorf("config: Serves is %q, want \"\", %q or %q", c.Serves, ServesChat, ServesEmbeddings)
	case c.Flavor != "" && !slices.Contains(flavors, c.Flavor):
		return fmt.Errorf("config: Flavor is %q, want one of %q", c.Flavor, flavors)
	case !validReasoning(c.Reasoning):
		return fmt.Errorf("config: Reasoning is %q, want \"\" or one of %s", c.Reasoning, strings.Join(reasonings, ", "))
	case c.ValidateEvery < 0:
		return fmt.Errorf("config: ValidateEvery is %d, want >= 0", c.ValidateEvery)
	}
	return c.Faults.Validate()
}

// Stats is a snapshot of what a Server received and delivered.
type Stats struct {
	// ChatRequests and EmbedRequests count HTTP requests received per
	// endpoint, whatever their outcome.
	ChatRequests  int64 `json:"chat_requests"`
	EmbedRequests int64 `json:"embed_requests"`
	// ChatDelivered counts chat completions delivered: 200s with a complete,
	// valid body (junk TL;DRs included), plus successful batch lines. It is
	// what a provider bills.
	ChatDelivered int64 `json:"chat_delivered"`
	// EmbedInputsDelivered counts embedding vectors in delivered bodies
	// (and successful batch lines).
	EmbedInputsDelivered int64 `json:"embed_inputs_delivered"`
	// ChatDistinctDelivered counts the distinct chat requests (model and
	// messages) among ChatDelivered; ChatDelivered minus it is the number of
	// completions delivered again for a request already answered.
	ChatDistinctDelivered int64 `json:"chat_distinct_delivered"`
	// EmbedInputsDistinctDelivered counts the distinct inputs (model,
	// dimensions and text) among EmbedInputsDelivered.
	EmbedInputsDistinctDelivered int64 `json:"embed_inputs_distinct_delivered"`
	// PromptTokens and CompletionTokens sum the usage reported in delivered
	// bodies.
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	// Loading counts the chat and embeddings requests answered "Loading model" (SetLoading),
	// which ChatRequests and EmbedRequests leave out.
	Loading int64 `json:"loading"`
	// Faults counts injected faults by kind (the Fault* constants).
	Faults map[string]int64 `json:"faults"`
	// ValidationErrors lists the spec violations seen, in requests received
	// and in responses sent (the first 1000, then a count of the rest).
	ValidationErrors []string `json:"validation_errors"`
}

// maxValidationErrors bounds the violations a Server keeps.
const maxValidationErrors = 1000

// Request body limits.
const (
	maxJSONBody = 64 << 20
	maxFileBody = 512 << 20
)

// Server is an OpenAI-compatible HTTP test server. Its methods are safe for
// concurrent use.
type Server struct {
	cfg     Config
	vector  func(text string, dims int) []float32 // by cfg.Vectors
	log     *slog.Logger
	val     *validator
	handler http.Handler
	ts      *httptest.Server // set by Start

	closed    chan struct{}
	closeOnce sync.Once
	work      sync.WaitGroup // batch processing goroutines

	mu             sync.Mutex
	apiKey         string
	loading        bool // SetLoading
	noModel        bool // SetNoModel
	faults         Faults
	rng            *rand.Rand
	stats          Stats
	droppedErrors  int64
	serverErrors   int64 // selects 500, 502, 503 in turn
	seq            int64 // ids
	chatWindow     rateWindow
	embedWindow    rateWindow
	files          map[string]*storedFile
	batches        map[string]*batchState
	delivered      map[string]*delivery // ledger of delivered results, by request or input key
	seen           map[string]int64     // bodies seen per schema, for Config.ValidateEvery
	clock          func() time.Time
	batchStepDelay time.Duration
}

// New returns a Server that is not listening: serve Handler with your own
// listener. It panics if cfg is invalid (a negative duration or size, a
// probability outside [0,1]), naming the field, or if the embedded OpenAPI
// description cannot be loaded.
func New(cfg Config) *Server {
	if err := cfg.validate(); err != nil {
		panic("openaitest: " + err.Error())
	}
	cfg = cfg.withDefaults()
	val, err := loadValidator()
	if err != nil {
		panic("openaitest: " + err.Error())
	}
	s := &Server{
		cfg:            cfg,
		vector:         vectorFunc(cfg.Vectors),
		log:            cfg.Logger,
		val:            val,
		closed:         make(chan struct{}),
		apiKey:         cfg.APIKey,
		faults:         cfg.Faults,
		rng:            rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		stats:          Stats{Faults: map[string]int64{}},
		files:          map[string]*storedFile{},
		batches:        map[string]*batchState{},
		seen:           map[string]int64{},
		clock:          time.Now,
		batchStepDelay: 10 * time.Millisecond,
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s
}

// Start starts a Server on a loopback httptest server, closed in
// tb.Cleanup. At cleanup it reports, with tb.Errorf, every spec-validation
// failure seen in requests or responses, so a test whose client drifted from
// OpenAI's published description fails.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s := New(cfg)
	s.ts = httptest.NewServer(s.handler)
	tb.Cleanup(func() {
		s.Close()
		for _, e := range s.Stats().ValidationErrors {
			tb.Errorf("openaitest: OpenAPI validation failure: %s", e)
		}
	})
	return s
}

// URL returns the base URL to use as OPENAI_BASE_URL, ending in /v1. It is
// empty for a Server made by New, which does not listen itself.
func (s *Server) URL() string {
	if s.ts == nil {
		return ""
	}
	return s.ts.URL + "/v1"
}

// Handler returns the HTTP handler serving the API, under /v1 and without
// the prefix.
func (s *Server) Handler() http.Handler { return s.handler }

// SetAPIKey replaces the API key requests must carry ("": none), as when a
// key is revoked or another one is issued.
func (s *Server) SetAPIKey(key string) {
	s.mu.Lock()
	s.apiKey = key
	s.mu.Unlock()
}

// SetLoading has the server answer every chat and embeddings request as llama.cpp's
// llama-server does until its model is loaded (on), or answer them again (off): 503
// {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
// (ggml-org/llama.cpp tools/server/server.cpp, middleware_server_state:
// `res_error(res, format_error_response("Loading model", ERROR_TYPE_UNAVAILABLE))`, which
// format_error_response answers with 503). The server listens before it loads the model, so a
// client started with it meets this answer, for as long as the model takes to load.
func (s *Server) SetLoading(on bool) {
	s.mu.Lock()
	s.loading = on
	s.mu.Unlock()
}

// SetNoModel has the server answer every chat and embeddings request as LM Studio's server
// does while it has no model loaded (on) — its just-in-time loading off, or the model evicted
// after its idle time-to-live — or answer them again (off): 400 {"error": {"message": "No
// models loaded. Please load a model in the developer page or use the `lms load` command.",
// "type": "invalid_request_error", "param": "model"}} (as quoted in
// tinyhumansai/openhuman#4181; assafelovic/gpt-researcher#1556 quotes {"error": "No models
// loaded. …"}, and lmstudio-ai/lms#107 a 404 from an older version).
func (s *Server) SetNoModel(on bool) {
	s.mu.Lock()
	s.noModel = on
	s.mu.Unlock()
}

// SetFaults replaces the fault rates; zero durations take their defaults. It
// panics if f is invalid (see Faults.Validate).
func (s *Server) SetFaults(f Faults) {
	if err := f.Validate(); err != nil {
		panic("openaitest: " + err.Error())
	}
	s.mu.Lock()
	s.faults = f.withDefaults()
	s.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Faults = make(map[string]int64, len(s.stats.Faults))
	for k, v := range s.stats.Faults {
		st.Faults[k] = v
	}
	st.ValidationErrors = append([]string(nil), s.stats.ValidationErrors...)
	if s.droppedErrors > 0 {
		st.ValidationErrors = append(st.ValidationErrors, fmt.Sprintf("… and %d more validation failures not kept", s.droppedErrors))
	}
	return st
}

// TakeValidationErrors returns the spec violations seen so far and forgets
// them, for tests that provoke violations on purpose with a Server from
// Start.
func (s *Server) TakeValidationErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := s.stats.ValidationErrors
	if s.droppedErrors > 0 {
		errs = append(errs, fmt.Sprintf("… and %d more validation failures not kept", s.droppedErrors))
	}
	s.stats.ValidationErrors = nil
	s.droppedErrors = 0
	return errs
}

// Close releases held requests, stops batch processing and, for a Server
// from Start, closes its listener. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock() // orders the close with serveCreateBatch's work.Add
		close(s.closed)
		s.mu.Unlock()
		if s.ts != nil {
			s.ts.Close()
		}
		s.work.Wait()
	})
}

// recordViolation records a spec violation.
func (s *Server) recordViolation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.log.Warn("openaitest: OpenAPI validation failure", "err", msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.stats.ValidationErrors) >= maxValidationErrors {
		s.droppedErrors++
		return
	}
	s.stats.ValidationErrors = append(s.stats.ValidationErrors, msg)
}

// drawFault draws the fault, if any, for one request. Every rate is drawn
// each time so the sequence does not depend on which fault fired.
func (s *Server) drawFault(chat bool) (string, Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	fault := ""
	for _, c := range []struct {
		name string
		p    float64
	}{
		{FaultRateLimit, f.RateLimit}, {FaultServerError, f.ServerError}, {FaultTimeout, f.Timeout},
		{FaultTruncated, f.Truncated}, {FaultMalformed, f.Malformed}, {FaultJunk, f.Junk},
	} {
		hit := s.rng.Float64() < c.p
		if hit && fault == "" && (chat || c.name != FaultJunk) {
			fault = c.name
		}
	}
	if fault != "" {
		s.stats.Faults[fault]++
	}
	return fault, f
}

func (s *Server) nextID(prefix string) string {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	return fmt.Sprintf("%s%012d", prefix, n)
}

// hold waits for d, the end of the request, or the server's close. It
// reports whether d elapsed.
func (s *Server) hold(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	}
}

// latency holds a request for d before its answer. It reports false when
// the request must end: the client gave up (nothing to answer) or the server
// is closing (answered 503).
func (s *Server) latency(w http.ResponseWriter, r *http.Request, d time.Duration) bool {
	if s.hold(r.Context(), d) {
		return true
	}
	if r.Context().Err() == nil {
		s.writeError(w, http.StatusServiceUnavailable, apiError{
			Message: "The server is shutting down.", Type: "server_error",
		})
	}
	return false
}

// serveHTTP authenticates and routes a request.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.log.Debug("openaitest: request", "method", r.Method, "path", r.URL.Path)
	if !s.authorized(r) {
		s.writeError(w, http.StatusUnauthorized, apiError{
			Message: "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
			Type:    "invalid_request_error", Code: ptr("invalid_api_key"),
		})
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if rest, ok := strings.CutPrefix(path, "/v1"); ok && (rest == "" || rest[0] == '/') {
		path = rest
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var method string
	var h func(http.ResponseWriter, *http.Request, []string)
	switch {
	case len(parts) == 2 && parts[0] == "chat" && parts[1] == "completions":
		method, h = http.MethodPost, s.loadingOr(s.servedOr(ServesChat, s.serveChat))
	case len(parts) == 1 && parts[0] == "embeddings":
		method, h = http.MethodPost, s.loadingOr(s.servedOr(ServesEmbeddings, s.serveEmbeddings))
	case len(parts) == 1 && parts[0] == "files":
		method, h = http.MethodPost, s.serveCreateFile
	case len(parts) == 2 && parts[0] == "files" && r.Method == http.MethodDelete:
		method, h = http.MethodDelete, s.serveDeleteFile
	case len(parts) == 2 && parts[0] == "files":
		method, h = http.MethodGet, s.serveGetFile
	case len(parts) == 3 && parts[0] == "files" && parts[2] == "content":
		method, h = http.MethodGet, s.serveFileContent
	case len(parts) == 1 && parts[0] == "batches" && r.Method == http.MethodGet:
		method, h = http.MethodGet, s.serveListBatches
	case len(parts) == 1 && parts[0] == "batches":
		method, h = http.MethodPost, s.serveCreateBatch
	case len(parts) == 2 && parts[0] == "batches":
		method, h = http.MethodGet, s.serveGetBatch
	default:
		s.writeError(w, http.StatusNotFound, apiError{
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path),
			Type:    "invalid_request_error",
		})
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		s.writeError(w, http.StatusMethodNotAllowed, apiError{
			Message: fmt.Sprintf("Method %s not allowed for %s; use %s.", r.Method, r.URL.Path, method),
			Type:    "invalid_request_error",
		})
		return
	}
	h(w, r, parts)
}

// loadingOr is h, answered with llama.cpp's 503 "Loading model" while the server is loading
// (SetLoading), and with LM Studio's 400 "No models loaded" while it has none (SetNoModel).
// The request is counted as h counts it.
func (s *Server) loadingOr(h func(http.ResponseWriter, *http.Request, []string)) func(http.ResponseWriter, *http.Request, []string) {
	return func(w http.ResponseWriter, r *http.Request, parts []string) {
		s.mu.Lock()
		loading, noModel := s.loading, s.noModel
		if loading {
			s.stats.Loading++
		}
		s.mu.Unlock()
		switch {
		case loading:
			s.writeRequestError(w, llamaCppError(http.StatusServiceUnavailable, "unavailable_error", "Loading model"))
		case noModel:
			s.writeRequestError(w, &requestError{status: http.StatusBadRequest, raw: map[string]any{"error": map[string]any{
				"message": "No models loaded. Please load a model in the developer page or use the `lms load` command.",
				"type":    "invalid_request_error", "param": "model",
			}}})
		default:
			h(w, r, parts)
		}
	}
}

// Values of Config.Serves.
const (
	ServesChat       = "chat"
	ServesEmbeddings = "embeddings"
)

// servedOr is h, the handler of what, or llama.cpp's 501 when Config.Serves is the other one.
func (s *Server) servedOr(what string, h func(http.ResponseWriter, *http.Request, []string)) func(http.ResponseWriter, *http.Request, []string) {
	if s.cfg.Serves == "" || s.cfg.Serves == what {
		return h
	}
	msg := "This server does not support embeddings. Start it with `--embeddings`"
	if what == ServesChat {
		msg = "This server does not support completions. Start it without `--embeddings`"
	}
	return func(w http.ResponseWriter, _ *http.Request, _ []string) {
		s.writeRequestError(w, llamaCppError(http.StatusNotImplemented, "not_supported_error", msg))
	}
}

// authorized reports whether r carries the API key, if one is required.
func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	key := s.apiKey
	s.mu.Unlock()
	if key == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1
}

// apiError is the "error" member of OpenAI's error body.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func ptr[T any](v T) *T { return &v }

// writeError writes an OpenAI error body, validated against ErrorResponse.
func (s *Server) writeError(w http.ResponseWriter, status int, e apiError) {
	body, err := json.Marshal(struct {
		Error apiError `json:"error"`
	}{e})
	if err != nil {
		panic(err) // cannot happen: plain strings
	}
	if err := s.val.validateJSON(schemaError, body); err != nil {
		s.recordViolation("response %d error body %v", status, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", s.nextID("req_"))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// invalidRequest writes the 400 OpenAI sends for a malformed request.
func (s *Server) invalidRequest(w http.ResponseWriter, msg string) {
	s.writeError(w, http.StatusBadRequest, apiError{Message: msg, Type: "invalid_request_error"})
}

// readJSONBody reads a request body and validates it against schema. On
// failure it answers 400 (recording the violation when the body breaks the
// spec) and returns nil.
func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request, schema string) []byte {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		s.invalidRequest(w, fmt.Sprintf("Could not read the request body: %v", err))
		return nil
	}
	if !s.checks(schema) {
		return body
	}
	if err := s.val.validateJSON(schema, body); err != nil {
		s.recordViolation("request %s %s: %v", r.Method, r.URL.Path, err)
		s.invalidRequest(w, fmt.Sprintf("Invalid request: %v", err))
		return nil
	}
	return body
}

// Limits is a per-minute budget advertised in x-ratelimit-* headers.
type Limits struct {
	Requests, Tokens int64
}

// Default advertised budgets (see Config.ChatLimits).
var (
	defaultChatLimits  = Limits{Requests: 10000, Tokens: 2000000}
	defaultEmbedLimits = Limits{Requests: 10000, Tokens: 10000000}
)

// rateWindow counts use in the current one-minute window.
type rateWindow struct {
	start    time.Time
	requests int64
	tokens   int64
}

// setRateHeaders sets x-ratelimit-* headers after accounting one request of
// the given tokens. exhausted reports the request-limit as used up (a 429).
func (s *Server) setRateHeaders(w http.ResponseWriter, chat bool, tokens int64, exhausted bool, retryAfter time.Duration) {
	s.mu.Lock()
	win, limReq, limTok := &s.embedWindow, s.cfg.EmbedLimits.Requests, s.cfg.EmbedLimits.Tokens
	if chat {
		win, limReq, limTok = &s.chatWindow, s.cfg.ChatLimits.Requests, s.cfg.ChatLimits.Tokens
	}
	now := s.clock()
	if now.Sub(win.start) >= time.Minute {
		*win = rateWindow{start: now}
	}
	win.requests++
	win.tokens += tokens
	remReq := max(limReq-win.requests, 0)
	remTok := max(limTok-win.tokens, 0)
	reset := win.start.Add(time.Minute).Sub(now).Round(time.Millisecond)
	s.mu.Unlock()
	resetReq, resetTok := reset, reset
	if exhausted {
		remReq, resetReq = 0, retryAfter
	}
	h := w.Header()
	h.Set("x-ratelimit-limit-requests", strconv.FormatInt(limReq, 10))
	h.Set("x-ratelimit-limit-tokens", strconv.FormatInt(limTok, 10))
	h.Set("x-ratelimit-remaining-requests", strconv.FormatInt(remReq, 10))
	h.Set("x-ratelimit-remaining-tokens", strconv.FormatInt(remTok, 10))
	h.Set("x-ratelimit-reset-requests", resetReq.String())
	h.Set("x-ratelimit-reset-tokens", resetTok.String())
}

// rateLimited answers a RateLimit fault.
func (s *Server) rateLimited(w http.ResponseWriter, chat bool, model string, tokens int64, f Faults) {
	after := f.RetryAfter
	if s.cfg.Flavor == FlavorOpenRouter {
		// OpenRouter sends its 200 before the provider it routes to answers; a provider's
		// failure after that — its rate limit among them — comes in the body, with its status as
		// the error's "code" (OpenRouter's API reference, "Errors"; the body as quoted in
		// Aider-AI/aider#3550, BerriAI/litellm#21755).
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		// Its free models' limit per minute; with DailyQuota, its limit per day ("Add 10
		// credits …", the message quoted in cline/cline#5301 and Aider-AI/aider#3936).
		msg, limit := "Rate limit exceeded: free-models-per-min.", "20"
		if f.DailyQuota {
			msg, limit = "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day", "50"
		}
		body, _ := json.Marshal(map[string]any{"error": map[string]any{
			"message": msg,
			"code":    http.StatusTooManyRequests,
			"metadata": map[string]any{"headers": map[string]any{
				"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": "0",
				"X-RateLimit-Reset": strconv.FormatInt(time.Now().Add(after).UnixMilli(), 10),
			}, "provider_name": nil},
		}, "user_id": "user_openaitest"})
		_, _ = w.Write(body)
		return
	}
	if s.cfg.Flavor == FlavorGemini {
		// Gemini sends no Retry-After nor x-ratelimit-* headers: the wait is in the body, a
		// RetryInfo detail of Google's error object ("retryDelay": "43s"; its message says
		// "Please retry in 43.5s"), which its OpenAI compatibility answers in a list (see
		// geminiError).
		secs := strconv.FormatFloat(after.Seconds(), 'f', -1, 64)
		e := geminiError(http.StatusTooManyRequests, "RESOURCE_EXHAUSTED",
			"You exceeded your current quota, please check your plan and billing details. For more information on this error, "+
				"head to: https://ai.google.dev/gemini-api/docs/rate-limits. Please retry in "+secs+"s.")
		inner := e.raw.([]any)[0].(map[string]any)["error"].(map[string]any)
		violations := []any{map[string]any{
			"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
			"quotaId":     "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
		}}
		if f.DailyQuota {
			violations = append([]any{map[string]any{
				"quotaMetric":     "generativelanguage.googleapis.com/generate_content_free_tier_requests",
				"quotaId":         "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
				"quotaDimensions": map[string]any{"location": "global", "model": model},
				"quotaValue":      "250",
			}}, violations...)
		}
		inner["details"] = []any{
			map[string]any{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
			map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": secs + "s"},
		}
		s.writeRequestError(w, e)
		return
	}
	s.setRateHeaders(w, chat, tokens, true, after)
	secs := int64((after + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	w.Header().Set("retry-after-ms", strconv.FormatInt(after.Milliseconds(), 10))
	limit := s.cfg.EmbedLimits.Requests
	if chat {
		limit = s.cfg.ChatLimits.Requests
	}
	s.writeError(w, http.StatusTooManyRequests, apiError{
		Message: fmt.Sprintf("Rate limit reached for %s in organization org-openaitest on requests per min (RPM): Limit %d, Used %d, Requested 1. Please try again in %v. Visit https://platform.openai.com/account/rate-limits to learn more.",
			model, limit, limit, after),
		Type: "requests", Code: ptr("rate_limit_exceeded"),
	})
}

// serverError answers a ServerError fault with 500, 502 or 503 in turn, or with its
// ServerErrorStatus: a 502 or 504 as nginx's page for the server behind it.
func (s *Server) serverError(w http.ResponseWriter) {
	s.mu.Lock()
	n := s.serverErrors
	s.serverErrors++
	status := s.faults.ServerErrorStatus
	unavailableFor := s.faults.UnavailableFor
	s.mu.Unlock()
	if unavailableFor > 0 && (status == http.StatusServiceUnavailable || status == 0 && n%3 == 2) {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(max(unavailableFor.Round(time.Second)/time.Second, 1)), 10))
	}
	switch status {
	case 0:
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%[1]d %[2]s</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
			status, http.StatusText(status))
		return
	default:
		s.writeError(w, status, apiError{Message: http.StatusText(status), Type: "server_error"})
		return
	}
	switch n % 3 {
	case 0:
		s.writeError(w, http.StatusInternalServerError, apiError{
			Message: "The server had an error while processing your request. Sorry about that!",
			Type:    "server_error",
		})
	case 1:
		s.writeError(w, http.StatusBadGateway, apiError{
			Message: "Bad gateway.", Type: "server_error", Code: ptr("bad_gateway"),
		})
	default:
		s.writeError(w, http.StatusServiceUnavailable, apiError{
			Message: "The engine is currently overloaded, please try again later.",
			Type:    "server_error", Code: ptr("overloaded"),
		})
	}
}

// timedOut answers a Timeout fault: it holds the request, then answers 504.
func (s *Server) timedOut(w http.ResponseWriter, r *http.Request, hold time.Duration) {
	s.hold(r.Context(), hold)
	s.writeError(w, http.StatusGatewayTimeout, apiError{
		Message: "Gateway timeout: the request took too long to process.",
		Type:    "server_error", Code: ptr("timeout"),
	})
}

// malformedBody is what a Malformed fault answers with a 200.
const malformedBody = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"

// writeResult writes a 200 JSON body already validated by the caller,
// applying a Truncated or Malformed fault. It reports whether the complete
// body was delivered.
func (s *Server) writeResult(w http.ResponseWriter, body []byte, fault string) bool {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", s.nextID("req_"))
	switch fault {
	case FaultTruncated:
		body = body[:len(body)/2]
	case FaultMalformed:
		body = []byte(malformedBody)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err == nil && fault != FaultTruncated && fault != FaultMalformed
}

// marshalValidated encodes v and validates it against schema, recording a
// violation (the body is still sent: the test fails at cleanup).
func (s *Server) marshalValidated(schema, what string, v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("openaitest: encoding %s: %v", what, err))
	}
	if !s.checks(schema) {
		return body
	}
	if err := s.val.validateJSON(schema, body); err != nil {
		s.recordViolation("response %s: %v", what, err)
	}
	return body
}

// marshalAsIs encodes v, a response in another server's shape, which is not checked against
// OpenAI's description.
func (s *Server) marshalAsIs(what string, v any) []byte {
	body, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("openaitest: encoding %s: %v", what, err))
	}
	return body
}

// validateFirst is how many bodies of each schema a sampling server (Config.ValidateEvery)
// checks before it samples.
const validateFirst = 100

// checks counts a body of schema and reports whether to validate it: always, unless
// Config.ValidateEvery samples (see there).
func (s *Server) checks(schema string) bool {
	every := int64(s.cfg.ValidateEvery)
	if every <= 1 {
		return true
	}
	s.mu.Lock()
	n := s.seen[schema]
	s.seen[schema] = n + 1
	s.mu.Unlock()
	return n < validateFirst || (n-validateFirst)%every == 0
}
