package embed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/paper"
)

// NativeDimensions returns the native vector length of a well-known embedding model
// (text-embedding-3-small 1536, text-embedding-3-large 3072, text-embedding-ada-002 1536,
// nomic-embed-text 768), or 0 for a model it does not know. It is used when
// Config.Dimensions is 0.
func NativeDimensions(model string) int {
	switch baseModel(model) { // "openai/text-embedding-3-small" on a gateway is the same model
	case "text-embedding-3-small", "text-embedding-ada-002":
		return 1536
	case "text-embedding-3-large":
		return 3072
	case "nomic-embed-text":
		return 768
	}
	return 0
}

// AcceptsDimensions reports whether model takes an embeddings request's "dimensions" field:
// OpenAI's text-embedding-3 models, which shorten their vectors to it ("Only supported in
// text-embedding-3 and later models", says OpenAI's API reference), also under a gateway's
// provider prefix ("openai/text-embedding-3-small" on OpenRouter or LiteLLM). Other models may
// refuse it — text-embedding-ada-002 with a 400, vLLM for any model without Matryoshka support
// (BAAI/bge-m3: 400 "does not support matryoshka representation") — so for them
// Config.Dimensions is only the vector length expected back, unless SendDimensionsAlways says
// the model can shorten its vectors (a Matryoshka model on vLLM, an Azure deployment's name).
func AcceptsDimensions(model string) bool {
	return strings.HasPrefix(baseModel(model), "text-embedding-3-")
}

// baseModel is model without a gateway's provider prefix ("openai/text-embedding-3-small":
// "text-embedding-3-small").
func baseModel(model string) string {
	return model[strings.LastIndex(model, "/")+1:]
}

// SendDimensions says when an embeddings request carries Config.Dimensions as its
// "dimensions" field (PAPERPIPE_EMBED_SEND_DIMENSIONS).
type SendDimensions string

const (
	// SendDimensionsAuto sends it to the models AcceptsDimensions names. The default ("" means
	// it too).
	SendDimensionsAuto SendDimensions = "auto"
	// SendDimensionsAlways sends it to any model: for a model that can shorten its vectors
	// under a name AcceptsDimensions does not know (a Matryoshka model on vLLM such as
	// Qwen/Qwen3-Embedding-0.6B, an Azure deployment of text-embedding-3).
	SendDimensionsAlways SendDimensions = "always"
	// SendDimensionsNever sends it to no model: Config.Dimensions is only the length expected.
	SendDimensionsNever SendDimensions = "never"
)

// ParseSendDimensions returns the SendDimensions s names ("" is SendDimensionsAuto), or an
// error for any other value.
func ParseSendDimensions(s string) (SendDimensions, error) {
	switch m := SendDimensions(s); m {
	case "", SendDimensionsAuto:
		return SendDimensionsAuto, nil
	case SendDimensionsAlways, SendDimensionsNever:
		return m, nil
	}
	return "", fmt.Errorf("send dimensions %q: want auto, always or never", s)
}

// SendsDimensions reports whether an embeddings request for model carries the configured
// dimensions as its "dimensions" field under mode: always, never, or (auto, "") as
// AcceptsDimensions says. The workers' client and the Batch API's requests both decide by it.
func SendsDimensions(mode SendDimensions, model string) bool {
	switch mode {
	case SendDimensionsAlways:
		return true
	case SendDimensionsNever:
		return false
	}
	return AcceptsDimensions(model)
}

