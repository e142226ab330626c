package llm

import (
	"fmt"
	"testing"

	openai "github.com/sashabaranov/go-openai"
)

// TestInputTooLong: the refusals of an input longer than the model takes, in the words of the
// servers README names, are recognized with the lengths they give, and are Permanent whatever
// their status — llama.cpp answers 500 for one, which was retried as a server failure and then
// redelivered until dead-lettered, each time for the same answer.
func TestInputTooLong(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		status        int
		msg           string
		tokens, limit int
	}{
		{"OpenAI", 400, "This model's maximum context length is 8192 tokens, however you requested 9000 tokens (9000 in your prompt; 0 for the completion). Please reduce your prompt; or completion length.", 9000, 8192},
		{"vLLM", 400, "This model's maximum context length is 512 tokens. However, you requested 700 tokens in the input for embedding generation. Please reduce the length of the input.", 700, 512},
		{"llama.cpp physical batch", 500, "input (700 tokens) is too large to process. increase the physical batch size (current batch size: 512)", 700, 512},
		{"llama.cpp physical batch, reworded", 500, "input (700 tokens) is too large to process with the current encoder/runtime limits. split or shorten the input, or increase the physical batch size (current n_ubatch: 512)", 700, 512},
		{"llama.cpp physical batch, older", 500, "input is too large to process. increase the physical batch size", 0, 0},
		{"llama.cpp context", 400, "input (700 tokens) is larger than the max context size (512 tokens). skipping", 700, 512},
		{"llama.cpp context, generation", 400, "request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it", 5000, 4096},
		{"text-embeddings-inference", 413, "Input validation error: `inputs` must have less than 512 tokens. Given: 700", 700, 512},
	} {
		err := fmt.Errorf("embed: %w", &openai.APIError{HTTPStatusCode: tc.status, Message: tc.msg})
		tokens, limit, ok := InputTooLong(err)
		if !ok || tokens != tc.tokens || limit != tc.limit {
			t.Errorf("%s: InputTooLong = %d, %d, %v; want %d, %d, true", tc.name, tokens, limit, ok, tc.tokens, tc.limit)
		}
		if got := Classify(err); got != Permanent {
			t.Errorf("%s: Classify = %v, want permanent", tc.name, got)
		}
	}
	for _, msg := range []string{
		"Requested 400000 tokens, max 300000 tokens per request", // the request's sum: halving fits it
		"The server had an error while processing your request. Sorry about that!",
		"failed to encode response: json: unsupported value: NaN",
	} {
		if _, _, ok := InputTooLong(&openai.APIError{HTTPStatusCode: 400, Message: msg}); ok {
			t.Errorf("InputTooLong(%q) = true", msg)
		}
	}
}

// TestTooManyInputs: the refusals of an embeddings request of more inputs than the server
// takes are recognized with the limit they name.
func TestTooManyInputs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
		msg    string
		limit  int
	}{
		{"text-embeddings-inference", 413, "batch size 64 > maximum allowed batch size 32", 32},
		{"Azure OpenAI", 400, "Too many inputs. The max number of inputs is 16.  We hope to increase the number of inputs per request soon. Please contact us through an Azure support request at: https://go.microsoft.com/fwlink/?linkid=2213926 for further questions.", 16},
		{"Azure OpenAI, one", 400, "Too many inputs. The max number of inputs is 1.  We hope to increase the number of inputs per request soon.", 1},
		{"Gemini", 400, "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch", 100},
	} {
		err := fmt.Errorf("embed: %w", &openai.APIError{HTTPStatusCode: tc.status, Message: tc.msg})
		if limit, ok := TooManyInputs(err); !ok || limit != tc.limit {
			t.Errorf("%s: TooManyInputs = %d, %v; want %d, true", tc.name, limit, ok, tc.limit)
		}
	}
	for _, err := range []error{
		&openai.APIError{HTTPStatusCode: 400, Message: "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."},
		&openai.APIError{HTTPStatusCode: 400, Message: "Too many inputs. The max number of inputs is 0."},
		&openai.APIError{HTTPStatusCode: 500, Message: "batch size 64 > maximum allowed batch size 32"},
	} {
		if limit, ok := TooManyInputs(err); ok {
			t.Errorf("TooManyInputs(%v) = %d, true", err, limit)
		}
	}
}

// TestTooManyTokens: the refusals of an embeddings request of more tokens than the server
// takes are recognized, with the bound when they name it.
func TestTooManyTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		msg   string
		limit int
	}{
		{"OpenAI", "Requested 305000 tokens, max 300000 tokens per request", 300000},
		{"Mistral", "Too many tokens overall, split into more batches.", 0},
	} {
		err := fmt.Errorf("embed: %w", &openai.APIError{HTTPStatusCode: 400, Message: tc.msg})
		if limit, ok := TooManyTokens(err); !ok || limit != tc.limit {
			t.Errorf("%s: TooManyTokens = %d, %v; want %d, true", tc.name, limit, ok, tc.limit)
		}
	}
	if _, ok := TooManyTokens(&openai.APIError{HTTPStatusCode: 400, Message: "This model's maximum context length is 8192 tokens, however you requested 9000 tokens"}); ok {
		t.Error("an input too long taken for a request of too many tokens")
	}
}
