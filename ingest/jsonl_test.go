package ingest

import (
	"bytes"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

func TestJSONLFixture(t *testing.T) {
	t.Parallel()
	papers, errs, _ := readFixture(t, "good.jsonl", JSONL)
	for _, e := range errs {
		t.Errorf("unexpected record error: %v", e)
	}
	want := []paper.Abstract{
		{
			ID: "arxiv:2401.01234", Title: "Sparse Routing for Experts", Abstract: "We study routing. It works.",
			Authors: []string{"Ada Lovelace", "Alan Turing"}, Categories: []string{"cs.LG", "cs.CL"},
			Published: time.Date(2024, 1, 2, 18, 59, 59, 0, time.UTC), URL: "https://arxiv.org/abs/2401.01234",
			Source: "good.jsonl:1",
		},
		{
			ID: paper.TitleID("A Paper Without an Id"), Title: "A Paper Without an Id", Abstract: "Its id is made from the title.",
			Authors: []string{"A. One", "B. Two", "C. Three"}, Categories: []string{"cs.AI", "stat.ML"},
			Published: time.Date(2024, 2, 3, 0, 0, 0, 0, time.UTC), Source: "good.jsonl:3",
		},
		{
			ID: "doi:10.1000/xyz.9", Title: "A DOI Paper", Abstract: "Given as summary, not abstract.",
			Authors: []string{"Solo Author"}, Source: "good.jsonl:5",
		},
		{ID: "id:42", Title: "Numbered", Abstract: "Lab id given as a number.", Source: "good.jsonl:6"},
	}
	if !reflect.DeepEqual(papers, want) {
		t.Errorf("papers:\n got %+v\nwant %+v", papers, want)
	}
}

func TestJSONLBadRecords(t *testing.T) {
	t.Parallel()
	long := `{"title":"` + strings.Repeat("t", 1100) + `","abstract":"a"}`
	for _, tc := range []struct {
		name, line, want string
	}{
		{"truncated", `{"id":"2401.00002","title":"T","abstract":"cut`, "f:1: arxiv:2401.00002: truncated JSON: the record ends before its object is closed"},
		{"malformed", `{"id":"x",,"title":"T"}`, "f:1: id:x: malformed JSON at byte 11: invalid character ',' looking for beginning of object key string"},
		{"trailing text", `{"title":"T","abstract":"A"} extra`, "f:1: malformed JSON at byte 30: invalid character 'e' after top-level value"},
		{"not an object", `["title","abstract"]`, `f:1: line is not a JSON object (it starts with "[")`},
		{"empty title", `{"id":"2401.00001","title":"","abstract":"A"}`, "f:1: arxiv:2401.00001: title is empty"},
		{"blank title", `{"title":" \n\t ","abstract":"A"}`, "f:1: title is empty"},
		{"missing abstract", `{"id":"2401.00001","title":"T"}`, "f:1: arxiv:2401.00001: abstract is empty"},
		{"blank abstract", `{"title":"T","abstract":"\n  \n"}`, "f:1: " + paper.TitleID("T") + ": abstract is empty"},
		{"title too long", long, "f:1: " + paper.TitleID(strings.Repeat("t", 1100)) + ": title is 1100 bytes, limit 1024"},
		{"bad arXiv id", `{"id":"arXiv:nope","title":"T","abstract":"A"}`, `f:1: arXiv:nope: malformed arXiv id "arXiv:nope"`},
		{"title of the wrong type", `{"title":5,"abstract":"A"}`, "f:1: title is a JSON number, want a string"},
		{"authors of the wrong type", `{"title":"T","abstract":"A","authors":{"a":1}}`, "f:1: " + paper.TitleID("T") + ": authors must be an array of strings or a string"},
		{"bad date", `{"title":"T","abstract":"A","published":"yesterday"}`, "f:1: " + paper.TitleID("T") + `: published "yesterday" is not an RFC 3339 time or a YYYY-MM-DD date`},
		// JSON's times (the queue's messages) hold the years 0 to 9999 in UTC: a time past them
		// could not be queued, and its publishing failed as if the queue were down.
		{"date past the year 9999 in UTC", `{"title":"T","abstract":"A","published":"9999-12-31T23:59:59-14:00"}`, "f:1: " + paper.TitleID("T") + ": published is 10000-01-01T13:59:59Z (UTC), outside the years 0000 to 9999"},
		{"date before the year 0 in UTC", `{"title":"T","abstract":"A","published":"0000-01-01T00:00:00+01:00"}`, "f:1: " + paper.TitleID("T") + ": published is -0001-12-31T23:00:00Z (UTC), outside the years 0000 to 9999"},
		// The byte is counted in the field's text, as for a field checked after decoding.
		{"invalid UTF-8 in abstract", "{\"title\":\"T\",\"abstract\":\"caf\xe9\"}", "f:1: abstract is not valid UTF-8 (byte 4)" + wantLatin1Hint},
		{"invalid UTF-8 after escapes", "{\"title\":\"T\", \"abstract\" : \"a\\\"\\u00e9\\n\xe9\"}", "f:1: abstract is not valid UTF-8 (byte 6)" + wantLatin1Hint},
		{"invalid UTF-8 in a key", "{\"ti\xfftle\":\"T\",\"abstract\":\"A\"}", "f:1: a field name is not valid UTF-8 (byte 3)" + wantLatin1Hint},
		{"NUL in abstract", `{"id":"2401.00002","title":"T","abstract":"A\u0000B"}`, "f:1: arxiv:2401.00002: abstract contains a NUL byte (byte 2)"},
		{"NUL in title", `{"title":"Bad\u0000title","abstract":"A"}`, "f:1: title contains a NUL byte (byte 4)"},
		{"NUL in the abstract of a paper without an id", `{"title":"T","abstract":"A\u0000B"}`, "f:1: " + paper.TitleID("T") + ": abstract contains a NUL byte (byte 2)"},
		{"NUL in an author", `{"id":"2401.00003","title":"T","abstract":"A","authors":["X\u0000"]}`, "f:1: arxiv:2401.00003: an author contains a NUL byte (byte 2)"},
		{"NUL in the url", `{"id":"2401.00004","title":"T","abstract":"A","url":"https://x/\u0000"}`, "f:1: arxiv:2401.00004: url contains a NUL byte (byte 11)"},
		// The store's index takes no id or category over 2,704 bytes; ingest's limits are far
		// below, with the id cut short in the message.
		{"id too long", `{"id":"` + strings.Repeat("x", 3000) + `","title":"T","abstract":"A"}`, "f:1: id:" + strings.Repeat("x", 61) + "…: id is 3003 bytes, limit 512"},
		// An id with a control or format character is refused, quoted escaped, as no id: an id
		// is printed and is the queue's message id ("id:a\nb" would be "id:a b" there).
		{"newline in the id", `{"id":"id:a\nb","title":"T","abstract":"A"}`, `f:1: id "id:a\nb" holds U+000A, a control or format character`},
		{"escape sequence in the id", `{"id":"x\u001b]0;PWNED\u0007","title":"T","abstract":"A"}`, `f:1: id "x\x1b]0;PWNED\a" holds U+001B, a control or format character`},
		{"bidi override in the id", `{"id":"2401.01234\u202e","title":"T","abstract":"A"}`, `f:1: id "2401.01234\u202e" holds U+202E, a control or format character`},
		{"id at the limit", `{"id":"` + strings.Repeat("x", 509) + `","title":"","abstract":"A"}`, "f:1: id:" + strings.Repeat("x", 61) + "…: title is empty"},
		{"category too long", `{"id":"2401.00005","title":"T","abstract":"A","categories":["cs.DB","` + strings.Repeat("c", 257) + `"]}`, "f:1: arxiv:2401.00005: a category is 257 bytes, limit 256"},
		{"author too long", `{"id":"2401.00006","title":"T","abstract":"A","authors":["` + strings.Repeat("a ", 600) + `"]}`, "f:1: arxiv:2401.00006: an author is 1199 bytes, limit 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The bad line is followed by a good one, which must still come through (its
			// UTF-8 makes the input UTF-8 text with a stray byte, not Latin-1 text: see
			// TestBinaryInputIsNamed).
			in := tc.line + "\n" + `{"id":"2401.09999","title":"Next","abstract":"Still read: naïve café, Schrödinger."}` + "\n"
			_, _, events := readString(t, in, "f", Options{Format: JSONL})
			equalEvents(t, events, []string{"error " + tc.want, "paper f:2 Next"})
		})
	}
}

