package ingest

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf16"

	"github.com/paperpipe/paperpipe/paper"
)

// TestCompressedAndNonUTF8Input: gzip-compressed input (a .jsonl.gz snapshot, `curl` without
// --compressed, on standard input too) is read as its content, whatever its name; UTF-16 text
// (with a byte order mark, as Windows PowerShell's `>` and Notepad's "Unicode" write, or
// without one) and a zip archive are refused at once with an error that names the problem and
// the command that converts it; a UTF-8 byte order mark is skipped as before. All three were
// taken for the text format and every paper was lost under "abstract paragraph (N words) has
// no title line before it".
func TestCompressedAndNonUTF8Input(t *testing.T) {
	t.Parallel()
	jsonl, err := os.ReadFile("testdata/good.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile("../testdata/sample-papers.txt")
	if err != nil {
		t.Fatal(err)
	}
	utf16le := func(b []byte, bom bool) []byte {
		var out []byte
		if bom {
			out = []byte{0xff, 0xfe}
		}
		for _, u := range utf16.Encode([]rune(strings.ReplaceAll(string(b), "\n", "\r\n"))) {
			out = append(out, byte(u), byte(u>>8))
		}
		return out
	}
	utf16be := func(b []byte) []byte {
		out := []byte{0xfe, 0xff}
		for _, u := range utf16.Encode([]rune(string(b))) {
			out = append(out, byte(u>>8), byte(u))
		}
		return out
	}
	zipped := func(b []byte) []byte {
		var buf bytes.Buffer
		w := zip.NewWriter(&buf)
		f, err := w.Create("papers.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	titles := func(name string, data []byte) []string {
		t.Helper()
		r, err := NewReader(bytes.NewReader(data), name, Options{})
		if err != nil {
			t.Fatalf("%s: NewReader: %v", name, err)
		}
		papers, errs, _ := readAll(t, r)
		if len(errs) > 0 {
			t.Errorf("%s: %d bad records, the first: %v", name, len(errs), errs[0])
		}
		if got := r.Offset(); got != int64(len(data)) {
			t.Errorf("%s: Offset() at the end = %d, want the input's %d bytes", name, got, len(data))
		}
		var out []string
		for _, p := range papers {
			out = append(out, p.ID+" "+p.Title)
		}
		return out
	}

	// Read as their content: compressed (twice, even), and after a UTF-8 byte order mark.
	for _, plain := range []struct {
		name string
		data []byte
	}{{"good.jsonl", jsonl}, {"sample-papers.txt", sample}} {
		want := titles(plain.name, plain.data)
		if len(want) == 0 {
			t.Fatalf("%s: no papers", plain.name)
		}
		for _, c := range []struct {
			name string
			data []byte
		}{
			{plain.name + ".gz", gzipped(t, plain.data)},
			{plain.name, gzipped(t, plain.data)}, // named as if plain
			{"-", gzipped(t, plain.data)},        // standard input
			{plain.name + ".gz.gz", gzipped(t, gzipped(t, plain.data))},
			{plain.name + " with a UTF-8 BOM", append([]byte("\xef\xbb\xbf"), plain.data...)},
			{plain.name + ".gz with a UTF-8 BOM", gzipped(t, append([]byte("\xef\xbb\xbf"), plain.data...))},
		} {
			if got := titles(c.name, c.data); !slices.Equal(got, want) {
				t.Errorf("%s: read %q, want the plain file's %q", c.name, got, want)
			}
		}
	}

	// Refused, saying what the input is and how to convert it.
	for _, c := range []struct {
		name string
		data []byte
		want []string
	}{
		{"papers.jsonl", utf16le(jsonl, true), []string{"UTF-16 text", "`iconv -f UTF-16 -t UTF-8 papers.jsonl | paperpipe ingest -`"}},
		{"papers.txt", utf16le(sample, true), []string{"UTF-16 text", "iconv -f UTF-16 -t UTF-8 papers.txt"}},
		{"papers.txt", utf16be(sample), []string{"UTF-16 text", "iconv -f UTF-16 -t UTF-8 papers.txt"}},
		{"papers.jsonl", utf16le(jsonl, false), []string{"UTF-16LE", "`iconv -f UTF-16LE -t UTF-8 papers.jsonl | paperpipe ingest -`"}},
		{"-", utf16le(jsonl, false), []string{"UTF-16LE", "`iconv -f UTF-16LE -t UTF-8 FILE | paperpipe ingest -`"}},
		{"papers.jsonl.gz", gzipped(t, utf16le(jsonl, true)), []string{"UTF-16 text"}},
		{"papers.zip", zipped(jsonl), []string{"zip archive", "`unzip -p papers.zip | paperpipe ingest -`"}},
	} {
		r, err := NewReader(bytes.NewReader(c.data), c.name, Options{})
		if err == nil {
			_, errs, _ := readAll(t, r)
			t.Errorf("%s: read as %s with %d bad records; want NewReader to refuse it", c.name, r.Format(), len(errs))
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: NewReader: %v; want it to say %q", c.name, err, w)
			}
		}
	}
}

// TestTruncatedGzipSaysItWasCutShort: gzip-compressed input that ends before its stream does (a
// download or copy cut short) was reported as "unexpected EOF", which does not say what ended;
// the records before the cut are read, and the error says the input was cut short. So does
// one cut within its 10-byte header, which said only "gzip-compressed input: unexpected EOF".
func TestTruncatedGzipSaysItWasCutShort(t *testing.T) {
	t.Parallel()
	var plain bytes.Buffer
	for i := range 3000 {
		fmt.Fprintf(&plain, `{"id":"2401.%05d","title":"Paper %d","abstract":"An abstract of paper %d, long enough to fill the stream."}`+"\n", i, i, i)
	}
	whole := gzipped(t, plain.Bytes())
	for _, c := range []struct {
		name string
		cut  int
	}{
		{"header", 5},                // within the gzip header: a download that failed at once
		{"early", 100},               // within the first look at the input
		{"late", len(whole) * 2 / 3}, // after records were read: Next's
		{"trailer", len(whole) - 4},  // only the length of the trailer missing
	} {
		r, err := NewReader(bytes.NewReader(whole[:c.cut]), "papers.jsonl.gz", Options{})
		read := 0
		for err == nil {
			var a paper.Abstract
			a, err = r.Next()
			if err == nil && a.ID != "" {
				read++
			}
		}
		if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "cut short") {
			t.Errorf("%s cut: %v after %d records; want an error saying the gzip input was cut short", c.name, err, read)
		}
		if c.name == "late" && read < 1000 {
			t.Errorf("late cut: %d records read before the error, want the ones before the cut", read)
		}
	}
}

