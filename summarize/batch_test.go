package summarize

import (
	"errors"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

func TestMessagesAreTheClientsPrompt(t *testing.T) {
	a := paper.Abstract{ID: "x", Title: "A  Title", Abstract: "We do things."}
	got := Messages(a, 20)
	want := buildPrompt(a, 20)
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Role != want[i].Role || got[i].Content != want[i].Content {
			t.Errorf("message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if !strings.Contains(Messages(a, 0)[0].Content, "30 words") {
		t.Errorf("a word limit of 0 is not the default 30")
	}
}

func TestAccept(t *testing.T) {
	a := paper.Abstract{ID: "arxiv:1", Abstract: "We propose a router for sparse mixture-of-experts models that balances load."}
	for _, tc := range []struct {
		answer, text, validation string
		fails                    bool
	}{
		{"A balanced router for sparse experts lowers the loss", "A balanced router for sparse experts lowers the loss.", paper.ValidOK, false},
		{"TL;DR: A balanced router lowers the loss.", "A balanced router lowers the loss.", paper.ValidCleaned, false},
		{"", "", "", true},
		// A thinking model's reasoning in front of the answer (a provider's batch that does not
		// parse it out) is not the TL;DR.
		{"<think>\nThe user wants a short summary of the router paper.\n</think>\n\nA balanced router lowers the loss.",
			"A balanced router lowers the loss.", paper.ValidOK, false},
		{"<think>\nThe user wants a short summary of the router paper.", "", "", true},
		// Other delimiters: gpt-oss's harmony channels (with and without their special tokens),
		// Magistral's, a GRPO fine-tune's, Sky-T1's; each was cleaned to the reasoning's first
		// sentence.
		{"<|channel|>analysis<|message|>The user wants a short summary of the router paper.<|end|><|start|>assistant<|channel|>final<|message|>A balanced router lowers the loss.",
			"A balanced router lowers the loss.", paper.ValidOK, false},
		{"analysisThe user wants a short summary of the router paper.assistantfinalA balanced router lowers the loss.",
			"A balanced router lowers the loss.", paper.ValidOK, false},
		{"<|channel|>analysis<|message|>The user wants a short summary of the router paper.", "", "", true},
		{"analysisThe user wants a short summary of the router paper.", "", "", true}, // the same, without the special tokens
		{"[THINK]The user wants a short summary of the router paper.[/THINK]A balanced router lowers the loss.",
			"A balanced router lowers the loss.", paper.ValidOK, false},
		{"[THINK]The user wants a short summary of the router paper.", "", "", true},
		{"<reasoning>\nThe user wants a short summary of the router paper.\n</reasoning>\n<answer>\nA balanced router lowers the loss.\n</answer>",
			"A balanced router lowers the loss.", paper.ValidOK, false},
		{"<|begin_of_thought|>\n\nThe user wants a short summary of the router paper.\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\nA balanced router lowers the loss.\n\n<|end_of_solution|>",
			"A balanced router lowers the loss.", paper.ValidOK, false},
	} {
		text, valid, err := Accept(tc.answer, a, 30)
		if tc.fails {
			if !errors.Is(err, paper.ErrPermanent) || !errors.Is(err, ErrInvalidTLDR) {
				t.Errorf("Accept(%q) error %v, want ErrPermanent and ErrInvalidTLDR", tc.answer, err)
			}
			continue
		}
		if err != nil || text != tc.text || valid != tc.validation {
			t.Errorf("Accept(%q) = %q, %q, %v; want %q, %q", tc.answer, text, valid, err, tc.text, tc.validation)
		}
	}
}
