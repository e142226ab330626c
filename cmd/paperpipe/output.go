package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/summarize"
)

// stdout is where a command writes its results (tables, JSON, the help it was asked for):
// standard output, remembering the first write that failed. Text output is written with
// fmt.Fprint* and tabwriter, whose errors go unchecked, so run checks this once the command
// has returned: output lost to a full disk (`paperpipe list > /dev/full`), a quota or a
// vanished NFS server is then an error, exit 1, not a run that looks like it succeeded. A
// reader that has closed its end of a pipe (`paperpipe search … | head -1`) ends the process
// by SIGPIPE before a write can fail, quietly, as it does other Unix tools.
var stdout = &resultWriter{w: os.Stdout}

type resultWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error // the first write error
}

func (o *resultWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		o.mu.Lock()
		if o.err == nil {
			o.err = err
		}
		o.mu.Unlock()
	}
	return n, err
}

// failed is the first write error, or nil.
func (o *resultWriter) failed() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// nonNil returns s, or an empty slice for nil: a list prints as [] in JSON, never null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := newJSONEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newJSONEncoder is a json.Encoder whose output holds, within its strings, none of the
// characters encoding/json leaves as they are that act on a terminal: DEL, the C1 controls
// (U+009B is an 8-bit CSI) and the Unicode format characters (the bidi overrides) are written
// as \u escapes, which decode to the same text. `show --json` on a terminal is then as safe
// as the readable output.
func newJSONEncoder(w io.Writer) *json.Encoder { return json.NewEncoder(jsonEscaper{w}) }

// jsonEscaper rewrites what json.Encoder writes (a whole value per Write) for newJSONEncoder.
type jsonEscaper struct{ w io.Writer }

func (e jsonEscaper) Write(p []byte) (int, error) {
	clean := true
	for i := 0; i < len(p) && clean; i++ {
		clean = p[i] < 0x7f
	}
	if clean {
		return e.w.Write(p)
	}
	written := len(p)
	var b strings.Builder
	b.Grow(len(p) + 16)
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		switch {
		case r == 0x7f, r >= 0x80 && r <= 0x9f, unicode.Is(unicode.Cf, r):
			for _, u := range utf16.Encode([]rune{r}) {
				fmt.Fprintf(&b, "\\u%04x", u)
			}
		default:
			b.Write(p[:n])
		}
		p = p[n:]
	}
	if _, err := io.WriteString(e.w, b.String()); err != nil {
		return 0, err
	}
	return written, nil
}

