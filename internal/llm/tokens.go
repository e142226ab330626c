package llm

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// BytesPerToken is the divisor of the token estimate. Real BPE tokenizers average about four
// bytes of English per token; three keeps the estimate above the true count for English,
// code and most European languages, so a batch or an input sized by it fits the real limit.
// Text in scripts that tokenize worse (CJK, for instance, often needs a token per character,
// i.e. per 3 bytes) stays close to the estimate rather than far below it.
const BytesPerToken = 3

// EstimateTokens returns a conservative estimate of the number of tokens in s:
// ceil(len(s) / BytesPerToken), counting bytes of UTF-8, with no tokenizer.
func EstimateTokens(s string) int {
	return (len(s) + BytesPerToken - 1) / BytesPerToken
}

// TruncateToTokens cuts s so that EstimateTokens of the result is at most maxTokens, at a word
// boundary when one lies in the last quarter of the allowed length (otherwise at a rune
// boundary), and reports whether it cut anything. maxTokens ≤ 0 means no limit.
func TruncateToTokens(s string, maxTokens int) (string, bool) {
	if maxTokens <= 0 || EstimateTokens(s) <= maxTokens {
		return s, false
	}
	limit := maxTokens * BytesPerToken
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if sp := strings.LastIndexFunc(s[:cut], unicode.IsSpace); sp >= limit*3/4 {
		cut = sp
	}
	return strings.TrimRightFunc(s[:cut], unicode.IsSpace), true
}
