package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// TestBinaryInputIsNamed: a researcher's likeliest wrong file is the paper itself, a PDF (or a
// figure); text exported from an old tool is Latin-1 or Windows-1252. Such input is refused by
// NewReader with an error that says what it is (and how to convert text); it was read as the
// text format: a PDF's records were rejected as "abstract paragraph (N words) has no title line
// before it", binary data read as no papers without an error, and Latin-1 text gave "title is
// not valid UTF-8 (byte 2)" for each record with such a byte while its ASCII-only records were
// ingested (a file partly read).
func TestBinaryInputIsNamed(t *testing.T) {
	t.Parallel()
	pdf := []byte("%PDF-1.5\n%\xe2\xe3\xcf\xd3\n4 0 obj\n<< /Length 5 /Filter /FlateDecode >>\nstream\nx\x9c\xed\x9d\x00\x01endstream\n")
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{0x00, 0x9f, 0xc3}, 100)...)
	noise := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.UintN(256))
	}
	noNUL := bytes.ReplaceAll(noise, []byte{0}, []byte{1})
	latin1 := []byte("{\"id\":\"2401.00001\",\"title\":\"Caf\xe9 mod\xe8les\",\"abstract\":\"Na\xefve th\xe9orie.\"}\n" +
		`{"id":"2401.00002","title":"Plain","abstract":"ASCII only."}` + "\n")
	for _, c := range []struct {
		name string
		data []byte
		opts Options
		want []string
	}{
		{"paper.pdf", pdf, Options{}, []string{"PDF document", "paperpipe ingest reads papers' titles and abstracts as UTF-8 text"}},
		{"paper.pdf", pdf, Options{Format: JSONL}, []string{"PDF document"}}, // whatever the format
		{"paper.pdf.gz", gzipped(t, pdf), Options{}, []string{"PDF document"}},
		{"figure.png", png, Options{}, []string{"binary data (it holds NUL bytes), not UTF-8 text"}},
		{"random.bin", noise, Options{}, []string{"binary data", "not UTF-8 text"}},
		{"random.bin", noNUL, Options{}, []string{"not UTF-8 text", "control characters", "paperpipe ingest reads"}},
		{"papers.jsonl", latin1, Options{}, []string{"not UTF-8 text", "Latin-1", "`iconv -f WINDOWS-1252 -t UTF-8 papers.jsonl | paperpipe ingest -`"}},
		{"-", latin1, Options{Command: "summarize"}, []string{"`iconv -f WINDOWS-1252 -t UTF-8 FILE | paperpipe summarize -`"}},
		{"paper.pdf", pdf, Options{Command: "embed"}, []string{"paperpipe embed reads"}},
	} {
		r, err := NewReader(bytes.NewReader(c.data), c.name, c.opts)
		if err == nil {
			var n, bad int
			for {
				_, err := r.Next()
				if err == nil {
					n++
					continue
				}
				var re *RecordError
				if errors.As(err, &re) {
					bad++
					continue
				}
				break
			}
			t.Errorf("%s: read as %s: %d papers, %d bad records; want NewReader to refuse it", c.name, r.Format(), n, bad)
			continue
		}
		if !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("%s: NewReader: %v does not wrap paper.ErrInvalid", c.name, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: NewReader: %v; want it to say %q", c.name, err, w)
			}
		}
	}

	// UTF-8 text with a stray byte is read, the record holding it reported; Latin-1 text whose
	// first 64 KiB are ASCII is read too, and its records with such bytes say what to do.
	stray := `{"id":"2401.00003","title":"Théorie naïve","abstract":"Fine."}` + "\n" +
		"{\"id\":\"2401.00004\",\"title\":\"Bad \xff\",\"abstract\":\"Fine.\"}\n"
	_, errs, _ := readString(t, stray, "f", Options{})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "title is not valid UTF-8 (byte 5)") {
		t.Errorf("UTF-8 with a stray byte: record errors %v, want one for line 2's title", errs)
	}
	late := strings.Repeat(`{"id":"2401.00005","title":"Plain","abstract":"ASCII only."}`+"\n", 2000) + string(latin1)
	_, errs, _ = readString(t, late, "f", Options{})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "if the file is Latin-1 or Windows-1252 text, convert it with `iconv -f WINDOWS-1252 -t UTF-8`") {
		t.Errorf("Latin-1 after 64 KiB of ASCII: record errors %v, want one with the iconv hint", errs)
	}
}

