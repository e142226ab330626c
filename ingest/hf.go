package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// hfParser reads Hugging Face daily-papers JSON: one array whose elements are decoded one at a
// time with json.Decoder, so the array is never held whole.
type hfParser struct {
	r       *Reader
	lines   *lineTracker
	dec     *json.Decoder
	started bool
	done    bool
	n       int // elements read
}

func newHFParser(r *Reader) *hfParser {
	t := &lineTracker{r: r.br, line: 1}
	return &hfParser{r: r, lines: t, dec: json.NewDecoder(t)}
}

func (p *hfParser) offset() int64 { return p.dec.InputOffset() }

// hfPaper is the "paper" object of an element; the element's own title, summary and
// publishedAt are used when it has no "paper".
type hfPaper struct {
	ID          json.RawMessage `json:"id"`
	Title       string          `json:"title"`
	Summary     string          `json:"summary"`
	Abstract    string          `json:"abstract"`
	Authors     json.RawMessage `json:"authors"`
	PublishedAt string          `json:"publishedAt"`
}

type hfRecord struct {
	Paper *hfPaper `json:"paper"`
	hfPaper
}

func (p *hfParser) next() (paper.Abstract, error) {
	if p.done {
		return paper.Abstract{}, io.EOF
	}
	p.r.guard.limit(p.r.opts.MaxRecordBytes)
	if !p.started {
		p.started = true
		tok, err := p.dec.Token()
		if err == io.EOF {
			p.done = true
			return paper.Abstract{}, io.EOF
		}
		if err != nil {
			return paper.Abstract{}, p.fatal(err)
		}
		if tok != json.Delim('[') {
			// The line of the token read (a JSON token holds no newline), not of what follows it
			// (line).
			line := p.lines.lineAt(p.dec.InputOffset())
			return paper.Abstract{}, &stopError{msg: fmt.Sprintf("%s:%d: Hugging Face daily papers JSON is an array; this starts with %v", p.r.name, line, tok), err: paper.ErrInvalid}
		}
	}
	if !p.dec.More() {
		tok, err := p.dec.Token()
		if err != nil {
			return paper.Abstract{}, p.fatal(err)
		}
		if tok != json.Delim(']') {
			return paper.Abstract{}, p.fatal(fmt.Errorf("unexpected %v", tok))
		}
		p.done = true
		return paper.Abstract{}, io.EOF
	}
	var raw json.RawMessage
	if err := p.dec.Decode(&raw); err != nil {
		return paper.Abstract{}, p.fatal(err)
	}
	p.n++
	line := p.lines.lineAt(p.dec.InputOffset() - int64(len(raw)))
	return p.record(line, raw)
}

// record validates one element.
func (p *hfParser) record(line int, raw json.RawMessage) (paper.Abstract, error) {
	fail := func(id string, err error) (paper.Abstract, error) {
		e := p.r.recordErr(line, id, err)
		e.Record = p.n
		return paper.Abstract{}, e
	}
	if raw[0] != '{' {
		return fail("", invalidf("element is not a JSON object (it starts with %q)", firstRune(raw)))
	}
	if !utf8.Valid(raw) {
		return fail(sniffID(raw), badUTF8(raw))
	}
	var rec hfRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fail(sniffID(raw), jsonProblem(raw, err))
	}
	pp := rec.Paper
	if pp == nil {
		pp = &rec.hfPaper
	}
	f := fields{line: line, title: pp.Title, abstract: pp.Summary, tex: true}
	if f.title == "" {
		f.title = rec.Title
	}
	for _, s := range []string{pp.Abstract, rec.Summary, rec.Abstract} {
		if f.abstract == "" {
			f.abstract = s
		}
	}
	if len(pp.ID) == 0 {
		pp.ID = rec.ID
	}
	date := pp.PublishedAt
	if date == "" {
		date = rec.PublishedAt
	}
	var errs [3]error
	f.rawID, errs[0] = stringOrNumber("id", pp.ID)
	f.authors, errs[1] = hfAuthors(pp.Authors)
	f.published, errs[2] = parseDate("publishedAt", date)
	a, err := p.r.buildOrFail(f, errs[:])
	if err != nil {
		var re *RecordError
		if errors.As(err, &re) {
			re.Record = p.n
		}
		return a, err
	}
	if id, ok := strings.CutPrefix(a.ID, "arxiv:"); ok {
		a.URL = "https://arxiv.org/abs/" + id
	}
	return a, nil
}

// hfAuthors decodes authors given as [{"name": …}], ["…"] or "A, B and C".
func hfAuthors(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return stringList("authors", raw, splitAuthors)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invalidf("authors must be an array of names or of objects with a name")
	}
	var out []string
	for _, it := range items {
		var s string
		var o struct {
			Name string `json:"name"`
		}
		switch {
		case json.Unmarshal(it, &s) == nil:
			out = append(out, s)
		case json.Unmarshal(it, &o) == nil:
			out = append(out, o.Name)
		default:
			return nil, invalidf("authors must be an array of names or of objects with a name")
		}
	}
	return out, nil
}

// line is the line of the next token: the decoder's offset, then any white space.
func (p *hfParser) line() int {
	n := p.lines.lineAt(p.dec.InputOffset())
	for _, c := range p.lines.pending {
		if c == '\n' {
			n++
		} else if c != ' ' && c != '\t' && c != '\r' {
			break
		}
	}
	return n
}

// fatal turns a decoding error into an error that ends reading: JSON cannot be
// resynchronised after a syntax error.
func (p *hfParser) fatal(err error) error {
	line := p.line()
	hint := "" // before the first element, the input may not be JSON at all
	if p.n == 0 {
		hint = p.r.detectedHint("Hugging Face JSON")
	}
	var se *json.SyntaxError
	switch {
	case errors.Is(err, errTooLarge):
		return &stopError{msg: fmt.Sprintf("%s:%d: record %d is longer than the %d-byte limit; reading stops%s", p.r.name, line, p.n+1, p.r.opts.MaxRecordBytes, hint), err: err}
	case errors.Is(err, errGzipCut), errors.Is(err, errDownloadCut):
		return p.r.ioErr(line, err) // the file was cut short, not its JSON
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return &stopError{msg: fmt.Sprintf("%s:%d: truncated JSON: the input ends inside record %d or before the closing ']'%s", p.r.name, line, p.n+1, hint), err: io.ErrUnexpectedEOF}
	case errors.As(err, &se):
		return &stopError{msg: fmt.Sprintf("%s:%d: malformed JSON after record %d, reading stops: %v%s", p.r.name, line, p.n, se, hint), err: err}
	}
	return p.r.ioErr(line, err)
}

// lineTracker passes reads through and counts the newlines before a given offset, keeping
// only the bytes read but not yet counted (the decoder's read-ahead).
type lineTracker struct {
	r       io.Reader
	pending []byte // bytes from base on
	base    int64  // offset of pending[0]
	line    int    // line number at base
}

func (t *lineTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.pending = append(t.pending, p[:n]...)
	return n, err
}

// lineAt returns the 1-based line of offset off; offsets must not go backwards.
func (t *lineTracker) lineAt(off int64) int {
	k := int(off - t.base)
	if k <= 0 {
		return t.line
	}
	k = min(k, len(t.pending))
	t.line += bytes.Count(t.pending[:k], []byte{'\n'})
	t.pending = t.pending[:copy(t.pending, t.pending[k:])]
	t.base += int64(k)
	return t.line
}
