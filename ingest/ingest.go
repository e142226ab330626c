package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// Format names a source format.
type Format string

// The source formats; Auto detects one of the others from the content.
const (
	Auto    Format = "auto"  // detected from the first bytes of the content
	Text    Format = "text"  // title line, blank line, abstract paragraph (the sample archive)
	JSONL   Format = "jsonl" // one JSON object per line: id, title, abstract, …
	OAI     Format = "oai"   // the arXiv OAI metadata snapshot (JSON lines)
	Atom    Format = "atom"  // an Atom feed: the arXiv API's, arXiv's announcements
	RSS     Format = "rss"   // an RSS 2.0 feed (arXiv's announcements, rss.arxiv.org/rss/…) or an RSS 1.0 one (bioRxiv's, Nature's)
	HFDaily Format = "hf"    // Hugging Face daily-papers JSON (an array)
)

var formats = []Format{Auto, Text, JSONL, OAI, Atom, RSS, HFDaily}

// ParseFormat returns the Format named by s (case-insensitive; empty means Auto), for a
// --format flag. An unknown name is an error that lists the valid ones.
func ParseFormat(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if f == "" {
		return Auto, nil
	}
	for _, v := range formats {
		if f == v {
			return v, nil
		}
	}
	names := make([]string, len(formats))
	for i, v := range formats {
		names[i] = string(v)
	}
	return "", fmt.Errorf("unknown format %q (valid: %s): %w", s, strings.Join(names, ", "), paper.ErrInvalid)
}

// Size defaults.
const (
	defaultMaxAbstract = 32 << 10
	defaultMaxTitle    = 1 << 10
	// recordSlack is what a record may hold besides its abstract (title, authors, metadata;
	// the OAI snapshot has papers with thousands of authors listed twice).
	recordSlack        = 4 << 20
	defaultHTTPTimeout = 30 * time.Second
	peekSize           = 64 << 10
)

// Options configures a Reader. The zero value is ready to use.
type Options struct {
	// Format forces a source format. Defaults to Auto: detected from the content.
	Format Format
	// MaxAbstractBytes is the longest abstract accepted, in bytes after white space is folded;
	// a longer one is a *RecordError. Defaults to 32 KiB.
	MaxAbstractBytes int
	// MaxTitleBytes is the longest title accepted, in bytes after white space is folded.
	// Defaults to 1 KiB.
	MaxTitleBytes int
	// MaxRecordBytes bounds one whole record as read (a JSON line, a text paragraph, an Atom
	// entry, an array element) and so the memory a Reader uses. A longer record is a
	// *RecordError and reading goes on after it (an Atom entry, RSS item or Hugging Face
	// element is read to its end, keeping nothing); another element of an XML feed (outside
	// its entries) longer than this is fatal. Defaults to 4 MiB plus twice MaxAbstractBytes.
	MaxRecordBytes int
	// Command is the paperpipe command reading the input ("summarize", "embed"), named in the
	// commands the errors suggest for converting it: `iconv -f UTF-16 -t UTF-8 FILE | paperpipe
	// COMMAND -`. Defaults to "ingest".
	Command string
	// OneRecord says the input is one record sent on its own (a record posted to serve's API),
	// not a file: NewReader does not judge it as a file (UTF-16, zip, PDF, binary data, Latin-1
	// text), whatever its bytes, and a record error gives no advice about converting a file.
	// What is wrong with it is its *RecordError, with its id when one can be read.
	OneRecord bool
	// HTTPTimeout is, for Open with an http(s) URL, the longest wait for the server's answer
	// and then, in each read of the body, for its next bytes (time the reader spends between
	// two reads does not count). Defaults to 30 s.
	HTTPTimeout time.Duration
	// PaceDir, when it names a directory that exists (PAPERPIPE_DATA), is where the pace of a
	// paced host (export.arxiv.org: see pacedHosts) is shared with the other processes given
	// it: a file per host, pace-HOST, holding the earliest time its next request may start,
	// locked while it is read and written. Without it, or when the directory does not exist,
	// each process keeps the pace alone.
	PaceDir string
}

