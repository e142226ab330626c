package ingest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

func TestHFFixture(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/hf.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f, "hf.json", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != HFDaily {
		t.Fatalf("Format() = %q, want hf", r.Format())
	}
	papers, errs, events := readAll(t, r)
	// Each element's line is the line of its opening brace.
	equalEvents(t, events, []string{
		"paper hf.json:2 Sparse Routing for Experts",
		"error hf.json:19: record 2: arxiv:2503.22222: abstract is empty",
		"paper hf.json:29 Third",
	})
	if len(errs) == 1 && errs[0].Record != 2 {
		t.Errorf("Record = %d, want 2", errs[0].Record)
	}
	want := paper.Abstract{
		ID: "arxiv:2503.11234", Title: "Sparse Routing for Experts", Abstract: "We study routing. It works.",
		Authors:   []string{"Ada Lovelace", "Alan Turing"},
		Published: time.Date(2025, 3, 14, 17, 59, 59, 0, time.UTC), URL: "https://arxiv.org/abs/2503.11234",
		Source: "hf.json:2",
	}
	if len(papers) != 2 || !reflect.DeepEqual(papers[0], want) {
		t.Fatalf("papers:\n got %+v\nwant %+v (first)", papers, want)
	}
	raw, _ := os.ReadFile("testdata/hf.json")
	if r.Offset() != int64(len(strings.TrimRight(string(raw), "\n"))) {
		t.Errorf("Offset() = %d at the end, want %d (the closing bracket)", r.Offset(), len(raw)-1)
	}
}

func TestHFRecords(t *testing.T) {
	t.Parallel()
	const good = `{"paper":{"id":"2503.00009","title":"Good","summary":"Fine."}}`
	for _, tc := range []struct {
		name   string
		in     string
		events []string
		fatal  string
	}{
		{
			name:   "minified: all on line 1, records numbered",
			in:     `[` + good + `,{"paper":{"id":"2503.00001","title":"","summary":"S."}},` + good + `]`,
			events: []string{"paper f:1 Good", "error f:1: record 2: arxiv:2503.00001: title is empty", "paper f:1 Good"},
		},
		{
			name:   "an element that is not an object",
			in:     "[\n42,\n" + good + "\n]",
			events: []string{`error f:2: record 1: element is not a JSON object (it starts with "4")`, "paper f:3 Good"},
		},
		{
			name:   "invalid UTF-8 names the nested field",
			in:     "[{\"paper\":{\"id\":\"2503.00001\",\"title\":\"Théorie, naïve\",\"summary\":\"caf\xe9\"}},\n" + good + "]",
			events: []string{"error f:1: record 1: arxiv:2503.00001: paper.summary is not valid UTF-8 (byte 4)", "paper f:2 Good"},
		},
		{
			name:   "a field of the wrong type",
			in:     `[{"paper":{"id":"2503.00001","title":5}},` + good + `]`,
			events: []string{"error f:1: record 1: arxiv:2503.00001: paper.title is a JSON number, want a string", "paper f:1 Good"},
		},
		{
			name:   "elements without a paper object, authors as strings",
			in:     `[{"id":"2503.00002","title":"Flat","abstract":"Top-level fields.","authors":["A","B"],"publishedAt":"2025-03-01"}]`,
			events: []string{"paper f:1 Flat"},
		},
		{
			name:   "an empty array is a day without papers, not a failure",
			in:     " [ ] ",
			events: nil,
		},
		{
			name:   "a truncated array stops reading",
			in:     "[\n" + good + ",\n" + `{"paper":{"id":"2503.00001","title":"Cut`,
			events: []string{"paper f:2 Good"},
			fatal:  "f:3: truncated JSON: the input ends inside record 2 or before the closing ']'",
		},
		{
			name:   "a missing closing bracket stops reading",
			in:     "[\n" + good + "\n",
			events: []string{"paper f:2 Good"},
			fatal:  "f:3: truncated JSON: the input ends inside record 2 or before the closing ']'",
		},
		{
			name:   "malformed JSON between records stops reading",
			in:     "[\n" + good + " x " + good + "]",
			events: []string{"paper f:2 Good"},
			fatal:  "f:2: malformed JSON after record 1, reading stops: expected comma after array element",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := NewReader(strings.NewReader(tc.in), "f", Options{Format: HFDaily})
			if err != nil {
				t.Fatal(err)
			}
			var events []string
			for {
				a, err := r.Next()
				if err == io.EOF {
					if tc.fatal != "" {
						t.Errorf("got EOF, want fatal error %q", tc.fatal)
					}
					break
				}
				var re *RecordError
				if errors.As(err, &re) {
					events = append(events, "error "+err.Error())
					continue
				}
				if err != nil {
					if err.Error() != tc.fatal || !errors.Is(err, paper.ErrInvalid) {
						t.Errorf("fatal error %q (ErrInvalid: %v), want %q", err, errors.Is(err, paper.ErrInvalid), tc.fatal)
					}
					break
				}
				events = append(events, "paper "+a.Source+" "+a.Title)
			}
			equalEvents(t, events, tc.events)
		})
	}
}

