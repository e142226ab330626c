package ingest

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"github.com/paperpipe/paperpipe/paper"
)

// atomParser reads an XML feed token by token, decoding one record at a time: an Atom feed
// (the arXiv API's, arXiv's announcements) one <entry> at a time, an RSS 2.0 feed (arXiv's
// announcements) or an RSS 1.0 one (<rdf:RDF>: bioRxiv's, medRxiv's, Nature's) one <item> at a
// time. The root element says which; a forced format takes only its own.
type atomParser struct {
	r    *Reader
	dec  *xml.Decoder
	g    *xmlGuard // what dec reads: bounds a record, and reads past one over the bound
	n    int       // records read
	root bool      // the root element was read, and is <feed>, <rss> or <rdf:RDF>
	rss  bool      // the root element is <rss> or <rdf:RDF>: the records are <item>s
	rdf  bool      // the root element is RSS 1.0's <rdf:RDF>
	// The feed's OpenSearch counts (opensearch:totalResults, startIndex, itemsPerPage); -1
	// when it has none. See empty.
	total, start, perPage int
}

func newAtomParser(r *Reader) *atomParser {
	g := &xmlGuard{src: r.br}
	dec := xml.NewDecoder(g) // an xmlGuard is an io.ByteReader: no second buffer
	dec.Entity = xml.HTMLEntity
	p := &atomParser{r: r, dec: dec, g: g, total: -1, start: -1, perPage: -1}
	dec.CharsetReader = p.charset
	return p
}

// charset is the decoder's CharsetReader (see declaredCharset). The conversion is put below
// the guard, which stays what the decoder reads: the guard sees the text as the decoder does.
func (p *atomParser) charset(label string, _ io.Reader) (io.Reader, error) {
	cr, err := declaredCharset(label, p.g.src)
	if err != nil {
		return nil, err
	}
	if cr != io.Reader(p.g.src) {
		p.g.src = bufio.NewReader(cr)
	}
	return p.g, nil
}

func (p *atomParser) offset() int64 { return p.dec.InputOffset() + p.g.skippedBytes }

// pos is the decoder's line, counting the lines of records it was not given (see xmlGuard).
func (p *atomParser) pos() int {
	line, _ := p.dec.InputPos()
	return line + p.g.skippedLines
}

// declaredCharset is the xml.Decoder's CharsetReader, called for the encoding an XML
// declaration names when it is not UTF-8. A single-byte encoding that ASCII is part of
// (ISO-8859-1, Windows-1252, US-ASCII: many sites' feeds declare one) is read through
// singleByteText: its bytes that are not UTF-8 are the characters the declaration says they
// are, and the rest — its ASCII, or all of it when it was converted with iconv (which leaves
// the declaration as it was) — is read as UTF-8, as every input is. A declaration of UTF-16
// or UCS-2 is read as UTF-8: unpack refuses UTF-16 text (XML's starts with "<" and a NUL
// byte), so what declares it here is not, and converting it from UTF-16 would garble it.
// Another encoding is a *charsetError. Without it, encoding/xml stopped any feed declaring one.
func declaredCharset(label string, input io.Reader) (io.Reader, error) {
	if cm := singleByteCharset(label); cm != nil {
		return &singleByteText{in: input, cm: cm}, nil
	}
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf-16", "utf-16le", "utf-16be", "utf16", "ucs-2", "utf8":
		return input, nil
	}
	return nil, &charsetError{label: label}
}

// singleByteCharset is the character map of label, an XML declaration's encoding, when it is
// one declaredCharset reads through singleByteText; nil otherwise. ISO-8859-1 and US-ASCII are
// read as Windows-1252, of which their printable characters are part, as WHATWG reads them.
func singleByteCharset(label string) *charmap.Charmap {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "latin-1", "l1", "windows-1252", "cp1252":
		return charmap.Windows1252
	case "iso-8859-15", "latin9":
		return charmap.ISO8859_15
	}
	return nil
}

// xmlDeclaredEncoding matches the start of an XML document whose declaration names an
// encoding (submatch 1).
var xmlDeclaredEncoding = regexp.MustCompile(`^(?:\x{FEFF})?\s*<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']`)

