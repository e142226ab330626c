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

// TestRoleMarkerIsAPreamble: a server that decodes with the special tokens, the model served
// with another model's chat template, may start the answer with the role's marker on the
// answer's line: Phi-3's and Zephyr's "<|assistant|>", ChatML's "<|im_start|>assistant",
// OpenChat's "GPT4 Correct Assistant:", Llama 3's header, Gemma's "<start_of_turn>model".
// They passed every check and were stored with the marker ("<|assistant|> A method …"). They
// are a preamble, as "Assistant:" is: asked again, and cleaned of the marker when the stricter
// answer has it too. A TL;DR that names such a marker inside its sentence, or starts with the
// words alone, is no preamble.
func TestRoleMarkerIsAPreamble(t *testing.T) {
	t.Parallel()
	const whole = "A method halves the training cost of large language models while keeping their accuracy."
	for _, marker := range []string{"<|assistant|> ", "<|assistant|>", "<|im_start|>assistant ", "GPT4 Correct Assistant: ",
		"<|start_header_id|>assistant<|end_header_id|> ", "<start_of_turn>model "} {
		if err := Validate(marker+whole, enAbstract, 30); err == nil {
			t.Errorf("Validate(%q…) = nil, want the marker refused as a preamble", marker)
		}
		url, calls := answering(t, http.StatusOK, chatAnswer(marker+whole, "stop"))
		c, err := New(Config{BaseURL: url, MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Summarize(context.Background(), testPaper)
		if err != nil || s.Text != whole || s.Validation != paper.ValidCleaned || calls() != 2 {
			t.Errorf("Summarize of %q… = %q (%s), %v after %d requests; want %q cleaned after the stricter retry", marker, s.Text, s.Validation, err, calls(), whole)
		}
	}
	for _, ok := range []string{
		"A tokenizer that reserves <|assistant|> for role turns halves the cost of chat fine-tuning.",
		"Model merging halves the training cost of large language models while keeping their accuracy.",
		"GPT4 correct answers rise with chain-of-thought prompting on grade-school math problems.",
	} {
		if err := Validate(ok, enAbstract, 30); err != nil {
			t.Errorf("Validate(%q) = %v, want it valid", ok, err)
		}
	}
}
