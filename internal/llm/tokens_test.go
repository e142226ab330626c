package llm

import (
	"strings"
	"testing"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"
)

func TestEstimateTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"a", 1},
		{"abc", 1},
		{"abcd", 2},
		{strings.Repeat("x", 300), 100},
		// Bytes that are not ASCII count a token each, the most a byte-level BPE tokenizer
		// can make of them (bytes/3 counted these three CJK characters as 3 tokens).
		{"日本語", 9},
		{"Καλημέρα", 16},  // 8 letters of 2 bytes
		{"naïve café", 7}, // 8 ASCII bytes and 4 others: ceil(8/3 + 4)
	} {
		if got := EstimateTokens(tc.in); got != tc.want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestTruncateToTokens(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 100) // 500 bytes
	for _, tc := range []struct {
		name      string
		in        string
		max       int
		wantCut   bool
		wantBytes int // upper bound on the result
	}{
		{"fits", "short text", 10, false, 10},
		{"no limit", long, 0, false, 500},
		{"cut at word", long, 50, true, 150},
		{"multibyte", strings.Repeat("é", 100), 10, true, 10},
		{"greek words", strings.Repeat("λέξη ", 200), 100, true, 12 * 9},                        // 25 units a word: 12 fit in 300
		{"ascii then cjk", strings.Repeat("a", 30) + strings.Repeat("語", 30), 20, true, 30 + 9}, // 30 + 3×9 of 60 units
	} {
		got, cut := TruncateToTokens(tc.in, tc.max)
		if cut != tc.wantCut {
			t.Errorf("%s: cut = %v, want %v", tc.name, cut, tc.wantCut)
		}
		if len(got) > tc.wantBytes {
			t.Errorf("%s: %d bytes, want ≤ %d", tc.name, len(got), tc.wantBytes)
		}
		if tc.max > 0 && EstimateTokens(got) > tc.max {
			t.Errorf("%s: estimate %d over %d", tc.name, EstimateTokens(got), tc.max)
		}
		if !utf8.ValidString(got) {
			t.Errorf("%s: result is not valid UTF-8", tc.name)
		}
		if tc.name == "cut at word" && (strings.HasSuffix(got, "wor") || strings.HasSuffix(got, " ")) {
			t.Errorf("%s: cut inside a word or left a space: %q", tc.name, got[len(got)-10:])
		}
	}
}

// A negative count in an answer's usage (junk from a proxy or a model server) is no tokens; so
// is one no answer can have, which would overflow the sums it is added to.
func TestBilledDropsNegativeCounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		u       openai.Usage
		in, out int
	}{
		{openai.Usage{PromptTokens: 12, CompletionTokens: 3}, 12, 3},
		{openai.Usage{PromptTokens: -1, CompletionTokens: 3}, 0, 3},
		{openai.Usage{PromptTokens: 12, CompletionTokens: -5}, 12, 0},
		{openai.Usage{PromptTokens: 1 << 62, CompletionTokens: 1 << 40}, 0, 1 << 40},
	} {
		if in, out := Billed(tc.u); in != tc.in || out != tc.out {
			t.Errorf("Billed(%+v) = %d, %d; want %d, %d", tc.u, in, out, tc.in, tc.out)
		}
	}
}