// Config configures a Client.
type Config struct {
	// BaseURL is the OpenAI-compatible API's base URL, up to and including "/v1". Defaults
	// to "https://api.openai.com/v1".
	BaseURL string
	// APIKey is sent as a bearer token; never logged. Defaults to "" (no Authorization
	// header), which local servers such as Ollama accept.
	APIKey string
	// Model is the embedding model. Defaults to "text-embedding-3-small".
	Model string
	// Dimensions is the vector length. When set it is also sent as the request's
	// "dimensions" field as SendDimensions says (by default to OpenAI's text-embedding-3
	// models, AcceptsDimensions); otherwise it is only the length expected back, which the
	// model server must return. A text-embedding-3 model cannot lengthen its vectors: more
	// than its native length is refused. Defaults to 0: the model's native length
	// (NativeDimensions); required for other models.
	Dimensions int
	// SendDimensions says when Dimensions is sent as "dimensions": SendDimensionsAuto (the
	// default), SendDimensionsAlways or SendDimensionsNever.
	SendDimensions SendDimensions
	// MaxBatchInputs caps the inputs of one request. Defaults to 2048 (OpenAI's limit). A
	// server that answers a request of several inputs with one vector, or with every vector of
	// index 0, takes one per request: the client sends one per request from then on, logging a
	// warning once; so it does with the limit a server names when it refuses a longer request
	// (llm.TooManyInputs: text-embeddings-inference's 413, Azure OpenAI's and Gemini's 400),
	// the refused request's inputs sent again in requests of at most that many.
	MaxBatchInputs int
	// MaxBatchTokens caps the estimated tokens (EstimateTokens) of one request. Defaults to
	// 300000 (OpenAI's limit). A server that refuses a request of more tokens than it takes
	// (llm.TooManyTokens: Mistral's 400) gets requests of at most half the refused one's
	// estimated tokens, or the bound its answer names, from then on, the refused request's
	// inputs among them; the client logs a warning once.
	MaxBatchTokens int
	// ContextTokens is the most estimated tokens one input may have; longer inputs are
	// truncated and marked. Defaults to 8191.
	ContextTokens int
	// MaxRetries is how many times a transiently failed request is retried (429s do not
	// count). Defaults to 5; a negative value means no retries.
	MaxRetries int
	// Timeout bounds each HTTP request (each attempt of a retried one), or the call's ctx when
	// its deadline is later (see llm.Retrier.Timeout). Defaults to 60s.
	Timeout time.Duration
	// EncodingFormat is the "encoding_format" requested: "base64" (little-endian float32s,
	// about half the bytes of "float" and much cheaper to decode) or "float" (JSON numbers).
	// A client asking for base64 from a server that answers float arrays anyway switches to
	// float for good, logging it once, and sends the request again as float (a request of its
	// own, with its own Timeout, not a retry); the unusable answer counts in the usage, as a
	// billed request. One that refuses the field (an error naming "encoding_format": LiteLLM's
	// proxy for Gemini, Vertex AI or Bedrock models) gets requests without it from then on,
	// logging a warning once, the refused request sent again. Defaults to "base64".
	EncodingFormat string
	// Limiter is the rate limiter of the API's base URL, shared with every other client of
	// it. Defaults to a limiter of this client's own with no request or token budget, which
	// still honours the API's rate-limit headers.
	Limiter *llm.Limiter
	// HTTPClient sends the requests; its transport is wrapped to feed the Limiter. Defaults to
	// a client with http.DefaultTransport.
	HTTPClient *http.Client
	// Logger receives retries and truncations at debug level, the switch to float encoding at
	// info level, and answers with a success status that could not be used as warnings.
	// Defaults to discarding.
	Logger *slog.Logger
	// Unusable, when set, is called with the endpoint ("embeddings") and the reason
	// (llm.UnusableReason) of each answer with a success status that could not be used: a
	// metric's count (metrics.Metrics.UnusableAnswer). Defaults to nil.
	Unusable func(endpoint, reason string)
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = "https://api.openai.com/v1"
	}
	if c.Model == "" {
		c.Model = "text-embedding-3-small"
	}
	if c.MaxBatchInputs == 0 {
		c.MaxBatchInputs = 2048
	}
	if c.MaxBatchTokens == 0 {
		c.MaxBatchTokens = 300000
	}
	if c.ContextTokens == 0 {
		c.ContextTokens = 8191
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 5
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
	}
	if c.SendDimensions == "" {
		c.SendDimensions = SendDimensionsAuto
	}
	if c.EncodingFormat == "" {
		c.EncodingFormat = string(openai.EmbeddingEncodingFormatBase64)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Limiter == nil {
		c.Limiter = llm.NewLimiter(llm.LimiterConfig{Logger: c.Logger})
	}
}

// conn is the connection part of c.
func (c *Config) conn() llm.Conn {
	return llm.Conn{BaseURL: c.BaseURL, APIKey: c.APIKey, MaxRetries: c.MaxRetries, Timeout: c.Timeout,
		Limiter: c.Limiter, HTTPClient: c.HTTPClient, Logger: c.Logger, Unusable: llm.UnusableAt(c.Unusable, "embeddings")}
}

func (c *Config) validate() error {
	if err := c.conn().Validate("embed config"); err != nil {
		return err
	}
	if _, err := ParseSendDimensions(string(c.SendDimensions)); err != nil {
		return fmt.Errorf("embed config: SendDimensions is %q, want %q, %q or %q",
			c.SendDimensions, SendDimensionsAuto, SendDimensionsAlways, SendDimensionsNever)
	}
	native := NativeDimensions(baseModel(c.Model))
	switch {
	case c.Dimensions < 0:
		return fmt.Errorf("embed config: Dimensions is %d, want > 0", c.Dimensions)
	case c.Dimensions == 0 && NativeDimensions(c.Model) == 0:
		return fmt.Errorf("embed config: Dimensions is required for model %q (its vector length is not known)", c.Model)
	case AcceptsDimensions(c.Model) && native > 0 && c.Dimensions > native:
		// OpenAI answers such a request with a 400: every paper would be dead-lettered.
		return fmt.Errorf("embed config: Dimensions is %d, model %q returns at most %d (it can shorten its vectors, not lengthen them)",
			c.Dimensions, c.Model, native)
	case c.MaxBatchInputs < 0:
		return fmt.Errorf("embed config: MaxBatchInputs is %d, want > 0", c.MaxBatchInputs)
	case c.MaxBatchTokens < 0:
		return fmt.Errorf("embed config: MaxBatchTokens is %d, want > 0", c.MaxBatchTokens)
	case c.ContextTokens < 0:
		return fmt.Errorf("embed config: ContextTokens is %d, want > 0", c.ContextTokens)
	case c.ContextTokens > c.MaxBatchTokens:
		return fmt.Errorf("embed config: ContextTokens %d exceeds MaxBatchTokens %d", c.ContextTokens, c.MaxBatchTokens)
	case c.EncodingFormat != string(openai.EmbeddingEncodingFormatBase64) &&
		c.EncodingFormat != string(openai.EmbeddingEncodingFormatFloat):
		return fmt.Errorf("embed config: EncodingFormat is %q, want \"base64\" or \"float\"", c.EncodingFormat)
	}
	return nil
}

