package summarize

import (
	"context"
	"net/http"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// TestClientEndOfTurnTokenIsNotPartOfTheTLDR: a server that decodes with the model's special
// tokens (vLLM, llama.cpp or LM Studio with a chat template whose stop token is not the one the
// model ends its turn with: Llama 3's <|eot_id|>, ChatML's <|im_end|>, Gemma's <end_of_turn>,
// DeepSeek's <｜end▁of▁sentence｜>, Mistral's </s>) leaves the token at the end of the content
// (vllm-project/vllm#4260, Aider-AI/aider#2588). The TL;DR passed every check with it and was
// stored with it: "… language models.<|eot_id|>" on the paper's page and in the API. It is not
// part of the answer, whether the client asked for it (Summarize) or a batch brought it
// (Accept).
func TestClientEndOfTurnTokenIsNotPartOfTheTLDR(t *testing.T) {
	t.Parallel()
	const whole = "A method halves the training cost of large language models while keeping their accuracy."
	for _, token := range []string{"<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<｜end▁of▁sentence｜>", "</s>", "<|end|>", " <|endoftext|>\n<|endoftext|>",
		// The next turn after it: refused as a second line, then cleaned into one with the tokens.
		"<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nThat's correct! The output is",
		"<|im_end|>\n<|im_start|>user\nThanks<|im_end|>",
		"</s>[INST] Thanks [/INST]",
	} {
		t.Run(token, func(t *testing.T) {
			t.Parallel()
			url, calls := answering(t, http.StatusOK, chatAnswer(whole+token, "stop"))
			c, err := New(Config{BaseURL: url, MaxRetries: 1})
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Summarize(context.Background(), testPaper)
			if err != nil || s.Text != whole || s.Validation != paper.ValidOK || calls() != 1 {
				t.Errorf("Summarize = %q (%s), %v after %d requests; want %q at the first answer", s.Text, s.Validation, err, calls(), whole)
			}
			text, validation, err := Accept(whole+token, testPaper, 30)
			if err != nil || text != whole || validation != paper.ValidOK {
				t.Errorf("Accept = %q (%s), %v; want %q", text, validation, err, whole)
			}
		})
	}
}

// TestEndOfTurnTokenNamedInATLDRIsKept: a TL;DR may name a special token; only one that ends the
// answer, or after which another turn starts, is cut.
func TestEndOfTurnTokenNamedInATLDRIsKept(t *testing.T) {
	t.Parallel()
	const named = "Inserting <|endoftext|> between documents keeps attention within each document during pretraining."
	text, validation, err := Accept(named, testPaper, 30)
	if err != nil || text != named || validation != paper.ValidOK {
		t.Errorf("Accept = %q (%s), %v; want %q as it is", text, validation, err, named)
	}
}

// TestClientEndOfTurnTokensOfOtherModelsAreNotPartOfTheTLDR: the end-of-turn tokens of models
// the list left out — Llama 4's <|eot|>, Llama 3.1's <|eom_id|> (a turn that expects a tool's
// answer), Command R's <|END_OF_TURN_TOKEN|>, OpenChat's and Starling's <|end_of_turn|> — were
// stored as part of the TL;DR, a period after them: "… accuracy.<|eot|>.".
func TestClientEndOfTurnTokensOfOtherModelsAreNotPartOfTheTLDR(t *testing.T) {
	t.Parallel()
	const whole = "A method halves the training cost of large language models while keeping their accuracy."
	for _, token := range []string{"<|eot|>", "<|eom_id|>", "<|END_OF_TURN_TOKEN|>", "<|end_of_turn|>",
		"<|eot|><|header_start|>user<|header_end|>\n\nThanks",
	} {
		url, calls := answering(t, http.StatusOK, chatAnswer(whole+token, "stop"))
		c, err := New(Config{BaseURL: url, MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Summarize(context.Background(), testPaper)
		if err != nil || s.Text != whole || s.Validation != paper.ValidOK || calls() != 1 {
			t.Errorf("Summarize of …%q = %q (%s), %v after %d requests; want %q at the first answer", token, s.Text, s.Validation, err, calls(), whole)
		}
		if text, validation, err := Accept(whole+token, testPaper, 30); err != nil || text != whole || validation != paper.ValidOK {
			t.Errorf("Accept of …%q = %q (%s), %v; want %q", token, text, validation, err, whole)
		}
	}
}

// TestClientTextAfterAnEndOfTurnTokenThatEndsTheSentenceIsNotPartOfTheTLDR: a server that does
// not stop at the model's end-of-turn token (a base model, a stop token left unset) goes on
// writing after it on the same line: the next document, the user's next turn. After the
// sentence's final punctuation the token ends the answer whatever follows; the rest was kept,
// "… accuracy.</s>Thanks, that helps." stored as the TL;DR, or cleaned into "… accuracy.<|endoftext|>The
// 2019 season was the club's best.". A token a TL;DR names inside its sentence stays
// (TestEndOfTurnTokenNamedInATLDRIsKept).
func TestClientTextAfterAnEndOfTurnTokenThatEndsTheSentenceIsNotPartOfTheTLDR(t *testing.T) {
	t.Parallel()
	const whole = "A method halves the training cost of large language models while keeping their accuracy."
	for _, rest := range []string{
		"<|endoftext|>The 2019 season was the club's best. It won the cup and the league.",
		"</s>Thanks, that helps.",
		" <|im_end|> user: thanks!",
	} {
		url, calls := answering(t, http.StatusOK, chatAnswer(whole+rest, "stop"))
		c, err := New(Config{BaseURL: url, MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Summarize(context.Background(), testPaper)
		if err != nil || s.Text != whole || s.Validation != paper.ValidOK || calls() != 1 {
			t.Errorf("Summarize of …%q = %q (%s), %v after %d requests; want %q at the first answer", rest, s.Text, s.Validation, err, calls(), whole)
		}
		if text, validation, err := Accept(whole+rest, testPaper, 30); err != nil || text != whole || validation != paper.ValidOK {
			t.Errorf("Accept of …%q = %q (%s), %v; want %q", rest, text, validation, err, whole)
		}
	}
}
