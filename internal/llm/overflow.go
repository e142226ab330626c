package llm

import (
	"errors"
	"regexp"
	"strconv"

	openai "github.com/sashabaranov/go-openai"
)

// inputTooLongRes match a server's refusal of an input longer than its model takes, in the
// words of the servers paperpipe is pointed at; tokens and limit name the submatches of the
// input's length and the limit (in the server's tokens), when the answer gives them.
var inputTooLongRes = []*regexp.Regexp{
	// OpenAI ("This model's maximum context length is 8192 tokens, however you requested 9000
	// tokens (…)") and vLLM ("This model's maximum context length is 512 tokens. However, you
	// requested 700 tokens in the input for embedding generation. …": 400,
	// vllm/entrypoints/openai/serving_engine.py, _validate_input).
	regexp.MustCompile(`(?i)maximum context length is (?P<limit>\d+) tokens[.,]? however,? you requested (?P<tokens>\d+) tokens`),
	// llama.cpp's llama-server, an embedding model's input longer than its physical batch (-ub,
	// 512 unless set): 500 server_error "input (700 tokens) is too large to process. increase
	// the physical batch size (current batch size: 512)"; before the numbers were added,
	// "input is too large to process. increase the physical batch size" (tools/server/
	// server-context.cpp, update_slots).
	regexp.MustCompile(`(?i)input \((?P<tokens>\d+) tokens\) is too large to process\b.*?\(current (?:batch size|n_ubatch): (?P<limit>\d+)\)`),
	regexp.MustCompile(`(?i)input is too large to process\. increase the physical batch size`),
	// llama-server, an input longer than the context (400 exceed_context_size_error): "input
	// (700 tokens) is larger than the max context size (512 tokens). skipping", "request (700
	// tokens) exceeds the available context size (512 tokens), try increasing it".
	regexp.MustCompile(`(?i)input \((?P<tokens>\d+) tokens\) is larger than the max context size \((?P<limit>\d+) tokens\)`),
	regexp.MustCompile(`(?i)request \((?P<tokens>\d+) tokens\) exceeds the available context size \((?P<limit>\d+) tokens\)`),
	// Hugging Face text-embeddings-inference (TEI), not started with --auto-truncate (the
	// default): 413 {"message": "Input validation error: `inputs` must have less than 512
	// tokens. Given: 700", "code": 413, "type": "Validation"} for the whole request (core/src/
	// tokenization.rs, encode_input; router/src/http/server.rs, openai_embed).
	regexp.MustCompile("(?i)`?inputs`? must have less than (?P<limit>\\d+) tokens\\. given: (?P<tokens>\\d+)"),
	// Ollama, an input longer than its model's context that it does not cut itself (its
	// "truncate" false, and some inputs with it): 400 "the input length exceeds the context
	// length", in earlier versions "input length exceeds maximum context length", for the whole
	// request and without the lengths (as quoted in lfnovo/open-notebook#350 and n8n-io/n8n#11144).
	regexp.MustCompile(`(?i)\binput length exceeds (?:the |maximum )?context length`),
}

// InputTooLong reports whether err is an API's refusal of an input longer than its model takes
// (OpenAI's and vLLM's 400 "maximum context length", llama.cpp's 500 "too large to process"
// and 400 "exceeds the available context size", TEI's 413 "must have less than N tokens"),
// with what the answer says of it: tokens, the input's length, and limit, the most the model
// takes, both in the server's tokens, or 0 when the answer does not give them. Such a refusal is the input's, every time: Classify
// makes it Permanent, whatever its status (llama.cpp answers 500).
func InputTooLong(err error) (tokens, limit int, ok bool) {
	var apiErr *openai.APIError
	if err == nil || !errors.As(err, &apiErr) || apiErr.HTTPStatusCode < 400 {
		return 0, 0, false
	}
	for _, re := range inputTooLongRes {
		m := re.FindStringSubmatch(apiErr.Message)
		if m == nil {
			continue
		}
		if i := re.SubexpIndex("tokens"); i > 0 {
			tokens, _ = strconv.Atoi(m[i])
		}
		if i := re.SubexpIndex("limit"); i > 0 {
			limit, _ = strconv.Atoi(m[i])
		}
		return tokens, limit, true
	}
	return 0, 0, false
}

