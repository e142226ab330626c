package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// postedRecord is one record of a POST /api/papers body.
type postedRecord struct {
	index int
	line  int // for JSON lines; 0 otherwise
	raw   []byte
}

// splitRecords splits a POST body into records. A JSON body is one object, an array of
// objects, or {"papers": [...]}; it must be valid JSON as a whole. JSON lines (lines true)
// give one record per non-blank line, each judged on its own. A UTF-8 byte order mark at the
// start (what Windows tools write before a file's text) is skipped, as ingest skips it.
func splitRecords(body []byte, lines bool) ([]postedRecord, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	var out []postedRecord
	if lines {
		// Line by line, stopping past the limit: a body of short lines (a 4 MiB body holds two
		// million) split whole took a hundred times its size in memory before it was refused.
		for i, rest := 0, body; len(rest) > 0 && len(out) <= MaxRecordsPerPost; i++ {
			var l []byte
			l, rest, _ = bytes.Cut(rest, []byte("\n"))
			if l = bytes.TrimSpace(l); len(l) > 0 {
				out = append(out, postedRecord{index: len(out), line: i + 1, raw: l})
			}
		}
	} else {
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) == 0 {
			return nil, badRequest("the body is empty: send a JSON object, or an array of them")
		}
		var raws []json.RawMessage
		switch trimmed[0] {
		case '[':
			var err error
			if raws, err = decodeArray(trimmed, "the body"); err != nil {
				return nil, err
			}
		case '{':
			var wrapper struct {
				Papers json.RawMessage `json:"papers"`
			}
			if err := decodeOne(trimmed, &wrapper); err != nil {
				return nil, err
			}
			if wrapper.Papers == nil {
				raws = []json.RawMessage{trimmed} // one record
				break
			}
			// The wrapper: its papers must be a list ({"papers": 5} was taken for one record,
			// and rejected as "title is empty").
			w := bytes.TrimSpace(wrapper.Papers)
			if len(w) == 0 || w[0] != '[' {
				return nil, badRequest(fmt.Sprintf(`"papers" is %s: want an array of records, {"papers": [{"title": …, "abstract": …}, …]}`, jsonKind(w)))
			}
			var err error
			if raws, err = decodeArray(w, `"papers"`); err != nil {
				return nil, err
			}
		default:
			return nil, badRequest("the body is not a JSON object or array")
		}
		for i, raw := range raws {
			out = append(out, postedRecord{index: i, raw: raw})
		}
	}
	switch {
	case len(out) == 0:
		return nil, badRequest("the body holds no record")
	case len(out) > MaxRecordsPerPost:
		return nil, tooManyRecords()
	}
	return out, nil
}

// tooManyRecords is the answer to a body of more than MaxRecordsPerPost records. They are
// not counted: the body is read no further than the first record past the limit.
func tooManyRecords() error {
	return &httpError{status: http.StatusRequestEntityTooLarge,
		msg: fmt.Sprintf("the body holds more than %d records, the limit per request", MaxRecordsPerPost)}
}

// decodeArray decodes b, a JSON array and nothing after it, into its elements, and refuses it
// (tooManyRecords) at the first element past MaxRecordsPerPost, without reading on: decoded
// whole, an array of two million 1s (a 4 MiB body) took 300 MB. what names b in messages.
func decodeArray(b []byte, what string) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	syntax := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return badRequest(fmt.Sprintf("%s is not valid JSON: unexpected end of JSON input", what))
		}
		return notJSON(what, err)
	}
	if _, err := dec.Token(); err != nil { // the '[': b starts with it
		return nil, syntax(err)
	}
	var raws []json.RawMessage
	for dec.More() {
		if len(raws) == MaxRecordsPerPost {
			return nil, tooManyRecords()
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, syntax(err)
		}
		raws = append(raws, raw)
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return nil, syntax(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, syntax(err)
		}
		return nil, moreThanOneValue(what)
	}
	return raws, nil
}

// notJSON is the answer to a body whose JSON, what in messages, did not decode with err.
func notJSON(what string, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return badRequest(fmt.Sprintf("%s is not valid JSON (at byte %d): %v", what, se.Offset, err))
	}
	return badRequest(fmt.Sprintf("%s is not valid JSON: %v", what, err))
}

// moreThanOneValue is the answer to a body whose JSON, what in messages, goes on past its value.
func moreThanOneValue(what string) error {
	return badRequest(what + " holds more than one JSON value: send an array, or use Content-Type application/x-ndjson")
}

// jsonKind names the kind of the JSON value raw, for messages.
func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// decodeOne decodes exactly one JSON value from b into v.
func decodeOne(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return notJSON("the body", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return moreThanOneValue("the body")
	}
	return nil
}

