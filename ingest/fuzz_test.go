package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// FuzzReader reads any bytes in every format (auto-detected, or forced), with the default
// record limit and a small one, and checks what README and the package promise of any input:
// no panic and no endless reading; every bad record a *RecordError naming the file and a line;
// every paper with a canonical id, folded title and abstract of valid UTF-8 and its Source
// "file:line"; every fatal error naming the file; the same records, errors and end whether the
// input arrives in one piece or with its last bytes and io.EOF together, and, read as one record
// (not judged as a file), a byte a read or half a buffer a read; and the same again from the
// input gzip-compressed (the probe decides for a file and its gzip alike).
func FuzzReader(f *testing.F) {
	for _, name := range []string{"atom.xml", "arxiv-announce.atom.xml", "arxiv-announce.rss.xml", "bad.jsonl", "good.jsonl", "hf.json", "oai.jsonl"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	sample, err := os.ReadFile(filepath.Join("..", "testdata", "sample-papers.txt"))
	if err != nil {
		f.Fatal(err)
	}
	// The sample archive's first papers, cut at a paragraph.
	head := sample[:4096]
	head = head[:bytes.LastIndex(head, []byte("\n\n"))+2]
	f.Add(head, uint8(0))
	for i, s := range []string{
		"",
		"\xef\xbb\xbf{\"id\":\"2401.00001\",\"title\":\"T\",\"abstract\":\"A.\"}\n",
		"Title\n\n" + words(25) + "\n",
		"[Re] A title\n\n" + words(25) + "\n",
		"[{\"paper\":{\"id\":\"2401.00001\",\"title\":\"T\",\"summary\":\"S.\"}}]",
		"<?xml version=\"1.0\"?><feed><entry><id>http://arxiv.org/abs/2401.00001v1</id><title>T</title><summary>S.</summary></entry></feed>",
		"{\"id\":\"0704.0001\",\"title\":\"T\",\"abstract\":\"A.\",\"versions\":[{\"version\":\"v1\",\"created\":\"Mon, 2 Apr 2007 19:18:42 GMT\"}]}\n",
		"\xff\xfe{\x00\"\x00",
		"{\"id\":1}\r\n{\"id\":\"x\",\"title\":\"\xe9\",\"abstract\":\"\x00\"}",
	} {
		f.Add([]byte(s), uint8(i))
	}
	// arXiv's TeX, read as OAI: what detex leaves is folded, and not empty.
	f.Add([]byte("{\"id\":\"0704.0002\",\"title\":\"{\\\\em } Schr\\\\\\\"odinger\",\"abstract\":\"A \\\\textbf{ b}.\"}\n"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		opts := Options{Format: formats[int(mode)%len(formats)]}
		if mode/uint8(len(formats))%2 == 1 {
			opts.MaxRecordBytes, opts.MaxTitleBytes, opts.MaxAbstractBytes = 200, 40, 100
		}
		const name = "in.dat"
		want := fuzzRead(t, bytes.NewReader(data), name, opts, data)
		if got := fuzzRead(t, iotest.DataErrReader(bytes.NewReader(data)), name, opts, data); got != want {
			t.Errorf("read with its last bytes and io.EOF together:\n%s\nwant, as read in one piece:\n%s", got, want)
		}
		// Read as one record (OneRecord), the input is not judged as a file: the parsers read
		// it as it comes, not from the 64 KiB the judging of a file reads ahead (and a judging
		// of input that comes a byte a read may stop at probeMax on a busy machine).
		one := opts
		one.OneRecord = true
		whole := fuzzRead(t, bytes.NewReader(data), name, one, data)
		for _, c := range []struct {
			how string
			r   io.Reader
		}{
			{"a byte a read", iotest.OneByteReader(bytes.NewReader(data))},
			{"half a buffer a read", iotest.HalfReader(bytes.NewReader(data))},
		} {
			if got := fuzzRead(t, c.r, name, one, data); got != whole {
				t.Errorf("read %s:\n%s\nwant, as read in one piece:\n%s", c.how, got, whole)
			}
		}
		if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
			return // already gzip: compressed again, it is read once decompressed, not as it is
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(data)
		zw.Close()
		if got := fuzzRead(t, bytes.NewReader(gz.Bytes()), name, opts, data); got != want {
			t.Errorf("read gzip-compressed:\n%s\nwant, as read plain:\n%s", got, want)
		}
	})
}

// fuzzRead reads every record of r and returns what it read, one line each, checking each
// against the Reader's promises.
func fuzzRead(t *testing.T, src io.Reader, name string, opts Options, data []byte) string {
	t.Helper()
	size, lines := len(data), bytes.Count(data, []byte("\n"))+1
	if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) { // gzip-compressed: its lines and records are not counted here
		size, lines = math.MaxInt32, math.MaxInt32
	}
	r, err := NewReader(src, name, opts)
	if err != nil {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("NewReader's error does not name the file %s: %v", name, err)
		}
		return "NewReader: " + err.Error()
	}
	var out strings.Builder
	fmt.Fprintf(&out, "format %s\n", r.Format())
	for n := 0; ; n++ {
		if n > size+10 {
			t.Fatalf("more than %d records from %d bytes: reading does not end", n, size)
		}
		a, err := r.Next()
		var re *RecordError
		switch {
		case err == io.EOF:
			fmt.Fprintf(&out, "EOF empty=%v\n", r.Empty())
			return out.String()
		case errors.As(err, &re):
			if re.File != name || re.Line < 1 || re.Line > lines || !errors.Is(err, paper.ErrInvalid) || !strings.HasPrefix(re.Error(), fmt.Sprintf("%s:%d: ", name, re.Line)) {
				t.Errorf("record error %#v (%v): want it to name %s and a line, and wrap paper.ErrInvalid", re, err, name)
			}
			fmt.Fprintf(&out, "error %v\n", err)
		case err != nil:
			if !strings.HasPrefix(err.Error(), name+":") {
				t.Errorf("fatal error %q: want it to start with %s:LINE:", err, name)
			}
			if _, err2 := r.Next(); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Next after the fatal error %q returned %v; want the same error again", err, err2)
			}
			fmt.Fprintf(&out, "fatal %v\n", err)
			return out.String()
		default:
			checkFuzzPaper(t, a, name, lines)
			fmt.Fprintf(&out, "paper %s %q %q %q %q %q %v %q\n", a.Source, a.ID, a.Title, a.Abstract, a.Authors, a.Categories, a.Published, a.URL)
		}
	}
}

// checkFuzzPaper checks what every paper a Reader returns must be.
func checkFuzzPaper(t *testing.T, a paper.Abstract, name string, lines int) {
	t.Helper()
	if id, err := paper.CanonicalID(a.ID); err != nil || id != a.ID {
		t.Errorf("paper id %q is not canonical (%q, %v)", a.ID, id, err)
	}
	for field, s := range map[string]string{"title": a.Title, "abstract": a.Abstract} {
		if s == "" || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 || paper.Fold(s) != s {
			t.Errorf("paper %s: %s %q is empty, not UTF-8, holds a NUL or is not folded", a.ID, field, s)
		}
	}
	line, err := strconv.Atoi(strings.TrimPrefix(a.Source, name+":"))
	if !strings.HasPrefix(a.Source, name+":") || err != nil || line < 1 || line > lines {
		t.Errorf("paper %s: Source %q, want %s:LINE, a line of the %d", a.ID, a.Source, name, lines)
	}
}