// withDefaults fills in the defaults and rejects negative sizes.
func (o Options) withDefaults() (Options, error) {
	f, err := ParseFormat(string(o.Format))
	if err != nil {
		return o, fmt.Errorf("options: Format: %w", err)
	}
	o.Format = f
	for _, c := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxAbstractBytes", &o.MaxAbstractBytes, defaultMaxAbstract},
		{"MaxTitleBytes", &o.MaxTitleBytes, defaultMaxTitle},
		{"MaxRecordBytes", &o.MaxRecordBytes, 0},
	} {
		if *c.v < 0 {
			return o, fmt.Errorf("options: %s is negative (%d): %w", c.name, *c.v, paper.ErrInvalid)
		}
		if *c.v == 0 {
			*c.v = c.def
		}
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = recordSlack + 2*o.MaxAbstractBytes
	}
	if o.HTTPTimeout < 0 {
		return o, fmt.Errorf("options: HTTPTimeout is negative (%s): %w", o.HTTPTimeout, paper.ErrInvalid)
	}
	if o.HTTPTimeout == 0 {
		o.HTTPTimeout = defaultHTTPTimeout
	}
	if o.Command == "" {
		o.Command = "ingest"
	}
	return o, nil
}

// RecordError reports one bad record; reading can go on after it. Err wraps paper.ErrInvalid.
type RecordError struct {
	File string // the name given to NewReader ("stdin" for "-")
	Line int    // the record's first line, 1-based
	// Record is the record's number, 1-based, in formats whose records are not lines (Atom
	// entries, Hugging Face array elements, often all on line 1); 0 in the others.
	Record int
	ID     string // the record's id (canonical when it could be made), empty if unknown
	Err    error
}