// Client embeds papers with an OpenAI-compatible embeddings API, many papers per request. It
// is safe for concurrent use.
type Client struct {
	cfg   Config
	space paper.Space
	api   *openai.Client
	retry llm.Retrier
	log   *slog.Logger
	// float is set when requests ask for float vectors: from the start with EncodingFormat
	// "float", or from the first base64 request the API answered with float arrays.
	float atomic.Bool
	// noEncoding is set from the first request whose "encoding_format" the API refused (see
	// create): requests carry none from then on, and get float vectors.
	noEncoding atomic.Bool
	// oneInput is set from the first answer to a request of several inputs that showed the
	// server takes one input per request (see embed).
	oneInput atomic.Bool
	// maxInputs is the most inputs per request the server said it takes when it refused more
	// (llm.TooManyInputs), or 0 (see keepTo).
	maxInputs atomic.Int64
	// maxTokens is the most estimated tokens per request since the server refused more
	// (llm.TooManyTokens), or 0 (see keepTokensTo); tokensWarned is set once that was said.
	maxTokens    atomic.Int64
	tokensWarned atomic.Bool
	// cutWarned is set once the client warned that the server refuses inputs as too long (see
	// fit).
	cutWarned atomic.Bool
}

// New returns a Client configured by cfg, or an error naming the Config field that is wrong.
// It makes no request.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dims := cfg.Dimensions
	if dims == 0 {
		dims = NativeDimensions(cfg.Model)
	}
	api, retry, baseURL := cfg.conn().Open()
	c := &Client{
		cfg:   cfg,
		space: paper.Space{Model: cfg.Model, Dimensions: dims, Template: TemplateTitleAbstract},
		api:   api,
		retry: retry,
		log:   cfg.Logger.With("model", cfg.Model, "base_url", baseURL),
	}
	c.float.Store(cfg.EncodingFormat == string(openai.EmbeddingEncodingFormatFloat))
	return c, nil
}

// Space returns the client's embedding space: model, dimensions, TemplateTitleAbstract.
func (c *Client) Space() paper.Space { return c.space }

// input is one text to embed and where its vector goes.
type input struct {
	text      string
	tokens    int
	truncated bool
}

