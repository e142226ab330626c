package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// fields is a record as a format parser found it, before validation.
type fields struct {
	line       int
	rawID      string // empty: the source gives none, the id is paper.TitleID(title)
	title      string
	abstract   string
	authors    []string
	categories []string
	published  time.Time
	url        string
	// tooLong, when > 0, is the size of an abstract too long to have been kept.
	tooLong int
	// tex: the title and abstract are arXiv's metadata, whose accented letters may be TeX's
	// accent commands (detex).
	tex bool
}

// shortID is id as a *RecordError shows it: cut to 64 bytes, with "…" when cut.
func shortID(id string) string {
	if len(id) <= 64 {
		return id
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return id[:cut] + "…"
}

// build validates f and makes the Abstract, or a *RecordError saying what is wrong.
func (r *Reader) build(f fields) (paper.Abstract, error) {
	id := strings.TrimSpace(f.rawID)
	fail := func(err error) (paper.Abstract, error) {
		return paper.Abstract{}, r.recordErr(f.line, shortID(id), err)
	}
	texts := []struct{ name, v string }{{"id", f.rawID}, {"title", f.title}, {"abstract", f.abstract}, {"url", f.url}}
	for _, a := range f.authors {
		texts = append(texts, struct{ name, v string }{"an author", a})
	}
	for _, c := range f.categories {
		texts = append(texts, struct{ name, v string }{"a category", c})
	}
	for _, s := range texts {
		// PostgreSQL's text holds neither; the store would refuse the paper after it was queued,
		// where no file and line are known any more.
		var bad error
		switch {
		case !utf8.ValidString(s.v):
			bad = withLatin1Hint(invalidf("%s is not valid UTF-8 (byte %d)", s.name, invalidUTF8At([]byte(s.v))+1), []byte(s.v))
		case strings.IndexByte(s.v, 0) >= 0:
			bad = invalidf("%s contains a NUL byte (byte %d)", s.name, strings.IndexByte(s.v, 0)+1)
		}
		if bad != nil {
			// Named as every other message of the record names it: by its canonical id, or
			// its title's (checked before the other fields) when it has none.
			switch c, err := paper.CanonicalID(id); {
			case s.name == "id":
				id = "" // not printable as it is
			case id != "" && err == nil:
				id = c
			case id == "" && s.name != "title" && paper.Fold(f.title) != "":
				id = paper.TitleID(paper.Fold(f.title))
			}
			return fail(bad)
		}
	}
	title := paper.Fold(f.title)
	if id != "" {
		c, err := paper.CanonicalID(id)
		if err != nil {
			if strings.ContainsFunc(id, paper.IsHidden) {
				id = "" // not printable as it is; the message quotes it
			}
			return fail(invalidf("%s", strings.TrimSuffix(err.Error(), ": "+paper.ErrInvalid.Error())))
		}
		id = c
	} else if title != "" {
		id = paper.TitleID(title)
	}
	if title == "" {
		return fail(invalidf("title is empty"))
	}
	if len(title) > r.opts.MaxTitleBytes {
		return fail(invalidf("title is %d bytes, limit %d", len(title), r.opts.MaxTitleBytes))
	}
	if f.tooLong > 0 {
		return fail(invalidf("abstract is more than %d bytes, limit %d", f.tooLong, r.opts.MaxAbstractBytes))
	}
	abstract := paper.Fold(f.abstract)
	if abstract == "" {
		return fail(invalidf("abstract is empty"))
	}
	if len(abstract) > r.opts.MaxAbstractBytes {
		return fail(invalidf("abstract is %d bytes, limit %d", len(abstract), r.opts.MaxAbstractBytes))
	}
	a := paper.Abstract{
		ID:         id,
		Title:      title,
		Abstract:   abstract,
		Authors:    paper.FoldAll(f.authors),
		Categories: paper.FoldAll(f.categories),
		Published:  f.published,
		URL:        strings.TrimSpace(f.url),
		Source:     r.location(f.line),
	}
	// The text as it is read, letters for PDF ligatures and, from arXiv, for TeX. The id a
	// title gave is kept; the text as an earlier release stored it is named, so that the store
	// keeps the TL;DR and vector it has for it (paper.Abstract.LegacyHash).
	if t, ab := plainText(a.Title, f.tex), plainText(a.Abstract, f.tex); t != a.Title || ab != a.Abstract {
		// Nothing but a font command ({\em }) leaves nothing, which the store refuses.
		switch {
		case t == "":
			return fail(invalidf("title is empty"))
		case ab == "":
			return fail(invalidf("abstract is empty"))
		}
		legacy := a.ContentHash()
		a.Title, a.Abstract = t, ab
		a.LegacyHash = legacy
	}
	// The limits on the id, authors and categories are the web's record parser's too.
	if err := paper.CheckLengths(a); err != nil {
		return fail(invalidf("%s", strings.TrimSuffix(err.Error(), ": "+paper.ErrInvalid.Error())))
	}
	return a, nil
}

// plainText is s, folded text, with the Latin ligatures of PDF text as letters (unligature)
// and, when tex, arXiv's TeX letters and font commands as text (detex), folded again when they
// changed it: a font command around a space ("\textbf{ Results:}") leaves two, or one at an end.
func plainText(s string, tex bool) string {
	t := unligature(s)
	if tex {
		t = detex(t)
	}
	if t != s {
		t = paper.Fold(t)
	}
	return t
}

// ligatures are Unicode's Latin compatibility ligatures (U+FB00–U+FB06), which text extracted
// from a PDF holds where the font drew one glyph for two or three letters (pdftotext,
// pdfplumber, PyMuPDF: "eﬃcient", "ﬁne-tuning"), and their letters, as NFKC writes them.
var ligatures = strings.NewReplacer("ﬀ", "ff", "ﬁ", "fi", "ﬂ", "fl", "ﬃ", "ffi", "ﬄ", "ffl", "ﬅ", "st", "ﬆ", "st")

// unligature returns s with its Latin ligatures written as their letters, which keyword search
// reads as the word ("eﬃcient" was not "efficient"); s itself when it holds none.
func unligature(s string) string {
	if !strings.Contains(s, "\xef\xac") { // the UTF-8 of U+FB00–U+FB3F starts so
		return s
	}
	return ligatures.Replace(s)
}

// splitAuthors splits an author list given as one string: "A, B and C", "A, B, and C".
func splitAuthors(s string) []string {
	s = paper.Fold(s)
	var out []string
	for _, part := range strings.Split(s, ",") {
		for _, name := range strings.Split(part, " and ") {
			name = strings.TrimSpace(name)
			name = strings.TrimPrefix(name, "and ")
			if name != "" && name != "and" {
				out = append(out, name)
			}
		}
	}
	return out
}

// dateLayouts are the forms accepted for a "published" date.
var dateLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"}

// parseDate parses a published date, read from the input's field (named as the input spells
// it, so that an error points at what is in the file); empty is the zero time.
func parseDate(field, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, invalidf("%s %q is not an RFC 3339 time or a YYYY-MM-DD date", field, s)
}

// invalidUTF8At returns the index of the first byte of b that is not valid UTF-8, or -1.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// badUTF8 says where in the JSON object raw the first invalid UTF-8 byte is: "title is not
// valid UTF-8 (byte 4)", naming nested fields with dots ("paper.summary") and counting the
// byte within the field's text, as a field checked after decoding is (see build); within the
// record when no field holds it.
func badUTF8(raw []byte) error {
	at := invalidUTF8At(raw)
	field, in := fieldAt(raw, at, "")
	if field == "" {
		return withLatin1Hint(invalidf("record is not valid UTF-8 (byte %d)", at+1), raw)
	}
	return withLatin1Hint(invalidf("%s is not valid UTF-8 (byte %d)", field, in+1), raw)
}

// withLatin1Hint gives err, a message about the text b that is not UTF-8, the advice for a
// file of Latin-1 or Windows-1252 text when more of b's bytes beyond ASCII are not UTF-8 than
// are: such a file, whose start passed unpack's look, has its records with such bytes refused
// one by one. A Reader of one record (Options.OneRecord) leaves the advice out (see recordErr).
func withLatin1Hint(err *invalidError, b []byte) error {
	if st := textStats(b); st.bad > st.multi && st.ctrl == 0 {
		err.hint = "; if the file is Latin-1 or Windows-1252 text, convert it with `iconv -f WINDOWS-1252 -t UTF-8`"
	}
	return err
}

// fieldAt names the field of the JSON object raw whose key or value holds byte pos, or "", and
// gives pos's index within that key's or string value's decoded text (within the value's JSON
// when it is not a string).
func fieldAt(raw []byte, pos int, prefix string) (string, int) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", 0
	}
	for dec.More() {
		start := int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return "", 0
		}
		key, _ := tok.(string)
		if end := int(dec.InputOffset()); pos < end {
			return "a field name", within(raw[start:end], pos-start)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", 0
		}
		end := int(dec.InputOffset())
		if pos < end {
			at := pos - (end - len(v))
			if len(v) > 0 && v[0] == '{' {
				if sub, in := fieldAt(v, at, prefix+key+"."); sub != "" {
					return sub, in
				}
			}
			return prefix + key, within(v, at)
		}
	}
	return "", 0
}

