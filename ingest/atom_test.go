package ingest

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"golang.org/x/text/encoding/charmap"

	"github.com/paperpipe/paperpipe/paper"
)

func TestAtomFixture(t *testing.T) {
	t.Parallel()
	papers, errs, events := readFixture(t, "atom.xml", Atom)
	// Each entry's line is the line of its <entry> tag.
	equalEvents(t, events, []string{
		"paper atom.xml:9 Sparse Routing for Experts",
		"error atom.xml:32: record 2: arxiv:2401.05555: abstract is empty",
		"paper atom.xml:39 An Old-Style Identifier",
	})
	if len(errs) == 1 && errs[0].Record != 2 {
		t.Errorf("Record = %d, want 2", errs[0].Record)
	}
	want := paper.Abstract{
		ID: "arxiv:2401.01234", Title: "Sparse Routing for Experts", Abstract: "We study routing. It works & scales.",
		Authors: []string{"Ada Lovelace", "Alan Turing"}, Categories: []string{"cs.LG", "cs.CL"},
		Published: time.Date(2024, 1, 2, 18, 59, 59, 0, time.UTC), URL: "http://arxiv.org/abs/2401.01234v2",
		Source: "atom.xml:9",
	}
	if len(papers) != 2 || !reflect.DeepEqual(papers[0], want) {
		t.Fatalf("papers:\n got %+v\nwant %+v (first)", papers, want)
	}
	if papers[1].ID != "arxiv:hep-th/9901001" {
		t.Errorf("old-style id = %q", papers[1].ID)
	}
}

func TestAtomErrors(t *testing.T) {
	t.Parallel()
	const head = `<feed xmlns="http://www.w3.org/2005/Atom">` + "\n"
	const good = `<entry><id>http://arxiv.org/abs/2401.00001v1</id><title>Good</title><summary>Fine.</summary></entry>` + "\n"
	for _, tc := range []struct {
		name   string
		in     string
		events []string
		fatal  string // the fatal error ending the read, if any
	}{
		{
			name:   "the arXiv API error entry is a record error",
			in:     head + `<entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1234</id><title>Error</title><summary>incorrect id format for 1234</summary></entry>` + "\n" + good + "</feed>",
			events: []string{"error f:2: record 1: the arXiv API reports an error: incorrect id format for 1234", "paper f:3 Good"},
		},
		{
			name:   "an entry without id",
			in:     head + "<entry><title>T</title><summary>S.</summary></entry>\n" + good + "</feed>",
			events: []string{"error f:2: record 1: entry has no <id>", "paper f:3 Good"},
		},
		{
			name:   "malformed XML stops reading with the line",
			in:     head + good + "<entry><id>x</id><title>T</tittle></entry>\n" + good + "</feed>",
			events: []string{"paper f:2 Good"},
			fatal:  "f:3: malformed XML, reading stops: element <title> closed by </tittle>",
		},
		{
			name:   "a truncated feed stops reading",
			in:     head + good + "<entry><id>x</id><title>T",
			events: []string{"paper f:2 Good"},
			fatal:  "f:3: truncated XML: the feed ends inside an element",
		},
		{
			name:  "an element of the feed's own over the record limit stops reading",
			in:    head + "<subtitle>" + strings.Repeat("long ", 80000) + "</subtitle>\n" + good + "</feed>",
			fatal: "f:2: an entry or element is longer than the 100000-byte limit; reading stops",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := NewReader(strings.NewReader(tc.in), "f", Options{MaxRecordBytes: 100000})
			if err != nil {
				t.Fatal(err)
			}
			var events []string
			for {
				a, err := r.Next()
				if err == io.EOF {
					if tc.fatal != "" {
						t.Errorf("got EOF, want fatal error %q", tc.fatal)
					}
					break
				}
				var re *RecordError
				if errors.As(err, &re) {
					events = append(events, "error "+err.Error())
					continue
				}
				if err != nil {
					if err.Error() != tc.fatal || !errors.Is(err, paper.ErrInvalid) {
						t.Errorf("fatal error %q (ErrInvalid: %v), want %q", err, errors.Is(err, paper.ErrInvalid), tc.fatal)
					}
					if _, again := r.Next(); again != err {
						t.Errorf("Next after a fatal error = %v, want the same error", again)
					}
					break
				}
				events = append(events, "paper "+a.Source+" "+a.Title)
			}
			equalEvents(t, events, tc.events)
		})
	}
}