// declaresSingleByte reports whether head, the start of the input, is an XML document
// declaring a single-byte encoding (see declaredCharset): its bytes that are not UTF-8 are
// that encoding's characters, not a file to refuse as Latin-1 text (see unpack).
func declaresSingleByte(head []byte) bool {
	m := xmlDeclaredEncoding.FindSubmatch(head[:min(len(head), 512)])
	return m != nil && singleByteCharset(string(m[1])) != nil
}

// singleByteText reads in, XML declared in a single-byte encoding, as UTF-8: a byte that is
// not part of a UTF-8 character is read as the character it is in cm, the declared encoding.
type singleByteText struct {
	in      io.Reader
	cm      *charmap.Charmap
	pending []byte // bytes read, not yet converted: the start of a character cut by a read
	out     []byte // converted, not yet returned
	err     error  // in's error, once it returned one
}

func (s *singleByteText) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			if len(s.pending) == 0 {
				return 0, s.err
			}
		} else {
			var buf [4096]byte
			n, err := s.in.Read(buf[:])
			s.pending, s.err = append(s.pending, buf[:n]...), err
		}
		i := 0
		for i < len(s.pending) {
			b := s.pending[i]
			if b < utf8.RuneSelf {
				s.out = append(s.out, b)
				i++
				continue
			}
			if !utf8.FullRune(s.pending[i:]) && s.err == nil {
				break // the rest of the character comes with the next read
			}
			if r, size := utf8.DecodeRune(s.pending[i:]); r != utf8.RuneError || size > 1 {
				s.out = append(s.out, s.pending[i:i+size]...)
				i += size
				continue
			}
			s.out = utf8.AppendRune(s.out, s.cm.DecodeByte(b))
			i++
		}
		s.pending = append(s.pending[:0], s.pending[i:]...)
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// charsetError is an encoding an XML declaration names that declaredCharset does not read.
type charsetError struct{ label string }

func (e *charsetError) Error() string { return "encoding " + e.label }

// atomEntry is the part of an Atom <entry> that is used. Local names match any namespace; of
// the entry's own elements (Atom's), those in its namespace are taken when it has any (see
// ownElements): another vocabulary's of the same local name (<media:title>) is not its title.
type atomEntry struct {
	IDs       []nsText     `xml:"id"`
	Titles    []nsText     `xml:"title"`
	Summaries []nsText     `xml:"summary"`
	Published []nsText     `xml:"published"`
	Updated   []nsText     `xml:"updated"`
	Authors   []atomAuthor `xml:"author"`
	// Creators are Dublin Core's <dc:creator>: arXiv's announcement feeds (rss.arxiv.org) give
	// an entry's authors in one, "A, B (Affiliation), C", and no <author>.
	Creators []string `xml:"creator"`
	// AnnounceType is an announcement's <arxiv:announce_type>: new, cross, replace,
	// replace-cross (see announcedDate).
	AnnounceType string         `xml:"announce_type"`
	Categories   []atomCategory `xml:"category"`
	Links        []atomLink     `xml:"link"`
}

// nsText is an element's text, with its name: its namespace tells a feed's own element from
// another vocabulary's of the same local name.
type nsText struct {
	XMLName xml.Name
	Text    string `xml:",chardata"`
}

type atomAuthor struct {
	XMLName xml.Name
	Name    string `xml:"name"`
}

type atomCategory struct {
	XMLName xml.Name
	Term    string `xml:"term,attr"`
}

type atomLink struct {
	XMLName xml.Name
	Href    string `xml:"href,attr"`
	Rel     string `xml:"rel,attr"`
}

func (e nsText) space() string       { return e.XMLName.Space }
func (e atomAuthor) space() string   { return e.XMLName.Space }
func (e atomCategory) space() string { return e.XMLName.Space }
func (e atomLink) space() string     { return e.XMLName.Space }

// ownElements are the elements of els in space, the namespace of the item or entry holding
// them (RSS's none, or the one a feed declares as its default; Atom's), or all of els when none
// is: Media RSS's <media:title>, <media:description> and <media:category> (a thumbnail's title
// and caption, which many sites' items carry) are not the item's title, abstract and category
// when it has its own.
func ownElements[T interface{ space() string }](space string, els []T) []T {
	var own []T
	for _, e := range els {
		if e.space() == space {
			own = append(own, e)
		}
	}
	if len(own) == 0 {
		return els
	}
	return own
}

