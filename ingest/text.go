package ingest

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// The plain-text format is a sequence of paragraphs separated by blank lines. A paper is a
// title paragraph immediately followed by an abstract paragraph. Which is which is decided by
// shape alone, so that page furniture copied along with the papers ("Subscribe", "Mar 19")
// cannot become a paper:
//
//   - An abstract has at least minAbstractWords words and reads as prose: it ends a sentence
//     somewhere (".", "!" or "?" before white space or the end, or another script's mark,
//     paper.SentenceMarks: "。", "؟", "।" …), or it is too long for a title (more than
//     maxTitleWords words, or more than maxTitleLines lines). Words are counted as
//     paper.CountWords counts them: Chinese, Japanese and Thai, written without spaces,
//     count two characters to a word.
//   - A title is any other paragraph of at most maxTitleLines lines and MaxTitleBytes bytes
//     (one line is the norm; a title wrapped over two or three lines is accepted).
//   - A title followed by an abstract is a paper; the paper's line is the title's.
//   - Before the first paper, short paragraphs (titles, or fewer than minAbstractWords words)
//     that no abstract follows are furniture and are skipped silently.
//   - After the first paper every paragraph must belong to a paper: a title with no abstract
//     after it, an abstract with no title before it, or a paragraph that is neither is a
//     *RecordError naming its line, and reading goes on. An abstract with no title is an
//     error before the first paper too: it is a lost paper, not furniture.
//   - A title followed by a paragraph too short for an abstract that still reads as one (at
//     least minShortAbstractWords words and a sentence end; arXiv keeps a one-sentence notice
//     as a withdrawn paper's abstract) is one *RecordError at the title's line saying the
//     abstract is short, before the first paper too: a lost paper, not furniture. Unless an
//     abstract follows that paragraph: then it was a title ending in "?" or "!" (and the
//     paragraph before it a title without an abstract, or furniture).
//   - A file where no paper was found, but short paragraphs were skipped, ends with one
//     *RecordError saying so, so that a wrong file or format does not pass silently.
//
// Titles are a line of a dozen words, abstracts a hundred words or more of sentences (in the
// sample: titles 5 to 16 words, abstracts 177 words or more), so the thresholds sit in a wide
// gap between the two. Pairing is strict (a title must be immediately followed by its
// abstract), so a missing title or abstract costs one error and never shifts the titles of
// the papers after it. A short abstract is refused rather than taken: minAbstractWords is what
// keeps furniture ("Get trending papers in your email inbox!") from pairing with a title into
// a paper that would be summarised and paid for.
const (
	minAbstractWords      = 20
	minShortAbstractWords = 8
	maxTitleWords         = 40
	maxTitleLines         = 3
)

// Paragraph kinds.
const (
	kindOther = iota
	kindTitle
	kindAbstract
)

// para is one paragraph of a text file.
type para struct {
	line   int    // first line, 1-based
	lines  int    // number of lines
	text   string // lines joined by "\n"; only the first MaxRecordBytes when over
	size   int    // full size in bytes
	words  int
	kind   int
	tooBig bool // size > MaxRecordBytes: text is cut
}

type textParser struct {
	r       *Reader
	lr      *lineReader
	buf     []byte
	pending *para // a title waiting for its abstract
	short   *para // a title whose abstract, pending, is short; unless pending is a title (see process)
	seen    bool  // a paper (or an abstract) has been read: furniture is over
	skipped int   // furniture paragraphs skipped
	// unended is the first paragraph skipped as furniture that has an abstract's words but ends
	// no sentence (read as a title), for the error of a file with no paper: nil if none.
	unended *para
	out     []result
	done    bool
}

// result is one thing the parser has to return: a paper or an error.
type result struct {
	a   paper.Abstract
	err error
}

func newTextParser(r *Reader) *textParser {
	return &textParser{r: r, lr: newLineReader(r.br, r.opts.MaxRecordBytes)}
}

func (p *textParser) offset() int64 { return p.lr.off }

func (p *textParser) next() (paper.Abstract, error) {
	for len(p.out) == 0 {
		if p.done {
			return paper.Abstract{}, io.EOF
		}
		x, err := p.readPara()
		if err == io.EOF {
			p.finish()
			p.done = true
			continue
		}
		if err != nil {
			return paper.Abstract{}, p.r.ioErr(p.lr.line+1, err)
		}
		p.process(x)
	}
	res := p.out[0]
	p.out = p.out[1:]
	return res.a, res.err
}

// readPara reads the next paragraph, skipping blank lines before it.
func (p *textParser) readPara() (*para, error) {
	var x *para
	p.buf = p.buf[:0]
	for {
		line, n, err := p.lr.next()
		if err == io.EOF {
			if x == nil {
				return nil, io.EOF
			}
			break
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(line)) == 0 && n == len(line) {
			if x == nil {
				continue
			}
			break
		}
		if x == nil {
			x = &para{line: p.lr.line}
		} else {
			x.size++ // the newline joining the lines
			p.appendText([]byte{'\n'})
		}
		x.lines++
		x.size += n
		p.appendText(line)
		if n > len(line) {
			// The line was cut by the line reader; so is the paragraph.
			p.buf = p.buf[:min(len(p.buf), p.r.opts.MaxRecordBytes)]
			x.tooBig = true
		}
	}
	x.text = string(p.buf)
	x.tooBig = x.tooBig || x.size > p.r.opts.MaxRecordBytes
	x.words = paper.CountWords(x.text)
	x.kind = p.classify(x)
	return x, nil
}

