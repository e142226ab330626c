package ingest

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// arXiv's metadata — the OAI snapshot, the API's Atom feeds, and the Hugging Face daily papers
// taken from it — writes the accented letters of many titles and abstracts as TeX's accent
// commands: "Schr\"odinger", "Poincar\'e", "Erd\H{o}s", "\v{S}ilov", "{\o}", "Stra\ss e".
// Stored so, a keyword search for "Schrödinger" misses the paper (PostgreSQL reads
// "schr" and "oding"), the CLI and the web show the backslashes, and the offline models see two
// words where there is one. detex writes such letters as the letters they are; the rest of the
// TeX, the mathematics between dollar signs above all, is kept as it came, as a model reads it.

// texAccents are the combining marks of TeX's accent commands: the control symbols (\"o) and
// the one-letter control words (\v{s}, \c c).
var texAccents = map[string]rune{
	"'": '\u0301', "`": '\u0300', "^": '\u0302', "\"": '\u0308', "~": '\u0303', "=": '\u0304', ".": '\u0307',
	"u": '\u0306', "v": '\u030c', "H": '\u030b', "c": '\u0327', "k": '\u0328', "r": '\u030a', "d": '\u0323', "b": '\u0331',
}

// texLetters are the letters TeX writes as control words: \ss, {\o}, \aa, \l, and the dotless
// \i and \j that take an accent (\'\i).
var texLetters = map[string]string{
	"ss": "ß", "o": "ø", "O": "Ø", "aa": "å", "AA": "Å", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ",
	"l": "ł", "L": "Ł", "i": "ı", "j": "ȷ",
}

// texFonts are the commands that set their argument in another font (\emph{…}), and
// texDeclarations those that set the rest of their group in it ({\em …}): the words are the
// text, the font is not.
var (
	texFonts = map[string]bool{"emph": true, "textit": true, "textbf": true, "textsl": true, "textsc": true,
		"texttt": true, "textrm": true, "textsf": true, "textup": true, "textmd": true, "textnormal": true, "underline": true}
	texDeclarations = map[string]bool{"em": true, "it": true, "bf": true, "sl": true, "sc": true, "tt": true,
		"rm": true, "sf": true, "itshape": true, "bfseries": true, "scshape": true, "ttfamily": true, "upshape": true}
)

// braces finds the brace closing a group, for detex, in one pass over s made when it first
// asks: scanning from each brace in turn took the square of the length of an abstract of
// groups never closed ("{\em {\em …").
type braces struct {
	s      string
	closes map[int]int // the index of each "{" whose group is closed, to that of its "}"
}

// closing returns the index of the brace closing the group s[open] opens, or 0 when the
// group is not closed, holds mathematics (left as it came), or the brace is escaped ("\{" is
// a brace of the text).
func (b *braces) closing(open int) int {
	if b.closes == nil {
		b.closes = make(map[int]int)
		var stack []int
		for j := 0; j < len(b.s); j++ {
			switch b.s[j] {
			case '\\':
				j++ // \{ and \} are braces of the text
			case '$':
				stack = stack[:0]
			case '{':
				stack = append(stack, j)
			case '}':
				if len(stack) > 0 {
					b.closes[stack[len(stack)-1]] = j
					stack = stack[:len(stack)-1]
				}
			}
		}
	}
	return b.closes[open]
}

// mark adds i to m, making it.
func mark(m map[int]bool, i int) map[int]bool {
	if m == nil {
		m = make(map[int]bool)
	}
	m[i] = true
	return m
}

// detex returns s with TeX's accented and special letters outside mathematics written as
// letters, in NFC, the font commands around words taken out ({\em new}, \textit{new}) and the
// escaped \& \% \# \_ written as those characters; s itself when it holds none.
func detex(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	changed := false
	math := false         // between $…$ (or $$…$$), \(…\) or \[…\]
	var drop map[int]bool // the closing braces of the font commands taken out
	groups := braces{s: s}
	var url urlWord
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '}' && drop[i]:
			i++
			continue
		case c == '$':
			math = !math
		case c == '\\' && i+1 < len(s) && strings.IndexByte("()[]", s[i+1]) >= 0:
			math = s[i+1] == '(' || s[i+1] == '['
			b.WriteString(s[i : i+2])
			i += 2
			continue
		case c == '\\' && i+1 < len(s) && s[i+1] == '\\':
			b.WriteString(`\\`) // a line break: the backslash escapes neither a dollar nor an accent after it
			i += 2
			continue
		case c == '\\' && i+1 < len(s) && s[i+1] == '$':
			b.WriteString(`\$`) // a dollar sign, not mathematics
			i += 2
			continue
		case !math && (c == '{' || c == '\\') && url.in(s, i):
			// A URL's "\~user" is its path, not an accented letter.
		case !math && c == '{' && i+1 < len(s) && s[i+1] == '\\':
			// {\"o}, {\o}, {\v S}: the group holds just the letter.
			if l, n := texLetter(s[i+1:]); n > 0 && i+1+n < len(s) && s[i+1+n] == '}' {
				b.WriteString(l)
				i += n + 2
				changed = true
				continue
			}
			// {\em words}, {\bf words}: the words.
			if name, n := texCommand(s[i+1:]); texDeclarations[name] {
				if end := groups.closing(i); end > 0 {
					drop = mark(drop, end)
					i += 1 + n
					for i < len(s) && s[i] == ' ' {
						i++
					}
					changed = true
					continue
				}
			}
		case !math && c == '\\':
			if l, n := texLetter(s[i:]); n > 0 {
				b.WriteString(l)
				i += n
				changed = true
				continue
			}
			// \emph{words}, \textbf{words}: the words.
			if name, n := texCommand(s[i:]); texFonts[name] && i+n < len(s) && s[i+n] == '{' {
				if end := groups.closing(i + n); end > 0 {
					drop = mark(drop, end)
					i += n + 1
					changed = true
					continue
				}
			}
			// \& \% \# \_: the character.
			if i+1 < len(s) && strings.IndexByte("&%#_", s[i+1]) >= 0 {
				b.WriteByte(s[i+1])
				i += 2
				changed = true
				continue
			}
		}
		b.WriteByte(c)
		i++
	}
	if !changed {
		return s
	}
	return norm.NFC.String(b.String())
}