// ownText is the text of the first of ownElements(space, els) that is not white space alone,
// or "".
func ownText(space string, els []nsText) string {
	for _, e := range ownElements(space, els) {
		if strings.TrimSpace(e.Text) != "" {
			return e.Text
		}
	}
	return ""
}

// itemText is ownText(space, els), else the text of the first of Dublin Core's elements among
// els (<dc:title>, <dc:description>) that is not white space alone: an RSS item's title or
// description where its own is empty.
func itemText(space string, els []nsText) string {
	if s := ownText(space, els); s != "" {
		return s
	}
	for _, e := range els {
		if (e.XMLName.Space == dublinCore || e.XMLName.Space == dublinCoreTerms) && strings.TrimSpace(e.Text) != "" {
			return e.Text
		}
	}
	return ""
}

// The namespaces of Dublin Core's elements and of its terms (<dc:title>, <dcterms:title>).
const (
	dublinCore      = "http://purl.org/dc/elements/1.1/"
	dublinCoreTerms = "http://purl.org/dc/terms/"
)

func (p *atomParser) next() (paper.Abstract, error) {
	for {
		p.g.limit(p.r.opts.MaxRecordBytes)
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
			if err := p.rootElement(se.Name.Local); err != nil {
				return paper.Abstract{}, err
			}
			p.root = true
			continue
		}
		if ok && p.rss && se.Name.Local == "item" {
			return p.item(&se)
		}
		if ok && p.n == 0 && !p.rss {
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
		if !ok || se.Name.Local != "entry" || p.rss {
			continue
		}
		line := p.pos()
		p.n++
		var e atomEntry
		p.g.arm()
		err = p.dec.DecodeElement(&e, &se)
		if cut := p.g.disarm(); cut && err == nil {
			return paper.Abstract{}, p.cut(line, "entry", ownText(se.Name.Space, e.IDs))
		}
		if err != nil {
			return paper.Abstract{}, p.fatal(err)
		}
		a, err := p.entry(line, se.Name.Space, &e)
		var re *RecordError
		if errors.As(err, &re) {
			re.Record = p.n
		}
		return a, err
	}
}

// rootElement takes the document's root element, local: Atom's <feed>, or RSS's <rss> or
// <rdf:RDF> (RSS 1.0) when RSS is forced or the format was detected (the Reader's format
// becomes RSS).
func (p *atomParser) rootElement(local string) error {
	switch {
	case local == "feed" && p.r.opts.Format == Atom:
		return nil
	case (local == "rss" || local == "RDF") && (p.r.opts.Format == RSS || p.r.detected):
		p.rss, p.rdf = true, local == "RDF"
		p.r.opts.Format = RSS
		return nil
	case p.r.opts.Format == RSS:
		line := p.pos()
		return &stopError{msg: fmt.Sprintf("%s:%d: not an RSS feed (root <%s>, want <rss> or <rdf:RDF>): --format rss reads RSS 2.0 feeds such as arXiv's (https://rss.arxiv.org/rss/cs.LG) and RSS 1.0 ones such as bioRxiv's; leave --format out to read what the content is", p.r.name, line, local), err: paper.ErrInvalid}
	}
	return p.notAtom(local)
}

// rssItem is the part of an RSS 2.0 or RSS 1.0 <item> that is used. Local names match any
// namespace; of RSS's own elements, those in the item's namespace (none, a default one a feed
// declares, RSS 1.0's http://purl.org/rss/1.0/) are taken when it has any (see ownElements).
type rssItem struct {
	Titles       []nsText `xml:"title"`
	Links        []nsText `xml:"link"`
	Descriptions []nsText `xml:"description"`
	GUIDs        []nsText `xml:"guid"`
	PubDates     []nsText `xml:"pubDate"`
	Categories   []nsText `xml:"category"`
	// RSS 1.0's: the item's URI (rdf:about), its HTML (content:encoded: Nature's abstract),
	// Dublin Core's <dc:date> and <dc:identifier> (bioRxiv's "doi:10.1101/…"), PRISM's <prism:doi>
	// and <prism:publicationDate>; the DOI of an RSS 2.0 item too.
	About            string   `xml:"about,attr"`
	Encoded          string   `xml:"encoded"`
	Dates            []string `xml:"date"`
	Identifiers      []string `xml:"identifier"`
	DOI              string   `xml:"doi"`
	PublicationDates []string `xml:"publicationDate"`
	// Creators are Dublin Core's <dc:creator>: arXiv's gives an item's authors in one (see
	// splitCreators). RSS's own <author> is an e-mail address, not read.
	Creators []string `xml:"creator"`
	// AnnounceType is arXiv's <arxiv:announce_type> (see announcedDate).
	AnnounceType string `xml:"announce_type"`
}

