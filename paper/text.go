package paper

import (
	"strings"
	"unicode"
)

// IsHidden reports whether r is a control character (unicode.IsControl: C0 and C1 controls and
// DEL, tab, newline, escape, which starts a terminal's escape sequences, bell and the others)
// or a Unicode format character (category Cf: the bidi overrides, zero-width characters): one
// an id may not hold, as it cannot be seen or typed, a terminal acts on some, and a NATS header
// holding one (an id is the message id) is another id's ("id:a\nb" and "id:a b").
func IsHidden(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

// SentenceMarks are the marks of scripts other than Latin that end a sentence wherever they
// stand, with or without white space after them: the ideographic full stop and the full-width
// marks of Chinese and Japanese (Japanese academic writing ends its sentences with "．"), the
// half-width ideographic full stop, the Arabic question mark (Arabic, Persian, Urdu) and Urdu
// full stop, the Devanagari danda and double danda (Hindi, Marathi, Sanskrit, Nepali), the
// Greek question mark (U+037E, which NFC makes a semicolon), the Armenian full stop, the
// Ethiopic full stop and the Myanmar section mark. None of them is part of an abbreviation or
// a number.
const SentenceMarks = "。！？．｡؟۔।॥\u037e։።။"

// CountWords is how many words s holds: its runs separated by white space, except that
// Chinese, Japanese and Thai write a sentence without spaces, so their characters (Dense)
// count two to a word (a run of 60 Han characters is 30 words, where strings.Fields sees one).
func CountWords(s string) int {
	n := 0
	for _, w := range strings.Fields(s) {
		c := 0
		for _, r := range w {
			if Dense(r) {
				c++
			}
		}
		n += max(1, (c+1)/2)
	}
	return n
}

// Dense reports whether r is a character of a script written without spaces between words,
// which CountWords counts two to a word: Han, Hiragana, Katakana and Thai.
func Dense(r rune) bool {
	return r >= 0x0e00 && unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai)
}
