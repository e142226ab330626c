package llm

import (
	"fmt"

	openai "github.com/sashabaranov/go-openai"
)

// Finish reasons of Mistral's API besides OpenAI's (its API reference's ChatCompletionChoice:
// stop, length, model_length, error, tool_calls): model_length, an answer stopped at the model's
// context length, cut as at length; error, a generation that broke off, the server's failure.
const (
	FinishModelLength openai.FinishReason = "model_length"
	FinishError       openai.FinishReason = "error"
)

// Unfinished says why a chat completion that ended with finish reason f holds no whole answer
// — stopped at a token limit (length, model_length), its content withheld, or the end of it,
// by the API's content filter (content_filter), its generation broken off (error) — or ""
// when the answer ended as the model meant it to. What such an answer holds is the start of a
// sentence, which can pass every check of a TL;DR.
func Unfinished(f openai.FinishReason) string {
	switch f {
	case openai.FinishReasonLength, FinishModelLength:
		return "cut off at the token limit (finish_reason " + string(f) + ")"
	case openai.FinishReasonContentFilter:
		return "withheld by the API's content filter (finish_reason content_filter)"
	case FinishError:
		return "its generation broke off (finish_reason error)"
	}
	return ""
}

// Refused says that the model refused to answer, in its words (message.refusal): the reason a
// withheld TL;DR is recorded with (paper.WithheldError), by the worker and the Batch API alike.
func Refused(refusal string) string {
	return fmt.Sprintf("the model refused: %q", refusal)
}