// TestReadErrorsNameTheFileOnceWithTheLine: an error that ends reading names the file and the
// line once, as FILE:LINE: like a rejected record, whatever the format, so that a command can
// print it as it is. A cut gzip stream of text said only that the input was cut short (its
// command added the file, without the line), of JSON lines "reading FILE at line N: …" (its
// command added "read FILE: " before it), and of Hugging Face JSON "truncated JSON",
// leaving out that the file had been cut short.
func TestReadErrorsNameTheFileOnceWithTheLine(t *testing.T) {
	t.Parallel()
	abstract := strings.Repeat("An abstract long enough to be one, of a paper about pipelines. ", 3)
	var text, jsonl, atom, hf bytes.Buffer
	atom.WriteString(`<?xml version="1.0"?>` + "\n" + `<feed xmlns="http://www.w3.org/2005/Atom">` + "\n")
	hf.WriteString("[")
	for i := range 2000 {
		fmt.Fprintf(&text, "Paper %d\n\n%s\n\n", i, abstract)
		fmt.Fprintf(&jsonl, `{"id":"2401.%05d","title":"Paper %d","abstract":%q}`+"\n", i, i, abstract)
		fmt.Fprintf(&atom, "<entry><id>http://arxiv.org/abs/2401.%05dv1</id><title>Paper %d</title><summary>%s</summary></entry>\n", i, i, abstract)
		if i > 0 {
			hf.WriteString(",\n")
		}
		fmt.Fprintf(&hf, `{"paper":{"id":"2401.%05d","title":"Paper %d","summary":%q}}`, i, i, abstract)
	}
	atom.WriteString("</feed>\n")
	hf.WriteString("]\n")
	const name = "papers.gz"
	for format, plain := range map[string][]byte{"text": text.Bytes(), "jsonl": jsonl.Bytes(), "atom": atom.Bytes(), "hf": hf.Bytes()} {
		whole := gzipped(t, plain)
		r, err := NewReader(bytes.NewReader(whole[:len(whole)*2/3]), name, Options{})
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		for err == nil {
			_, err = r.Next()
			var rec *RecordError
			if errors.As(err, &rec) {
				t.Fatalf("%s: %v", format, err)
			}
		}
		msg := err.Error()
		if !regexp.MustCompile(`^`+regexp.QuoteMeta(name)+`:[1-9][0-9]*: `).MatchString(msg) || strings.Count(msg, name) != 1 ||
			!strings.Contains(msg, "cut short") {
			t.Errorf("%s cut short: %q; want %s:LINE: once, and that the input was cut short", format, msg, name)
		}
	}
}

