package ingest

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/paperpipe/paperpipe/paper"
)

// atomParser reads an arXiv API Atom feed token by token, decoding one <entry> at a time.
type atomParser struct {
	r    *Reader
	dec  *xml.Decoder
	n    int  // entries read
	root bool // the root element was read, and is <feed>
	// The feed's OpenSearch counts (opensearch:totalResults, startIndex, itemsPerPage); -1
	// when it has none. See empty.
	total, start, perPage int
}

func newAtomParser(r *Reader) *atomParser {
	dec := xml.NewDecoder(r.br) // a bufio.Reader is an io.ByteReader: no second buffer
	dec.Entity = xml.HTMLEntity
	return &atomParser{r: r, dec: dec, total: -1, start: -1, perPage: -1}
}

func (p *atomParser) offset() int64 { return p.dec.InputOffset() }

// atomEntry is the part of an Atom <entry> that is used. Local names match any namespace.
type atomEntry struct {
	ID        string `xml:"id"`
	Title     string `xml:"title"`
	Summary   string `xml:"summary"`
	Published string `xml:"published"`
	Updated   string `xml:"updated"`
	Authors   []struct {
		Name string `xml:"name"`
	} `xml:"author"`
	// Creators are Dublin Core's <dc:creator>: arXiv's announcement feeds (rss.arxiv.org) give
	// an entry's authors in one, "A, B (Affiliation), C", and no <author>.
	Creators   []string `xml:"creator"`
	Categories []struct {
		Term string `xml:"term,attr"`
	} `xml:"category"`
	Links []struct {
		Href string `xml:"href,attr"`
		Rel  string `xml:"rel,attr"`
	} `xml:"link"`
}

func (p *atomParser) next() (paper.Abstract, error) {
	for {
		p.r.guard.limit(p.r.opts.MaxRecordBytes)
		tok, err := p.dec.Token()
		if err == io.EOF {
			if !p.root {
				return paper.Abstract{}, p.notAtom("")
			}
			if p.n == 0 {
				return paper.Abstract{}, p.empty()
			}
			return paper.Abstract{}, io.EOF
		}
		if err != nil {
			return paper.Abstract{}, p.fatal(err)
		}
		se, ok := tok.(xml.StartElement)
		if ok && !p.root {
			if se.Name.Local != "feed" {
				return paper.Abstract{}, p.notAtom(se.Name.Local)
			}
			p.root = true
			continue
		}
		if ok && p.n == 0 {
			if count := p.count(se.Name.Local); count != nil {
				var v string
				if err := p.dec.DecodeElement(&v, &se); err != nil {
					return paper.Abstract{}, p.fatal(err)
				}
				if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
					*count = n
				}
				continue
			}
		}
		if !ok || se.Name.Local != "entry" {
			continue
		}
		line, _ := p.dec.InputPos()
		p.n++
		var e atomEntry
		if err := p.dec.DecodeElement(&e, &se); err != nil {
			return paper.Abstract{}, p.fatal(err)
		}
		a, err := p.entry(line, &e)
		var re *RecordError
		if errors.As(err, &re) {
			re.Record = p.n
		}
		return a, err
	}
}

// count is where the OpenSearch count named local is kept, or nil for another element.
func (p *atomParser) count(local string) *int {
	switch local {
	case "totalResults":
		return &p.total
	case "startIndex":
		return &p.start
	case "itemsPerPage":
		return &p.perPage
	}
	return nil
}

// empty is the end of a feed without entries: io.EOF, a source without papers (a quiet day,
// a page past the last result), unless the feed says it has results from its startIndex
// (opensearch:totalResults, and an itemsPerPage that is not 0). The arXiv API answers so now
// and then when it is busy: a valid feed, status 200, without the entries it counts. Taken for
// a quiet day, that day's papers were lost without a failure; it is a failed source.
func (p *atomParser) empty() error {
	if p.total <= max(p.start, 0) || p.perPage == 0 {
		return io.EOF
	}
	line, _ := p.dec.InputPos()
	return &stopError{msg: fmt.Sprintf("%s:%d: the feed holds no entry, yet it says its query has %d results and this page starts at %d (opensearch:totalResults, startIndex): "+
		"the arXiv API answers so now and then when it is busy; fetch it again", p.r.name, line, p.total, max(p.start, 0)), err: paper.ErrInvalid}
}

// entry validates one decoded entry.
func (p *atomParser) entry(line int, e *atomEntry) (paper.Abstract, error) {
	id := strings.TrimSpace(e.ID)
	if strings.Contains(id, "arxiv.org/api/errors") {
		// The arXiv API answers a bad query with a feed holding one error entry.
		return paper.Abstract{}, p.r.recordErr(line, "", invalidf("the arXiv API reports an error: %s", fold(e.Summary)))
	}
	if id == "" {
		return paper.Abstract{}, p.r.recordErr(line, "", invalidf("entry has no <id>"))
	}
	f := fields{line: line, rawID: id, title: e.Title, abstract: stripAnnouncement(e.Summary), tex: true}
	for _, a := range e.Authors {
		f.authors = append(f.authors, a.Name)
	}
	if len(f.authors) == 0 {
		for _, c := range e.Creators {
			f.authors = append(f.authors, splitCreators(c)...)
		}
	}
	for _, c := range e.Categories {
		f.categories = append(f.categories, c.Term)
	}
	for _, l := range e.Links {
		if l.Rel == "alternate" || (l.Rel == "" && f.url == "") {
			f.url = l.Href
		}
	}
	if f.url == "" && strings.HasPrefix(id, "http") {
		f.url = id
	}
	field, date := "<published>", e.Published
	if strings.TrimSpace(date) == "" {
		field, date = "<updated>", e.Updated
	}
	var err error
	f.published, err = parseDate(field, date)
	return p.r.buildOrFail(f, []error{err})
}