// TestAtomRefusesXMLThatIsNotAFeed: an HTML page given for the API's URL, or any other XML, detected as Atom from its '<',
// was read as a feed without entries: 0 papers, no error, and ingest exited 0. Reading stops
// with an error naming the root element and what paperpipe reads instead. A <feed> in no
// namespace is still read.
func TestAtomRefusesXMLThatIsNotAFeed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"HTML", `<!DOCTYPE html><html><head><title>Daily Papers</title></head><body><p>papers</p></body></html>`,
			"f:1: not an Atom feed (root <html>): this is an HTML page; give arXiv's Atom API URL"},
		// The arXiv OAI-PMH interface's answer (export.arxiv.org/oai2?verb=ListRecords&…), which
		// ingest does not read: named, with the API query that reads the same days.
		{"OAI-PMH", `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"><responseDate>2024-03-04T10:00:00Z</responseDate><ListRecords><record><header><identifier>oai:arXiv.org:2401.00001</identifier></header></record></ListRecords></OAI-PMH>`,
			"f:2: not an Atom feed (root <OAI-PMH>): this is an OAI-PMH answer, which paperpipe does not read; for the days a cron job missed, read the arXiv API's pages by submission date"},
		{"other XML", `<papers><paper><title>T</title></paper></papers>`,
			"f:1: not an Atom feed (root <papers>, want <feed> in namespace http://www.w3.org/2005/Atom)"},
		{"no root element", `<?xml version="1.0"?>` + "\n", "f:2: not an Atom feed (no root element)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := NewReader(strings.NewReader(tc.in), "f", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if r.Format() != Atom {
				t.Fatalf("detected as %s", r.Format())
			}
			a, err := r.Next()
			var re *RecordError
			if err == nil || err == io.EOF || errors.As(err, &re) || !errors.Is(err, paper.ErrInvalid) {
				t.Fatalf("Next = %+v, %v; want a fatal error wrapping paper.ErrInvalid", a, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tc.want) || !strings.Contains(msg, "name it with --format") {
				t.Errorf("error %q, want it to start with %q and suggest --format", msg, tc.want)
			}
			if _, again := r.Next(); again != err {
				t.Errorf("Next after the error = %v, want the same error", again)
			}
		})
	}
	r, err := NewReader(strings.NewReader(`<feed><entry><id>http://arxiv.org/abs/2401.00001v1</id><title>Good</title><summary>Fine.</summary></entry></feed>`), "f", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := r.Next(); err != nil || a.Title != "Good" {
		t.Errorf("a <feed> without namespace: %+v, %v; want its entry", a, err)
	}
}

