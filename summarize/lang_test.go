package summarize

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"

	"github.com/paperpipe/paperpipe/internal/sampledata"
)

var referenceStopIndex = func() map[string][]string {
	idx := map[string][]string{}
	for lang, words := range stopWords {
		for _, w := range words {
			idx[w] = append(idx[w], lang)
		}
	}
	return idx
}()

// referenceDetectLanguage is DetectLanguage as first written (maps, strings.ToLower and
// strings.FieldsFunc), kept as the oracle of the faster one. It returns a best guess at the language of s: an ISO 639-1 code for the Latin
// languages above, a script name ("cyrillic", "greek", "arabic", "hebrew", "devanagari",
// "han", "kana", "hangul", "thai") for other scripts, or "" when unsure.
func referenceDetectLanguage(s string) string {
	scripts := map[string]int{}
	letters := 0
	for _, r := range s {
		if !unicode.IsLetter(r) {
			continue
		}
		letters++
		switch {
		case unicode.Is(unicode.Latin, r):
			scripts["latin"]++
		case unicode.Is(unicode.Cyrillic, r):
			scripts["cyrillic"]++
		case unicode.Is(unicode.Greek, r):
			scripts["greek"]++
		case unicode.Is(unicode.Arabic, r):
			scripts["arabic"]++
		case unicode.Is(unicode.Hebrew, r):
			scripts["hebrew"]++
		case unicode.Is(unicode.Devanagari, r):
			scripts["devanagari"]++
		case unicode.Is(unicode.Hiragana, r), unicode.Is(unicode.Katakana, r):
			scripts["kana"]++
		case unicode.Is(unicode.Han, r):
			scripts["han"]++
		case unicode.Is(unicode.Hangul, r):
			scripts["hangul"]++
		case unicode.Is(unicode.Thai, r):
			scripts["thai"]++
		}
	}
	if letters == 0 {
		return ""
	}
	// Any kana at all marks Japanese, which mixes kana with Han characters.
	if scripts["kana"]*10 >= letters {
		return "kana"
	}
	best, bestN := "", 0
	for sc, n := range scripts {
		if n > bestN || (n == bestN && sc < best) {
			best, bestN = sc, n
		}
	}
	if bestN*2 < letters {
		return ""
	}
	if best != "latin" {
		return best
	}
	counts := map[string]int{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) }) {
		for _, lang := range referenceStopIndex[w] {
			counts[lang]++
		}
	}
	first, second, firstN, secondN := "", "", 0, 0
	for lang, n := range counts {
		switch {
		case n > firstN || (n == firstN && lang < first):
			second, secondN = first, firstN
			first, firstN = lang, n
		case n > secondN || (n == secondN && lang < second):
			second, secondN = lang, n
		}
	}
	_ = second
	if firstN >= 3 && firstN >= 2*secondN {
		return first
	}
	return ""
}

// TestDetectLanguageMatchesReference checks the allocation-free DetectLanguage against the
// first, plain implementation on the sample archive, on texts of every language the tests
// know, and on random mixtures of scripts, function words and odd bytes.
func TestDetectLanguageMatchesReference(t *testing.T) {
	var cases []string
	for _, p := range sampledata.Papers(t) {
		cases = append(cases, p.Title, p.Abstract)
	}
	pieces := []string{"the ", "of ", "and ", "der ", "die ", "und ", "le ", "les ", "et ", "el ", "los ", "y ", "il ", "di ", "o ", "os ", "het ", "een ",
		"THE ", "Und ", "model ", "Модель ", "и ", "μοντέλο ", "نموذج ", "מודל ", "मॉडल ", "模型", "モデル", "모델 ", "แบบจำลอง ",
		"É ", "è ", "più ", "não ", "für ", "être ", "werden ", "también ", "which ", "these ", "Cette ", "degli ", "worden ", "3.5 ", "x_1 ", "\xff", "\xe2\x80", "ǅ ", "İ ", "ß ", "a-b ",
		strings.Repeat("supercalifragilistic", 3) + " ", "the" + strings.Repeat("é", 20) + " "}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		var b strings.Builder
		for range rng.IntN(20) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		if got, want := DetectLanguage(s), referenceDetectLanguage(s); got != want {
			t.Fatalf("DetectLanguage(%q) = %q, the reference says %q", s, got, want)
		}
	}
}

func BenchmarkDetectLanguage(b *testing.B) {
	abstract := sampledata.Papers(b)[0].Abstract
	b.SetBytes(int64(len(abstract)))
	for b.Loop() {
		DetectLanguage(abstract)
	}
}