// TestHFNotAnArrayNamesItsLine: a JSON object given as Hugging Face daily papers (--format hf
// on an API answer such as {"papers": …}, pretty-printed) was said to start on line 2, the
// line after its "{" (the white space after the token was counted, as for the next record's
// line), and on line 1 when the input came a byte a read (FuzzReader). The error names the
// line of what it quotes.
func TestHFNotAnArrayNamesItsLine(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"{\n  \"papers\": []\n}\n", "\n\n{\n\"a\": 1}", "\"not papers\"\n\n"} {
		want := strings.Count(in[:strings.IndexAny(in, "{\"")], "\n") + 1
		for _, one := range []bool{false, true} {
			r, err := NewReader(strings.NewReader(in), "f", Options{Format: HFDaily, OneRecord: one})
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Next()
			if err == nil || !strings.HasPrefix(err.Error(), "f:"+strconv.Itoa(want)+": Hugging Face daily papers JSON is an array") {
				t.Errorf("%q (OneRecord %v): %v; want the error at f:%d", in, one, err, want)
			}
		}
	}
}

// An element longer than MaxRecordBytes was fatal: json.Decoder cannot go on after its reader
// fails, so a daily-papers file with one huge element lost every paper after it. It is a record
// error naming the element (its line, number and id when it comes first), and the array is read
// on after it, whatever the element holds (strings with escaped quotes and brackets, nested
// arrays) and wherever it ends, the lines after it right; input that ends inside it is
// truncated, as before.
func TestHFAnElementOverTheRecordLimitIsSkippedAndTheArrayReadOn(t *testing.T) {
	t.Parallel()
	const limit = 1000
	long := func(s string) string { return strings.Repeat(s, (limit+peekSize)*2/len(s)) }
	good := func(n int) string {
		return fmt.Sprintf(`{"paper":{"id":"2503.0000%d","title":"Good %d","summary":"Fine."}}`, n, n)
	}
	huge := `{"paper":{"id":"2503.09999","title":"Huge","summary":"` + long(`a \"quoted\" ]} [{ \\`) + `","authors":[[["x"]]]}}`
	skipped := func(line int) string {
		return fmt.Sprintf("error f:%d: record 2: arxiv:2503.09999: element is longer than the 1000-byte limit: skipped, the rest of the array is read", line)
	}
	for _, tc := range []struct {
		name, in string
		events   []string
		fatal    string
	}{
		{
			name:   "pretty-printed, between two papers",
			in:     "[\n" + good(1) + ",\n" + strings.Replace(huge, ",", ",\n", 2) + "\n,\n" + good(2) + "\n]\n",
			events: []string{"paper f:2 Good 1", skipped(3), "paper f:7 Good 2"},
		},
		{
			name:   "last of the array",
			in:     "[" + good(1) + ",\n" + huge + "]",
			events: []string{"paper f:1 Good 1", skipped(2)},
		},
		{
			name:   "a string element, then an object",
			in:     "[" + good(1) + ",\n\"" + long("x") + "\"," + good(2) + "]",
			events: []string{"paper f:1 Good 1", "error f:2: record 2: element is longer than the 1000-byte limit: skipped, the rest of the array is read", "paper f:2 Good 2"},
		},
		{
			name:   "the input ends inside it",
			in:     "[" + good(1) + ",\n" + huge[:len(huge)/2],
			events: []string{"paper f:1 Good 1"},
			fatal:  "f:2: truncated JSON: the input ends inside record 2 or before the closing ']'",
		},
	} {
		for _, oneByte := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, one byte a read %v", tc.name, oneByte), func(t *testing.T) {
				t.Parallel()
				var in io.Reader = strings.NewReader(tc.in)
				if oneByte {
					in = iotest.OneByteReader(in)
				}
				r, err := NewReader(in, "f", Options{Format: HFDaily, MaxRecordBytes: limit})
				if err != nil {
					t.Fatal(err)
				}
				var events []string
				fatal := ""
				for {
					a, err := r.Next()
					var re *RecordError
					if err == io.EOF {
						break
					} else if errors.As(err, &re) {
						events = append(events, "error "+err.Error())
						continue
					} else if err != nil {
						fatal = err.Error()
						break
					}
					events = append(events, "paper "+a.Source+" "+a.Title)
				}
				if fatal != tc.fatal {
					t.Errorf("fatal error %q, want %q", fatal, tc.fatal)
				}
				equalEvents(t, events, tc.events)
			})
		}
	}
}
