package summarize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/paper"
)

// Config configures a Client.
type Config struct {
	// BaseURL is the OpenAI-compatible API's base URL, up to and including "/v1". Defaults
	// to "https://api.openai.com/v1".
	BaseURL string
	// APIKey is sent as a bearer token; never logged. Defaults to "" (no Authorization
	// header), which local servers such as Ollama accept.
	APIKey string
	// Model is the chat model. Defaults to "gpt-4o-mini".
	Model string
	// MaxWords is the TL;DR's word limit. Defaults to DefaultMaxWords (30); another limit is
	// part of the prompt version (Versioned).
	MaxWords int
	// MaxRetries is how many times a transiently failed request is retried (429s do not
	// count). Defaults to 5; a negative value means no retries.
	MaxRetries int
	// Timeout bounds each HTTP request, or the call's ctx when its deadline is later (see
	// llm.Retrier.Timeout). Defaults to 60s.
	Timeout time.Duration
	// Limiter is the rate limiter of the API's base URL, shared with every other client of
	// it. Defaults to a limiter of this client's own with no request or token budget, which
	// still honours the API's rate-limit headers.
	Limiter *llm.Limiter
	// HTTPClient sends the requests; its transport is wrapped to feed the Limiter. Defaults to
	// a client with http.DefaultTransport.
	HTTPClient *http.Client
	// Logger receives retries and validation outcomes at debug level, and answers with a
	// success status that could not be used as warnings. Defaults to discarding.
	Logger *slog.Logger
	// Unusable, when set, is called with the endpoint ("chat/completions") and the reason
	// (llm.UnusableReason) of each answer with a success status that could not be used: a
	// metric's count (metrics.Metrics.UnusableAnswer). Defaults to nil.
	Unusable func(endpoint, reason string)
}

func (c *Config) setDefaults() {
	if c.BaseURL == "" {
		c.BaseURL = "https://api.openai.com/v1"
	}
	if c.Model == "" {
		c.Model = "gpt-4o-mini"
	}
	if c.MaxWords == 0 {
		c.MaxWords = DefaultMaxWords
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 5
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
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
		Limiter: c.Limiter, HTTPClient: c.HTTPClient, Logger: c.Logger, Unusable: llm.UnusableAt(c.Unusable, "chat/completions")}
}

func (c *Config) validate() error {
	if err := c.conn().Validate("summarize config"); err != nil {
		return err
	}
	if c.MaxWords < 0 {
		return fmt.Errorf("summarize config: MaxWords is %d, want > 0", c.MaxWords)
	}
	return nil
}

// Client writes TL;DRs with an OpenAI-compatible chat completions API. It is safe for
// concurrent use.
type Client struct {
	cfg   Config
	api   *openai.Client
	retry llm.Retrier
	log   *slog.Logger
}

// New returns a Client configured by cfg, or an error naming the Config field that is wrong.
// It makes no request.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	api, retry, baseURL := cfg.conn().Open()
	return &Client{
		cfg:   cfg,
		api:   api,
		retry: retry,
		log:   cfg.Logger.With("model", cfg.Model, "base_url", baseURL),
	}, nil
}

// Model returns the configured chat model, stored with each TL;DR.
func (c *Client) Model() string { return c.cfg.Model }

// PromptVersion returns the version stored with each TL;DR: PromptVersion, with the word limit
// when it is not the default (Versioned).
func (c *Client) PromptVersion() string { return Versioned(PromptVersion, c.cfg.MaxWords) }

