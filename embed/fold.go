package embed

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// foldText is the text the v2 offline models (OfflineModelV2, fitted models of format 2) take
// terms from: accents folded, the invisible characters dropped. It is NFKD (compatibility
// decomposition, which also opens a PDF's ligatures: "ﬁne" is "fine") without the combining
// diacritical marks (U+0300–U+036F: the accents of Latin, Greek and Cyrillic letters, "ö" is "o"
// and "ő"), with the letters that have no decomposition folded as PostgreSQL's unaccent folds
// them for keyword search (ø o, ł l, đ d, æ ae, œ oe, ß ss, …), and without the characters
// keyword search reads words across (paperpipe_visible: the soft hyphen, the zero-width space,
// non-joiner and joiner, the word joiner and the zero-width no-break space). Other marks (the
// vowel signs of Indic scripts, Hebrew and Arabic points) stay, and the v2 models read them as
// part of their word. A character that is not a letter, a digit or a mark is not decomposed:
// it separates words, as on v1 and in keyword search ("Kinect™" is "Kinect", not "KinectTM").
// An ASCII text is returned as it is.
func foldText(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	// A character words reads as a separator stays one: NFKD spells some in letters or
	// digits ("™" is "TM", "①" is "1"), which joined them to the word they follow.
	// A letter of foldedLetters is folded before NFKD, which decomposes some of them otherwise
	// ("ŀ" into "l·", whose dot ends the word).
	var pre strings.Builder
	pre.Grow(len(s))
	for _, r := range s {
		switch f, ok := foldedLetters[r]; {
		case ok:
			pre.WriteString(f)
		case r >= utf8.RuneSelf && !invisible(r) && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r):
			pre.WriteByte(' ')
		default:
			pre.WriteRune(r)
		}
	}
	d := norm.NFKD.String(pre.String())
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		switch {
		case r >= 0x300 && r <= 0x36f, invisible(r):
			continue
		}
		if f, ok := foldedLetters[r]; ok {
			b.WriteString(f)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// invisible reports whether r is one of the characters that show nothing inside a word, as
// keyword search drops them (store's paperpipe_visible).
func invisible(r rune) bool {
	switch r {
	case '\u00ad', '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff':
		return true
	}
	return false
}

// foldedLetters are the letters NFKD does not decompose that unaccent folds to ASCII.
var foldedLetters = map[rune]string{
	'ø': "o", 'Ø': "O", 'ł': "l", 'Ł': "L", 'đ': "d", 'Đ': "D", 'ð': "d", 'Ð': "D",
	'æ': "ae", 'Æ': "AE", 'œ': "oe", 'Œ': "OE", 'ß': "ss", 'ẞ': "SS", 'þ': "th", 'Þ': "TH",
	'ı': "i", 'ħ': "h", 'Ħ': "H", 'ŧ': "t", 'Ŧ': "T", 'ŀ': "l", 'Ŀ': "L",
}