// TestSourceWithoutPapers: a source without any record, good or bad (an empty file, text or
// JSON lines of blank lines, a feed without entries) ends with io.EOF, and Empty says it held
// none, for commands to warn of it; an empty input and text without records ended with a fatal
// error, which made a scraper's empty file of a quiet day a failed source (exit 1).
func TestSourceWithoutPapers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		opts Options
	}{
		{`<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>query</title></feed>`, Options{}},
		{"[]", Options{}},
		{"", Options{}},
		{"\n\n  \n", Options{}},
		{"\n\n", Options{Format: JSONL}},
	} {
		r, err := NewReader(strings.NewReader(c.in), "f", c.opts)
		if err != nil {
			t.Fatalf("%q: NewReader: %v", c.in, err)
		}
		if r.Empty() {
			t.Errorf("%q: Empty() before Next returned io.EOF", c.in)
		}
		if _, err := r.Next(); err != io.EOF || !r.Empty() {
			t.Errorf("%q: Next() = %v, Empty() = %v; want io.EOF and true", c.in, err, r.Empty())
		}
	}
	// A source of bad records only is no such source: its records were reported.
	r, err := NewReader(strings.NewReader(`{"id":"2401.00001","title":"T","abstract":""}`), "f", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, errs, _ := readAll(t, r)
	if len(errs) != 1 || r.Empty() {
		t.Errorf("one bad record: %d record errors, Empty() = %v; want 1 and false", len(errs), r.Empty())
	}
}

// TestDecode: Content reads what NewReader reads, for import-embeddings' vector lines:
// decompressed, and refused with the same errors, naming the command given.
func TestDecode(t *testing.T) {
	t.Parallel()
	line := `{"id":"2401.00001","embedding":[0.5,1],"model":"m"}` + "\n"
	gz := gzipped(t, []byte(line))
	c, err := Decode(bytes.NewReader(gz), "vectors.jsonl.gz", "import-embeddings", "vector lines")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != line {
		t.Errorf("gzip: read %q, %v; want %q", got, err, line)
	}
	if c.Offset() != int64(len(gz)) {
		t.Errorf("gzip: Offset() = %d, want the %d compressed bytes", c.Offset(), len(gz))
	}
	plain, err := Decode(strings.NewReader(line), "-", "import-embeddings", "vector lines")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(plain); string(got) != line || plain.Offset() != int64(len(line)) {
		t.Errorf("plain: read %q, Offset() %d; want %q, %d", got, plain.Offset(), line, len(line))
	}
	for _, x := range []struct{ data, want string }{
		{"\xff\xfe{\x00", "`iconv -f UTF-16 -t UTF-8 vectors.jsonl | paperpipe import-embeddings -`"},
		{"PK\x03\x04rest", "`unzip -p vectors.jsonl | paperpipe import-embeddings -`"},
		{"%PDF-1.4\n", "PDF document, not text: paperpipe import-embeddings reads vector lines"},
	} {
		_, err := Decode(strings.NewReader(x.data), "vectors.jsonl", "import-embeddings", "vector lines")
		if err == nil || !strings.Contains(err.Error(), x.want) {
			t.Errorf("Decode(%q): %v; want it to say %q", x.data, err, x.want)
		}
	}
}

// paperLine is a good JSON line for paper i of a test file, with the given title.
func paperLine(i int, title string) string {
	return fmt.Sprintf(`{"id":"2401.%05d","title":"%s","abstract":"An abstract of paper %d, long enough to be one."}`+"\n", i, title, i)
}

// TestOneStrayNULIsItsRecordsError: a NUL byte in one record of a text file is that record's
// error, and the others are read; the whole file was refused as "binary data" for one NUL in
// its first 64 KiB (1000 good papers read as none).
func TestOneStrayNULIsItsRecordsError(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 1000 {
		b.WriteString(paperLine(i, fmt.Sprintf("Paper number %d", i)))
		if i == 3 {
			b.WriteString("{\"id\":\"2401.99999\",\"title\":\"a\x00b\",\"abstract\":\"An abstract long enough to be one.\"}\n")
		}
	}
	papers, errs, _ := readString(t, b.String(), "papers.jsonl", Options{})
	if len(papers) != 1000 || len(errs) != 1 || errs[0].Line != 5 {
		t.Errorf("1000 good papers and one with a NUL: %d read, record errors %v; want 1000 and line 5's", len(papers), errs)
	}
}

