package llm

import (
	"strings"
	"testing"
	"unicode/utf8"
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
		{"日本語", 3}, // 9 bytes
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
		{"multibyte", strings.Repeat("é", 100), 10, true, 30},
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
