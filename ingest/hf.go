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
	// base is the offset in the input of dec's offset 0: a decoder made after an element
	// over the limit (see skip) starts there.
	base int64
}

func newHFParser(r *Reader) *hfParser {
	t := &lineTracker{r: r.br, line: 1}
	return &hfParser{r: r, lines: t, dec: json.NewDecoder(t)}
}

func (p *hfParser) offset() int64 { return p.base + p.dec.InputOffset() }

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
			line := p.lines.lineAt(p.offset())
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
	if err := p.dec.Decode(&raw); errors.Is(err, errTooLarge) {
		return paper.Abstract{}, p.skip()
	} else if err != nil {
		return paper.Abstract{}, p.fatal(err)
	}
	p.n++
	line := p.lines.lineAt(p.offset() - int64(len(raw)))
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
	n := p.lines.lineAt(p.offset())
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

// skip reads past the element being decoded, longer than MaxRecordBytes, keeping nothing, and
// reads on after it with a new decoder: json.Decoder cannot go on after its reader failed, and
// the whole array after one huge element was lost. It returns the element's *RecordError, or a
// fatal error when the input ends inside it.
func (p *hfParser) skip() error {
	p.n++
	p.r.guard.unlimit()
	start := p.offset()
	data, _ := io.ReadAll(p.dec.Buffered()) // the element as far as the decoder read it
	ws := len(data) - len(bytes.TrimLeft(data, " \t\r\n"))
	line, id := p.lines.lineAt(start+int64(ws)), sniffID(data)
	off := start // the offset of data[0]
	var v jsonSkip
	buf := make([]byte, 32<<10)
	for {
		if k, ok := v.scan(data); ok {
			data, off = data[k:], off+int64(k)
			break
		}
		off += int64(len(data))
		p.lines.lineAt(off)
		n, err := p.lines.Read(buf)
		if n == 0 && err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			p.n-- // fatal names the element being read
			return p.fatal(err)
		}
		data = buf[:n]
	}
	// The new decoder reads the rest as the rest of an array, after a '[' of its own.
	p.lines.lineAt(off)
	p.base = off - 1
	p.dec = json.NewDecoder(io.MultiReader(strings.NewReader("["), bytes.NewReader(bytes.Clone(data)), p.lines))
	if _, err := p.dec.Token(); err != nil {
		return p.fatal(err)
	}
	e := p.r.recordErr(line, id, invalidf("element is longer than the %d-byte limit: skipped, the rest of the array is read", p.r.opts.MaxRecordBytes))
	e.Record = p.n
	return e
}

// jsonSkip follows a JSON value, keeping nothing of it, to its end and the comma after it.
type jsonSkip struct {
	started, ended bool
	scalar         bool // a number or a literal, which ends at what follows it
	depth          int  // of objects and arrays
	str, esc       bool // in a string; after its backslash
}

// scan reads on in data, reporting where what follows the value and its comma starts, if it
// is in data.
func (v *jsonSkip) scan(data []byte) (int, bool) {
	for i, c := range data {
		switch {
		case v.ended:
			if c == ',' {
				return i + 1, true
			}
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				return i, true
			}
		case v.esc:
			v.esc = false
		case v.str && c == '\\':
			v.esc = true
		case v.str && c == '"':
			v.str = false
			v.ended = v.depth == 0
		case v.str:
		case !v.started && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
		case c == '"':
			v.started, v.str = true, true
		case c == '{' || c == '[':
			v.started = true
			v.depth++
		case c == '}' || c == ']':
			if v.scalar && v.depth == 0 {
				return i, true // a scalar element, then the array's end
			}
			v.depth--
			v.ended = v.depth <= 0
		case v.scalar && v.depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			v.ended = true
			if c == ',' {
				return i + 1, true
			}
		case !v.started:
			v.started, v.scalar = true, true
		}
	}
	return 0, false
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
