package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// FuzzSplitRecords: a POST /api/papers body of any bytes, as JSON or as JSON lines, is split
// into records or refused with a 400 or 413 saying why, never a 500 or a panic; a JSON body's
// records are each one JSON value, a JSON lines body's each one non-blank line, numbered as it
// is; a record, posted alone, in an array or in {"papers": [...]}, is the same record; and the
// built-in ParseRecord gives a paper with a canonical id, folded text of valid UTF-8 and no
// NUL, or an error wrapping paper.ErrInvalid.
func FuzzSplitRecords(f *testing.F) {
	for _, s := range []string{
		`{"id":"2401.00001","title":"A title","abstract":"An abstract."}`,
		`[{"title":"A","abstract":"B"},{"id":2401.01230,"title":"C","summary":"D","authors":["E"]}]`,
		`{"papers":[{"title":"A","abstract":"B","published":"2025-01-31T08:00:00 02:00"}]}`,
		"\xef\xbb\xbf{\"title\":\"A\",\"abstract\":\"B\"}\n\n{\"title\":\"C\"}\r\n",
		`{"papers":5}`, `[1,2] 3`, `{"a":1}{"b":2}`, "", `{"title":"\u0000","abstract":"x","id":null}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, lines bool) {
		recs, err := splitRecords(body, lines)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) || he.status != 400 && he.status != 413 {
				t.Fatalf("splitRecords(%q, %v): %v; want a 400 or 413", body, lines, err)
			}
			return
		}
		if len(recs) == 0 || len(recs) > MaxRecordsPerPost {
			t.Fatalf("splitRecords(%q, %v): %d records", body, lines, len(recs))
		}
		bodyLines := strings.Split(string(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))), "\n")
		for i, r := range recs {
			switch {
			case r.index != i:
				t.Errorf("record %d has index %d", i, r.index)
			case lines && (r.line < 1 || r.line > len(bodyLines) || strings.TrimSpace(bodyLines[r.line-1]) != string(r.raw)):
				t.Errorf("record %d, line %d: %q is not that line of the body %q", i, r.line, r.raw, body)
			case !lines && !json.Valid(r.raw):
				t.Errorf("record %d: %q is not one JSON value", i, r.raw)
			}
			checkParsed(t, r.raw)
		}
		if !lines && len(recs) == 1 && len(bytes.TrimSpace(recs[0].raw)) > 0 && recs[0].raw[0] == '{' {
			raw := recs[0].raw
			for _, wrapped := range []string{"[" + string(raw) + "]", `{"papers":[` + string(raw) + "]}"} {
				got, err := splitRecords([]byte(wrapped), false)
				if err != nil || len(got) != 1 || !bytes.Equal(bytes.TrimSpace(got[0].raw), bytes.TrimSpace(raw)) {
					t.Errorf("record %q alone is one record; wrapped as %q: %v, %v", raw, wrapped, got, err)
				}
			}
		}
	})
}

// checkParsed checks what the built-in ParseRecord makes of raw.
func checkParsed(t *testing.T, raw []byte) {
	t.Helper()
	a, err := ParseRecord(raw)
	if err != nil {
		if !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("ParseRecord(%q): %v, want an error wrapping paper.ErrInvalid", raw, err)
		}
		return
	}
	if id, cerr := paper.CanonicalID(a.ID); cerr != nil || id != a.ID {
		t.Errorf("ParseRecord(%q): id %q is not canonical (%q, %v)", raw, a.ID, id, cerr)
	}
	for _, s := range append([]string{a.Title, a.Abstract}, append(a.Authors, a.Categories...)...) {
		if s == "" || !utf8.ValidString(s) || strings.ContainsRune(s, 0) || paper.Fold(s) != s {
			t.Errorf("ParseRecord(%q): %q is empty, not UTF-8, holds a NUL or is not folded", raw, s)
		}
	}
}
