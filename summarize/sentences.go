package summarize

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// abbreviations end with a full stop that does not end a sentence (compared in lower case,
// without the final dot).
var abbreviations = map[string]bool{
	"e.g": true, "i.e": true, "al": true, "et al": true, "vs": true, "cf": true, "viz": true,
	"fig": true, "figs": true, "eq": true, "eqs": true, "sec": true, "secs": true, "tab": true,
	"no": true, "nos": true, "vol": true, "pp": true, "approx": true, "resp": true, "ca": true,
	"dr": true, "mr": true, "ms": true, "mrs": true, "prof": true, "st": true, "inc": true,
	"ltd": true, "corp": true, "jr": true, "sr": true, "ref": true, "refs": true, "ch": true,
	"z.b": true, "d.h": true, "bzw": true, "usw": true, "vgl": true,
}

// closers may follow a sentence's final punctuation.
const closers = `"')]}”’»」』）】》〉`

// clauseMarks end a clause of Chinese or Japanese: where a cut may fall, and what a sentence
// does not end with.
const clauseMarks = "，、；："

// isStop reports whether r ends a sentence: '.', '!', '?' or one of other scripts' marks
// (paper.SentenceMarks).
func isStop(r rune) bool {
	return r == '.' || r == '!' || r == '?' || r >= utf8.RuneSelf && strings.ContainsRune(paper.SentenceMarks, r)
}

// Sentences splits text into sentences. A sentence ends at '.', '!' or '?' (plus any closing
// quotes or brackets) followed by white space and then something other than a lower-case
// letter, at one of other scripts' sentence marks (paper.SentenceMarks: "。", "？", "．", "؟", "।" …)
// wherever it stands, or at the end of the text, or at a blank line. A full stop does not end a sentence
// after a known abbreviation ("e.g.", "i.e.", "et al.", "vs.", "Fig." …), after a dotted
// acronym ("U.S."), or inside a number
// or a name ("3.5", "arxiv.org"), but it does between a lower-case word and a capitalised
// one even without a space ("data.Results"). The sentences are trimmed; empty ones are dropped.
func Sentences(text string) []string {
	var out []string
	start := 0
	emit := func(end int) {
		if s := strings.TrimSpace(text[start:end]); s != "" {
			out = append(out, s)
		}
		start = end
	}
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == '\n' {
			// A blank line ends a paragraph, and with it a sentence.
			j := i + size
			for j < len(text) && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r') {
				j++
			}
			if j < len(text) && text[j] == '\n' {
				emit(i)
				i = j + 1
				continue
			}
		}
		if !isStop(r) {
			i += size
			continue
		}
		// Swallow runs of terminal punctuation and closers: "?!", ".)", `."`, "？！", "。」".
		j := i + size
		for j < len(text) {
			r2, s2 := utf8.DecodeRuneInString(text[j:])
			if !isStop(r2) && !strings.ContainsRune(closers, r2) {
				break
			}
			j += s2
		}
		if r >= utf8.RuneSelf {
			emit(j)
			i = j
			continue
		}
		if j >= len(text) {
			emit(len(text))
			break
		}
		next, _ := utf8.DecodeRuneInString(text[j:])
		if !unicode.IsSpace(next) {
			// "3.5", "arxiv.org", "e.g.," go on; "assistant.Based on" (a missing space after
			// a full stop between a lower-case word and a capitalised one) ends a sentence.
			if r == '.' && j == i+1 && unicode.IsUpper(next) && followsLowerWord(text[start:i]) && nextIsLower(text[j:]) {
				emit(j)
			}
			i = j
			continue
		}
		k := j
		for k < len(text) {
			r3, s3 := utf8.DecodeRuneInString(text[k:])
			if !unicode.IsSpace(r3) {
				break
			}
			k += s3
		}
		if k >= len(text) {
			emit(len(text))
			break
		}
		following, _ := utf8.DecodeRuneInString(text[k:])
		if unicode.IsLower(following) || (r == '.' && isAbbreviation(text[start:i])) {
			i = j
			continue
		}
		emit(j)
		i = j
	}
	if start < len(text) {
		emit(len(text))
	}
	return out
}

// isAbbreviation reports whether the text before a full stop ends with an abbreviation, an
// initial or a dotted acronym.
func isAbbreviation(before string) bool {
	fields := strings.Fields(before)
	if len(fields) == 0 {
		return false
	}
	last := strings.TrimLeft(fields[len(fields)-1], `("'[“‘«`)
	lower := strings.ToLower(last)
	if abbreviations[lower] {
		return true
	}
	if len(fields) >= 2 && lower == "al" && strings.EqualFold(fields[len(fields)-2], "et") {
		return true
	}
	// Dotted acronyms and abbreviations: "U.S", "e.g", "Ph.D".
	if strings.Contains(last, ".") {
		for _, part := range strings.Split(last, ".") {
			if utf8.RuneCountInString(part) > 2 {
				return false
			}
		}
		return true
	}
	return false
}

// followsLowerWord reports whether before ends with a word of at least three lower-case
// letters.
func followsLowerWord(before string) bool {
	n := 0
	for len(before) > 0 {
		r, size := utf8.DecodeLastRuneInString(before)
		if !unicode.IsLower(r) {
			break
		}
		n++
		before = before[:len(before)-size]
	}
	return n >= 3 && (before == "" || !unicode.IsLetter(lastRune(before)) && lastRune(before) != '.')
}

// nextIsLower reports whether s starts with a capital followed by a lower-case letter.
func nextIsLower(s string) bool {
	_, size := utf8.DecodeRuneInString(s)
	r, _ := utf8.DecodeRuneInString(s[size:])
	return unicode.IsLower(r)
}

func lastRune(s string) rune {
	r, _ := utf8.DecodeLastRuneInString(s)
	return r
}

// Words returns the words of s: runs separated by white space ("state-of-the-art" is one
// word).
func Words(s string) []string { return strings.Fields(s) }

// CountWords is how many words s counts against the word limit: its Words, except that
// Chinese, Japanese and Thai write a sentence without spaces, so their characters count two
// to a word (a run of 60 Han characters is 30 words, where Words sees one); see
// paper.CountWords.
func CountWords(s string) int { return paper.CountWords(s) }