// tooManyInputsRes match a server's refusal of an embeddings request of more inputs than it
// takes, with the most it takes as the submatch limit.
var tooManyInputsRes = []*regexp.Regexp{
	// Hugging Face text-embeddings-inference: 413 "batch size 64 > maximum allowed batch size
	// 32", its --max-client-batch-size, 32 unless set (router/src/http/server.rs, openai_embed;
	// router/src/main.rs).
	regexp.MustCompile(`(?i)batch size \d+ > maximum allowed batch size (?P<limit>\d+)`),
	// Azure OpenAI: 400 "Too many inputs. The max number of inputs is 16.  We hope to increase
	// the number of inputs per request soon. …", 16 or 1 for some deployments of
	// text-embedding-ada-002 (langchain-ai/langchain#4575, #9112).
	regexp.MustCompile(`(?i)too many inputs\. the max number of inputs is (?P<limit>\d+)`),
	// Gemini (its OpenAI compatibility, and OpenRouter's Google models): 400 "*
	// BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch".
	regexp.MustCompile(`(?i)at most (?P<limit>\d+) requests can be in one batch`),
}

// TooManyInputs reports whether err is an API's refusal of an embeddings request of more inputs
// than it takes (text-embeddings-inference's 413 "batch size 64 > maximum allowed batch size
// 32", Azure OpenAI's 400 "Too many inputs. The max number of inputs is 16.", Gemini's 400 "at
// most 100 requests can be in one batch"), and limit, the most it takes (at least 1). No input
// is at fault: the same inputs in shorter requests are taken.
func TooManyInputs(err error) (limit int, ok bool) {
	var apiErr *openai.APIError
	if err == nil || !errors.As(err, &apiErr) || apiErr.HTTPStatusCode < 400 || apiErr.HTTPStatusCode >= 500 {
		return 0, false
	}
	for _, re := range tooManyInputsRes {
		if m := re.FindStringSubmatch(apiErr.Message); m != nil {
			if limit, _ = strconv.Atoi(m[re.SubexpIndex("limit")]); limit >= 1 {
				return limit, true
			}
		}
	}
	return 0, false
}

// tooManyTokensRes match a server's refusal of an embeddings request of more tokens, its
// inputs together, than it takes, with the most it takes as the submatch limit when the
// answer gives it.
var tooManyTokensRes = []*regexp.Regexp{
	// OpenAI: 400 max_tokens_per_request, "Requested 305000 tokens, max 300000 tokens per
	// request".
	regexp.MustCompile(`(?i)requested \d+ tokens, max (?P<limit>\d+) tokens per request`),
	// Mistral: 400 {"message": "Too many tokens overall, split into more batches.", "type":
	// "invalid_request_prompt", "code": "3210"}, its bound not given (8,192 to 65,536 tokens
	// as its users measured it).
	regexp.MustCompile(`(?i)too many tokens overall`),
}

// TooManyTokens reports whether err is an API's refusal of an embeddings request of more
// tokens, its inputs together, than it takes (OpenAI's 400 "max 300000 tokens per request",
// Mistral's 400 "Too many tokens overall, split into more batches."), and limit, the most it
// takes, or 0 when the answer does not say. No input is at fault: the same inputs in shorter
// requests are taken.
func TooManyTokens(err error) (limit int, ok bool) {
	var apiErr *openai.APIError
	if err == nil || !errors.As(err, &apiErr) || apiErr.HTTPStatusCode < 400 || apiErr.HTTPStatusCode >= 500 ||
		apiErr.HTTPStatusCode == 429 {
		return 0, false
	}
	for _, re := range tooManyTokensRes {
		if m := re.FindStringSubmatch(apiErr.Message); m != nil {
			if i := re.SubexpIndex("limit"); i > 0 {
				limit, _ = strconv.Atoi(m[i])
			}
			return limit, true
		}
	}
	return 0, false
}