// The arXiv API, when busy, answers now and then with a valid feed without entries that says
// there are results (opensearch:totalResults) from its startIndex. It was read as a quiet day's
// feed: a warning and exit status 0, so a daily cron job lost that day's papers without
// failing. Such a feed is a failed source saying to fetch it again; a feed that says it has no
// results there (a quiet day, a page past the end, max_results=0) is still a source without
// papers.
func TestAtomFeedWithoutTheEntriesItCountsFails(t *testing.T) {
	t.Parallel()
	feed := func(total, start, perPage string) string {
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
		b.WriteString(`<feed xmlns="http://www.w3.org/2005/Atom">` + "\n")
		b.WriteString(`  <title type="html">ArXiv Query: search_query=cat:cs.LG</title>` + "\n")
		for name, v := range map[string]string{"totalResults": total, "startIndex": start, "itemsPerPage": perPage} {
			if v != "" {
				b.WriteString(`  <opensearch:` + name + ` xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">` + v + `</opensearch:` + name + ">\n")
			}
		}
		b.WriteString("</feed>\n")
		return b.String()
	}
	for _, c := range []struct {
		total, start, perPage string
		fails                 bool
	}{
		{"3", "0", "100", true},
		{" 1500\n ", "1000", "100", true},
		{"3", "", "", true},
		{"0", "0", "100", false},  // a quiet day
		{"3", "3", "100", false},  // a page past the end
		{"3", "0", "0", false},    // max_results=0: the count only
		{"", "", "", false},       // no counts
		{"many", "0", "1", false}, // not a count: nothing to go by
	} {
		in := feed(c.total, c.start, c.perPage)
		r, err := NewReader(strings.NewReader(in), "query.xml", Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Next()
		var re *RecordError
		switch {
		case !c.fails && (err != io.EOF || !r.Empty()):
			t.Errorf("total %q, start %q, per page %q: Next() = %v, Empty() = %v; want a source without papers", c.total, c.start, c.perPage, err, r.Empty())
		case c.fails && (err == nil || err == io.EOF || errors.As(err, &re) || !strings.HasPrefix(err.Error(), "query.xml:") ||
			!strings.Contains(err.Error(), "fetch it again")):
			t.Errorf("total %q, start %q, per page %q: Next() = %v; want a fatal error at query.xml:LINE saying to fetch it again", c.total, c.start, c.perPage, err)
		}
	}
}

// A feed whose XML declaration names an ASCII-compatible single-byte encoding (ISO-8859-1,
// Windows-1252, US-ASCII; many sites' feeds declare one) is read: its content is UTF-8 text
// already (ASCII, or converted with iconv, which leaves the declaration as it was). It stopped
// at line 1 with encoding/xml's own words: `xml: encoding "ISO-8859-1" declared but
// Decoder.CharsetReader is nil`, which no conversion of the content could fix. So is UTF-16
// declared on text that is not (unpack refuses UTF-16). Another encoding is an error saying
// what to do.
func TestXMLFeedDeclaringAnotherEncoding(t *testing.T) {
	t.Parallel()
	for _, enc := range []string{"ISO-8859-1", "iso-8859-1", "latin1", "windows-1252", "US-ASCII", "UTF-16", "utf8"} {
		in := `<?xml version="1.0" encoding="` + enc + `"?>` + "\n" + `<rss version="2.0"><channel><item><title>Schrödinger bridges</title>` +
			`<guid>https://example.org/p/1</guid><description>` + words(25) + `</description></item></channel></rss>`
		papers, errs, _ := readString(t, in, "f", Options{})
		if len(papers) != 1 || len(errs) != 0 || papers[0].Title != "Schrödinger bridges" {
			t.Errorf("%s: papers %+v, errors %v", enc, papers, errs)
		}
	}
	in := `<?xml version="1.0" encoding="Shift_JIS"?>` + "\n" + `<feed xmlns="http://www.w3.org/2005/Atom"></feed>`
	r, err := NewReader(strings.NewReader(in), "f", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	want := "f:1: the feed's XML declaration names the encoding \"Shift_JIS\": paperpipe reads UTF-8; convert it with `iconv -f Shift_JIS -t UTF-8 FILE`, and write encoding=\"UTF-8\" in its declaration"
	if err == nil || err.Error() != want || !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("Shift_JIS: err %v\n  want %s (and paper.ErrInvalid)", err, want)
	}
}

// A feed that declares ISO-8859-1 or Windows-1252 and is written in it (a site's feed served
// as it declares, Latin-1 bytes for its accents) is read, its characters converted: taken for
// UTF-8, it stopped at the first accent with "malformed XML, reading stops: invalid UTF-8" —
// every item from there lost, a cron job's feed failing each day with nothing to convert it
// (one or two accents), or refused before its first item as Latin-1 text to run iconv on
// (three or more). Its bytes that are UTF-8 (a feed converted with iconv, the declaration left
// as it was) stay as they are.
func TestXMLFeedInTheSingleByteEncodingItDeclares(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ enc, title, abstract, wantTitle, wantAbstract string }{
		{"ISO-8859-1", "Caf\xe9 bridges", words(25), "Café bridges", words(25)},
		{"windows-1252", "\x93Quoted\x94 na\xefve Schr\xf6dinger", words(20) + " r\xe9sum\xe9 \xe0 la", "“Quoted” naïve Schrödinger", words(20) + " résumé à la"},
		{"iso-8859-1", "Schrödinger bridges", words(25), "Schrödinger bridges", words(25)}, // UTF-8 already
		// ISO-8859-15 is not Windows-1252: its 0xA4 is the euro sign, Windows-1252's the currency sign.
		{"ISO-8859-15", "Prix \xa4 na\xefve", words(25), "Prix € naïve", words(25)},
		{"windows-1252", "Prix \xa4 \x80", words(25), "Prix ¤ €", words(25)},
	} {
		in := `<?xml version="1.0" encoding="` + tc.enc + `"?>` + "\n" + `<rss version="2.0"><channel><item><title>` + tc.title + `</title>` +
			`<guid>https://example.org/p/1</guid><description>` + tc.abstract + `</description></item></channel></rss>`
		r, err := NewReader(strings.NewReader(in), "f", Options{})
		if err != nil {
			t.Errorf("%s %q: %v", tc.enc, tc.title, err)
			continue
		}
		a, err := r.Next()
		if err != nil || a.Title != tc.wantTitle || a.Abstract != tc.wantAbstract {
			t.Errorf("%s %q: %q, %q, %v; want %q, %q", tc.enc, tc.title, a.Title, a.Abstract, err, tc.wantTitle, tc.wantAbstract)
		}
	}
}