// Error returns "FILE:LINE: ID: message", without the ID when it is unknown, and with
// "record N: " before the ID when Record is set.
func (e *RecordError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Record > 0 {
		b.WriteString(": record ")
		b.WriteString(strconv.Itoa(e.Record))
	}
	if e.ID != "" {
		b.WriteString(": ")
		b.WriteString(e.ID)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns Err.
func (e *RecordError) Unwrap() error { return e.Err }

// invalidError is a plain-words reason a record is bad; it unwraps to paper.ErrInvalid so that
// messages read "abstract is empty" rather than "abstract is empty: invalid input".
// hint is advice about the file the record is in, left out for a Reader of one record.
type invalidError struct{ msg, hint string }

func (e *invalidError) Error() string { return e.msg + e.hint }
func (e *invalidError) Unwrap() error { return paper.ErrInvalid }

func invalidf(format string, args ...any) *invalidError {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// parser reads one format.
type parser interface {
	// next returns the next record, a *RecordError, io.EOF or a fatal error.
	next() (paper.Abstract, error)
	// offset is the number of bytes of content consumed (after the BOM).
	offset() int64
}

// Reader reads paper.Abstract values from one source, one record at a time. It is not safe
// for concurrent use.
type Reader struct {
	decoder
	opts   Options
	bomLen int64
	p      parser
	err    error // sticky: io.EOF or a fatal error
	// detected: the format was detected from the content, not forced by Options.Format.
	detected bool
	// records counts what Next returned: papers and *RecordErrors.
	records int
}

// decoder gives the content of a source as UTF-8 text (see unpack).
type decoder struct {
	name    string // as in messages: "stdin" for "-"
	command string // the paperpipe command reading it, for the hints
	wants   string // what that command reads, for the refusal of a PDF or binary data
	guard   *guardReader
	probe   *probeReader // below guard: lets unpack look at the start without holding a stream up
	// packed counts the bytes read of gzip-compressed input; nil when it is not compressed.
	packed *guardReader
	br     *bufio.Reader
}

// newDecoder reads the start of r (see unpack), returning an error that says what the input is
// when it is not UTF-8 text; without judge, it reads nothing.
func newDecoder(r io.Reader, name, command, wants string, judge bool) (decoder, error) {
	if name == "-" {
		name = "stdin"
	}
	d := decoder{name: name, command: command, wants: wants}
	d.read(r)
	if !judge {
		return d, nil
	}
	if err := d.unpack(); err != nil {
		return d, fmt.Errorf("reading %s: %w", name, err)
	}
	return d, nil
}

// errGzipCut is the end of gzip-compressed input before the end of its stream: a file whose
// download or copy was cut short. It wraps io.ErrUnexpectedEOF, which alone said nothing of
// what ended early.
var errGzipCut = fmt.Errorf("the gzip-compressed input ends before its compressed stream does: "+
	"it was cut short (an interrupted download or copy?); fetch it again (%w)", io.ErrUnexpectedEOF)

// gzipBody reads a gzip stream, saying what an early end of it means. Its members (cat a.gz
// b.gz) are read one after the other; zero bytes after the last are no data (a file padded to
// a block, which gzip -d reads without complaint), and other bytes an error saying what they
// are (see next): gzip.Reader's own reading of members took either for the header of another
// and failed with "gzip: invalid header", or, under 10 bytes, with an early end.
type gzipBody struct {
	zr  *gzip.Reader // with Multistream(false): it ends at each member's end
	src *bufio.Reader
	in  *guardReader // below src: counts the compressed bytes read
}

func (g *gzipBody) Read(p []byte) (int, error) {
	for {
		n, err := g.zr.Read(p)
		if err == io.EOF {
			err = g.next()
			if err == nil && n == 0 {
				continue
			}
		}
		if err == io.ErrUnexpectedEOF {
			err = errGzipCut
		}
		return n, err
	}
}

// next goes on after a member's end: to the next member, or io.EOF at the end of the input or
// of zero bytes, or an error for other bytes.
func (g *gzipBody) next() error {
	at := g.in.n.Load() - int64(g.src.Buffered()) // the offset of what follows the member
	head, err := g.src.Peek(2)
	switch {
	case len(head) == 0 && err == io.EOF:
		return io.EOF
	case err != nil && err != io.EOF:
		return err
	case bytes.Equal(head, []byte{0x1f, 0x8b}):
		if err := g.zr.Reset(g.src); err != nil {
			if err == io.ErrUnexpectedEOF {
				return errGzipCut
			}
			return fmt.Errorf("gzip-compressed input, at its byte %d: %w", at+1, err)
		}
		g.zr.Multistream(false)
		return nil
	}
	for {
		buf, err := g.src.Peek(max(g.src.Buffered(), 1))
		if len(bytes.TrimLeft(buf, "\x00")) > 0 {
			return invalidf("the gzip-compressed input is followed by bytes that are not gzip-compressed (an uncompressed file joined to it?), "+
				"at its byte %d: they are not read; give each file on its own", at+1)
		}
		_, _ = g.src.Discard(len(buf))
		switch {
		case err == io.EOF:
			return io.EOF
		case err != nil:
			return err
		}
	}
}

// read makes r the input: br reads it through guard, which counts its bytes, and probe, which
// lets unpack look at its start without holding a stream up.
func (d *decoder) read(r io.Reader) {
	d.probe = &probeReader{r: r}
	d.guard = &guardReader{r: d.probe}
	d.br = bufio.NewReaderSize(d.guard, peekSize)
}

// papersWanted is what the commands reading papers take, for the refusal of a PDF or binary data.
const papersWanted = "papers' titles and abstracts as UTF-8 text (a title line, a blank line, the abstract paragraph), " +
	"JSON lines, the arXiv OAI snapshot, an arXiv Atom or RSS feed or Hugging Face daily-papers JSON (see --format)"

// Content is the content of a source as UTF-8 text, for commands that read another format
// than papers (import-embeddings' vector lines) through the same decoding as NewReader:
// gzip-compressed input is read decompressed, and UTF-16 text, a zip archive, a PDF and other
// binary data are refused by Decode with an error that says what the input is.
type Content struct{ d decoder }

// Decode returns the content of r. name is the file name used in errors ("-" is shown as
// "stdin"), command the paperpipe command reading it (named in the conversions the errors
// suggest), and wants what that command reads (named when the input is a PDF or binary).
func Decode(r io.Reader, name, command, wants string) (*Content, error) {
	d, err := newDecoder(r, name, command, wants, true)
	if err != nil {
		return nil, err
	}
	return &Content{d: d}, nil
}

// Read reads the decoded content.
func (c *Content) Read(p []byte) (int, error) { return c.d.br.Read(p) }

// Offset returns the number of bytes of input read so far, for progress reports: of
// gzip-compressed input, the compressed bytes.
func (c *Content) Offset() int64 {
	if c.d.packed != nil {
		return c.d.packed.n.Load()
	}
	return c.d.guard.n.Load() - int64(c.d.br.Buffered())
}

// NewReader returns a Reader of r. name is the file name used in errors and Source ("-" is
// shown as "stdin"). The format is opts.Format, or detected from the start of the content (see
// Detect), which NewReader reads: an error reading it is returned here. Gzip-compressed content
// is read decompressed, whatever the name; UTF-16 text, a zip archive, a PDF and other input
// that is not UTF-8 text are an error here that says what the input is, and how to convert it
// when it can be (see unpack).
func NewReader(r io.Reader, name string, opts Options) (*Reader, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	d, err := newDecoder(r, name, opts.Command, papersWanted, !opts.OneRecord)
	if err != nil {
		return nil, err
	}
	name = d.name
	rd := &Reader{decoder: d, opts: opts}
	f := opts.Format
	if f == Auto {
		if f, err = detect(rd.br); err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		rd.detected = true
	}
	if skipBOM(rd.br) {
		rd.bomLen = int64(len(bom))
	}
	rd.opts.Format = f
	switch f {
	case Text:
		rd.p = newTextParser(rd)
	case JSONL:
		rd.p = newJSONLParser(rd, false)
	case OAI:
		rd.p = newJSONLParser(rd, true)
	case Atom, RSS:
		rd.p = newAtomParser(rd)
	case HFDaily:
		rd.p = newHFParser(rd)
	}
	return rd, nil
}

// Next returns the next paper. At the end it returns io.EOF. A bad record is a *RecordError:
// log it and call Next again. Any other error is fatal and is returned again by later calls.
// A source without any record (an empty file, text of blank lines, an Atom feed without
// entries) ends with io.EOF too: see Empty.
func (r *Reader) Next() (paper.Abstract, error) {
	if r.err != nil {
		return paper.Abstract{}, r.err
	}
	a, err := r.p.next()
	if err != nil {
		var re *RecordError
		if errors.As(err, &re) {
			r.records++
		} else {
			r.err = err
		}
		return paper.Abstract{}, err
	}
	r.records++
	return a, nil
}

// Empty reports whether Next has returned io.EOF without any record before it, good or bad:
// the source held no paper (an empty file or standard input, text or JSON lines of blank lines,
// a feed of a quiet day without entries). That is not an error, as a scraper may write an empty
// file on a quiet day; commands say it as a warning naming the source ("FILE: no papers in it").
func (r *Reader) Empty() bool { return r.err == io.EOF && r.records == 0 }

// Format returns the format being read: the one forced by Options.Format or the one detected.
// Of detected XML it is Atom until the first Next has read the root element, which tells Atom
// from RSS.
func (r *Reader) Format() Format { return r.opts.Format }

// Offset returns the number of bytes of input consumed so far, for progress reports: of
// gzip-compressed input, the compressed bytes read.
func (r *Reader) Offset() int64 {
	if r.packed != nil {
		return r.packed.n.Load()
	}
	return r.bomLen + r.p.offset()
}

// unpack looks at the first bytes of the input (up to 5, waiting for more than the first only
// when it may start a magic number) and then at up to 64 KiB of it, or all of it when it ends
// before: however its bytes arrive (a file, a pipe bringing a line a read), the same input gets
// the same decision. A live stream is not held up for long: the look stops at what has come
// when no more bytes came for probeIdle (200 ms), or after probeMax (1 s) in any case (a
// stream that never pauses that long). Gzip-compressed input (1f 8b, whatever the file's name)
// is read decompressed; UTF-16 text (a UTF-16 byte order mark, or NUL bytes among the first
// ASCII characters, mostly every other byte), a zip archive, a PDF document, binary data
// (frequent NUL bytes, see byteStats.binary, or bytes that are not UTF-8 among frequent control
// characters) and Latin-1 or Windows-1252 text (at least minBad bytes beyond ASCII that are not
// UTF-8, and no UTF-8 character beyond ASCII) are refused with an error that says what the
// input is, and how to convert it when it can be. Other input, a UTF-8 byte order mark
// included, is left as it is: a stray NUL or byte that is not UTF-8 is its record's error.
func (d *decoder) unpack() error {
	head, err := d.br.Peek(1) // waits for the first byte, as detect does
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return err
	case bytes.IndexByte([]byte{0x1f, 0xff, 0xfe, 'P', '%', 0}, head[0]) >= 0: // a magic's start
		if _, err = d.br.Peek(5); err != nil && err != io.EOF { // fewer at the end
			return err
		}
	}
	head, _ = d.br.Peek(min(d.br.Buffered(), 5))
	file := d.name
	if file == "stdin" || IsURL(file) {
		file = "FILE"
	}
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(d.br)
		if err == io.ErrUnexpectedEOF {
			return errGzipCut // within its header
		}
		if err != nil {
			return fmt.Errorf("gzip-compressed input: %w", err)
		}
		zr.Multistream(false)
		body := &gzipBody{zr: zr, src: d.br, in: d.guard}
		if d.packed == nil {
			d.packed = d.guard
		}
		d.read(body)
		return d.unpack() // what it holds may be UTF-16 too
	case bytes.HasPrefix(head, []byte{0xff, 0xfe}) || bytes.HasPrefix(head, []byte{0xfe, 0xff}):
		return invalidf("the input is UTF-16 text (it starts with a UTF-16 byte order mark), not UTF-8: convert it with "+
			"`iconv -f UTF-16 -t UTF-8 %s | paperpipe %s -`", file, d.command)
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return invalidf("the input is a zip archive: give its contents, "+
			"`unzip -p %s | paperpipe %s -`", file, d.command)
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return invalidf("the input is a PDF document, not text: paperpipe %s reads %s", d.command, d.wants)
	}
	// Look at up to 64 KiB, or to the end, however the input comes (a pipe may bring a line a
	// read): the same input must get the same decision. A live stream is not held up: the
	// look stops when nothing more came for probeIdle.
	// A read error (a download or gzip file cut short) is not returned here: what came before
	// it is looked at, and read; the error comes again, at its line, when the reading reaches
	// it (probeReader keeps it).
	d.probe.idle, d.probe.until = probeIdle, time.Now().Add(probeMax)
	_, _ = d.br.Peek(peekSize)
	d.probe.idle, d.probe.until = 0, time.Time{}
	block, _ := d.br.Peek(d.br.Buffered())
	if bytes.IndexByte(block[:min(len(block), 4)], 0) >= 0 && utf16Like(block) {
		enc := "UTF-16LE"
		if block[0] == 0 {
			enc = "UTF-16BE"
		}
		return invalidf("the input has NUL bytes between its first characters: it looks like %s text, not UTF-8: convert it with "+
			"`iconv -f %s -t UTF-8 %s | paperpipe %s -`", enc, enc, file, d.command)
	}
	st := textStats(block)
	switch {
	case st.binary(len(block)):
		return invalidf("the input is binary data (it holds NUL bytes), not UTF-8 text: paperpipe %s reads %s", d.command, d.wants)
	case st.bad >= minBad && st.bad > st.multi && 100*st.ctrl > len(block):
		return invalidf("the input is not UTF-8 text (%d of the bytes beyond ASCII in its first %d are not UTF-8, and it holds control characters: binary data?): "+
			"paperpipe %s reads %s", st.bad, len(block), d.command, d.wants)
	case st.bad >= minBad && st.multi == 0 && !declaresSingleByte(block):
		// (An XML feed declaring Latin-1 or Windows-1252 is read in it: see declaredCharset.)
		return invalidf("the input is not UTF-8 text: %d of the bytes beyond ASCII in its first %d are not UTF-8, and none is, as in Latin-1 or Windows-1252 text: "+
			"convert it with `iconv -f WINDOWS-1252 -t UTF-8 %s | paperpipe %s -`", st.bad, len(block), file, d.command)
	}
	return nil
}

// minBad is the fewest bytes that are not UTF-8 for which unpack refuses the input as a whole:
// fewer are the errors of the records holding them. A single stray byte in UTF-8 text (a
// Windows-1252 quote pasted in) must not make the file Latin-1, whose conversion would turn
// its real UTF-8 ("Schrödinger") into mojibake.
const minBad = 3

// utf16Like reports whether at least 90% of the NUL bytes of b are at even offsets, or at
// least 90% at odd ones, as in UTF-16 text of mostly ASCII characters; binary data has them
// anywhere. Not all: a character of UTF-16 text may have a NUL as its other byte too (一
// U+4E00, the ideographic space U+3000, Ā U+0100).
func utf16Like(b []byte) bool {
	var even, odd int
	for i, c := range b {
		if c == 0 {
			if i%2 == 0 {
				even++
			} else {
				odd++
			}
		}
	}
	return 10*max(even, odd) >= 9*(even+odd)
}

// byteStats counts what a block of input holds.
type byteStats struct {
	nul   int // NUL bytes
	ctrl  int // control characters other than white space (tab, newline, carriage return, form feed)
	bad   int // bytes beyond ASCII that are not part of a UTF-8 character
	multi int // UTF-8 characters beyond ASCII
}

// binary reports whether a block of n bytes with these counts is binary data: it holds NUL
// bytes, at least two, and they and the other control characters are more than 1% of it. One
// stray NUL in a text file is its record's error, not a reason to refuse the file.
func (st byteStats) binary(n int) bool {
	return st.nul >= 2 && 100*(st.nul+st.ctrl) > n
}

// textStats counts the bytes of b; a character cut at b's end (more may follow) is left out.
func textStats(b []byte) byteStats {
	var st byteStats
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			switch {
			case c == 0:
				st.nul++
			case c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f', c == 0x7f:
				st.ctrl++
			}
			i++
			continue
		}
		if !utf8.FullRune(b[i:]) {
			break
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			st.bad++
		} else {
			st.multi++
		}
		i += n
	}
	return st
}