// announcement is the line arXiv's announcement feeds (rss.arxiv.org, RSS and Atom) put
// before an abstract: "arXiv:2401.01234v2 Announce Type: replace \nAbstract: ".
var announcement = regexp.MustCompile(`^\s*arXiv:\S+\s+Announce Type:\s*[\w-]+\s+Abstract:\s*`)

// stripAnnouncement is abstract without the announcement line before it, if it has one: the
// abstract alone is the paper's text. Kept, it was given to the model with the abstract, and
// made the text of each announcement of a paper (new, then replace with another version) and
// of its API or OAI record differ: another content hash, another TL;DR and vector bought for
// the same abstract.
func stripAnnouncement(abstract string) string {
	if loc := announcement.FindStringIndex(abstract); loc != nil {
		return abstract[loc[1]:]
	}
	return abstract
}

// splitCreators splits a <dc:creator> of arXiv's announcement feeds, "A, B (Affiliation,
// Place), C", into names, at the commas outside parentheses, leaving the affiliations out (as
// the OAI snapshot's authors are read).
func splitCreators(s string) []string {
	var out []string
	var name strings.Builder
	depth := 0
	flush := func() {
		if n := strings.TrimSpace(fold(name.String())); n != "" {
			out = append(out, n)
		}
		name.Reset()
	}
	for _, c := range s {
		switch {
		case c == '(':
			depth++
		case c == ')':
			depth = max(depth-1, 0)
		case depth > 0:
		case c == ',':
			flush()
		default:
			name.WriteRune(c)
		}
	}
	flush()
	return out
}

// atomNamespace is the namespace of Atom's elements (RFC 4287).
const atomNamespace = "http://www.w3.org/2005/Atom"

// notAtom is the error of an XML document whose root element (root; "" when it has none) is
// not Atom's <feed>: arXiv's RSS feed, or an HTML page given for the API's URL, read as an Atom
// feed without entries, was 0 papers and no error. Any namespace is accepted with the name
// feed (arXiv's is atomNamespace), as for the entries' elements.
func (p *atomParser) notAtom(root string) error {
	line, _ := p.dec.InputPos()
	var what string
	switch strings.ToLower(root) {
	case "":
		what = "not an Atom feed (no root element): paperpipe reads arXiv's Atom API answers (<feed> of <entry>s)"
	case "rss", "rdf":
		what = fmt.Sprintf("not an Atom feed (root <%s>): paperpipe reads arXiv's Atom API (export.arxiv.org/api/query), not RSS; "+
			"ask the API for the same listing, e.g. https://export.arxiv.org/api/query?search_query=cat:cs.LG&sortBy=submittedDate&sortOrder=descending&max_results=100", root)
	case "html":
		what = fmt.Sprintf("not an Atom feed (root <%s>): this is an HTML page; give arXiv's Atom API URL (export.arxiv.org/api/query?search_query=…) "+
			"or a file in one of the formats ingest reads (text, JSONL, arXiv OAI, Atom, Hugging Face daily papers)", root)
	default:
		what = fmt.Sprintf("not an Atom feed (root <%s>, want <feed> in namespace %s): paperpipe reads arXiv's Atom API answers (export.arxiv.org/api/query)", root, atomNamespace)
	}
	return &stopError{msg: fmt.Sprintf("%s:%d: %s%s", p.r.name, line, what, p.r.detectedHint("Atom XML")), err: paper.ErrInvalid}
}

// fatal turns an XML error into an error that ends reading: the document cannot be
// resynchronised after a syntax error.
func (p *atomParser) fatal(err error) error {
	line, _ := p.dec.InputPos()
	var se *xml.SyntaxError
	switch {
	case errors.Is(err, errTooLarge):
		return &stopError{msg: fmt.Sprintf("%s:%d: an entry or element is longer than the %d-byte limit; reading stops", p.r.name, line, p.r.opts.MaxRecordBytes), err: err}
	case errors.As(err, &se) && se.Msg == "unexpected EOF":
		return &stopError{msg: fmt.Sprintf("%s:%d: truncated XML: the feed ends inside an element", p.r.name, se.Line), err: err}
	case errors.As(err, &se):
		return &stopError{msg: fmt.Sprintf("%s:%d: malformed XML, reading stops: %s", p.r.name, se.Line, se.Msg), err: err}
	}
	return p.r.ioErr(line, err)
}

// stopError is malformed content that ends reading: it is fatal, not a *RecordError, and
// matches both the cause and paper.ErrInvalid.
type stopError struct {
	msg string
	err error
}

func (e *stopError) Error() string   { return e.msg }
func (e *stopError) Unwrap() []error { return []error{e.err, paper.ErrInvalid} }