// plural is n with the unit, singular for 1: "1 record", "2 records". many is the plural form.
func plural[N int | int64 | uint64](n N, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// pick is one when n is 1, else many: the word that agrees with a count printed apart.
func pick[N int | int64 | uint64](n N, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// termSafe makes text that came from outside (a paper's id, title, abstract, authors,
// categories or URL, a TL;DR, a dead letter's reason, an error message quoting any of them)
// safe to print on a terminal. Anyone can publish an abstract, and an escape sequence in it
// would act on the user's terminal (OSC 52 writes the clipboard, OSC 0 the window title, CSI
// 2J clears the screen, OSC 8 hides a link) and a bidi override reorders what is shown. Tab,
// newline and the other white space controls (and U+2028, U+2029) are a space, or, when lines
// is true (text whose lines are meant), tab and newline are kept; every other C0 or C1 control
// character and DEL, and the bidi embedding, override and isolate controls (U+202A–U+202E,
// U+2066–U+2069), which reorder the rest of a line, are shown as escapes: \x1b, \u202e. Other
// format characters are part of how real text is written and act on nothing — the marks of
// Hebrew and Arabic (LRM, RLM, ALM), joiners, the soft hyphen, an emoji flag's tag characters —
// and are kept. A byte that is not UTF-8 is U+FFFD. --json output escapes its own way
// (newJSONEncoder).
func termSafe(s string, lines bool) string {
	safe := true
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = c >= ' ' && c < 0x7f || lines && (c == '\n' || c == '\t')
	}
	if safe {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // a byte that is not UTF-8 comes as U+FFFD
		switch {
		case lines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r' || r == '\u0085' || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		case r < 0x80 && (r < ' ' || r == 0x7f):
			fmt.Fprintf(&b, "\\x%02x", r)
		case r >= 0x80 && r <= 0x9f, r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clip shortens s to n runes, marking the cut with an ellipsis. s is made terminal-safe
// (termSafe) first.
func clip(s string, n int) string {
	s = termSafe(s, false)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// listedTLDR is a TL;DR as list, related and search print it: the offline summarizer's names
// that summarizer after it, so that a list mixing them (an archive processed offline, then by
// an LLM) tells an extractive sentence of the abstract from an LLM's TL;DR, as show and the
// JSON name every TL;DR's model.
func listedTLDR(text, model string) string {
	if model == summarize.OfflineModel {
		return text + " (" + model + ")"
	}
	return text
}

// wrap breaks text into lines of at most width runes, each prefixed by indent. text is made
// terminal-safe (termSafe) first.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	line := 0
	for _, w := range strings.Fields(termSafe(text, false)) {
		n := utf8.RuneCountInString(w)
		if line > 0 && line+1+n > width {
			b.WriteString("\n")
			line = 0
		}
		if line == 0 {
			b.WriteString(indent)
		} else {
			b.WriteString(" ")
			line++
		}
		b.WriteString(w)
		line += n
	}
	return b.String()
}

// progress reports a long run on stderr: on a terminal, one line rewritten in place with a bar,
// the rate and the ETA when the total is known; otherwise a plain line every ten seconds. It
// measures either bytes of a file (newProgress: records counted, the bar and ETA from the
// offset in the file's size) or items against a known count (newCountProgress).
type progress struct {
	w     io.Writer
	name  string
	unit  string // what is counted: "records", "papers"
	tty   bool
	start time.Time
	last  time.Time
	n     int
	pos   int64 // bytes read (file mode) or items done (count mode)
	total int64 // file size or item count; 0 when unknown
	bytes bool  // file mode
}

// newProgress reports reading the source name: its size is the total when name is a regular
// file (not standard input or a URL).
func newProgress(w io.Writer, name string) *progress {
	p := newCountProgress(w, name, 0, "records")
	p.bytes = true
	if fi, err := os.Stat(name); err == nil && fi.Mode().IsRegular() {
		p.total = fi.Size()
	}
	return p
}

// newCountProgress reports work on total items (0: unknown) named by unit.
func newCountProgress(w io.Writer, name string, total int64, unit string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		fi, err := f.Stat()
		tty = err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	now := time.Now()
	return &progress{w: w, name: name, unit: unit, tty: tty, start: now, last: now, total: total}
}

// tick records n items done and, in file mode, offset bytes read; it prints when due.
func (p *progress) tick(n int, offset int64) {
	p.n = n
	p.pos = offset
	if !p.bytes {
		p.pos = int64(n)
	}
	every := 10 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	p.print(false)
}

// line formats the progress line.
func (p *progress) line(final bool) string {
	el := time.Since(p.start)
	rate := float64(p.n) / max(el.Seconds(), 1e-9)
	var b strings.Builder
	b.WriteString(p.name + ": ")
	if p.total > 0 {
		frac := min(float64(p.pos)/float64(p.total), 1)
		if p.tty {
			const width = 24
			full := int(frac * width)
			b.WriteString("[" + strings.Repeat("#", full) + strings.Repeat(".", width-full) + "] ")
		}
		fmt.Fprintf(&b, "%3.0f%%  ", frac*100)
	}
	if p.bytes {
		fmt.Fprintf(&b, "%d %s, %.1f", p.n, p.unit, float64(p.pos)/1e6)
		if p.total > 0 {
			fmt.Fprintf(&b, "/%.1f", float64(p.total)/1e6)
		}
		b.WriteString(" MB")
	} else {
		fmt.Fprintf(&b, "%d", p.n)
		if p.total > 0 {
			fmt.Fprintf(&b, "/%d", p.total)
		}
		b.WriteString(" " + p.unit)
	}
	fmt.Fprintf(&b, ", %.0f %s/s", rate, p.unit)
	switch {
	case final:
		fmt.Fprintf(&b, ", %s", el.Round(time.Second))
	case p.total > 0 && p.pos > 0 && p.pos < p.total:
		eta := time.Duration(float64(el) * float64(p.total-p.pos) / float64(p.pos))
		fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
	}
	return b.String()
}

func (p *progress) print(final bool) {
	msg := p.line(final)
	switch {
	case p.tty && final:
		fmt.Fprintf(p.w, "\r\033[K%s\n", msg)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", msg)
	default:
		fmt.Fprintln(p.w, msg)
	}
}

// done prints the final line if any progress was shown. offset is the bytes read in file
// mode (a smaller one than the last tick's, as a deferred call evaluates it early, is
// ignored), unused otherwise.
func (p *progress) done(offset int64) {
	if p.bytes && offset > p.pos {
		p.pos = offset
	}
	if p.last != p.start {
		p.print(true)
	}
}
