package openaitest

import (
	"fmt"
	"strings"
	"testing"
)

func TestTLDR(t *testing.T) {
	tests := []struct {
		name, message, want string
	}{
		{
			name:    "first sentence of the abstract paragraph",
			message: "Write a one-sentence TL;DR of this paper.\n\nTitle: Sparse experts\n\nWe propose a load-balancing loss for mixture-of-experts models. It improves throughput by 30%.",
			want:    "We propose a load-balancing loss for mixture-of-experts models.",
		},
		{
			name:    "a label opening the paragraph is dropped",
			message: "Summarize.\n\nAbstract: Transformers scale well with data. We show why.",
			want:    "Transformers scale well with data.",
		},
		{
			name:    "abbreviations and initials do not end the sentence",
			message: "Models, e.g. BERT and the one by J. Smith et al. in 2020, generalize poorly. We fix that.",
			want:    "Models, e.g. BERT and the one by J. Smith et al. in 2020, generalize poorly.",
		},
		{
			name:    "decimals do not end the sentence",
			message: "Accuracy rises from 71.5 to 80.2 points on GLUE. More follows.",
			want:    "Accuracy rises from 71.5 to 80.2 points on GLUE.",
		},
		{
			name:    "long sentences are cut to 25 words and end with a period",
			message: "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twentyone twentytwo twentythree twentyfour twentyfive twentysix twentyseven",
			want:    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twentyone twentytwo twentythree twentyfour twentyfive.",
		},
		{
			name:    "a question mark ends the sentence and becomes a period",
			message: "Can sparse models match dense ones? We answer yes.",
			want:    "Can sparse models match dense ones.",
		},
		{
			name:    "lines of a paragraph are joined",
			message: "We study\nwrapped lines\nof text. Then more.",
			want:    "We study wrapped lines of text.",
		},
		{
			name:    "a paper lead-in is left out, as TL;DR prompts ask",
			message: "TL;DR in one sentence.\n\nThis paper presents StructTuning, a method that turns LLMs into domain specialists. It works.",
			want:    "Presents StructTuning, a method that turns LLMs into domain specialists.",
		},
		{
			name:    "a lead-in with a comma and the authors' we",
			message: "In this technical report, we tackle the cost of training large MoE models. More follows.",
			want:    "We tackle the cost of training large MoE models.",
		},
		{
			name:    "a full stop with no space before a capital ends the sentence",
			message: "We pre-train a model in 9 days.Based on MT-Bench it wins. More.",
			want:    "We pre-train a model in 9 days.",
		},
		{
			name:    "empty message",
			message: "  \n\n ",
			want:    "The message holds no text to summarize.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tldr(tc.message); got != tc.want {
				t.Errorf("tldr() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTokens(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int
	}{{"", 0}, {"a", 1}, {"abcd", 1}, {"abcde", 2}, {"éééé", 1}} {
		if got := tokens(tc.s); got != tc.want {
			t.Errorf("tokens(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

// The fake summarizes the abstract, where paperpipe's prompt puts it (last, after the
// instruction and the title), also when the abstract is shorter than the instruction: it
// answered with the instruction itself ("Write the one-sentence TL;DR …"), and after a junk
// answer with "Your previous answer was rejected."
func TestTLDROfAnAbstractShorterThanThePromptsInstruction(t *testing.T) {
	t.Parallel()
	for _, p := range []struct{ prompt, abstract string }{
		{"Write the one-sentence TL;DR (at most %d words) of this paper.\n\nTitle: %s\n\n%s", "We introduce Mixtral 8x7B, a sparse model."},
		// An abstract of two paragraphs: its first sentence, not its last paragraph's.
		{"Write the one-sentence TL;DR (at most %d words) of this paper.\n\nTitle: %s\n\n%s", "We introduce Mixtral 8x7B, a sparse model.\n\nCode is at example.org."},
		{"Your previous answer was rejected (it has a preamble). Answer again with only one plain sentence of at most %d words, without any preamble, label, markdown or quotes, in the language of the abstract.\n\nTitle: %s\n\n%s",
			"We study how messages that cannot be processed are moved aside into a dead-letter stream, and how an operator replays them."},
	} {
		msg := fmt.Sprintf(p.prompt, 30, "Mixtral of Experts", p.abstract)
		if got := tldr(msg); !strings.HasPrefix(got, p.abstract[:5]) {
			t.Errorf("TL;DR of abstract %q is %q, not a sentence of the abstract", p.abstract, got)
		}
	}
}