// wantLatin1Hint is what a record's message about bytes that are not UTF-8 adds when they are
// most of its bytes beyond ASCII.
const wantLatin1Hint = "; if the file is Latin-1 or Windows-1252 text, convert it with `iconv -f WINDOWS-1252 -t UTF-8`"

// TestJSONLBadInputFixture is the bad-input case of the product spec: a truncated line, an
// empty abstract, a 1 MB abstract, invalid UTF-8 and an over-long line, each reported with its
// file and line while every good record between them comes through in order.
func TestJSONLBadInputFixture(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/bad.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	generated := map[string]string{
		"@ONE_MEGABYTE_ABSTRACT@": `{"id":"2401.00006","title":"Huge","abstract":"` + strings.Repeat("x", 1<<20) + `"}`,
		"@INVALID_UTF8_TITLE@":    "{\"id\":\"2401.00008\",\"title\":\"Bad \xc3\x28 Title\",\"abstract\":\"Fine.\"}",
		"@FIVE_MEGABYTE_LINE@":    `{"id":"2401.00010","title":"Enormous","abstract":"` + strings.Repeat("y ", 5<<19) + `"}`,
	}
	for k, v := range generated {
		if !bytes.Contains(raw, []byte(k)) {
			t.Fatalf("fixture lacks %s", k)
		}
		raw = bytes.Replace(raw, []byte(k), []byte(v), 1)
	}
	r, err := NewReader(bytes.NewReader(raw), "bad.jsonl", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, errs, events := readAll(t, r)
	equalEvents(t, events, []string{
		"paper bad.jsonl:1 Good One",
		"error bad.jsonl:2: arxiv:2401.00002: truncated JSON: the record ends before its object is closed",
		"paper bad.jsonl:3 Good Two",
		"error bad.jsonl:4: arxiv:2401.00004: abstract is empty",
		"paper bad.jsonl:5 Good Three",
		"error bad.jsonl:6: arxiv:2401.00006: abstract is 1048576 bytes, limit 32768",
		"paper bad.jsonl:7 Good Four",
		"error bad.jsonl:8: arxiv:2401.00008: title is not valid UTF-8 (byte 5)" + wantLatin1Hint,
		"paper bad.jsonl:9 Good Five",
		"error bad.jsonl:10: arxiv:2401.00010: line is 5242932 bytes, longer than the 4259840-byte limit",
		"paper bad.jsonl:11 Good Six",
	})
	for _, e := range errs {
		if e.File != "bad.jsonl" || e.Line == 0 {
			t.Errorf("error %v: File %q Line %d", e, e.File, e.Line)
		}
	}
	if r.Offset() != int64(len(raw)) {
		t.Errorf("Offset() = %d at the end, want %d", r.Offset(), len(raw))
	}
}

func TestJSONLLineEndings(t *testing.T) {
	t.Parallel()
	in := "{\"title\":\"One\",\"abstract\":\"A.\"}\r\n\r\n{\"title\":\"Two\",\"abstract\":\"B.\"}"
	_, _, events := readString(t, in, "f", Options{})
	equalEvents(t, events, []string{"paper f:1 One", "paper f:3 Two"})
}

// Control characters in a paper's text are kept as they came (white space is folded as
// always): the paper's title id and content hash are of the text as stored, and a version
// that turned them into spaces gave a paper stored before another id or hash — bought again.
// What shows the text makes them harmless (the CLI's termSafe, JSON and HTML escapes).
func TestJSONLControlCharactersInTextAreKept(t *testing.T) {
	t.Parallel()
	in := `{"title":"Routing \u001b]0;PWNED\u0007 experts","abstract":"Page one.\fPage\r two \u001b[2J\u009b\u007f with a soft\u00adhyphen.",` +
		`"authors":["Mallory \u001b[8mhidden\u001b[0m"],"categories":["cs.LG\u0007"]}` + "\n"
	papers, errs, _ := readString(t, in, "f", Options{Format: JSONL})
	if len(errs) > 0 || len(papers) != 1 {
		t.Fatalf("got %d papers and errors %v, want the paper", len(papers), errs)
	}
	a := papers[0]
	want := paper.Abstract{Title: "Routing \x1b]0;PWNED\x07 experts", Abstract: "Page one. Page two \x1b[2J\u009b\x7f with a soft\u00adhyphen.",
		Authors: []string{"Mallory \x1b[8mhidden\x1b[0m"}, Categories: []string{"cs.LG\x07"}}
	if a.Title != want.Title || a.Abstract != want.Abstract || !slices.Equal(a.Authors, want.Authors) || !slices.Equal(a.Categories, want.Categories) {
		t.Errorf("got title %q, abstract %q, authors %q, categories %q;\nwant %q, %q, %q, %q",
			a.Title, a.Abstract, a.Authors, a.Categories, want.Title, want.Abstract, want.Authors, want.Categories)
	}
	if a.ID != paper.TitleID(want.Title) {
		t.Errorf("id %s, want the title id of the text as it came, %s", a.ID, paper.TitleID(want.Title))
	}
}

// A line of exactly MaxRecordBytes is read, and a longer one is refused with its length, the
// same whatever the line ending: a Windows file's "\r" counted as the line's made a line at
// the limit "1 byte longer than the limit", and every over-long line one byte longer than it is.
func TestJSONLLineAtTheLimit(t *testing.T) {
	t.Parallel()
	const limit = 200
	rec := `{"id":"2401.00001","title":"At the limit","abstract":"A."}`
	atLimit := rec + strings.Repeat(" ", limit-len(rec))
	for _, eol := range []string{"\n", "\r\n"} {
		_, _, events := readString(t, atLimit+eol+atLimit+" "+eol, "f.jsonl", Options{Format: JSONL, MaxRecordBytes: limit})
		equalEvents(t, events, []string{
			"paper f.jsonl:1 At the limit",
			"error f.jsonl:2: arxiv:2401.00001: line is 201 bytes, longer than the 200-byte limit",
		})
	}
}