// Embed returns one embedding per paper, in order. The papers' texts (TemplateTitleAbstract)
// are truncated to ContextTokens (the embedding is then marked Truncated; so is one the API
// refuses as longer than its model takes, llm.InputTooLong: it is found by halving its request
// and cut to fit, see fit) and sent in as few
// requests as MaxBatchInputs and MaxBatchTokens allow, one after another; a request whose
// inputs alone failed (see below) does not stop the next ones. Usage sums the
// delivered requests. Errors: ctx.Err() when ctx ends (unless the API could not be reached
// meanwhile, or ctx ended while a request waited for the rate limit: llm.ErrRateLimited
// wrapped); paper.ErrPermanent wrapped for a
// request the API rejects (400, 413, 422 — for a multi-paper request one bad input may be the
// cause; finding it is the caller's business) and for a paper with no text; llm.ErrAccount
// wrapped when the API refuses the account or the configuration (401, 402, 403, 404, an
// exhausted quota) or cannot be reached (llm.ErrUnreachable), and for an answer whose vectors
// are all of another length than the space's, which no paper causes; otherwise a transient
// error, already retried MaxRetries times — except an answer with vectors the store cannot
// take (null or empty, NaN, infinite, all zeros, or of another length beside vectors of the
// space's), which is not asked again: its error (wrapping llm.ErrBadResponse) names the papers
// whose vectors were unusable and why, and their neighbours' vectors are returned; so does
// the error of a request of several inputs answered 500 at every attempt whose inputs the
// server failed on were found by halving it (see isolate), and of a request of one input
// answered 500 at every attempt while the server answers the call's others (with none
// answered before it, the next request, sent once, tells). On error the returned slice still
// holds the embeddings of the requests that were delivered (the others have a nil Vector), so
// that a caller can keep what was paid for.
func (c *Client) Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	usage := paper.Usage{Model: c.cfg.Model, Kind: paper.KindEmbedding}
	out := make([]paper.Embedding, len(papers))
	inputs := make([]input, len(papers))
	for i, p := range papers {
		text := TitleAbstract(p)
		if text == "" {
			return nil, usage, fmt.Errorf("embed %s: empty title and abstract: %w", p.ID, paper.ErrPermanent)
		}
		cut, truncated := llm.TruncateToTokens(text, c.cfg.ContextTokens)
		if truncated {
			c.log.Debug("input truncated to the model's context", "paper", p.ID,
				"tokens", EstimateTokens(text), "context_tokens", c.cfg.ContextTokens)
		}
		inputs[i] = input{text: cut, tokens: EstimateTokens(cut), truncated: truncated}
		out[i] = paper.Embedding{
			PaperID:     p.ID,
			ContentHash: p.ContentHash(),
			Truncated:   truncated,
			Usage:       paper.Usage{Model: c.cfg.Model, Kind: paper.KindEmbedding},
		}
	}
	cuts := make([]int, len(papers)) // times an input was cut shorter for the server (see fit)
	var (
		failed   []failure // papers that failed alone (see inputsError), by index in papers
		cause    error     // the error of the first of them
		answered bool      // a request of the call was answered: the server works
		probe    bool      // the next request, sent once, tells whether it does
	)
	bs := c.batches(inputs, 0)
	for k := 0; k < len(bs); k++ {
		b := bs[k]
		if b.end-b.start > c.batchInputs() || b.end-b.start > 1 && b.tokens > c.batchTokens() { // found out meanwhile, by another call
			bs = append(bs[:k], c.batches(inputs[b.start:], b.start)...)
			b = bs[k]
		}
		texts := make([]string, 0, b.end-b.start)
		for _, in := range inputs[b.start:b.end] {
			texts = append(texts, in.text)
		}
		retry := c.retry
		if probe {
			retry = c.once()
		}
		ids := make([]string, 0, b.end-b.start)
		for _, e := range out[b.start:b.end] {
			ids = append(ids, e.PaperID)
		}
		// The batch's papers are named in the warnings about its answers.
		vecs, u, err := c.embed(llm.ForPapers(ctx, ids...), retry, texts, b.tokens)
		// What was billed counts, whether the batch succeeded or not.
		usage.Requests += u.Requests
		usage.InputTokens += u.InputTokens
		if limit, ok := llm.TooManyInputs(err); ok && limit < b.end-b.start && ctx.Err() == nil {
			// No input is at fault: these inputs and the rest go in requests the server takes.
			answered, probe = true, false
			c.keepTo(limit, err)
			bs = append(bs[:k], c.batches(inputs[b.start:], b.start)...)
			k--
			continue
		}
		if limit, ok := llm.TooManyTokens(err); ok && b.end-b.start > 1 && ctx.Err() == nil {
			// No input is at fault: these inputs and the rest go in requests of at most half
			// the refused one's tokens (of the bound, when the answer names it).
			answered, probe = true, false
			most := b.tokens / 2
			if limit > 0 {
				most = min(most, limit)
			}
			c.keepTokensTo(max(most, 1), err)
			bs = append(bs[:k], c.batches(inputs[b.start:], b.start)...)
			k--
			continue
		}
		if _, _, ok := llm.InputTooLong(err); ok && ctx.Err() == nil {
			answered, probe = true, false // the server answers: it measured the input
			if n := b.end - b.start; n > 1 {
				// The answer does not say which input is too long: its halves tell.
				h := b.start + n/2
				bs = slices.Replace(bs, k, k+1, span(inputs, b.start, h), span(inputs, h, b.end))
				k--
				continue
			}
			if cut, ok := c.fit(inputs[b.start], err, cuts[b.start]); ok {
				inputs[b.start], out[b.start].Truncated = cut, true
				cuts[b.start]++
				bs[k] = span(inputs, b.start, b.end)
				k--
				continue
			}
			// Still too long after maxCuts cuts: its paper's failure, not its neighbours'.
			failed = append(failed, failure{b.start, fmt.Sprintf("longer than the model takes, still at %d estimated tokens", inputs[b.start].tokens)})
			cause = cmp.Or(cause, err)
			continue
		}
		if err != nil && len(texts) > 1 && llm.HTTPStatus(err) == http.StatusInternalServerError && ctx.Err() == nil {
			vecs, u, err = c.isolate(ctx, inputs[b.start:b.end], err, answered)
			usage.Requests += u.Requests
			usage.InputTokens += u.InputTokens
		}
		if errors.Is(err, errOneInput) {
			// The server takes one input per request (see embed): these inputs and the rest
			// are sent one a request.
			bs = append(bs[:k], c.batches(inputs[b.start:], b.start)...)
			k--
			continue
		}
		for i, v := range vecs { // on an error, those delivered all the same (see inputsError)
			out[b.start+i].Vector = v
		}
		var part *inputsError
		switch {
		case err == nil:
			answered, probe = true, false
		case ctx.Err() != nil && errors.Is(err, llm.ErrRateLimited):
			// Not sent: the caller tells the rate limit's wait from a timeout of the request.
			return out, usage, fmt.Errorf("embed papers %d-%d of %d with %s: %w", b.start+1, b.end, len(papers), c.cfg.Model, err)
		case ctx.Err() != nil && !llm.SaysWhyCtxEnded(err): // ErrRateLimited: the case above
			return out, usage, ctx.Err()
		case errors.As(err, &part):
			answered, probe = true, false
			for _, f := range part.failed {
				failed = append(failed, failure{b.start + f.input, f.why})
			}
			cause = cmp.Or(cause, err)
		case !probe && len(texts) == 1 && llm.HTTPStatus(err) == http.StatusInternalServerError && (answered || k+1 < len(bs)):
			// A request of one input answered 500 at every attempt (see isolate): its input's
			// failure while the server answers others. With none answered yet, the next
			// request, sent once, tells; if it fails too, the server is failing.
			failed = append(failed, failure{b.start, "its request failed at every attempt"})
			cause = cmp.Or(cause, err)
			probe = !answered
		case probe:
			// The server answers no request: the first failure is the call's.
			first := failed[len(failed)-1].input
			return out, usage, fmt.Errorf("embed papers %d-%d of %d with %s: %w", first+1, b.end, len(papers), c.cfg.Model, cause)
		default:
			return out, usage, fmt.Errorf("embed papers %d-%d of %d with %s: %w", b.start+1, b.end, len(papers), c.cfg.Model, err)
		}
	}
	if len(failed) > 0 {
		ids := make([]string, len(failed))
		for j, f := range failed {
			ids[j] = papers[f.input].ID + " (" + f.why + ")"
		}
		return out, usage, fmt.Errorf("embed %s with %s: %w", strings.Join(ids, ", "), c.cfg.Model, cause)
	}
	return out, usage, nil
}