// TestReadErrorNamesTheLineItStoppedAt: the line a read error names is the one being read
// when it came (the first line not read whole), not one before it, in the line formats.
func TestReadErrorNamesTheLineItStoppedAt(t *testing.T) {
	t.Parallel()
	abstract := strings.Repeat("An abstract long enough to be one, of a paper about pipelines. ", 3)
	errCut := errors.New("connection reset")
	for format, tc := range map[string]struct {
		in   string
		line int
	}{
		"jsonl": {`{"id":"2401.00001","title":"One","abstract":"A."}` + "\n" + `{"id":"2401.00002","title":"Two","abstract":"B."}` + "\n" + `{"id":"2401.0`, 3},
		"text":  {"Paper one\n\n" + abstract + "\n\nPaper two\n\n" + abstract[:40], 7},
	} {
		r, err := NewReader(io.MultiReader(strings.NewReader(tc.in), iotest.ErrReader(errCut)), "f", Options{})
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		for err == nil {
			_, err = r.Next()
		}
		if want := fmt.Sprintf("f:%d: ", tc.line); !errors.Is(err, errCut) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: %v; want the read error at %s…", format, err, want)
		}
	}
}

// Files joined into one stream (`cat a.txt b.txt | paperpipe ingest -`) bring the byte order
// mark of each file that has one (Windows' editors and PowerShell write it) to the start of a
// line within the stream. Taken as text, it became an invisible first character of a title,
// whose title id then differed from the same paper's read from its file alone (a second copy
// of the paper, its TL;DR and vector bought again); a JSON line starting with it was refused,
// a paper lost.
func TestByteOrderMarkOfAJoinedFile(t *testing.T) {
	t.Parallel()
	abstract := words(25)
	line := func(id string) string {
		return `{"id":"` + id + `","title":"T ` + id + `","abstract":"` + abstract + `"}` + "\r\n"
	}
	for _, c := range []struct {
		name, in string
		want     []string
	}{
		{"text", "Title one\n\n" + abstract + "\n\n" + bom + "Title two\r\n\r\n" + abstract + "\r\n",
			[]string{"paper text:1 Title one", "paper text:5 Title two"}},
		{"jsonl", line("2401.00001") + bom + line("2401.00002"),
			[]string{"paper jsonl:1 T 2401.00001", "paper jsonl:2 T 2401.00002"}},
	} {
		papers, _, events := readString(t, c.in, c.name, Options{})
		equalEvents(t, events, c.want)
		if c.name == "text" && len(papers) == 2 && papers[1].ID != titleID("Title two") {
			t.Errorf("text: id %q, want the title's %q", papers[1].ID, titleID("Title two"))
		}
	}
}

// TestGzipFollowedByOtherBytes: what follows gzip-compressed data. Zero bytes (a file padded
// to a block, as tape and some copying tools leave it) are no data: gzip -d reads such a file
// without complaint; it failed after its last record with "gzip: invalid header", or, under
// 10 of them, as "cut short". Other bytes (an uncompressed file joined to it: cat a.gz b.jsonl)
// are an error that says what they are, not "gzip: invalid header" at a line of the content.
// Members joined (cat a.gz b.gz) are read one after the other, as before.
func TestGzipFollowedByOtherBytes(t *testing.T) {
	t.Parallel()
	line := func(id string) []byte {
		return []byte(`{"id":"` + id + `","title":"T ` + id + `","abstract":"` + words(25) + `"}` + "\n")
	}
	one := gzipped(t, line("2401.00001"))
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, c := range []struct {
		name    string
		in      []byte
		papers  int
		wantErr string // "" for a clean end
	}{
		{"512 zero bytes", join(one, make([]byte, 512)), 1, ""},
		{"5 zero bytes", join(one, make([]byte, 5)), 1, ""},
		{"two members", join(one, gzipped(t, line("2401.00002"))), 2, ""},
		{"two members and zeros", join(one, gzipped(t, line("2401.00002")), make([]byte, 100)), 2, ""},
		{"plain text after it", join(one, line("2401.00003")), 1,
			"f.gz:2: the gzip-compressed input is followed by bytes that are not gzip-compressed (an uncompressed file joined to it?), at its byte " +
				strconv.Itoa(len(one)+1) + ": they are not read; give each file on its own"},
		// A second member whose header is cut short, or is no gzip header after its magic number.
		{"a second member cut in its header", join(one, gzipped(t, line("2401.00002"))[:6]), 1, "f.gz:2: " + errGzipCut.Error()},
		{"a second member's bad header", join(one, []byte{0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 3}, line("2401.00003")), 1,
			"f.gz:2: gzip-compressed input, at its byte " + strconv.Itoa(len(one)+1) + ": gzip: invalid header"},
	} {
		r, err := NewReader(bytes.NewReader(c.in), "f.gz", Options{})
		if err != nil {
			t.Errorf("%s: NewReader: %v", c.name, err)
			continue
		}
		n := 0
		for {
			_, err = r.Next()
			if err != nil {
				break
			}
			n++
		}
		got := ""
		if err != io.EOF {
			got = err.Error()
		}
		if n != c.papers || got != c.wantErr {
			t.Errorf("%s: %d papers, end %q\n  want %d papers, end %q", c.name, n, got, c.papers, c.wantErr)
		}
	}
}