// announcedDate reports whether an announcement of type typ (arXiv's <arxiv:announce_type>;
// "" in feeds without one) is dated as the paper is: a new paper's or a cross-list's is the
// day it was first announced; a replacement's ("replace", "replace-cross") is the day of its
// new version, not the paper's date, and gives none (the store keeps the date it has).
func announcedDate(typ string) bool {
	return !strings.HasPrefix(strings.ToLower(strings.TrimSpace(typ)), "replace")
}

// item decodes and validates the <item> se starts: its id the <guid> (arXiv's OAI identifier,
// oai:arXiv.org:2401.01234v2), or its <link> without one (and the title's without either), or
// its DOI or arXiv id (itemCanonicalID) when that guid or link is not an arXiv id or a DOI; its abstract the <description>,
// without the announcement line arXiv puts before it.
func (p *atomParser) item(se *xml.StartElement) (paper.Abstract, error) {
	line := p.pos()
	p.n++
	var it rssItem
	p.g.arm()
	err := p.dec.DecodeElement(&it, se)
	if cut := p.g.disarm(); cut && err == nil {
		return paper.Abstract{}, p.cut(line, "item", ownText(se.Name.Space, it.GUIDs))
	}
	if err != nil {
		return paper.Abstract{}, p.fatal(err)
	}
	// The title and description are the item's own (see ownElements), the first that is not
	// empty, else Dublin Core's <dc:title> and <dc:description> (bioRxiv's and Nature's RSS 1.0
	// items repeat the title as <dc:title>; some feeds leave their own <title> empty): not
	// another vocabulary's, a <media:title> after them.
	ns := se.Name.Space
	f := fields{line: line, title: itemText(ns, it.Titles), abstract: stripAnnouncement(itemText(ns, it.Descriptions)), tex: true}
	for _, c := range ownElements(ns, it.Categories) {
		f.categories = append(f.categories, c.Text)
	}
	for _, l := range ownElements(ns, it.Links) {
		if f.url = strings.TrimSpace(l.Text); f.url != "" {
			break
		}
	}
	if f.abstract == "" && strings.TrimSpace(it.Encoded) != "" {
		f.abstract = htmlText(it.Encoded)
	}
	if p.rdf {
		f.rawID = rdfID(&it, f.url)
	} else {
		if f.rawID = strings.TrimSpace(ownText(ns, it.GUIDs)); f.rawID == "" || !globalID(f.rawID) {
			f.rawID = f.url // without either, the title's id, as a JSON record without one
		}
		// The item's DOI, as an RSS 1.0 item's, names the paper wherever it is read, where a
		// site's URL names one page of it; a guid that is an arXiv id or a DOI already stays
		// (an arXiv paper keeps its arXiv id beside a journal's DOI).
		if id := itemCanonicalID(&it); id != "" && !stableID(f.rawID) {
			f.rawID = id
		}
	}
	f.authors = splitCreators(it.Creators)
	pubDate := ownText(ns, it.PubDates)
	switch {
	case !announcedDate(it.AnnounceType):
	case strings.TrimSpace(pubDate) != "" || !p.rdf:
		f.published, err = parseRSSDate(pubDate)
	case first(it.Dates) != "":
		f.published, err = parseDate("<dc:date>", first(it.Dates))
	default:
		f.published, err = parseDate("<prism:publicationDate>", first(it.PublicationDates))
	}
	a, err := p.r.buildOrFail(f, []error{err})
	var re *RecordError
	if errors.As(err, &re) {
		re.Record = p.n
	}
	return a, err
}