// Summarize asks the API for a's TL;DR and validates it. A thinking model's reasoning in front
// of the answer ("<think>…</think>", from a server without a reasoning parser) is not part of
// it (splitThinking); an answer that is only reasoning is invalid, and one cut off at the
// server's token limit while the model was still reasoning fails saying so. An invalid answer is asked again once
// with the stricter prompt; if that one is invalid too, the answers are cleaned (Clean) and
// the first clean result that validates is kept (the first answer alone when the retry could
// not be sent or answered: ctx ended, the rate limit held it, the API failed it; when cleaning
// cannot save it, the retry's error is returned). An answer the server stopped at a length
// limit (finish_reason "length": a gateway's or a local server's default max_tokens, a context
// window filled up, a reasoning model that spent its budget thinking; Mistral's "model_length")
// is invalid and never cleaned: its sentence was cut off, and a cut sentence can pass every
// check. One whose generation broke off (Mistral's finish_reason "error") is the server's
// failure, retried as an unusable answer. Summary.Validation
// records which happened and Summary.Usage sums both calls; with an error, the Summary returned
// holds only the Usage of the answers that were billed all the same. Errors: ctx.Err() when
// ctx ends (unless the API could not be reached meanwhile, or did not answer the request it
// was waiting for: llm.ErrServerFailing); paper.ErrPermanent wrapped for a
// request the API rejects (400, 413, 422), for an abstract with no text, and for an answer
// that stays invalid even when cleaned, and for a model's refusal (message.refusal, no
// content), with its text, and an answer the API's content filter withheld (finish_reason
// "content_filter": no content, or the start of it), never stored, both not asked again and
// both a *paper.WithheldError, which the caller records (paper.Withheld); llm.ErrAccount wrapped when the API refuses the
// account or the configuration (401, 402, 403, 404, an exhausted quota) or cannot be reached
// (llm.ErrUnreachable); otherwise a transient error, already retried MaxRetries times.
func (c *Client) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	if strings.TrimSpace(a.Abstract) == "" && strings.TrimSpace(a.Title) == "" {
		return paper.Summary{}, fmt.Errorf("summarize %s: empty title and abstract: %w", a.ID, paper.ErrPermanent)
	}
	ctx = llm.ForPapers(ctx, a.ID) // named in the warnings about its answers
	usage := paper.Usage{Model: c.cfg.Model, Kind: paper.KindChat}
	maxWords := c.cfg.MaxWords
	first, err := c.complete(ctx, buildPrompt(a, maxWords), &usage)
	if err != nil {
		return paper.Summary{Usage: usage}, c.wrap(ctx, a, err)
	}
	if first.refused() {
		// Not asked again: the stricter prompt asks for the form of the answer, and the
		// model declined the content, which the same abstract will not change.
		return paper.Summary{Usage: usage}, fmt.Errorf("summarize %s with %s: %w",
			a.ID, c.cfg.Model, &paper.WithheldError{Reason: llm.Refused(first.refusal)})
	}
	if first.filtered {
		// Not asked again either, for the same reason: the API withheld the content, and what
		// there is of it is the start of the answer (a stub that can pass every check).
		return paper.Summary{Usage: usage}, fmt.Errorf("summarize %s with %s: %w",
			a.ID, c.cfg.Model, &paper.WithheldError{Reason: "TL;DR " + llm.Unfinished(openai.FinishReasonContentFilter)})
	}
	sum := paper.Summary{
		PaperID:       a.ID,
		Model:         c.cfg.Model,
		PromptVersion: c.PromptVersion(),
		ContentHash:   a.ContentHash(),
	}
	verr := first.validate(a.Abstract, maxWords)
	if verr == nil {
		sum.Text, sum.Validation, sum.Usage = Normalize(first.text), paper.ValidOK, usage
		return sum, nil
	}
	c.log.Debug("invalid TL;DR; retrying with the stricter prompt", "paper", a.ID, "problem", problem(verr))
	candidates := []answer{first}
	second, err := c.complete(ctx, buildRetryPrompt(a, maxWords, problem(verr)), &usage)
	switch {
	case errors.Is(err, llm.ErrRateLimited):
		// Never sent: the rate limit held it until the message's time ended, or the worker
		// began to stop (Ctrl-C) and handed back what waits for the limit. Neither is a
		// failure, and a stop warned of each paper it met so, a dozen warnings for a Ctrl-C
		// (found in session 28, walking a lab's journey).
		c.log.Info("stricter retry not sent (the rate limit held it until the paper's time ended or the worker stopped); cleaning the first answer",
			"paper", a.ID, "err", err)
	case err != nil:
		// The first answer is paid for: clean it rather than fail and pay for it again — also
		// when the retry was never answered because ctx ended (the message's time ran out).
		c.log.Warn("stricter retry failed; cleaning the first answer", "paper", a.ID, "err", err)
	case second.refused():
		c.log.Warn("the model refused the stricter retry; cleaning the first answer", "paper", a.ID, "refusal", second.refusal)
	case second.filtered:
		c.log.Warn("the API's content filter withheld the stricter retry's answer; cleaning the first answer", "paper", a.ID)
	case second.validate(a.Abstract, maxWords) == nil:
		sum.Text, sum.Validation, sum.Usage = Normalize(second.text), paper.ValidRetried, usage
		return sum, nil
	default:
		candidates = []answer{second, first}
	}
	for _, cand := range candidates {
		if cand.cut {
			continue // what is left of a cut sentence may well pass: it is not the TL;DR
		}
		cleaned := Clean(cand.text, maxWords)
		if Validate(cleaned, a.Abstract, maxWords) == nil {
			c.log.Debug("TL;DR cleaned", "paper", a.ID)
			sum.Text, sum.Validation, sum.Usage = cleaned, paper.ValidCleaned, usage
			return sum, nil
		}
	}
	if err != nil {
		// The retry had no answer: its error says what went wrong (ctx ended, the rate limit,
		// the account, the server), not the answer's "stays invalid", which would dead-letter
		// the paper for an API outage; a later delivery may get a valid answer from it.
		return paper.Summary{Usage: usage}, c.wrap(ctx, a, err) // llm.ErrRateLimited stays
	}
	// Not a paper.WithheldError, also when both answers read as the model's refusal ("I'm
	// sorry, but I can't …"): that is read by its words, and a server's configuration (a chat
	// template, a model not tuned to follow instructions) can make every paper's answer read
	// so; recorded, the papers would be kept out of every run once it was fixed.
	return paper.Summary{Usage: usage}, fmt.Errorf("summarize %s with %s: answer stays invalid after retry and cleaning (%s): %w",
		a.ID, c.cfg.Model, problem(verr), paper.ErrPermanent)
}

