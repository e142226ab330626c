package ingest

import (
	"bufio"
	"bytes"
)

// xmlGuard is what an XML feed's decoder reads: it bounds the bytes of one record
// (MaxRecordBytes, which bounds the decoder's memory), and lets a feed go on past an entry or
// item over that bound. encoding/xml cannot resume after its reader fails, so the guard does
// not fail it inside a record: it reads on to the record's end itself, keeping nothing, and
// then gives the decoder the end tags that close what is open (the cut text, attribute,
// comment or CDATA section first), so that the decoder ends the record, cut, and reads on from
// the next. Outside a record (armed is false) a read past the bound fails, as before.
//
// It reads the feed's bytes after any conversion of a declared charset (see
// atomParser.charset), so that what it gives the decoder is exactly what it read: it knows the
// decoder's place in the XML.
type xmlGuard struct {
	src  *bufio.Reader
	left int    // bytes the decoder may read before the bound; see limit
	err  error  // src's error, once it returned one while the guard read on alone
	tag  []byte // the bytes from the last '<' read (at most maxTag): the record's start tag

	armed bool // a record is being decoded, from just after its start tag
	lex   xmlLexer
	close []byte // end tags still to give the decoder after a cut
	cut   bool   // the record being decoded was cut

	// What the decoder did not see, for its lines and offsets: the bytes and lines read on
	// alone, less the bytes of end tags given to it.
	skippedLines int
	skippedBytes int64
}

const (
	maxTag = 1 << 10
	// cutSlack is how far past its bound a record may be read while the decoder is at a place
	// where it cannot be cut (inside a tag's name, an entity, a UTF-8 character): far more
	// than any of them takes.
	cutSlack = 64 << 10
)

// limit allows max more bytes to be read.
func (g *xmlGuard) limit(max int) { g.left = max }

// arm is called just after the decoder has read a record's start tag: from here on, an
// over-long record is cut and read past, not fatal.
func (g *xmlGuard) arm() {
	name := g.tag
	if len(name) > 0 && name[0] == '<' {
		name = name[1:]
	}
	if i := bytes.IndexAny(name, " \t\r\n/>"); i >= 0 {
		name = name[:i]
	}
	g.armed, g.cut = true, false
	g.lex = xmlLexer{stack: []string{string(name)}}
	if bytes.HasSuffix(g.tag, []byte("/>")) {
		g.lex.stack = nil // <entry/>: the decoder reads nothing more of it
	}
}

// disarm ends the record, reporting whether it was cut.
func (g *xmlGuard) disarm() bool {
	cut := g.cut
	g.armed, g.cut, g.lex = false, false, xmlLexer{}
	return cut
}

func (g *xmlGuard) ReadByte() (byte, error) {
	if len(g.close) > 0 {
		b := g.close[0]
		g.close = g.close[1:]
		return b, nil
	}
	if g.err != nil {
		return 0, g.err
	}
	if g.left <= 0 && g.armed && len(g.lex.stack) > 0 && g.lex.cuttable() {
		g.skip()
		return g.ReadByte()
	}
	if g.left <= -cutSlack || g.left <= 0 && !g.armed {
		return 0, errTooLarge
	}
	b, err := g.src.ReadByte()
	if err != nil {
		return 0, err
	}
	g.left--
	if b == '<' {
		g.tag = g.tag[:0]
	}
	if len(g.tag) < maxTag {
		g.tag = append(g.tag, b)
	}
	if g.armed {
		g.lex.step(b)
	}
	return b, nil
}

func (g *xmlGuard) Read(p []byte) (int, error) {
	for i := range p {
		b, err := g.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = b
	}
	return len(p), nil
}

// skip reads the rest of the record alone, and makes close what the decoder is given next.
func (g *xmlGuard) skip() {
	g.cut = true
	g.close = g.lex.closing()
	g.skippedBytes -= int64(len(g.close))
	for len(g.lex.stack) > 0 {
		b, err := g.src.ReadByte()
		if err != nil {
			g.err = err // the decoder gets it after the end tags: a feed cut short
			return
		}
		g.skippedBytes++
		if b == '\n' {
			g.skippedLines++
		}
		g.lex.step(b)
	}
	g.tag = g.tag[:0]
}

// xmlLexer follows the XML of a record well enough to know where it ends and what to write to
// end it wherever it is cut. It keeps the names of the open elements, nothing of their content.
type xmlLexer struct {
	state  lexState
	stack  []string // the open elements' names, as written (with a prefix)
	name   []byte   // the name of the tag being read
	quote  byte     // the quote of the attribute value being read
	entity bool     // inside an entity reference (&amp;): it cannot be cut
	utf8   int      // continuation bytes of a UTF-8 character still to come
	last   [2]byte  // the two bytes before, for the ends of comments, CDATA and instructions
	bang   []byte   // what follows "<!", until it says what it starts
}