// TestUTF16WithoutBOMHoldingCharactersWithANULByte: UTF-16 text without a byte order mark is
// named UTF-16, with its iconv command, also when some of its characters have a NUL as their
// other byte (一 U+4E00, the ideographic space U+3000, Ā U+0100); it was called binary data.
func TestUTF16WithoutBOMHoldingCharactersWithANULByte(t *testing.T) {
	t.Parallel()
	s := "Title: 一种新的方法\u3000Ā\n\nAbstract text of the paper, in a few words.\n"
	var le, be []byte
	for _, r := range s {
		le = append(le, byte(r), byte(r>>8))
		be = append(be, byte(r>>8), byte(r))
	}
	for enc, data := range map[string][]byte{"UTF-16LE": le, "UTF-16BE": be} {
		_, err := NewReader(bytes.NewReader(data), "papers.txt", Options{})
		if want := "`iconv -f " + enc + " -t UTF-8 papers.txt | paperpipe ingest -`"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s text with CJK characters: %v; want it named with %s", enc, err, want)
		}
	}
}

// TestFewBytesNotUTF8AreTheirRecordsErrors: UTF-8 text with one Windows-1252 quote pasted in is
// read, the record holding it reported, and so is any input with UTF-8 characters beyond ASCII
// among its bytes that are not UTF-8: the file was refused as Latin-1 for one such byte, with
// the advice `iconv -f WINDOWS-1252`, which turns its real UTF-8 ("Schrödinger", further on)
// into mojibake. Latin-1 text is refused as a whole when it has a few such bytes and no UTF-8.
func TestFewBytesNotUTF8AreTheirRecordsErrors(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(paperLine(0, "Don\x92t stop"))
	for i := 1; b.Len() < 80<<10; i++ {
		b.WriteString(paperLine(i, fmt.Sprintf("Paper %d", i)))
	}
	b.WriteString(paperLine(99999, "Schrödinger bridges"))
	papers, errs, _ := readString(t, b.String(), "papers.jsonl", Options{})
	if len(errs) != 1 || errs[0].Line != 1 || papers[len(papers)-1].Title != "Schrödinger bridges" {
		t.Errorf("UTF-8 text with one Windows-1252 quote: record errors %v; want line 1's, and Schrödinger read", errs)
	}
	// More bytes that are not UTF-8 than UTF-8 characters, but some of those: UTF-8 text with a
	// few records pasted from elsewhere.
	mixed := paperLine(1, "Caf\xe9 mod\xe8les na\xefve") + paperLine(2, "Théorie") + paperLine(3, "Plain")
	papers, errs, _ = readString(t, mixed, "papers.jsonl", Options{})
	if len(papers) != 2 || len(errs) != 1 {
		t.Errorf("UTF-8 text with one Latin-1 record: %d read, record errors %v; want 2 and line 1's", len(papers), errs)
	}
	// Three bytes that are not UTF-8 and no UTF-8 character: Latin-1, refused whole.
	_, err := NewReader(strings.NewReader(paperLine(1, "Caf\xe9")+paperLine(2, "Plain")+paperLine(3, "Na\xefve th\xe9orie")), "papers.jsonl", Options{})
	if err == nil || !strings.Contains(err.Error(), "iconv -f WINDOWS-1252") {
		t.Errorf("Latin-1 text: %v; want it refused with the iconv command", err)
	}
}

// linePipe gives one line a read, as a pipe from a program writing line by line does.
type linePipe struct{ lines []string }

func (l *linePipe) Read(p []byte) (int, error) {
	if len(l.lines) == 0 {
		return 0, io.EOF
	}
	n := copy(p, l.lines[0])
	l.lines[0] = l.lines[0][n:]
	if l.lines[0] == "" {
		l.lines = l.lines[1:]
	}
	return n, nil
}

