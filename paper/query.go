package paper

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Query is a search text read as web-search syntax, the way PostgreSQL's websearch_to_tsquery
// reads it: "quoted phrases", or between alternatives, and a leading - that excludes the word
// or phrase it precedes.
type Query struct {
	// Text is what the query looks for: its words and phrases in order, without the quotes,
	// the or operators and the excluded words and phrases. It is what semantic and hybrid
	// search embed, so that an excluded word does not pull the results toward itself.
	Text string
	// Excluded is the excluded words and phrases in web-search syntax, joined by or
	// (`"red kangaroo" or wombat`), "" when there is none: a paper that matches it is left out
	// of a semantic or hybrid search.
	Excluded string
}

// ParseQuery reads q as web-search syntax. As websearch_to_tsquery does, it takes a - as an
// exclusion only at the start of a word or phrase ("state-of-the-art" is one word), reads an
// unclosed quote to the end of the text, treats ! & | ( ) < as spaces, and cancels a pair of
// leading dashes (--word is word). Unlike websearch_to_tsquery, it reads a dash with a space
// after it as punctuation (see LoneDashesToSpaces).
func ParseQuery(q string) Query {
	q = LoneDashesToSpaces(q)
	var text, excluded []string
	negate := false
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '-':
			negate = !negate
			i++
			continue
		case c == '"':
			end := strings.IndexByte(q[i+1:], '"')
			phrase := q[i+1:]
			if end >= 0 {
				phrase, i = q[i+1:i+1+end], i+2+end
			} else {
				i = len(q)
			}
			phrase = strings.Join(strings.Fields(phrase), " ")
			if phrase != "" {
				if negate {
					excluded = append(excluded, `"`+phrase+`"`)
				} else {
					text = append(text, phrase)
				}
			}
			negate = false
			continue
		}
		// A space or an operator is skipped whole: a multi-byte space (a no-break space from a
		// PDF, an ideographic space) read one byte at a time would start a word that ends
		// before its first byte, and the loop would never advance.
		if r, size := utf8.DecodeRuneInString(q[i:]); isQuerySpace(r) || strings.ContainsRune(queryOperators, r) {
			i += size
			continue
		}
		end := strings.IndexFunc(q[i:], func(r rune) bool {
			return isQuerySpace(r) || r == '"' || strings.ContainsRune(queryOperators, r)
		})
		if end < 0 {
			end = len(q) - i
		}
		word := q[i : i+end]
		i += end
		switch {
		case negate:
			excluded = append(excluded, word)
		case !strings.EqualFold(word, "or"):
			text = append(text, word)
		}
		negate = false
	}
	return Query{Text: strings.Join(text, " "), Excluded: strings.Join(excluded, " or ")}
}

// LoneDashesToSpaces returns q with each run of dashes that starts a word (at the start of q,
// or after a space, a quote or one of ! & | ( ) <) and has a white-space character or the end
// of q after it made as many spaces. Such a dash is punctuation, as in the titles "Forget What
// You Know about LLMs Evaluations - LLMs are Like a Chameleon" and "… Not Months -- Your
// Language Model …", not an exclusion: websearch_to_tsquery reads "a - b" as 'a' & !'b', and
// a title pasted whole left out its own paper, in every search mode. Web-search syntax
// excludes a word with a dash written against it ("-b"). ParseQuery reads q so, and a full-text
// query is made of q so (package store), so that both read the same words.
func LoneDashesToSpaces(q string) string {
	var b []byte // a copy of q, made at the first lone dash
	for i := 0; i < len(q); i++ {
		if q[i] != '-' || (i > 0 && !startsWord(q[:i])) {
			continue
		}
		j := i
		for j < len(q) && q[j] == '-' {
			j++
		}
		if r, _ := utf8.DecodeRuneInString(q[j:]); j == len(q) || isQuerySpace(r) {
			if b == nil {
				b = []byte(q)
			}
			for k := i; k < j; k++ {
				b[k] = ' '
			}
		}
		i = j - 1
	}
	if b == nil {
		return q
	}
	return string(b)
}

// startsWord reports whether a word starts after before: it is empty or ends with a space, a
// quote or an operator.
func startsWord(before string) bool {
	r, _ := utf8.DecodeLastRuneInString(before)
	return isQuerySpace(r) || r == '"' || strings.ContainsRune(queryOperators, r)
}

// queryOperators are the characters websearch_to_tsquery skips like spaces.
const queryOperators = "!&|()<"

func isQuerySpace(r rune) bool { return unicode.IsSpace(r) }
