package summarize

import (
	"strings"
	"unicode"
)

// Language detection is deliberately simple and honest about its limits:
//
//   - The dominant script of the letters (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari,
//     Han, Hiragana/Katakana, Hangul, Thai) separates most languages outright.
//   - Within Latin script, a profile of common function words tells English, German, French,
//     Spanish, Italian, Portuguese and Dutch apart. A text is assigned a language only when at
//     least three of its words are that language's function words and they outnumber any
//     other language's by two to one; otherwise it is "" (unknown).
//
// Limits: other Latin-script languages are unknown; very short or formula-heavy text is
// often unknown; Japanese text mostly written in Han characters reads as Han (Chinese).
// Validate flags a mismatch only when both texts have a known language and they differ, so
// "unknown" never rejects a TL;DR.

var stopWords = map[string][]string{
	"en": {"the", "of", "and", "to", "in", "is", "for", "with", "that", "on", "we", "are", "this", "by", "from", "an", "as", "our", "which", "be", "these", "its", "can", "has", "have", "it", "at", "or", "than", "not"},
	"de": {"der", "die", "das", "und", "ist", "mit", "für", "von", "den", "nicht", "ein", "eine", "auf", "zu", "wir", "sich", "des", "dem", "im", "werden", "wird", "auch", "sind", "einer", "durch", "zur", "zum", "oder", "bei"},
	"fr": {"le", "la", "les", "des", "et", "est", "une", "du", "pour", "dans", "que", "qui", "sur", "nous", "par", "au", "avec", "ce", "sont", "aux", "cette", "ces", "leur", "ou", "mais", "plus", "être"},
	"es": {"el", "los", "las", "y", "es", "del", "para", "una", "por", "con", "que", "se", "al", "lo", "como", "más", "su", "sus", "este", "esta", "entre", "sobre", "también", "muy"},
	"it": {"il", "di", "che", "è", "per", "una", "della", "del", "dei", "delle", "gli", "con", "sono", "nel", "nella", "questo", "questa", "anche", "alla", "degli", "più"},
	"pt": {"o", "os", "as", "do", "da", "dos", "das", "em", "um", "uma", "para", "com", "não", "no", "na", "que", "é", "são", "pelo", "pela", "mais", "também", "seu", "sua"},
	"nl": {"de", "het", "een", "en", "van", "is", "dat", "op", "te", "voor", "met", "zijn", "niet", "wordt", "worden", "ook", "bij", "door", "naar", "deze", "wij", "aan"},
}

var stopIndex = func() map[string][]string {
	idx := map[string][]string{}
	for lang, words := range stopWords {
		for _, w := range words {
			idx[w] = append(idx[w], lang)
		}
	}
	return idx
}()

// DetectLanguage returns a best guess at the language of s: an ISO 639-1 code for the Latin
// languages above, a script name ("cyrillic", "greek", "arabic", "hebrew", "devanagari",
// "han", "kana", "hangul", "thai") for other scripts, or "" when unsure.
func DetectLanguage(s string) string {
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
		for _, lang := range stopIndex[w] {
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