type lexState uint8

const (
	lexText    lexState = iota
	lexOpen             // after '<'
	lexName             // a start tag's name
	lexAttrs            // a start tag after its name
	lexValue            // a quoted attribute value
	lexSlash            // a start tag's '/' (of "/>"?)
	lexEnd              // an end tag
	lexBang             // after "<!"
	lexComment          // <!-- -->
	lexCDATA            // <![CDATA[ ]]>
	lexDecl             // <!…> or <?…?> : read to its end
)

func (l *xmlLexer) step(b byte) {
	switch {
	case b >= 0xC0:
		l.utf8 = 1
		if b >= 0xE0 {
			l.utf8++
		}
		if b >= 0xF0 {
			l.utf8++
		}
	case b&0xC0 == 0x80 && l.utf8 > 0:
		l.utf8--
	default:
		l.utf8 = 0
	}
	switch l.state {
	case lexText:
		switch {
		case b == '<':
			l.state, l.entity = lexOpen, false
		case b == '&':
			l.entity = true
		case b == ';':
			l.entity = false
		}
	case lexOpen:
		switch b {
		case '/':
			l.state = lexEnd
		case '!':
			l.state, l.bang = lexBang, l.bang[:0]
		case '?':
			l.state = lexDecl
		default:
			l.state, l.name = lexName, append(l.name[:0], b)
		}
	case lexName:
		switch b {
		case ' ', '\t', '\r', '\n':
			l.push()
			l.state = lexAttrs
		case '/':
			l.push()
			l.state = lexSlash
		case '>':
			l.push()
			l.state = lexText
		default:
			if len(l.name) < maxTag {
				l.name = append(l.name, b)
			}
		}
	case lexAttrs, lexSlash:
		switch {
		case b == '"' || b == '\'':
			l.state, l.quote, l.entity = lexValue, b, false
		case b == '>' && l.state == lexSlash:
			l.pop() // <x/>
			l.state = lexText
		case b == '>':
			l.state = lexText
		case b == '/':
			l.state = lexSlash
		default:
			l.state = lexAttrs
		}
	case lexValue:
		switch b {
		case l.quote:
			l.state = lexAttrs
		case '&':
			l.entity = true
		case ';':
			l.entity = false
		}
	case lexEnd:
		if b == '>' {
			l.pop()
			l.state = lexText
		}
	case lexBang:
		l.bang = append(l.bang, b)
		switch {
		case string(l.bang) == "--":
			l.state = lexComment
		case string(l.bang) == "[CDATA[":
			l.state = lexCDATA
		case !bytes.HasPrefix([]byte("--"), l.bang) && !bytes.HasPrefix([]byte("[CDATA["), l.bang):
			l.state = lexDecl
			if b == '>' {
				l.state = lexText
			}
		}
		l.last = [2]byte{}
	case lexComment:
		if b == '>' && l.last == [2]byte{'-', '-'} {
			l.state = lexText
		}
	case lexCDATA:
		if b == '>' && l.last == [2]byte{']', ']'} {
			l.state = lexText
		}
	case lexDecl:
		if b == '>' {
			l.state = lexText
		}
	}
	if l.state != lexBang {
		l.last = [2]byte{l.last[1], b}
	}
}

func (l *xmlLexer) push() { l.stack = append(l.stack, string(l.name)) }

func (l *xmlLexer) pop() {
	if len(l.stack) > 0 {
		l.stack = l.stack[:len(l.stack)-1]
	}
}

// cuttable reports whether the record can be cut here: closing() makes well-formed XML of what
// was read.
func (l *xmlLexer) cuttable() bool {
	if l.utf8 > 0 {
		return false
	}
	switch l.state {
	case lexText, lexValue:
		return !l.entity
	case lexComment:
		return l.last[1] != '-'
	case lexCDATA:
		return true
	}
	return false
}

// closing is what ends the record where it was cut: the end of the value, comment or CDATA
// section being read, then the end tags of the open elements.
func (l *xmlLexer) closing() []byte {
	var b []byte
	switch l.state {
	case lexValue:
		b = append(b, l.quote, '>')
	case lexComment:
		b = append(b, "-->"...)
	case lexCDATA:
		b = append(b, "]]>"...)
	}
	for i := len(l.stack) - 1; i >= 0; i-- {
		b = append(b, "</"...)
		b = append(b, l.stack[i]...)
		b = append(b, '>')
	}
	return b
}
