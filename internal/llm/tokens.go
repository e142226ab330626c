package llm

import (
	"strings"
	"unicode"
	"unicode/utf8"

	openai "github.com/sashabaranov/go-openai"
)

// BytesPerToken is the number of ASCII bytes the token estimate counts as one token. Real BPE
// tokenizers average about four bytes of English per token; three keeps the estimate above the
// true count for English, code and the ASCII part of other Latin-script text, so a batch or an
// input sized by it fits the real limit.
const BytesPerToken = 3

// EstimateTokens returns a conservative estimate of the number of tokens in s, with no
// tokenizer: ceil(a/BytesPerToken + n), where a counts the bytes of s that are ASCII and n
// those that are not. A byte-level BPE tokenizer never makes more tokens than bytes, so text in
// other scripts is never undercounted: Greek or Cyrillic letters (2 bytes each) and CJK
// characters (3 bytes) tokenize at one to three tokens each, and a flat bytes/3 counted the
// latter as one, the former as two thirds.
func EstimateTokens(s string) int {
	return (units(s) + BytesPerToken - 1) / BytesPerToken
}

// units is EstimateTokens before the division: an ASCII byte costs 1, any other byte
// BytesPerToken.
func units(s string) int {
	u := 0
	for i := 0; i < len(s); i++ {
		if s[i] < utf8.RuneSelf {
			u++
		} else {
			u += BytesPerToken
		}
	}
	return u
}

// TruncateToTokens cuts s so that EstimateTokens of the result is at most maxTokens, at a word
// boundary when one lies in the last quarter of the allowed length (otherwise at a rune
// boundary), and reports whether it cut anything. maxTokens ≤ 0 means no limit.
func TruncateToTokens(s string, maxTokens int) (string, bool) {
	if maxTokens <= 0 || EstimateTokens(s) <= maxTokens {
		return s, false
	}
	// The longest prefix of whole runes within the budget.
	budget, u, cut := maxTokens*BytesPerToken, 0, 0
	for cut < len(s) {
		_, size := utf8.DecodeRuneInString(s[cut:])
		cost := units(s[cut : cut+size])
		if u+cost > budget {
			break
		}
		u, cut = u+cost, cut+size
	}
	if sp := strings.LastIndexFunc(s[:cut], unicode.IsSpace); sp >= cut*3/4 {
		cut = sp
	}
	return strings.TrimRightFunc(s[:cut], unicode.IsSpace), true
}

// Billed returns the prompt and completion tokens an answer's usage reports, a count that no
// answer can have — negative, or above maxBilledTokens — as 0. go-openai takes the counts as a
// server sends them, and a proxy or a model server can send junk: a negative count would lower
// the usage ledger and the token counters (a Prometheus counter panics when it is added one,
// which stopped the worker), and two counts near 2^62 would add up to a negative one.
func Billed(u openai.Usage) (prompt, completion int) {
	return billed(u.PromptTokens), billed(u.CompletionTokens)
}

// maxBilledTokens is more tokens than any one answer is billed (the largest models' contexts
// are millions of tokens), and few enough that the usage ledger's sums cannot overflow.
const maxBilledTokens = 1 << 40

func billed(n int) int {
	if n < 0 || n > maxBilledTokens {
		return 0
	}
	return n
}
