package summarize

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// TestClientAnswerMistralCutIsNeverStored: Mistral's API, whose content parts the client
// reads (Magistral's), ends an answer that filled the model's context with finish_reason
// "model_length", and one whose generation broke off with "error" — besides OpenAI's "length"
// (its API reference's ChatCompletionChoice). Either answer is the start of a sentence, which
// passed every check and was stored as the paper's TL;DR, a period added. An answer cut at the
// model's length is now cut as at "length" (asked again with the stricter prompt, never
// cleaned: the paper fails saying so); one that broke off is the server's failure, retried as
// such, and the whole answer that follows is stored.
func TestClientAnswerMistralCutIsNeverStored(t *testing.T) {
	t.Parallel()
	const cut = "A method that halves the training cost of large language models while keeping"
	const whole = "A method halves the training cost of large language models while keeping their accuracy."
	for _, tc := range []struct {
		finish string
		want   string // the TL;DR stored, "" for a permanent error saying the answer was cut off
	}{
		{"model_length", ""},
		{"error", whole},
	} {
		t.Run(tc.finish, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			n := 0
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n++
				first := n == 1
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				if first || tc.finish == "model_length" {
					io.WriteString(w, chatAnswer(cut, tc.finish))
					return
				}
				io.WriteString(w, chatAnswer(whole, "stop"))
			}))
			defer ts.Close()
			c, err := New(Config{BaseURL: ts.URL + "/v1", MaxRetries: 1})
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Summarize(context.Background(), testPaper)
			if tc.want != "" {
				if err != nil || s.Text != tc.want || s.Validation != paper.ValidOK {
					t.Fatalf("Summarize = %q (%s), %v; want the whole answer that followed", s.Text, s.Validation, err)
				}
			} else if !errors.Is(err, paper.ErrPermanent) || !strings.Contains(err.Error(), "cut off") || s.Text != "" {
				t.Fatalf("Summarize = %q (%s), %v; want a permanent error saying the answer was cut off", s.Text, s.Validation, err)
			}
			if s.Usage.Requests != 2 || s.Usage.OutputTokens != 32 {
				t.Errorf("usage %+v; want both billed answers", s.Usage)
			}
		})
	}
}
