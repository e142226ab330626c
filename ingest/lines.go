package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// lineReader reads lines of any length in bounded memory: it keeps at most max bytes of a
// line, discards the rest while still counting it, and counts lines and bytes consumed.
type lineReader struct {
	br   *bufio.Reader
	max  int
	buf  []byte
	line int   // number of the line last returned, 1-based
	off  int64 // bytes consumed
}

func newLineReader(br *bufio.Reader, max int) *lineReader {
	return &lineReader{br: br, max: max}
}

// next returns the next line without its "\n" or "\r\n", or a UTF-8 byte order mark at its
// start, and the line's full length without them. When the length is more than max, line
// holds only its first max bytes. line is valid until the next call. At the end it returns
// io.EOF.
func (l *lineReader) next() (line []byte, length int, err error) {
	l.buf = l.buf[:0]
	var last byte // the line's last byte before its '\n', wherever it fell: a '\r' is not counted
	for {
		chunk, err := l.br.ReadSlice('\n')
		l.off += int64(len(chunk))
		length += len(chunk)
		if room := l.max - len(l.buf); room > 0 {
			l.buf = append(l.buf, chunk[:min(room, len(chunk))]...)
		}
		if body := bytes.TrimSuffix(chunk, []byte{'\n'}); len(body) > 0 {
			last = body[len(body)-1]
		}
		switch {
		case err == nil:
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if length == 0 {
				return nil, 0, io.EOF
			}
		default:
			return nil, 0, err
		}
		l.line++
		if err == nil { // the line ended with '\n'
			length--
		}
		if length > 0 && last == '\r' {
			length--
		}
		line = l.buf[:min(len(l.buf), length)]
		if bytes.HasPrefix(line, []byte(bom)) {
			// The byte order mark of a file joined to the one before it (cat a.txt b.txt): not
			// the line's text.
			line, length = line[len(bom):], length-len(bom)
		}
		return line, length, nil
	}
}