// texLetter reads the accent command or letter command s starts with ("\"o", "\v{S}",
// "\'{\i}", "\ss "), and returns the letter it writes (decomposed) and the bytes it takes,
// or 0 when s starts with no such command. The spaces after a control word end it, as in TeX,
// and are taken with it ("\ss e"), as is an empty group ("\o{}").
func texLetter(s string) (string, int) {
	name, n := texCommand(s)
	if n == 0 {
		return "", 0
	}
	word := isASCIILetter(name[0])
	if mark, ok := texAccents[name]; ok {
		j := n
		if word {
			if j < len(s) && s[j] != ' ' && s[j] != '{' {
				return "", 0 // \vec, \cite: another command (texCommand read the whole word)
			}
			for j < len(s) && s[j] == ' ' {
				j++
			}
		}
		base, m := texBase(s[j:])
		if m == 0 {
			return "", 0
		}
		return base + string(mark), j + m
	}
	if l, ok := texLetters[name]; ok {
		j := n
		switch {
		case strings.HasPrefix(s[j:], "{}"):
			j += 2
		default:
			for j < len(s) && s[j] == ' ' {
				j++
			}
		}
		return l, j
	}
	return "", 0
}

// texCommand returns the name of the TeX command s starts with: a control word's letters or
// a control symbol's character, and the bytes it takes with its backslash.
func texCommand(s string) (string, int) {
	if len(s) < 2 || s[0] != '\\' {
		return "", 0
	}
	if !isASCIILetter(s[1]) {
		return s[1:2], 2
	}
	j := 1
	for j < len(s) && isASCIILetter(s[j]) {
		j++
	}
	return s[1:j], j
}

// texBase reads the letter an accent goes on: a letter ("o"), a group holding one ("{o}",
// "{\i}"), or a dotless \i or \j; and the bytes it takes.
func texBase(s string) (string, int) {
	if strings.HasPrefix(s, "{") {
		base, n := texBase(s[1:])
		if n == 0 || n+1 >= len(s) || s[n+1] != '}' {
			return "", 0
		}
		return base, n + 2
	}
	if strings.HasPrefix(s, `\i`) || strings.HasPrefix(s, `\j`) {
		if len(s) > 2 && isASCIILetter(s[2]) {
			return "", 0 // \int, \it
		}
		return s[1:2], 2 // the accent's own dot-free letter: í, not ı́
	}
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || !isLetter(r) {
		return "", 0
	}
	return s[:n], n
}

// urlWord is the run of text without white space detex is in, read once for all the braces
// and backslashes in it: reading back to the white space at each took the square of the
// length of an abstract without spaces.
type urlWord struct {
	read       bool
	start, end int  // the run: s[start:end], white space (or the text's ends) on either side
	sep        int  // the index of its first "://", or -1
	www        bool // it starts with "www."
}

// in reports whether s[i] is part of a URL: the run of text before it, up to white space,
// holds "://" or starts with "www.".
func (u *urlWord) in(s string, i int) bool {
	if !u.read || i < u.start || i > u.end {
		u.read = true
		u.start = strings.LastIndexAny(s[:i], " \t\n") + 1
		u.end = len(s)
		if e := strings.IndexAny(s[i:], " \t\n"); e >= 0 {
			u.end = i + e
		}
		word := s[u.start:u.end]
		u.sep = strings.Index(word, "://")
		if u.sep >= 0 {
			u.sep += u.start
		}
		u.www = strings.HasPrefix(word, "www.")
	}
	return u.sep >= 0 && u.sep+3 <= i || u.www && i-u.start >= 4
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func isLetter(r rune) bool { return r < utf8.RuneSelf && isASCIILetter(byte(r)) }