// globalID reports whether an item's <guid> names the item beyond its feed: an arXiv id, a DOI,
// a URL or a URN (urn:, tag:). RSS asks a guid only to be unique within its feed, and some are
// a number or a site's own token ("123", "post-9f3a"): such a guid as the id (id:123) was
// another feed's item 123, or a JSON record's {"id": 123} — two papers made one, the later
// reading overwriting the other's text. The item's <link> is its id then, as without a guid.
func globalID(guid string) bool {
	c, err := paper.CanonicalID(guid)
	if err != nil || !strings.HasPrefix(c, "id:") {
		return true // an arXiv id, a DOI; a malformed one stays, to be reported
	}
	lower := strings.ToLower(strings.TrimPrefix(c, "id:"))
	return strings.Contains(lower, "://") || strings.HasPrefix(lower, "urn:") || strings.HasPrefix(lower, "tag:")
}

// first is the first of ss that is not white space alone, trimmed; "" when there is none.
func first(ss []string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

// rdfID is the id of an RSS 1.0 item: its DOI (<prism:doi>, or a <dc:identifier> that is one or
// another id beyond its feed: bioRxiv's "doi:10.1101/…"), which names the paper wherever it
// is read, and not its URL, which names one version (bioRxiv's "…/857789v1?rss=1"); else its
// rdf:about, its <link> (link, the first of its own), its title.
func rdfID(it *rssItem, link string) string {
	if id := itemCanonicalID(it); id != "" {
		return id
	}
	if about := strings.TrimSpace(it.About); about != "" && globalID(about) {
		return about
	}
	return link
}

// itemCanonicalID is the canonical DOI of an RSS item's <prism:doi>, else the first of its
// <dc:identifier>s that is a DOI or an arXiv id, canonical (a URL among them is no better than
// its link); "" when it has none. (It was named itemDOI, and returns arXiv ids too.)
func itemCanonicalID(it *rssItem) string {
	if d := strings.TrimSpace(it.DOI); d != "" {
		if c, err := paper.CanonicalID(d); err == nil && strings.HasPrefix(c, "doi:") {
			return c
		}
	}
	for _, id := range it.Identifiers {
		if c, err := paper.CanonicalID(strings.TrimSpace(id)); err == nil && !strings.HasPrefix(c, "id:") {
			return c
		}
	}
	return ""
}

// stableID reports whether raw, an item's id, is an arXiv id or a DOI in any of their forms.
func stableID(raw string) bool {
	c, err := paper.CanonicalID(raw)
	return err == nil && (strings.HasPrefix(c, "arxiv:") || strings.HasPrefix(c, "doi:"))
}

// Nature's RSS 1.0 feeds give an item's text as HTML in <content:encoded>, after a paragraph
// citing it: "<p>Nature Catalysis, Published online: 12 May 2026; <a …>doi:10.1038/…</a></p>".
var (
	citationParagraph = regexp.MustCompile(`(?is)^\s*<p>[^<]*Published online:.*?</p>`)
	htmlBlockTag      = regexp.MustCompile(`(?i)</?(p|br|div|li|ul|ol|h[1-6]|table|tr|td|blockquote)\b[^>]*>`)
)

// htmlText is the text of s, an item's HTML (<content:encoded>): without a citation paragraph
// before it, its tags (a block's a space, an inline one's nothing: H<sub>2</sub>O is H2O) and
// scripts and styles left out, its entities as characters.
func htmlText(s string) string {
	s = citationParagraph.ReplaceAllString(s, "")
	s = htmlHidden.ReplaceAllString(s, " ")
	s = htmlBlockTag.ReplaceAllString(s, " ")
	s = htmlTag.ReplaceAllString(s, "")
	return html.UnescapeString(s)
}

// rfc822Zones are the zones RFC 822 names (section 5.1), at their offsets: time.Parse takes a
// zone's name for UTC unless the machine's own time zone has it, which dated an item of 20:00
// EST (01:00 UTC the next day) the day before. Its one-letter military zones but Z are left
// out: RFC 1123 says their signs were given wrong, and their meaning is unsure.
var rfc822Zones = map[string]string{"UT": "+0000", "GMT": "+0000", "Z": "+0000",
	"EST": "-0500", "EDT": "-0400", "CST": "-0600", "CDT": "-0500", "MST": "-0700", "MDT": "-0600", "PST": "-0800", "PDT": "-0700"}

// parseRSSDate parses an item's <pubDate>, an RFC 822 date (RSS 2.0 has it so, with a
// four-digit year): "Thu, 01 Feb 2024 00:00:00 -0500", with or without the day of the week, with
// or without seconds, a year of two digits or four, a zone as an offset or by name
// (rfc822Zones; another name is taken for UTC); or RFC 3339, which some feeds write instead.
// Empty is the zero time.
func parseRSSDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, ok := parseRFC822(s); ok {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, invalidf("<pubDate> %q is not an RFC 822 date (Thu, 01 Feb 2024 00:00:00 -0500)", s)
}

// parseRFC822 parses an RFC 822 date-time: [day ","] date month year hh:mm[:ss] zone.
func parseRFC822(s string) (time.Time, bool) {
	if day, rest, ok := strings.Cut(s, ","); ok {
		if day = strings.TrimSpace(day); day == "" || strings.ContainsFunc(day, func(r rune) bool { return !unicode.IsLetter(r) }) {
			return time.Time{}, false
		}
		s = rest
	}
	f := strings.Fields(s)
	if len(f) != 5 {
		return time.Time{}, false
	}
	if len(f[2]) == 2 { // RFC 822's year; RFC 2822 reads 00–49 as 2000–2049
		y, err := strconv.Atoi(f[2])
		if err != nil {
			return time.Time{}, false
		}
		if y += 1900; y < 1950 {
			y += 100
		}
		f[2] = strconv.Itoa(y)
	}
	if strings.Count(f[3], ":") == 1 {
		f[3] += ":00"
	}
	if z, ok := rfc822Zones[strings.ToUpper(f[4])]; ok {
		f[4] = z
	}
	v := strings.Join(f, " ")
	for _, layout := range []string{"2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 MST"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
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
	line := p.pos()
	return &stopError{msg: fmt.Sprintf("%s:%d: the feed holds no entry, yet it says its query has %d results and this page starts at %d (opensearch:totalResults, startIndex): "+
		"the arXiv API answers so now and then when it is busy; fetch it again", p.r.name, line, p.total, max(p.start, 0)), err: paper.ErrInvalid}
}

// entry validates one decoded entry, whose element is in namespace ns.
func (p *atomParser) entry(line int, ns string, e *atomEntry) (paper.Abstract, error) {
	id := strings.TrimSpace(ownText(ns, e.IDs))
	summary := ownText(ns, e.Summaries)
	if strings.Contains(id, "arxiv.org/api/errors") {
		// The arXiv API answers a bad query with a feed holding one error entry.
		return paper.Abstract{}, p.r.recordErr(line, "", invalidf("the arXiv API reports an error: %s", paper.Fold(summary)))
	}
	if id == "" {
		return paper.Abstract{}, p.r.recordErr(line, "", invalidf("entry has no <id>"))
	}
	f := fields{line: line, rawID: id, title: ownText(ns, e.Titles), abstract: stripAnnouncement(summary), tex: true}
	for _, a := range ownElements(ns, e.Authors) {
		f.authors = append(f.authors, a.Name)
	}
	if len(f.authors) == 0 {
		f.authors = splitCreators(e.Creators)
	}
	for _, c := range ownElements(ns, e.Categories) {
		f.categories = append(f.categories, c.Term)
	}
	for _, l := range ownElements(ns, e.Links) {
		if l.Rel == "alternate" || (l.Rel == "" && f.url == "") {
			f.url = l.Href
		}
	}
	if f.url == "" && strings.HasPrefix(id, "http") {
		f.url = id
	}
	field, date := "<published>", ownText(ns, e.Published)
	if strings.TrimSpace(date) == "" {
		field, date = "<updated>", ownText(ns, e.Updated)
	}
	var err error
	if announcedDate(e.AnnounceType) {
		f.published, err = parseDate(field, date)
	}
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

// splitCreators splits the <dc:creator> of arXiv's announcement feeds, "A, B (Affiliation,
// Place), C", into names, at the commas outside parentheses, leaving the affiliations out (as
// the OAI snapshot's authors are read); nil when there are none. A creator that is a list of
// surnames each followed by its initials, as bioRxiv's and medRxiv's feeds write it ("Kukla,
// D., Crampton, A. B."), is read by those pairs: "D. Kukla", "A. B. Crampton" (split at each
// comma, it was four authors, "Kukla", "D.", "Crampton", "A. B."); one that is two names, one of
// them a single word, is one author written surname first, "Lovelace, Ada": "Ada Lovelace" (see
// surnameGiven); an "et al." closing a creator is left out. Several <dc:creator>s
// (Nature's) are an author each (a feed that gives them so writes each as a name, often "Last,
// First", which a split made two authors), the affiliations left out as well.
func splitCreators(creators []string) []string {
	var out []string
	split := len(creators) == 1
	for _, s := range creators {
		var name strings.Builder
		depth := 0
		var parts []string
		flush := func() {
			if n := strings.TrimSpace(paper.Fold(name.String())); n != "" {
				parts = append(parts, n)
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
			case c == ',' && split:
				flush()
			default:
				name.WriteRune(c)
			}
		}
		flush()
		parts = withoutEtAl(parts)
		if split {
			parts = surnameGiven(surnamesFirst(parts))
		}
		out = append(out, parts...)
	}
	return out
}

// etAl matches "et al." closing a list of authors, alone or after the last name: bioRxiv's and
// medRxiv's feeds cut a long list so. It is no author, and left in it hid the list's pairs of
// surnames and initials (see surnamesFirst).
var etAl = regexp.MustCompile(`(?i)(?:^|\s+)et\.?\s*al\.?$`)

// withoutEtAl is parts, the names of one creator, without an "et al." that closes them.
func withoutEtAl(parts []string) []string {
	if len(parts) == 0 {
		return parts
	}
	last := strings.TrimSpace(etAl.ReplaceAllString(parts[len(parts)-1], ""))
	if last == "" {
		return parts[:len(parts)-1]
	}
	parts[len(parts)-1] = last
	return parts
}

// surnameGiven is parts, the names of a feed's only <dc:creator>, or, when they are two of which
// one is a single word, the one author they write surname first, "Lovelace, Ada" (a feed of one
// <dc:creator> per author, read for a paper of one author): "Ada Lovelace", given name first as
// arXiv's names are and surnamesFirst reads bioRxiv's. A list of full names, as arXiv writes
// them, has a space in each ("Ada Lovelace, Alan Turing"); two surnames and given names written
// in more than one word each ("García Márquez, Gabriel José") are read as two names, as before,
// and so are two whose first is initials ("D., Kukla"), which no surname is.
func surnameGiven(parts []string) []string {
	if len(parts) != 2 || strings.Contains(parts[0], " ") && strings.Contains(parts[1], " ") || initials.MatchString(parts[0]) {
		return parts
	}
	return []string{parts[1] + " " + parts[0]}
}

// initials matches a name's initials as bioRxiv writes them after its surname, each with its
// period: "D.", "A. B.", "A.B.", "J.-P.", "Ch." (a surname such as "Li" or "Wu" is not).
var initials = regexp.MustCompile(`^\p{Lu}\p{Ll}?\.(?:[\s-]*\p{Lu}\p{Ll}?\.)*$`)

// surnamesFirst is parts, the names of one creator, or, when they are pairs of a surname and
// its initials ("Kukla", "D.", "Crampton", "A. B."), the names those pairs make ("D. Kukla",
// "A. B. Crampton").
func surnamesFirst(parts []string) []string {
	if len(parts) < 2 || len(parts)%2 != 0 {
		return parts
	}
	for i := 0; i < len(parts); i += 2 {
		if initials.MatchString(parts[i]) || !initials.MatchString(parts[i+1]) {
			return parts
		}
	}
	names := make([]string, 0, len(parts)/2)
	for i := 0; i < len(parts); i += 2 {
		names = append(names, parts[i+1]+" "+parts[i])
	}
	return names
}

// atomNamespace is the namespace of Atom's elements (RFC 4287).
const atomNamespace = "http://www.w3.org/2005/Atom"

// notAtom is the error of an XML document whose root element (root; "" when it has none) is
// not Atom's <feed>, nor RSS's <rss> unless Atom was forced: an RSS 1.0 feed, or an HTML page given for the API's URL, read as an Atom
// feed without entries, was 0 papers and no error. Any namespace is accepted with the name
// feed (arXiv's is atomNamespace), as for the entries' elements.
func (p *atomParser) notAtom(root string) error {
	line := p.pos()
	var what string
	switch strings.ToLower(root) {
	case "":
		what = "not an Atom feed (no root element): paperpipe reads arXiv's Atom API answers (<feed> of <entry>s)"
	case "rss":
		what = fmt.Sprintf("not an Atom feed (root <%s>): this is an RSS feed; read it with --format rss, or leave --format out", root)
	case "rdf":
		what = fmt.Sprintf("not an Atom feed (root <%s>): this is an RSS 1.0 feed; read it with --format rss, or leave --format out", root)
	case "oai-pmh":
		what = fmt.Sprintf("not an Atom feed (root <%s>): this is an OAI-PMH answer, which paperpipe does not read; for the days a cron job missed, "+
			"read the arXiv API's pages by submission date (export.arxiv.org/api/query?search_query=cat:cs.LG+AND+submittedDate:[202412010000+TO+202412072359]&start=0&max_results=100, then start=100, …), "+
			"or the OAI metadata snapshot's JSON lines (--format oai)", root)
	case "html":
		what = fmt.Sprintf("not an Atom feed (root <%s>): this is an HTML page; give arXiv's Atom API URL (export.arxiv.org/api/query?search_query=…) "+
			"or a file in one of the formats ingest reads (text, JSONL, arXiv OAI, Atom, Hugging Face daily papers)", root)
	default:
		what = fmt.Sprintf("not an Atom feed (root <%s>, want <feed> in namespace %s): paperpipe reads arXiv's Atom API answers (export.arxiv.org/api/query)", root, atomNamespace)
	}
	return &stopError{msg: fmt.Sprintf("%s:%d: %s%s", p.r.name, line, what, p.r.detectedHint("Atom XML")), err: paper.ErrInvalid}
}

// cut is the *RecordError of the entry or item (what) on line, longer than MaxRecordBytes,
// which was read past (see xmlGuard); id is its id as far as it was read, if it was.
func (p *atomParser) cut(line int, what, id string) error {
	if c, err := paper.CanonicalID(strings.TrimSpace(id)); err == nil {
		id = c
	} else {
		id = ""
	}
	e := p.r.recordErr(line, id, invalidf("%s is longer than the %d-byte limit: skipped, the rest of the feed is read", what, p.r.opts.MaxRecordBytes))
	e.Record = p.n
	return e
}

// fatal turns an XML error into an error that ends reading: the document cannot be
// resynchronised after a syntax error.
func (p *atomParser) fatal(err error) error {
	line := p.pos()
	var se *xml.SyntaxError
	var ce *charsetError
	switch {
	case errors.As(err, &ce):
		return &stopError{msg: fmt.Sprintf("%s:%d: the feed's XML declaration names the encoding %q: paperpipe reads UTF-8; "+
			"convert it with `iconv -f %s -t UTF-8 FILE`, and write encoding=\"UTF-8\" in its declaration", p.r.name, line, ce.label, ce.label), err: paper.ErrInvalid}
	case errors.Is(err, errTooLarge):
		return &stopError{msg: fmt.Sprintf("%s:%d: an entry or element is longer than the %d-byte limit; reading stops", p.r.name, line, p.r.opts.MaxRecordBytes), err: err}
	case errors.As(err, &se) && se.Msg == "unexpected EOF":
		return &stopError{msg: fmt.Sprintf("%s:%d: truncated XML: the feed ends inside an element", p.r.name, se.Line+p.g.skippedLines), err: err}
	case errors.As(err, &se):
		return &stopError{msg: fmt.Sprintf("%s:%d: malformed XML, reading stops: %s", p.r.name, se.Line+p.g.skippedLines, se.Msg), err: err}
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