// bom is the UTF-8 byte order mark.
const bom = "\xef\xbb\xbf"

// detect peeks at br until Detect can decide: the first byte that is not white space and what
// follows it (the next byte after '<', the next one not white space after '[' or '{', and for
// '{' the whole first line, or 64 KiB of it). It reads no more than it needs, so a slow stream
// on standard input is not held up waiting for 64 KiB; it always reads past a BOM.
func detect(br *bufio.Reader) (Format, error) {
	for n := 1; ; {
		_, err := br.Peek(n) // waits for n bytes, or the end, or an error
		if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
		head, _ := br.Peek(br.Buffered()) // all that has come so far
		final := err != nil || len(head) >= peekSize
		if final {
			return Detect(head), nil
		}
		if !(len(head) < len(bom) && strings.HasPrefix(bom, string(head))) { // not a BOM's start only
			if f, ok := classify(bytes.TrimLeft(bytes.TrimPrefix(head, []byte(bom)), " \t\r\n"), false); ok {
				return f, nil
			}
		}
		n = min(len(head)+1, peekSize)
	}
}

// skipBOM discards a byte order mark at the start of br, reading no more than it needs.
func skipBOM(br *bufio.Reader) bool {
	for n := 1; ; n++ {
		head, err := br.Peek(n)
		if bytes.HasPrefix(head, []byte(bom)) {
			_, _ = br.Discard(len(bom))
			return true
		}
		if err != nil || !strings.HasPrefix(bom, string(head)) {
			return false
		}
	}
}

