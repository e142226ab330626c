package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// readAll reads every record of r, failing the test on a fatal error. It returns the papers,
// the record errors, and both in order as events: "paper SOURCE TITLE" or "error MESSAGE".
func readAll(t *testing.T, r *Reader) (papers []paper.Abstract, errs []*RecordError, events []string) {
	t.Helper()
	for {
		a, err := r.Next()
		if err == io.EOF {
			return papers, errs, events
		}
		var re *RecordError
		switch {
		case errors.As(err, &re):
			if !errors.Is(err, paper.ErrInvalid) {
				t.Errorf("record error %v does not wrap paper.ErrInvalid", err)
			}
			errs = append(errs, re)
			events = append(events, "error "+re.Error())
		case err != nil:
			t.Fatalf("fatal error after %d events: %v", len(events), err)
		default:
			papers = append(papers, a)
			events = append(events, "paper "+a.Source+" "+a.Title)
		}
	}
}

// readFixture reads testdata/name, checking that its format is detected as want.
func readFixture(t *testing.T, name string, want Format) ([]paper.Abstract, []*RecordError, []string) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := NewReader(f, name, Options{})
	if err != nil {
		t.Fatal(err)
	}
	papers, errs, events := readAll(t, r)
	// An XML feed's root element, read with its first record, tells Atom from RSS.
	if r.Format() != want {
		t.Fatalf("Format() = %q, want %s", r.Format(), want)
	}
	return papers, errs, events
}

// readString reads input with the given name and options.
func readString(t *testing.T, input, name string, opts Options) ([]paper.Abstract, []*RecordError, []string) {
	t.Helper()
	r, err := NewReader(strings.NewReader(input), name, opts)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	return readAll(t, r)
}

// gzipped returns b gzip-compressed.
func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// equalEvents reports a difference between two event lists.
func equalEvents(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n  got:\n    %s\n  want:\n    %s", strings.Join(got, "\n    "), strings.Join(want, "\n    "))
	}
}

// words returns n words of filler prose ending in a full stop: an abstract.
func words(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = "word"
	}
	return strings.Join(w, " ") + "."
}

func titleID(s string) string { return paper.TitleID(s) }