// EmbedQuery returns the vector of a free-text query, truncated to ContextTokens, in the
// client's space. Errors as for Embed.
func (c *Client) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	usage := paper.Usage{Model: c.cfg.Model, Kind: paper.KindEmbedding}
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, usage, fmt.Errorf("embed query: empty text: %w", paper.ErrPermanent)
	}
	text, _ = llm.TruncateToTokens(text, c.cfg.ContextTokens)
	in := input{text: text, tokens: EstimateTokens(text)}
	for cuts := 0; ; cuts++ {
		vecs, u, err := c.embed(ctx, c.retry, []string{in.text}, in.tokens)
		usage.Requests += u.Requests
		usage.InputTokens += u.InputTokens
		if _, _, ok := llm.InputTooLong(err); ok && ctx.Err() == nil {
			if cut, ok := c.fit(in, err, cuts); ok {
				in = cut
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, llm.ErrUnreachable) {
				return nil, usage, ctx.Err()
			}
			return nil, usage, fmt.Errorf("embed query with %s: %w", c.cfg.Model, err)
		}
		return vecs[0], usage, nil
	}
}

// maxCuts is how many times fit cuts one input shorter.
const maxCuts = 3

// fit returns in cut short enough for a server that refused it as longer than its model takes
// (err, llm.InputTooLong), which it was cuts times already: to the share of its length that the
// answer's limit is of the input's length in the server's tokens, less a tenth (the server's
// tokens are not spread evenly over the text), or to half when the answer gives no lengths.
// A llama.cpp server takes an embedding model's inputs up to its physical batch (-ub), 512
// tokens unless set, well below the 8,191 tokens of OpenAI's models that ContextTokens
// defaults to: such an input was retried and then redelivered until it was dead-lettered,
// where the tokens it takes would have given it a vector. ok is false when in was cut maxCuts
// times or cannot be cut shorter.
func (c *Client) fit(in input, err error, cuts int) (input, bool) {
	if cuts >= maxCuts {
		return in, false
	}
	n, limit, _ := llm.InputTooLong(err)
	target := in.tokens / 2
	if n > 0 && limit > 0 && n >= limit {
		target = in.tokens * limit * 9 / (n * 10)
	}
	target = min(target, in.tokens-1)
	if target < 1 {
		return in, false
	}
	text, _ := llm.TruncateToTokens(in.text, target)
	if text == "" {
		return in, false
	}
	if c.cutWarned.CompareAndSwap(false, true) {
		msg := "the embeddings API refuses inputs longer than its model takes; they are cut to fit and marked truncated"
		if strings.Contains(err.Error(), "physical batch") {
			msg += " (a llama.cpp server takes an embedding model's inputs up to its physical batch size: start it with " +
				"-ub and -b at the model's context length to embed them whole)"
		}
		c.log.Warn(msg, "answer", err)
	}
	c.log.Debug("input cut to the server's limit", "tokens", in.tokens, "cut_to", target, "server_tokens", n, "server_limit", limit)
	return input{text: text, tokens: EstimateTokens(text), truncated: true}, true
}

// span is the batch of inputs[start:end].
func span(inputs []input, start, end int) batch {
	b := batch{start: start, end: end}
	for _, in := range inputs[start:end] {
		b.tokens += in.tokens
	}
	return b
}

// once is the client's Retrier without retries: one attempt per request.
func (c *Client) once() llm.Retrier {
	r := c.retry
	r.MaxRetries = -1 // none (0 is the default)
	return r
}

// batchInputs is the most inputs a request carries: MaxBatchInputs, or fewer once the server
// has shown it takes no more (oneInput, maxInputs).
func (c *Client) batchInputs() int {
	n := c.cfg.MaxBatchInputs
	if m := int(c.maxInputs.Load()); m > 0 {
		n = min(n, m)
	}
	if c.oneInput.Load() {
		n = 1
	}
	return n
}

// batchTokens is the most estimated tokens a request carries: MaxBatchTokens, or fewer once
// the server has refused more (maxTokens).
func (c *Client) batchTokens() int {
	n := c.cfg.MaxBatchTokens
	if m := int(c.maxTokens.Load()); m > 0 {
		n = min(n, m)
	}
	return n
}

// keepTokensTo lowers the estimated tokens per request to limit, after the server refused a
// request of more (err, llm.TooManyTokens: Mistral's 400), warning once.
func (c *Client) keepTokensTo(limit int, err error) {
	if !lowerTo(&c.maxTokens, limit) {
		return
	}
	if c.tokensWarned.CompareAndSwap(false, true) {
		c.log.Warn(fmt.Sprintf("the embeddings API refuses requests of as many tokens as paperpipe sends; sending at most %d "+
			"estimated tokens per request from now on, fewer if it refuses again (set PAPERPIPE_EMBED_BATCH_TOKENS to what it takes "+
			"to do so from the start)", limit), "answer", err)
	}
}