// oaiKeys are keys only the arXiv OAI snapshot has.
var oaiKeys = regexp.MustCompile(`"(versions|update_date|submitter|authors_parsed)"\s*:`)

// Detect names the format of content that starts with head (up to 64 KiB is plenty): "<?",
// "<!" or '<' and a letter is Atom (XML: its root element, read by the Reader, tells Atom's
// <feed> from RSS's <rss> or <rdf:RDF>, and Format says which it was); '[' followed by '{' or ']' is Hugging Face daily papers;
// '{' followed by '"' or '}' is the OAI snapshot when the first line has an OAI-only key
// ("versions", "update_date", "submitter", "authors_parsed") and JSONL otherwise (white space
// may come between '[' or '{' and what follows); anything else is Text, such as a title
// starting with "[Re]". Leading white space and a UTF-8 byte order mark are skipped.
func Detect(head []byte) Format {
	head = bytes.TrimPrefix(head, []byte(bom))
	f, _ := classify(bytes.TrimLeft(head, " \t\r\n"), true)
	return f
}

// classify names the format of content starting with rest (white space and a BOM skipped).
// ok is false when rest is too short to decide and more may come (final is false); with
// final, it always decides.
func classify(rest []byte, final bool) (f Format, ok bool) {
	if len(rest) == 0 {
		return Text, final
	}
	after := bytes.TrimLeft(rest[1:], " \t\r\n")
	switch rest[0] {
	case '<':
		if len(rest) < 2 {
			return Text, final
		}
		if c := rest[1]; c == '?' || c == '!' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			return Atom, true
		}
	case '[':
		if len(after) == 0 {
			return Text, final
		}
		if after[0] == '{' || after[0] == ']' {
			return HFDaily, true
		}
	case '{':
		if len(after) == 0 {
			return Text, final
		}
		if after[0] != '"' && after[0] != '}' {
			return Text, true
		}
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i]
		} else if !final {
			return JSONL, false
		}
		if oaiKeys.Match(line) {
			return OAI, true
		}
		return JSONL, true
	}
	return Text, true
}

