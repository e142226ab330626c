package summarize

import (
	"slices"
	"unicode"
	"unicode/utf8"
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

// scriptNames are the scripts DetectLanguage tells apart, in name order (ties go to the first).
var scriptNames = [...]string{"arabic", "cyrillic", "devanagari", "greek", "han", "hangul", "hebrew", "kana", "latin", "thai"}

const (
	scArabic = iota
	scCyrillic
	scDevanagari
	scGreek
	scHan
	scHangul
	scHebrew
	scKana
	scLatin
	scThai
	scOther
)

// langNames are the languages of stopWords in name order (ties go to the first).
var langNames = func() []string {
	names := make([]string, 0, len(stopWords))
	for lang := range stopWords {
		names = append(names, lang)
	}
	slices.Sort(names)
	return names
}()

// stopIndex maps a function word to the indexes in langNames of the languages it belongs to.
var stopIndex = func() map[string][]int {
	idx := map[string][]int{}
	for i, lang := range langNames {
		for _, w := range stopWords[lang] {
			idx[w] = append(idx[w], i)
		}
	}
	return idx
}()

// maxStopWord is the length in bytes of the longest function word; longer words need no lookup.
var maxStopWord = func() int {
	n := 0
	for w := range stopIndex {
		n = max(n, len(w))
	}
	return n
}()

// scriptTables are the Unicode tables of the scripts told apart (they do not overlap).
var scriptTables = []struct {
	table  *unicode.RangeTable
	script int
}{
	{unicode.Latin, scLatin}, {unicode.Cyrillic, scCyrillic}, {unicode.Greek, scGreek},
	{unicode.Arabic, scArabic}, {unicode.Hebrew, scHebrew}, {unicode.Devanagari, scDevanagari},
	{unicode.Hiragana, scKana}, {unicode.Katakana, scKana}, {unicode.Han, scHan},
	{unicode.Hangul, scHangul}, {unicode.Thai, scThai},
}

// script returns the script of letter r, scOther for scripts not told apart.
func script(r rune) int {
	if r < utf8.RuneSelf {
		return scLatin
	}
	for _, t := range scriptTables {
		if unicode.Is(t.table, r) {
			return t.script
		}
	}
	return scOther
}

// DetectLanguage returns a best guess at the language of s: an ISO 639-1 code for the Latin
// languages above, a script name ("cyrillic", "greek", "arabic", "hebrew", "devanagari",
// "han", "kana", "hangul", "thai") for other scripts, or "" when unsure. It reads s twice
// and allocates once: Validate runs it on every abstract and TL;DR.
func DetectLanguage(s string) string {
	var scripts [scOther + 1]int
	letters := 0
	for _, r := range s {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
				letters++
				scripts[scLatin]++
			}
			continue
		}
		if unicode.IsLetter(r) {
			letters++
			scripts[script(r)]++
		}
	}
	if letters == 0 {
		return ""
	}
	// Any kana at all marks Japanese, which mixes kana with Han characters.
	if scripts[scKana]*10 >= letters {
		return "kana"
	}
	best := 0
	for sc := range scOther {
		if scripts[sc] > scripts[best] {
			best = sc
		}
	}
	if scripts[best] == 0 || scripts[best]*2 < letters {
		return ""
	}
	if best != scLatin {
		return scriptNames[best]
	}
	// Count function words: the words are the runs of letters of the lower-cased text.
	counts := make([]int, len(langNames))
	var word [32]byte
	n := 0        // bytes of the word so far
	long := false // the word outgrew the buffer: no function word is that long
	for i := 0; i <= len(s); {
		lr, size := rune(-1), 1 // -1: the end of s, which ends the last word
		if i < len(s) {
			if c := s[i]; c < utf8.RuneSelf {
				lr = rune(c)
				if 'A' <= c && c <= 'Z' {
					lr += 'a' - 'A'
				}
			} else {
				var r rune
				r, size = utf8.DecodeRuneInString(s[i:])
				lr = unicode.ToLower(r)
			}
		}
		i += size
		isLetter := 'a' <= lr && lr <= 'z' || lr >= utf8.RuneSelf && unicode.IsLetter(lr)
		if !isLetter {
			if !long && n > 0 && n <= maxStopWord {
				for _, lang := range stopIndex[string(word[:n])] {
					counts[lang]++
				}
			}
			n, long = 0, false
			continue
		}
		if n+utf8.UTFMax > len(word) {
			long = true
			continue
		}
		n += utf8.EncodeRune(word[n:], lr)
	}
	first, second := -1, -1
	for lang, n := range counts {
		switch {
		case first < 0 || n > counts[first]:
			second, first = first, lang
		case second < 0 || n > counts[second]:
			second = lang
		}
	}
	if counts[first] >= 3 && (second < 0 || counts[first] >= 2*counts[second]) {
		return langNames[first]
	}
	return ""
}