// lowerTo sets a per-request limit learnt from the server (0: none yet) to limit unless it is
// already that or lower, and reports whether it did.
func lowerTo(v *atomic.Int64, limit int) bool {
	for {
		cur := v.Load()
		if cur > 0 && cur <= int64(limit) {
			return false
		}
		if v.CompareAndSwap(cur, int64(limit)) {
			return true
		}
	}
}

// keepTo lowers the inputs per request to limit, the most the server takes as its refusal of
// a longer request said (err, llm.TooManyInputs: text-embeddings-inference's 413, Azure
// OpenAI's 400), warning once.
func (c *Client) keepTo(limit int, err error) {
	if !lowerTo(&c.maxInputs, limit) {
		return
	}
	c.log.Warn(fmt.Sprintf("the embeddings API takes at most %d inputs per request; sending at most %d per request from now on "+
		"(set PAPERPIPE_EMBED_BATCH_INPUTS=%d to do so from the start)", limit, limit, limit), "answer", err)
}

// batch is a run of inputs sent in one request.
type batch struct{ start, end, tokens int }

// batches splits inputs, in order, into runs of at most MaxBatchInputs inputs (one once the
// server has shown it takes no more, see embed) and MaxBatchTokens estimated tokens; the
// first input is the offset-th of the call.
func (c *Client) batches(inputs []input, offset int) []batch {
	maxInputs, maxTokens := c.batchInputs(), c.batchTokens()
	var out []batch
	cur := batch{start: offset, end: offset}
	for i, in := range inputs {
		if cur.end > cur.start && (cur.end-cur.start >= maxInputs || cur.tokens+in.tokens > maxTokens) {
			out = append(out, cur)
			cur = batch{start: offset + i, end: offset + i}
		}
		cur.end = offset + i + 1
		cur.tokens += in.tokens
	}
	if cur.end > cur.start {
		out = append(out, cur)
	}
	return out
}

// embed sends one embeddings request (with retry's retries) and returns the vectors in input
// order. An answer whose vectors for some inputs are unusable (see byIndex) is not
// asked again: the usable vectors are returned, the others nil, with an *inputsError
// naming those inputs — one input the model cannot embed made the whole request fail and be
// bought again, its neighbours failing with it at every delivery until dead-lettered.
// A base64 request answered with float vectors (see create) is sent again as float, under a
// new Retrier.Do: each HTTP request has its own Timeout. The unusable answer counts in usage,
// a billed request, with the input tokens of the float answer to the same input (or the
// estimate, tokens, when none comes).
func (c *Client) embed(ctx context.Context, retry llm.Retrier, texts []string, tokens int) ([][]float32, paper.Usage, error) {
	usage := paper.Usage{Model: c.cfg.Model, Kind: paper.KindEmbedding}
	req := openai.EmbeddingRequestStrings{
		Input: texts,
		Model: openai.EmbeddingModel(c.cfg.Model),
	}
	if SendsDimensions(c.cfg.SendDimensions, c.cfg.Model) {
		// Not by default to other models: they may refuse the field with a 400 (vLLM does
		// for a model without Matryoshka support), which would fail every paper.
		req.Dimensions = c.cfg.Dimensions
	}
	var (
		vecs     [][]float32
		unusable []failure // inputs whose vectors could not be stored (see byIndex)
		unread   int       // answers billed whose token counts go-openai did not give back
		redo     bool      // the request is to be sent again in the encoding now chosen (see create)
		oneInput bool      // the answer showed the server takes one input per request
	)
	send := func(ctx context.Context) error {
		resp, err := c.create(ctx, req)
		if errors.Is(err, errSwitchedToFloat) {
			usage.Requests++
			unread++
			redo = true
			return nil
		}
		if errors.Is(err, errEncodingRefused) {
			redo = true // a refusal: not billed
			return nil
		}
		if err != nil {
			return err
		}
		// A complete answer is billed, usable or not.
		usage.Requests++
		in, _ := llm.Billed(resp.Usage)
		if in == 0 {
			// No count (Gemini's answers have no "usage"), and inputs of no tokens are
			// refused: the estimate, so that the ledger does not show them free.
			in = tokens
		}
		usage.InputTokens += in * (1 + unread)
		unread = 0
		if n := len(texts); n > 1 && (len(resp.Data) == 1 || len(resp.Data) == n && allIndexZero(resp.Data)) {
			got := fmt.Sprintf("1 vector for %d inputs", n)
			if len(resp.Data) > 1 {
				got = fmt.Sprintf("%d vectors for %d inputs, every one of index 0 (which is whose is unknown)", n, n)
			}
			if c.oneInput.CompareAndSwap(false, true) {
				c.log.Warn("the embeddings API answered " + got + ": it takes one input per request; sending one " +
					"input per request from now on (set PAPERPIPE_EMBED_BATCH_INPUTS=1 to do so from the start)")
			}
			oneInput = true
			return nil
		}
		v, bad, err := c.byIndex(resp, len(texts))
		if err != nil {
			return err
		}
		vecs, unusable = v, bad
		return nil
	}
	_, err := retry.Do(ctx, tokens, send)
	// At most twice: from base64 to float, and from there to no encoding_format.
	for range 2 {
		if err != nil || !redo {
			break
		}
		redo = false
		_, err = retry.Do(ctx, tokens, send)
	}
	if req.Dimensions > 0 {
		err = c.dimensionsRefused(err)
	}
	usage.InputTokens += tokens * unread
	if err == nil && oneInput {
		return nil, usage, errOneInput
	}
	if err == nil && len(unusable) > 0 {
		err = &inputsError{failed: unusable,
			err: fmt.Errorf("model %s returned no usable vector for %d of the inputs: %w", c.cfg.Model, len(unusable), llm.ErrBadResponse)}
	}
	return vecs, usage, err
}