// detectedHint is what a fatal error before the first record adds when the format was
// detected, not forced: the content may be in another format that starts like this one (what,
// "Hugging Face JSON"), such as a text archive whose first title starts with "[".
func (r *Reader) detectedHint(what string) string {
	if !r.detected {
		return ""
	}
	return fmt.Sprintf("; the input was taken for %s from its first bytes: if it is in another format, name it with --format", what)
}

// location is "name:line", the Source of a record.
func (r *Reader) location(line int) string {
	return r.name + ":" + strconv.Itoa(line)
}

// recordErr makes a *RecordError for this file; a Reader of one record leaves out the advice
// about the file (see invalidError).
func (r *Reader) recordErr(line int, id string, err error) *RecordError {
	if ie, ok := err.(*invalidError); ok && ie.hint != "" && r.opts.OneRecord {
		err = &invalidError{msg: ie.msg}
	}
	return &RecordError{File: r.name, Line: line, ID: id, Err: err}
}

// guardReader counts the bytes read and, when stop is set, refuses to read past it: it bounds
// the memory of decoders (encoding/xml, encoding/json) that hold a whole record.
type guardReader struct {
	r    io.Reader
	n    atomic.Int64 // read by Offset while a probe's read may still run (probeReader)
	stop int64        // 0: no limit
}

// errTooLarge is returned by guardReader past its stop.
var errTooLarge = errors.New("record too large")

func (g *guardReader) Read(p []byte) (int, error) {
	if g.stop > 0 {
		left := g.stop - g.n.Load()
		if left <= 0 {
			return 0, errTooLarge
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := g.r.Read(p)
	g.n.Add(int64(n))
	return n, err
}

// limit allows max more bytes, plus what the buffers above the guard may already hold.
func (g *guardReader) limit(max int) {
	g.stop = g.n.Load() + int64(max) + peekSize
}

// unlimit lifts the limit.
func (g *guardReader) unlimit() { g.stop = 0 }

// ioErr wraps a fatal read error with the file and the line being read, as FILE:LINE: like
// every other error of a Reader: the commands print it as it is, naming the file once.
func (r *Reader) ioErr(line int, err error) error {
	return fmt.Errorf("%s:%d: %w", r.name, line, err)
}