// answer is the text of one chat completion, and whether the server cut it off, the model
// refused or reasoned before answering.
type answer struct {
	text     string // the content, without the reasoning in front of it (splitThinking)
	cut      bool   // finish_reason "length" (or Mistral's "model_length"): stopped at a token limit, mid-sentence
	finish   string // the finish_reason
	filtered bool   // finish_reason "content_filter": the API withheld the content, or its end
	refusal  string // message.refusal: the model declined, saying this
	reasoned bool   // the model reasoned first: a think block, reasoning_content or reasoning tokens
}

// refused reports whether the model declined to answer: a refusal and no content (OpenAI's
// refusal comes with a null content).
func (a answer) refused() bool {
	return strings.TrimSpace(a.refusal) != "" && strings.TrimSpace(a.text) == ""
}

// validate is Validate, for which a cut answer is invalid whatever its text.
func (a answer) validate(abstract string, maxWords int) error {
	empty := strings.TrimSpace(a.text) == ""
	switch {
	case a.cut && empty && a.reasoned:
		return fmt.Errorf("%w: no answer: the model's reasoning used the server's whole output-token limit (finish_reason %q); "+
			"raise the limit or turn the model's thinking off", ErrInvalidTLDR, a.finish)
	case a.cut && empty:
		return fmt.Errorf("%w: no answer: cut off at the server's token limit before any (finish_reason %q; "+
			"a reasoning model may have spent it thinking)", ErrInvalidTLDR, a.finish)
	case a.cut:
		return fmt.Errorf("%w: cut off at the server's token limit (finish_reason %q)", ErrInvalidTLDR, a.finish)
	case empty && a.reasoned:
		return fmt.Errorf("%w: empty: the model gave only its reasoning", ErrInvalidTLDR)
	}
	return Validate(a.text, abstract, maxWords)
}

// complete sends one chat request (with retries) and adds what was delivered to usage.
func (c *Client) complete(ctx context.Context, msgs []message, usage *paper.Usage) (answer, error) {
	req := openai.ChatCompletionRequest{Model: c.cfg.Model}
	tokens := c.cfg.MaxWords * 2
	for _, m := range msgs {
		req.Messages = append(req.Messages, openai.ChatCompletionMessage{Role: m.Role, Content: m.Content})
		tokens += llm.EstimateTokens(m.Content)
	}
	var ans answer
	_, err := c.retry.Do(ctx, tokens, func(ctx context.Context) error {
		resp, err := c.api.CreateChatCompletion(ctx, req)
		if err != nil {
			return err
		}
		// A complete answer is billed, usable or not.
		usage.Requests++
		in, out := llm.Billed(resp.Usage)
		usage.InputTokens += in
		usage.OutputTokens += out
		if len(resp.Choices) == 0 {
			return fmt.Errorf("chat completion without choices: %w", llm.ErrBadResponse)
		}
		ch := resp.Choices[0]
		if ch.FinishReason == llm.FinishError {
			// Mistral's: the generation broke off, its content the start of the answer.
			return fmt.Errorf("chat completion whose generation ended in an error (finish_reason %q): %w", ch.FinishReason, llm.ErrBadResponse)
		}
		content, parted := messageText(ch.Message)
		text, thought := splitThinking(content)
		reasoned := thought || parted || strings.TrimSpace(ch.Message.ReasoningContent) != "" ||
			resp.Usage.CompletionTokensDetails != nil && resp.Usage.CompletionTokensDetails.ReasoningTokens > 0
		ans = answer{text: text, cut: ch.FinishReason == openai.FinishReasonLength || ch.FinishReason == llm.FinishModelLength,
			filtered: ch.FinishReason == openai.FinishReasonContentFilter, finish: string(ch.FinishReason),
			refusal: ch.Message.Refusal, reasoned: reasoned}
		return nil
	})
	return ans, err
}

// messageText returns the text of m's content and whether it came with a thinking part:
// the content string, or, when the content is an array of parts, its text parts joined, as
// Mistral's API answers for a Magistral model (a "thinking" part holding the reasoning, then a
// "text" part holding the answer).
func messageText(m openai.ChatCompletionMessage) (text string, thinkingPart bool) {
	if m.Content != "" || len(m.MultiContent) == 0 {
		return m.Content, false
	}
	var b strings.Builder
	for _, p := range m.MultiContent {
		switch p.Type {
		case openai.ChatMessagePartTypeText:
			b.WriteString(p.Text)
		case "thinking":
			thinkingPart = true
		}
	}
	return b.String(), thinkingPart
}

// wrap returns ctx.Err() when ctx ended, else err with the paper and model named (also when
// ctx ended while the request waited for the rate limit: llm.ErrRateLimited tells the worker
// that no request was sent).
func (c *Client) wrap(ctx context.Context, a paper.Abstract, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !llm.SaysWhyCtxEnded(err) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return ctxErr
	}
	return fmt.Errorf("summarize %s with %s: %w", a.ID, c.cfg.Model, err)
}

// problem is the reason Validate gave, without the sentinel's prefix.
func problem(err error) string {
	return strings.TrimPrefix(err.Error(), ErrInvalidTLDR.Error()+": ")
}
