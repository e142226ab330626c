package paper

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Fold trims s, replaces every run of white space (newlines included) with one space and puts
// it in Unicode's composed form, NFC, in which text is typed and searched: the same paper
// given decomposed ("nai\u0308ve", as macOS and some PDF extractors write it) is the same
// text, with the same content hash, and full-text search finds its accented words.
// Other control characters are kept as they came: the paper's id (for a title id) and its
// content hash are of its text as stored, and changing them for text stored before would buy
// its TL;DR and vector again; what shows the text makes it safe (the CLI's termSafe, JSON's
// escapes, HTML's). NUL is refused before (ingest's build). Ingest folds every title, abstract,
// author and category so, and the store folds a category filter a user typed alike.
func Fold(s string) string {
	clean := true // no white space but single ' ' between words
	for i := 0; i < len(s) && clean; i++ {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			clean = false // maybe a Unicode space; take the slow path
		case c == ' ':
			clean = i > 0 && i < len(s)-1 && s[i+1] != ' '
		case c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r':
			clean = false
		}
	}
	if clean {
		return s
	}
	return strings.Join(strings.Fields(norm.NFC.String(s)), " ")
}

// FoldAll folds each string (Fold) and drops the empty ones; nil when none is left.
func FoldAll(ss []string) []string {
	var out []string
	for _, s := range ss {
		if s = Fold(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