// singleByteText converts the input whatever its reads cut: a UTF-8 character split between two
// reads stays that character (not two Windows-1252 ones, "Ã©" for "é"), a U+FFFD the feed
// holds stays U+FFFD, and a byte that is not UTF-8 is its character in the declared encoding,
// also as the input's last.
func TestSingleByteTextAcrossReads(t *testing.T) {
	t.Parallel()
	const in, want = "Caf\xe9 r\xc3\xa9sum\xc3\xa9 \xef\xbf\xbd \x93q\x94 \xe2\x80\x9cq\xe2\x80\x9d na\xef", "Café résumé \uFFFD “q” “q” naï"
	for name, r := range map[string]func() io.Reader{
		"whole":       func() io.Reader { return strings.NewReader(in) },
		"byte a read": func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
		"half a read": func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
	} {
		got, err := io.ReadAll(&singleByteText{in: r(), cm: charmap.Windows1252})
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
}

// An entry or item longer than MaxRecordBytes was fatal: encoding/xml cannot go on after its
// reader fails, so a daily feed with one huge entry lost every paper after it. It is a record
// error naming the entry (its line, number and id when it was read), and the feed is read on,
// wherever in the entry the limit falls: in text, in entities and UTF-8 characters, in an
// attribute, a comment, a CDATA section, at any depth; the lines of the entries after it stay
// right, and so do their namespaces and the feed's declared encoding.
func TestAnEntryOverTheRecordLimitIsSkippedAndTheFeedReadOn(t *testing.T) {
	t.Parallel()
	const limit = 2000
	long := func(s string) string { return strings.Repeat(s, 3*limit/len(s)) }
	const atomHead = `<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">` + "\n"
	atomGood := func(n int) string {
		return fmt.Sprintf(`<entry><id>http://arxiv.org/abs/2401.0000%dv1</id><media:title>Thumbnail</media:title><title>Good %d</title><summary>Fine.</summary></entry>`+"\n", n, n)
	}
	const rssHead = `<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Feed</title>` + "\n"
	rssGood := func(n int) string {
		return fmt.Sprintf(`<item><guid>oai:arXiv.org:2401.0000%d</guid><title>Good %d</title><description>Fine.</description><dc:creator>Ada Lovelace</dc:creator></item>`+"\n", n, n)
	}
	huge := "<entry><id>http://arxiv.org/abs/2401.09999v1</id>\n"
	for _, tc := range []struct {
		name, in string
		events   []string
		fatal    string
	}{
		{
			name: "in the summary's text, over many lines",
			in:   atomHead + atomGood(1) + huge + "<summary>" + long("long\n") + "</summary></entry>\n" + atomGood(2) + "</feed>",
			events: []string{"paper f:2 Good 1",
				"error f:3: record 2: arxiv:2401.09999: entry is longer than the 2000-byte limit: skipped, the rest of the feed is read",
				"paper f:1205 Good 2"},
		},
		{
			name: "among entities and UTF-8 characters",
			in:   atomHead + huge + "<summary>" + long("&amp; é&#233;ü ") + "</summary></entry>\n" + atomGood(2) + "</feed>",
			events: []string{"error f:2: record 1: arxiv:2401.09999: entry is longer than the 2000-byte limit: skipped, the rest of the feed is read",
				"paper f:4 Good 2"},
		},
		{
			name: "in an attribute, inside nested elements",
			in:   atomHead + huge + `<author><name>A</name><uri x="` + long("a&lt;") + `"/></author><link href="x"/></entry>` + "\n" + atomGood(2) + "</feed>",
			events: []string{"error f:2: record 1: arxiv:2401.09999: entry is longer than the 2000-byte limit: skipped, the rest of the feed is read",
				"paper f:4 Good 2"},
		},
		{
			name: "in a comment",
			in:   atomHead + huge + "<!-- " + long("-a- ") + " --><title>T</title></entry>\n" + atomGood(2) + "</feed>",
			events: []string{"error f:2: record 1: arxiv:2401.09999: entry is longer than the 2000-byte limit: skipped, the rest of the feed is read",
				"paper f:4 Good 2"},
		},
		{
			name: "an RSS item's CDATA, with markup in it",
			in: rssHead + rssGood(1) + "<item><title>Huge</title><description><![CDATA[" + long("<p>]]</item>]</p>") + "]]></description></item>\n" +
				rssGood(2) + "</channel></rss>",
			events: []string{"paper f:2 Good 1",
				"error f:3: record 2: item is longer than the 2000-byte limit: skipped, the rest of the feed is read",
				"paper f:4 Good 2"},
		},
		{
			name: "in a feed declaring ISO-8859-1",
			in: `<?xml version="1.0" encoding="ISO-8859-1"?>` + "\n" + atomHead + huge + "<summary>" + long("caf\xe9 ") + "</summary></entry>\n" +
				strings.Replace(atomGood(2), "Good", "Caf\xe9", 1) + "</feed>",
			events: []string{"error f:3: record 1: arxiv:2401.09999: entry is longer than the 2000-byte limit: skipped, the rest of the feed is read",
				"paper f:5 Café 2"},
		},
		{
			name: "a feed that ends inside it",
			in:   atomHead + atomGood(1) + huge + "<summary>" + long("long "),
			events: []string{"paper f:2 Good 1",
				"error f:3: record 2: arxiv:2401.09999: entry is longer than the 2000-byte limit: skipped, the rest of the feed is read"},
			fatal: "f:4: truncated XML: the feed ends inside an element",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := NewReader(strings.NewReader(tc.in), "f", Options{MaxRecordBytes: limit})
			if err != nil {
				t.Fatal(err)
			}
			var events []string
			for {
				a, err := r.Next()
				var re *RecordError
				if err == io.EOF {
					break
				} else if errors.As(err, &re) {
					events = append(events, "error "+err.Error())
					continue
				} else if err != nil {
					if err.Error() != tc.fatal {
						t.Errorf("fatal error %q, want %q", err, tc.fatal)
					}
					tc.fatal = ""
					break
				}
				events = append(events, "paper "+a.Source+" "+a.Title)
			}
			if tc.fatal != "" {
				t.Errorf("no fatal error, want %q", tc.fatal)
			}
			equalEvents(t, events, tc.events)
		})
	}
}