// TestInputIsJudgedWhateverTheReadsBring: Latin-1 text is refused whole from a pipe that
// brings a line a read as it is from a file; NewReader looked only at what the first read
// brought, so from such a pipe it took the ASCII records and rejected the others one by one
// (a file half read). Gzip-compressed input is judged the same way.
func TestInputIsJudgedWhateverTheReadsBring(t *testing.T) {
	t.Parallel()
	var lines []string
	for i := range 20 {
		title := fmt.Sprintf("Paper number %d", i)
		if i%2 == 1 {
			title = "Caf\xe9 " + title
		}
		lines = append(lines, paperLine(i, title))
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	for _, l := range lines {
		_, _ = w.Write([]byte(l))
		_ = w.Flush() // a gzip block per line
	}
	_ = w.Close()
	for name, r := range map[string]io.Reader{
		"a file":                strings.NewReader(strings.Join(lines, "")),
		"a pipe, a line a read": &linePipe{lines: lines},
		"gzip, a byte a read":   iotestOneByte(gz.Bytes()),
	} {
		_, err := NewReader(r, "papers.jsonl", Options{})
		if err == nil || !strings.Contains(err.Error(), "iconv -f WINDOWS-1252") {
			t.Errorf("Latin-1 text from %s: NewReader: %v; want it refused with the iconv command", name, err)
		}
	}
}

// iotestOneByte reads b one byte a read.
func iotestOneByte(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }

// TestOneRecordIsNotJudgedAsAFile: a Reader of one record (a record posted to serve) does not
// refuse it as Latin-1 text or binary data, and its error gives its id and no advice about a
// file; read as a file, the same bytes are refused as Latin-1.
func TestOneRecordIsNotJudgedAsAFile(t *testing.T) {
	t.Parallel()
	rec := paperLine(1, "Caf\xe9 mod\xe8les na\xeffs")
	if _, err := NewReader(strings.NewReader(rec), "papers.jsonl", Options{Format: JSONL}); err == nil {
		t.Fatalf("read as a file, a Latin-1 line is not refused")
	}
	_, errs, _ := readString(t, rec, "request", Options{Format: JSONL, OneRecord: true})
	if len(errs) != 1 || errs[0].ID != "arxiv:2401.00001" || errs[0].Err.Error() != "title is not valid UTF-8 (byte 4)" {
		t.Errorf("one record: record errors %v; want its id and \"title is not valid UTF-8 (byte 4)\"", errs)
	}
}

// A stream that never pauses for probeIdle (a producer writing a short record every 100 ms)
// is not held up until 64 KiB came: the look at its start ends after probeMax. The first
// record came after ~50 s.
func TestASteadyTrickleIsNotHeldUp(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	stop := make(chan struct{})
	defer func() { close(stop); pw.Close() }()
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = fmt.Fprintf(pw, `{"id":"2401.%05d","title":"Paper %d","abstract":"An abstract of a paper, with a few words in it."}`+"\n", i, i)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	done := make(chan error, 1)
	go func() {
		r, err := NewReader(pr, "-", Options{})
		if err == nil {
			_, err = r.Next()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no record 20 s after the first line came (a line every 100 ms)")
	}
}

// Reader.Offset (the progress ingest prints after each record) is read while the look at the
// start of a pausing gzip stream may still be reading it in the background: -race (make test)
// found the two on one counter.
func TestOffsetOfAPausingGzipStream(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	defer pw.Close()
	zw := gzip.NewWriter(pw)
	line := func(i int) string {
		return fmt.Sprintf(`{"id":"2401.%05d","title":"Paper %d","abstract":"An abstract."}`+"\n", i, i)
	}
	// One writer: the gzip.Writer is not safe for two goroutines (a second one, started after
	// the first record, wrote while the first one's Flush could still be in the pipe: -race
	// failed the package now and then).
	go func() {
		for i := range 3 {
			_, _ = zw.Write([]byte(line(i)))
		}
		_ = zw.Flush()
		time.Sleep(50 * time.Millisecond) // the pause
		for i := 3; i < 50; i++ {
			_, _ = zw.Write([]byte(line(i)))
			_ = zw.Flush()
		}
		_ = zw.Close()
		_ = pw.Close()
	}()
	r, err := NewReader(pr, "-", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	var last int64
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); {
		off := r.Offset()
		if off < last {
			t.Fatalf("offset went back from %d to %d", last, off)
		}
		last = off
	}
	if last <= 0 {
		t.Errorf("offset %d after the first record, want it past the record", last)
	}
}
