package summarize

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// TestClientAnswerTheContentFilterStoppedIsNeverStored: an API whose content filter flags the
// answer (OpenAI's and Azure OpenAI's finish_reason "content_filter", which Gemini's OpenAI
// compatibility gives for a SAFETY block) sends no content, or what there was of it before
// the flag. The start of a sentence passed every check and was stored as the paper's TL;DR, a
// period added; no content was taken for an "empty" TL;DR, bought again with the stricter
// prompt (which asks for the form of the answer, not for the filter to change its mind) and
// dead-lettered as "empty". Either is now a permanent failure at once that names the
// content filter, nothing stored, the billed answer's usage kept.
func TestClientAnswerTheContentFilterStoppedIsNeverStored(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body string }{
		{"no content", `{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,` +
			`"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}],` +
			`"usage":{"prompt_tokens":100,"completion_tokens":16,"total_tokens":116}}`},
		{"part of the answer", chatAnswer("A method halves the training cost of large language models", "content_filter")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, calls := answering(t, http.StatusOK, tc.body)
			c, err := New(Config{BaseURL: url, MaxRetries: 1})
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Summarize(context.Background(), testPaper)
			if !errors.Is(err, paper.ErrPermanent) || !strings.Contains(err.Error(), "content filter") || s.Text != "" {
				t.Fatalf("Summarize = %q (%s), %v; want a permanent error naming the content filter, no TL;DR", s.Text, s.Validation, err)
			}
			if calls() != 1 || s.Usage.Requests != 1 || s.Usage.OutputTokens != 16 {
				t.Errorf("%d requests, usage %+v; want the one billed answer", calls(), s.Usage)
			}
		})
	}
}