// usable reports whether v is finite and not all zeros (see paper.VectorFault).
func usable(v []float32) bool {
	bad, zero := paper.VectorFault(v)
	return bad < 0 && !zero
}

// wrongLength is the error of vectors of n dimensions, not the space's: the configuration's
// problem, not the papers' — the server serves another model under this name, or cannot
// shorten its vectors, or the dimensions configured are not the model's — so it wraps
// llm.ErrAccount, which a worker pauses on, leaving the messages queued, as on a 401 or a
// 404: as a permanent error it dead-lettered every paper, each request paid for.
func (c *Client) wrongLength(n int) error {
	hint := "the server serves another model under this name, or the dimensions configured are not the model's"
	if SendsDimensions(c.cfg.SendDimensions, c.cfg.Model) && c.cfg.Dimensions > 0 {
		hint = "the server ignored the \"dimensions\" requested, or serves another model under this name"
	} else if c.cfg.Dimensions > 0 {
		hint = "\"dimensions\" is not sent to this model (PAPERPIPE_EMBED_SEND_DIMENSIONS=" + string(c.cfg.SendDimensions) +
			"; by default only OpenAI's text-embedding-3 models get it): set PAPERPIPE_EMBED_SEND_DIMENSIONS=always if the model " +
			"can shorten its vectors, or PAPERPIPE_EMBED_DIMENSIONS to the length it returns"
	}
	return fmt.Errorf("%w: model %s returned %d-dimensional vectors, the space expects %d (%s)",
		llm.ErrAccount, c.cfg.Model, n, c.space.Dimensions, hint)
}

// dimensionsRefused returns err, the error of a request that carried "dimensions", as the
// configuration's (wrapping llm.ErrAccount, not paper.ErrPermanent) when it is the API's refusal
// of that field: vLLM's 400 for a model without Matryoshka support ("Model \"BAAI/bge-m3\" does
// not support matryoshka representation, …"; and "only supports … matryoshka dimensions"),
// OpenAI's for text-embedding-ada-002 ("This model does not support specifying dimensions.").
// No paper causes it and every request gets it: as a permanent error it dead-lettered every
// paper (each batch halved down to single papers first), where the worker now pauses, saying
// which setting sends the field. Other errors are returned as they are.
func (c *Client) dimensionsRefused(err error) error {
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusBadRequest && apiErr.HTTPStatusCode != http.StatusUnprocessableEntity {
		return err
	}
	if msg := strings.ToLower(apiErr.Message); !strings.Contains(msg, "matryoshka") && !strings.Contains(msg, "dimensions") {
		return err
	}
	return fmt.Errorf("%w: model %s refuses the \"dimensions\" sent (%d), it cannot shorten its vectors: "+
		"set PAPERPIPE_EMBED_SEND_DIMENSIONS=never (it is %s) and PAPERPIPE_EMBED_DIMENSIONS to the length it returns: %w",
		llm.ErrAccount, c.cfg.Model, c.cfg.Dimensions, c.cfg.SendDimensions, apiErr)
}

// errOneInput is embed's answer when the server answered a request of several inputs with one
// vector, or with a vector each but every one of index 0: it takes one input per request (or
// does not say which vector is whose, and the order of the list is no promise). The client
// sends one input per request from then on (Client.oneInput), saying so once in a warning, and
// the caller sends the request's inputs again one at a time. The answer counts in the usage,
// billed.
var errOneInput = errors.New("the embeddings API takes one input per request")

// allIndexZero reports whether every vector of data has index 0.
func allIndexZero(data []openai.Embedding) bool {
	for _, d := range data {
		if d.Index != 0 {
			return false
		}
	}
	return true
}

