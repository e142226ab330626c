package summarize

import (
	"context"
	"net/http"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// TestRoleLabelIsAPreamble: a model served with another model's chat template (a Vicuna-style
// "ASSISTANT:" turn) writes its role's label before the answer, "Assistant: A method …", which
// passed every check and was stored with the label. It is a preamble, as "Answer:" is: the
// answer is asked again with the stricter prompt, and cleaned of the label when that one has
// it too. An adjective of that name is no label.
func TestRoleLabelIsAPreamble(t *testing.T) {
	t.Parallel()
	const whole = "A method halves the training cost of large language models while keeping their accuracy."
	for _, label := range []string{"Assistant: ", "ASSISTANT: ", "assistant:"} {
		url, calls := answering(t, http.StatusOK, chatAnswer(label+whole, "stop"))
		c, err := New(Config{BaseURL: url, MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Summarize(context.Background(), testPaper)
		if err != nil || s.Text != whole || s.Validation != paper.ValidCleaned || calls() != 2 {
			t.Errorf("Summarize of %q… = %q (%s), %v after %d requests; want %q cleaned after the stricter retry", label, s.Text, s.Validation, err, calls(), whole)
		}
	}
	if err := Validate("Assistant-based tutoring doubles the learning gains of novice programmers.", enAbstract, 30); err != nil {
		t.Errorf("an adjective refused: %v", err)
	}
}
