package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// clip shortens s to n runes, marking the cut with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// wrap breaks text into lines of at most width runes, each prefixed by indent.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	line := 0
	for _, w := range strings.Fields(text) {
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

// progress reports a long ingest on stderr: a line rewritten in place on a terminal, plain
// lines every few seconds otherwise.
type progress struct {
	w     io.Writer
	name  string
	tty   bool
	start time.Time
	last  time.Time
	n     int
}

func newProgress(w *os.File, name string) *progress {
	fi, err := w.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	now := time.Now()
	return &progress{w: w, name: name, tty: tty, start: now, last: now}
}

func (p *progress) tick(n int, offset int64) {
	p.n = n
	every := 10 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	p.print(offset, false)
}

func (p *progress) print(offset int64, final bool) {
	el := time.Since(p.start).Seconds()
	rate := float64(p.n) / max(el, 1e-9)
	msg := fmt.Sprintf("%s: %d records, %.1f MB, %.0f records/s", p.name, p.n, float64(offset)/1e6, rate)
	switch {
	case p.tty && final:
		fmt.Fprintf(p.w, "\r\033[K%s\n", msg)
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", msg)
	default:
		fmt.Fprintln(p.w, msg)
	}
}

// done prints the final line if any progress was shown.
func (p *progress) done(offset int64) {
	if p.last != p.start {
		p.print(offset, true)
	}
}