// Limits of the built-in ParseRecord, the same as ingest's defaults.
const (
	maxTitleBytes    = 1 << 10
	maxAbstractBytes = 32 << 10
)

// ParseRecord is the built-in RecordParser: a JSON object with title and abstract (or
// summary), and optionally id, authors and categories (lists of strings), published (a date
// or RFC 3339 time, in the years 0000 to 9999 in UTC) and url. The id is made canonical (paper.CanonicalID), or derived from
// the title when absent (paper.TitleID), and refused if it holds a control or format
// character; white space runs in the text are folded and the text put in NFC (other control
// characters are kept, as ingest keeps them: whatever shows the text makes it safe); the title
// may have at most 1 KiB and the abstract 32 KiB, and the id, each author and each category at most what
// `paperpipe ingest` accepts (paper.CheckLengths: 512 bytes, 1 KiB, 256 bytes). The error says
// in plain words what is wrong; it wraps paper.ErrInvalid.
func ParseRecord(raw []byte) (paper.Abstract, error) {
	if !utf8.Valid(raw) {
		return paper.Abstract{}, invalid("the record is not valid UTF-8")
	}
	var rec struct {
		ID         json.RawMessage `json:"id"`
		Title      string          `json:"title"`
		Abstract   string          `json:"abstract"`
		Summary    string          `json:"summary"`
		Authors    []string        `json:"authors"`
		Categories []string        `json:"categories"`
		Published  string          `json:"published"`
		URL        string          `json:"url"`
	}
	if len(raw) == 0 || raw[0] != '{' {
		return paper.Abstract{}, invalid("the record is not a JSON object")
	}
	if err := json.Unmarshal(raw, &rec); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return paper.Abstract{}, invalid(fmt.Sprintf("%s must be %s", te.Field, kindName(te.Type.Kind().String())))
		}
		return paper.Abstract{}, invalid("the record is not valid JSON")
	}
	a := paper.Abstract{
		Title:      paper.Fold(rec.Title),
		Abstract:   paper.Fold(rec.Abstract),
		Authors:    paper.FoldAll(rec.Authors),
		Categories: paper.FoldAll(rec.Categories),
		URL:        strings.TrimSpace(rec.URL),
	}
	if a.Abstract == "" {
		a.Abstract = paper.Fold(rec.Summary)
	}
	rawID := bytes.TrimSpace(rec.ID)
	switch {
	case len(rawID) == 0 || string(rawID) == "null":
		if a.Title != "" {
			a.ID = paper.TitleID(a.Title)
		}
	case rawID[0] == '"' || rawID[0] == '-' || rawID[0] >= '0' && rawID[0] <= '9':
		id := string(rawID) // a number as written: 2401.01234 stays 2401.01234
		if rawID[0] == '"' {
			if err := json.Unmarshal(rawID, &id); err != nil {
				return a, invalid("id is not a valid JSON string")
			}
		}
		c, err := paper.CanonicalID(id)
		if err != nil {
			return a, invalid(strings.TrimSuffix(err.Error(), ": "+paper.ErrInvalid.Error()))
		}
		a.ID = c
	default:
		return a, invalid("id must be a string")
	}
	for _, f := range append([]string{a.Title, a.Abstract, a.URL}, append(a.Authors, a.Categories...)...) {
		if strings.ContainsRune(f, 0) {
			return a, invalid("the record contains a NUL character")
		}
	}
	switch {
	case a.Title == "":
		return a, invalid("title is empty")
	case len(a.Title) > maxTitleBytes:
		return a, invalid(fmt.Sprintf("title is %d bytes, limit %d", len(a.Title), maxTitleBytes))
	case a.Abstract == "":
		return a, invalid("abstract is empty")
	case len(a.Abstract) > maxAbstractBytes:
		return a, invalid(fmt.Sprintf("abstract is %d bytes, limit %d", len(a.Abstract), maxAbstractBytes))
	}
	if p := strings.TrimSpace(rec.Published); p != "" {
		t, err := parseSince(p)
		if err != nil {
			return a, invalid(fmt.Sprintf("published is %.40q, want a date (2025-01-31) or an RFC 3339 time", p))
		}
		a.Published = t.UTC()
	}
	if err := paper.CheckLengths(a); err != nil {
		return a, invalid(strings.TrimSuffix(err.Error(), ": "+paper.ErrInvalid.Error()))
	}
	return a, nil
}

func kindName(k string) string {
	switch k {
	case "slice":
		return "a list of strings"
	case "string":
		return "a string"
	}
	return "of another type"
}

// invalidError is a plain-words reason a record is rejected; it wraps paper.ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return paper.ErrInvalid }

func invalid(msg string) error { return &invalidError{msg: msg} }