// appendText appends b to the paragraph buffer, keeping at most MaxRecordBytes.
func (p *textParser) appendText(b []byte) {
	if room := p.r.opts.MaxRecordBytes - len(p.buf); room > 0 {
		p.buf = append(p.buf, b[:min(room, len(b))]...)
	}
}

// classify says whether x is a title, an abstract or neither (see the rule above).
func (p *textParser) classify(x *para) int {
	if x.words >= minAbstractWords && (x.words > maxTitleWords || x.lines > maxTitleLines || endsSentence(x.text)) {
		return kindAbstract
	}
	if x.lines <= maxTitleLines && x.size <= p.r.opts.MaxTitleBytes {
		return kindTitle
	}
	return kindOther
}

// process pairs paragraphs into papers.
func (p *textParser) process(x *para) {
	if t, s := p.short, p.pending; t != nil {
		p.short, p.pending = nil, nil
		if x.kind == kindAbstract && s.kind == kindTitle {
			p.unpaired(t, s) // s was a title ending in a sentence mark: x is its abstract
			p.pending = s
		} else {
			p.shortAbstract(t, s)
		}
	}
	if p.pending != nil && x.kind == kindAbstract {
		title := p.pending
		p.pending = nil
		p.seen = true
		p.emitPaper(title, x)
		return
	}
	if p.pending != nil && x.kind != kindAbstract && x.words >= minShortAbstractWords && endsSentence(x.text) {
		// A short abstract, or a title: the next paragraph decides.
		p.short, p.pending = p.pending, x
		return
	}
	if p.pending != nil {
		p.unpaired(p.pending, x)
		p.pending = nil
	}
	switch x.kind {
	case kindTitle:
		p.pending = x
	case kindAbstract:
		p.seen = true
		p.emitErr(x.line, "", invalidf("abstract paragraph (%d words) has no title line before it", x.words))
	default:
		p.unpaired(x, nil)
	}
}

// unpaired handles a paragraph that is not part of a paper: furniture before the first paper,
// an error after it. next is the paragraph after x, if any.
func (p *textParser) unpaired(x, next *para) {
	if !p.seen && (x.kind == kindTitle || x.words < minAbstractWords) {
		p.skipped++
		if p.unended == nil && x.words >= minAbstractWords {
			p.unended = x
		}
		return
	}
	if x.kind != kindTitle {
		p.emitErr(x.line, "", invalidf("paragraph is neither a title nor an abstract (%d lines, %d words, %d bytes)", x.lines, x.words, x.size))
		return
	}
	title := paper.Fold(x.text)
	why := "the file ends after it"
	if next != nil {
		why = "the next paragraph, at line " + strconv.Itoa(next.line) + ", is not an abstract (" + strconv.Itoa(next.words) + " words)"
	}
	p.emitErr(x.line, paper.TitleID(title), invalidf("title %q has no abstract after it: %s", title, why))
}

// shortAbstract reports title t, whose abstract s has fewer than minAbstractWords words.
func (p *textParser) shortAbstract(t, s *para) {
	title := paper.Fold(t.text)
	p.emitErr(t.line, paper.TitleID(title), invalidf("the abstract of %q, at line %d, has %d words, fewer than %d", title, s.line, s.words, minAbstractWords))
}

// finish handles the end of the file.
func (p *textParser) finish() {
	if p.short != nil {
		p.shortAbstract(p.short, p.pending)
		p.short, p.pending = nil, nil
	}
	if p.pending != nil {
		p.unpaired(p.pending, nil)
		p.pending = nil
	}
	if !p.seen && p.skipped > 0 {
		why := ""
		if x := p.unended; x != nil {
			// Asked for 20 words alone, a user whose abstract had them could not see what was wrong.
			why = fmt.Sprintf("; the paragraph at line %d has %d words but ends no sentence, so it reads as a title: end the abstract with a full stop", x.line, x.words)
		}
		p.emitErr(1, "", invalidf("no papers found: %d short paragraphs and no abstract; a paper is a title line, a blank line and an abstract paragraph of at least %d words%s", p.skipped, minAbstractWords, why))
	}
}

func (p *textParser) emitPaper(title, abs *para) {
	f := fields{line: title.line, title: title.text, abstract: abs.text}
	if abs.tooBig {
		f.abstract, f.tooLong = "", p.r.opts.MaxRecordBytes
	}
	a, err := p.r.build(f)
	p.out = append(p.out, result{a: a, err: err})
}

func (p *textParser) emitErr(line int, id string, err error) {
	p.out = append(p.out, result{err: p.r.recordErr(line, id, err)})
}

// endsSentence reports whether s has a sentence end: '.', '!' or '?', perhaps followed by
// closing quotes or brackets, then white space or the end of s, or another script's mark
// anywhere (paper.SentenceMarks). "v0.1" and "e.g.," do not count.
func endsSentence(s string) bool {
	if strings.ContainsAny(s, paper.SentenceMarks) {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && c != '!' && c != '?' {
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == ')' || s[j] == ']' || s[j] == '"' || s[j] == '\'') {
			j++
		}
		if j == len(s) {
			return true
		}
		if r, _ := utf8.DecodeRuneInString(s[j:]); unicode.IsSpace(r) {
			return true
		}
	}
	return false
}