// byIndex orders the response's vectors by their index and checks their count and length.
// A vector the store cannot take is left nil, its input in unusable, with why: one
// that is null or empty (no length is no configuration's), NaN, infinite or all zeros
// (usable), or of another length than the space's while others of the answer have the
// space's length. Those are their inputs' failures: the others were delivered and paid for,
// and are good. Vectors of another length with none of the space's are the configuration's
// (wrongLength).
func (c *Client) byIndex(resp openai.EmbeddingResponse, n int) (vecs [][]float32, unusable []failure, err error) {
	if len(resp.Data) != n {
		return nil, nil, fmt.Errorf("%d vectors for %d inputs: %w", len(resp.Data), n, llm.ErrBadResponse)
	}
	out := make([][]float32, n)
	reasons := make([]string, n)
	fits, other := false, 0 // a vector of the space's length; the length of another
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= n || out[d.Index] != nil || reasons[d.Index] != "" { // a seen index has a vector or a reason
			return nil, nil, fmt.Errorf("vector index %d out of range or repeated: %w", d.Index, llm.ErrBadResponse)
		}
		switch {
		case len(d.Embedding) == 0:
			reasons[d.Index] = "a null or empty vector"
		case len(d.Embedding) != c.space.Dimensions:
			other = len(d.Embedding)
			reasons[d.Index] = fmt.Sprintf("a %d-dimensional vector, the space expects %d", len(d.Embedding), c.space.Dimensions)
		case !usable(d.Embedding):
			// The store refuses it (its cosine distance to anything is NaN).
			fits = true
			reasons[d.Index] = "a vector of NaN, infinite or only zero values"
		default:
			fits = true
			out[d.Index] = d.Embedding
		}
	}
	if other > 0 && !fits {
		return nil, nil, c.wrongLength(other)
	}
	for i, r := range reasons {
		if r != "" {
			unusable = append(unusable, failure{i, r})
		}
	}
	return out, unusable, nil
}

// failure is an input that failed alone: its index (in a request, or in a call's papers) and why.
type failure struct {
	input int
	why   string
}

// inputsError is the failure of some inputs of a request alone (by index in the request, in
// order): the vectors of the others were delivered. err is the cause, transient — the next
// answer may be fine — so only those inputs are tried again.
type inputsError struct {
	failed []failure
	err    error
}

func (e *inputsError) Error() string { return e.err.Error() }

func (e *inputsError) Unwrap() error { return e.err }

// isolate looks for the inputs a server fails on, after a request of several inputs was
// answered 500 at every attempt (cause). Some servers answer 500 for the whole request when
// one input cannot be embedded, every time for that text (Ollama when a vector comes out NaN:
// "json: unsupported value: NaN", ollama#9639), and retrying the request, or the paper's
// message with whatever neighbours it is batched with, fails them all until they are
// dead-lettered. The inputs are sent again in two halves, one attempt each (no retries: the
// request's were spent); while one request of them is answered, the server works, and a half
// answered 500 is halved again, down to the inputs that fail alone — 2 requests per halving,
// 2·log₂ n for one bad input of n. When the first two halves both fail, no input is to blame:
// the server is failing, and cause is returned as it was, for 2 requests more. The vectors
// delivered are returned; the inputs that failed, with an *inputsError wrapping cause. A
// failure of another kind than transient (an account's, a permanent one) or ctx's end stops
// the search with that error, the vectors delivered until then returned with it.
func (c *Client) isolate(ctx context.Context, inputs []input, cause error, answered bool) ([][]float32, paper.Usage, error) {
	usage := paper.Usage{Model: c.cfg.Model, Kind: paper.KindEmbedding}
	once := c.once()
	vecs := make([][]float32, len(inputs))
	var (
		failed []failure
		stop   error // a failure that ends the search
	)
	fail := func(idx []int, reason string) {
		for _, i := range idx {
			failed = append(failed, failure{i, reason})
		}
	}
	// send sends idx's inputs once and keeps what was delivered.
	send := func(idx []int) error {
		texts, tokens := make([]string, len(idx)), 0
		for k, i := range idx {
			texts[k], tokens = inputs[i].text, tokens+inputs[i].tokens
		}
		v, u, err := c.embed(ctx, once, texts, tokens)
		usage.Requests += u.Requests
		usage.InputTokens += u.InputTokens
		for k, x := range v {
			vecs[idx[k]] = x
		}
		var part *inputsError
		if errors.As(err, &part) {
			for _, f := range part.failed {
				failed = append(failed, failure{idx[f.input], f.why})
			}
			err = nil
		}
		if err == nil {
			answered = true
		}
		return err
	}
	var split func(idx []int)
	split = func(idx []int) {
		halves := [2][]int{idx[:len(idx)/2], idx[len(idx)/2:]}
		var errs [2]error
		for h, half := range halves {
			errs[h] = send(half)
			if errs[h] != nil && (ctx.Err() != nil || errors.Is(errs[h], errOneInput) || llm.Classify(errs[h]) != llm.Transient) {
				stop = errs[h]
				return
			}
		}
		if !answered {
			return // both halves failed: the server, not an input
		}
		for h, half := range halves {
			switch {
			case errs[h] == nil:
			case len(half) > 1 && llm.HTTPStatus(errs[h]) == http.StatusInternalServerError:
				if split(half); stop != nil {
					return
				}
			case len(half) == 1:
				fail(half, "a request of it alone failed too")
			default:
				fail(half, fmt.Sprintf("a request of it and %d others failed too", len(half)-1))
			}
		}
	}
	all := make([]int, len(inputs))
	for i := range all {
		all[i] = i
	}
	split(all)
	switch {
	case stop != nil:
		return vecs, usage, stop
	case !answered:
		return nil, usage, cause
	case len(failed) > 0:
		slices.SortFunc(failed, func(a, b failure) int { return cmp.Compare(a.input, b.input) })
		return vecs, usage, &inputsError{failed: failed,
			err: fmt.Errorf("the server failed every request holding these inputs and answered the others: %w", cause)}
	}
	return vecs, usage, nil // the 500s were the server's, and are over
}