// within is the index in the decoded text of the JSON string s (white space, a separator and
// the quotes around it included) of its byte at: the length of what the text before it decodes
// to. It is at when s holds no string before it.
func within(s []byte, at int) int {
	q := bytes.IndexByte(s, '"')
	if q < 0 || q >= at {
		return at
	}
	var before string
	if err := json.Unmarshal(append(append([]byte{}, s[q:at]...), '"'), &before); err != nil {
		return at - q - 1
	}
	return len(before)
}

// jsonProblem turns a JSON decoding error for one record into plain words.
func jsonProblem(raw []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return invalidf("record is a JSON %s, want an object", te.Value)
		}
		return invalidf("%s is a JSON %s, want %s", field, te.Value, jsonKind(te.Type.Kind().String()))
	case errors.As(err, &se):
		// The decoder tells a value cut short (io.ErrUnexpectedEOF) from other syntax errors.
		var v json.RawMessage
		if derr := json.NewDecoder(bytes.NewReader(raw)).Decode(&v); errors.Is(derr, io.ErrUnexpectedEOF) {
			return invalidf("truncated JSON: the record ends before its object is closed")
		}
		return invalidf("malformed JSON at byte %d: %v", se.Offset, se)
	}
	return invalidf("malformed JSON: %v", err)
}

// jsonKind names a Go kind as a JSON type.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "a number"
}

// stringOrNumber decodes a JSON string or number (an id given as 1234) into a string.
func stringOrNumber(field string, raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", jsonProblem(raw, err)
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", invalidf("%s must be a string or a number", field)
	}
	return n.String(), nil
}

// stringList decodes a JSON array of strings, or one string split by split.
func stringList(field string, raw json.RawMessage, split func(string) []string) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, jsonProblem(raw, err)
		}
		return split(s), nil
	case '[':
		var ss []string
		if err := json.Unmarshal(raw, &ss); err == nil {
			return ss, nil
		}
	}
	return nil, invalidf("%s must be an array of strings or a string", field)
}
