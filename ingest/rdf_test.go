package ingest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// The fixtures biorxiv.rdf.xml and nature.rdf.xml are RSS 1.0 feeds (<rdf:RDF>) laid out as
// bioRxiv's (connect.biorxiv.org/biorxiv_xml.php?subject=…; medRxiv's is the same) and
// Nature's (www.nature.com/nmat.rss) are, with papers of their own. bioRxiv's: as the feed
// kept in miniflux/v2's internal/reader/rdf/parser_test.go (TestParseFeedWithURLWrappedInSpaces)
// — a title and a link wrapped in white space, the abstract in <description>, the authors in one
// <dc:creator> as "Surname, I., Surname, I.", <dc:date>, <dc:identifier>doi:10.1101/…, a
// <dc:title> repeating the title, the link of one version (…v1?rss=1). Nature's: as the feeds
// read in the `code` corpus's RSS readers' tests (Nature Catalysis, Nature Materials): no
// <description>, the text as HTML in <content:encoded> after a paragraph citing it
// ("<p>Nature Materials, Published online: …; <a …>doi:…</a></p>"), a <dc:creator> per
// author, <dc:identifier>doi:…, <prism:doi>, <dc:date>.

func TestRSS1BioRxivFeed(t *testing.T) {
	t.Parallel()
	papers, errs, events := readFixture(t, "biorxiv.rdf.xml", RSS)
	equalEvents(t, events, []string{
		"paper biorxiv.rdf.xml:25 Protein Language Models Predict Enzyme Turnover Numbers",
		"paper biorxiv.rdf.xml:45 Single-Cell Atlas of the Axolotl Limb",
	})
	if len(papers) != 2 || len(errs) != 0 {
		t.Fatalf("%d papers, %d errors", len(papers), len(errs))
	}
	want := paper.Abstract{
		// The DOI, which names the paper in every version and from any source, not the
		// version's URL.
		ID:       "doi:10.1101/2024.03.01.582914",
		Title:    "Protein Language Models Predict Enzyme Turnover Numbers",
		Abstract: "Turnover numbers are known for few enzymes. We fine-tune a protein language model on measured values & predict the rest.",
		// Surname and initials paired, not split at every comma into eight names.
		Authors:   []string{"D. Kukla", "A. B. Crampton", "J.-P. Wood", "S. Khetani"},
		Published: time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC),
		URL:       "http://biorxiv.org/cgi/content/short/2024.03.01.582914v1?rss=1",
		Source:    "biorxiv.rdf.xml:25",
	}
	if !reflect.DeepEqual(papers[0], want) {
		t.Errorf("paper:\n got %+v\nwant %+v", papers[0], want)
	}
	if p := papers[1]; p.ID != "doi:10.1101/2024.02.27.582111" || !reflect.DeepEqual(p.Authors, []string{"E. Tanaka"}) {
		t.Errorf("second paper: id %q, authors %q", p.ID, p.Authors)
	}
}

func TestRSS1NatureFeed(t *testing.T) {
	t.Parallel()
	papers, errs, _ := readFixture(t, "nature.rdf.xml", RSS)
	if len(papers) != 1 || len(errs) != 0 {
		t.Fatalf("%d papers, %d errors", len(papers), len(errs))
	}
	want := paper.Abstract{
		ID:    "doi:10.1038/s41563-024-01801-1",
		Title: "Frameworks that mimic enzyme pockets",
		// The HTML's text, without the citation before it.
		Abstract:  "Two metal–organic frameworks bind CO2 as enzymes do.",
		Authors:   []string{"Himan Dev Singh", "Wendy L. Queen"},
		Published: time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC),
		URL:       "https://www.nature.com/articles/s41563-024-01801-1",
		Source:    "nature.rdf.xml:13",
	}
	if !reflect.DeepEqual(papers[0], want) {
		t.Errorf("paper:\n got %+v\nwant %+v", papers[0], want)
	}
}

// An RSS 1.0 item's id: its DOI, else a <dc:identifier> naming it beyond the feed, else its
// rdf:about, else its <link>, else its title; its date <dc:date>, else
// <prism:publicationDate>, a bad one named.
func TestRSS1Items(t *testing.T) {
	t.Parallel()
	const head = `<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/">`
	in := head + `
<item rdf:about="https://example.org/a"><title>Arxiv</title><description>Fine.</description><dc:identifier>arXiv:2401.00001v2</dc:identifier></item>
<item rdf:about="https://example.org/b"><title>Local</title><description>Fine.</description><dc:identifier>42</dc:identifier><dc:date>2024-03-04T05:00:00-05:00</dc:date></item>
<item><title>Linked</title><link>https://example.org/c</link><description>Fine.</description><prism:publicationDate>2024-03-05</prism:publicationDate></item>
<item><title>Bare</title><description>Fine.</description></item>
<item><title>Bad Date</title><description>Fine.</description><prism:doi>10.1000/XYZ</prism:doi><dc:date>March</dc:date></item>
</rdf:RDF>`
	papers, _, events := readString(t, in, "f", Options{})
	equalEvents(t, events, []string{
		"paper f:2 Arxiv", "paper f:3 Local", "paper f:4 Linked", "paper f:5 Bare",
		`error f:6: record 5: doi:10.1000/xyz: <dc:date> "March" is not an RFC 3339 time or a YYYY-MM-DD date`,
	})
	if len(papers) != 4 {
		t.Fatalf("%d papers", len(papers))
	}
	for i, want := range []struct {
		id   string
		date time.Time
	}{
		{"arxiv:2401.00001", time.Time{}},
		{"id:https://example.org/b", time.Date(2024, 3, 4, 10, 0, 0, 0, time.UTC)},
		{"id:https://example.org/c", time.Date(2024, 3, 5, 0, 0, 0, 0, time.UTC)},
		{titleID("Bare"), time.Time{}},
	} {
		if p := papers[i]; p.ID != want.id || !p.Published.Equal(want.date) {
			t.Errorf("%s: id %q, date %s; want %q, %s", p.Title, p.ID, p.Published, want.id, want.date)
		}
	}
}

func TestSurnamesFirst(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"Kukla, D., Crampton, A. B.":       {"D. Kukla", "A. B. Crampton"},
		"Smith, J.":                        {"J. Smith"},
		"Ada Lovelace, Alan Turing":        {"Ada Lovelace", "Alan Turing"},
		"Ada Lovelace (Cambridge), B. Cox": {"Ada Lovelace", "B. Cox"},
		// Not all pairs: read as names, as before.
		"Kukla, D., Crampton":     {"Kukla", "D.", "Crampton"},
		"Li, J., Wu, X. Y.":       {"J. Li", "X. Y. Wu"},
		"Kukla, D., Crampton, AI": {"Kukla", "D.", "Crampton", "AI"},
		"D., Kukla":               {"D.", "Kukla"},
		"A. B., C. D.":            {"A. B.", "C. D."}, // initials alone, no surname to pair them with
	} {
		if got := splitCreators([]string{in}); !reflect.DeepEqual(got, want) {
			t.Errorf("splitCreators(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHTMLText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`<p>Nature, Published online: 04 March 2024; <a href="x">doi:10.1038/x</a></p>Text.`: "Text.",
		`H<sub>2</sub>O<br/>splits &amp; <b>binds</b>`:                                       "H2O splits & binds",
		`<p>One.</p><p>Two.</p><script>x()</script>`:                                         " One.  Two.  ",
	} {
		if got := htmlText(in); got != want {
			t.Errorf("htmlText(%q) = %q, want %q", in, got, want)
		}
	}
	if strings.Contains(htmlText(`<p>Published online: x</p><p>Published online: y</p>`), "x") {
		t.Error("the citation paragraph was kept")
	}
}

// An RSS item's title and description are its own elements' (see
// TestFeedElementsOfAnotherNamespace), the first that is not empty, in RSS 2.0 as in RSS 1.0
// (its items and their elements in RSS 1.0's namespace, http://purl.org/rss/1.0/, or in none):
// another vocabulary's <m:title>, after them, is not read. Dublin Core's <dc:title> stands in
// for an own <title> that is empty. (RSS 2.0's were the last of their elements before items'
// own were read: the <m:title>, and an empty <dc:title> after it made the item refused.)
func TestRSSTitleOfManyElements(t *testing.T) {
	t.Parallel()
	const (
		ns    = `xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:m="m" xmlns:dc="http://purl.org/dc/elements/1.1/"`
		item  = `<title>Main</title><description>Main text.</description><m:title>Media</m:title><m:description>Media text.</m:description><dc:title></dc:title>`
		empty = `<title> </title><description>Main text.</description><m:title>Media</m:title><dc:title>Dublin</dc:title>`
	)
	rss := func(item string) string {
		return `<rss version="2.0" ` + ns + `><channel><item><guid>https://x.org/1</guid>` + item + `</item></channel></rss>`
	}
	rdf := func(defaultNS, item string) string {
		return `<rdf:RDF ` + ns + defaultNS + `><item rdf:about="https://x.org/1">` + item + `</item></rdf:RDF>`
	}
	const rss1 = ` xmlns="http://purl.org/rss/1.0/"`
	for _, tc := range []struct {
		name, in     string
		title, descr string
	}{
		{"RSS 2.0", rss(item), "Main", "Main text."},
		{"RSS 1.0 in no namespace", rdf("", item), "Main", "Main text."},
		{"RSS 1.0", rdf(rss1, item), "Main", "Main text."},
		{"RSS 2.0, empty <title>", rss(empty), "Dublin", "Main text."},
		{"RSS 1.0, empty <title>", rdf(rss1, empty), "Dublin", "Main text."},
	} {
		papers, errs, _ := readString(t, tc.in, "f", Options{})
		if len(papers) != 1 || len(errs) != 0 || papers[0].Title != tc.title || papers[0].Abstract != tc.descr {
			t.Errorf("%s: %+v %v, want %q, %q", tc.name, papers, errs, tc.title, tc.descr)
		}
	}
}

// A feed's only <dc:creator> that is one author written surname first, "Lovelace, Ada" (a
// feed of one author per item, or a paper of one author in a feed that writes them so), is
// that author, given name first as arXiv and bioRxiv's pairs are read: split at its comma, it
// was two authors, "Lovelace" and "Ada". A list of full names (arXiv's: each with a space in it)
// is still split at its commas.
func TestASingleCreatorSurnameFirstIsOneAuthor(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"Lovelace, Ada":                {"Ada Lovelace"},
		" Lovelace , Ada ":             {"Ada Lovelace"},
		"Lovelace, Ada Augusta":        {"Ada Augusta Lovelace"},
		"van der Berg, Jan":            {"Jan van der Berg"},
		"Lovelace, Ada (Cambridge)":    {"Ada Lovelace"},
		"Ada Lovelace, Alan Turing":    {"Ada Lovelace", "Alan Turing"},
		"Ada Lovelace, A. M. Turing":   {"Ada Lovelace", "A. M. Turing"},
		"Lovelace, Ada, Turing, Alan":  {"Lovelace", "Ada", "Turing", "Alan"},
		"ATLAS Collaboration, CMS Col": {"ATLAS Collaboration", "CMS Col"},
	} {
		if got := splitCreators([]string{in}); !reflect.DeepEqual(got, want) {
			t.Errorf("splitCreators(%q) = %q, want %q", in, got, want)
		}
	}
}

// "et al." closing a list of authors (bioRxiv's and medRxiv's feeds cut a long one so), in
// any case, is no author: a list of surnames and initials ending in it was split at every comma, its pairs
// not seen ("Kukla", "D.", "Crampton", "A. B.", "et al."), and a list of full names got an
// author "et al.".
func TestEtAlClosingACreatorIsNoAuthor(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"Kukla, D., Crampton, A. B., et al.": {"D. Kukla", "A. B. Crampton"},
		"Kukla, D., Crampton, A. B. et al.":  {"D. Kukla", "A. B. Crampton"},
		"Kukla, D., et al":                   {"D. Kukla"},
		"Ada Lovelace, Alan Turing, et al.":  {"Ada Lovelace", "Alan Turing"},
		"Ada Lovelace et al.":                {"Ada Lovelace"},
		"Lovelace, Ada, et al.":              {"Ada Lovelace"},
		"Kukla, D., Crampton, A. B., Et Al.": {"D. Kukla", "A. B. Crampton"},
		"Ada Lovelace, Alan Turing, ET AL":   {"Ada Lovelace", "Alan Turing"},
	} {
		if got := splitCreators([]string{in}); !reflect.DeepEqual(got, want) {
			t.Errorf("splitCreators(%q) = %q, want %q", in, got, want)
		}
	}
	if got := splitCreators([]string{"Lovelace, Ada", "Turing, Alan", "et al."}); !reflect.DeepEqual(got, []string{"Lovelace, Ada", "Turing, Alan"}) {
		t.Errorf("splitCreators of three creators, the last et al. = %q, want the two authors", got)
	}
}

// An RSS 2.0 item that gives its DOI (<prism:doi>, or a <dc:identifier> that is one) is that
// DOI, as an RSS 1.0 item is, when its <guid> (or its <link>) is a site's URL or token: it was
// id:https://…, another paper than the same DOI read from the publisher's RSS 1.0 feed, a
// JSON record or another site — stored and paid for twice. A guid that is an arXiv id or a DOI
// already stays the id: an arXiv paper with a journal's DOI keeps its arXiv id.
func TestRSS2ItemWithADOIIsThatDOIUnlessItsGuidIsAStableID(t *testing.T) {
	t.Parallel()
	in := `<rss version="2.0" xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>
<item><title>Site</title><guid>https://pubs.example.org/doi/abs/10.1021/acs.x.1</guid><description>Fine.</description><prism:doi>10.1021/acs.x.1</prism:doi></item>
<item><title>Token</title><guid isPermaLink="false">123</guid><link>https://example.org/p/2</link><description>Fine.</description><dc:identifier>doi:10.1000/TWO</dc:identifier></item>
<item><title>Link</title><link>https://example.org/p/3?rss=1</link><description>Fine.</description><prism:doi>https://doi.org/10.1000/three</prism:doi></item>
<item><title>Arxiv</title><guid>oai:arXiv.org:2401.00004v2</guid><description>Fine.</description><prism:doi>10.1000/journal.4</prism:doi></item>
<item><title>DOI guid</title><guid>https://doi.org/10.1000/five</guid><description>Fine.</description><prism:doi>10.1000/other.5</prism:doi></item>
<item><title>No DOI</title><guid>https://example.org/p/6</guid><description>Fine.</description><dc:identifier>https://example.org/p/6</dc:identifier></item>
</channel></rss>`
	papers, errs, _ := readString(t, in, "f", Options{})
	if len(errs) != 0 {
		t.Fatalf("errors %v", errs)
	}
	want := []string{"doi:10.1021/acs.x.1", "doi:10.1000/two", "doi:10.1000/three", "arxiv:2401.00004", "doi:10.1000/five", "id:https://example.org/p/6"}
	if len(papers) != len(want) {
		t.Fatalf("%d papers, want %d", len(papers), len(want))
	}
	for i, p := range papers {
		if p.ID != want[i] {
			t.Errorf("%s: id %q, want %q", p.Title, p.ID, want[i])
		}
	}
}

func TestRSS1ItemsOwnElementsComeFirst(t *testing.T) {
	t.Parallel()
	const head = `<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" ` +
		`xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/" xmlns:content="http://purl.org/rss/1.0/modules/content/">`
	in := head + `
<item rdf:about="https://example.org/a"><title>Both</title><link>https://example.org/a</link><description>Own words.</description>` +
		`<content:encoded>&lt;p&gt;Other words.&lt;/p&gt;</content:encoded><pubDate>Mon, 04 Mar 2024 09:30:00 GMT</pubDate><dc:date>2020-01-01</dc:date></item>
<item rdf:about="item-2"><title>Token</title><link>https://example.org/b</link><description>Fine.</description><prism:doi>unknown</prism:doi></item>
</rdf:RDF>`
	papers, errs, _ := readString(t, in, "f", Options{})
	if len(papers) != 2 || len(errs) != 0 {
		t.Fatalf("%d papers, errors %v", len(papers), errs)
	}
	if p := papers[0]; p.Abstract != "Own words." || !p.Published.Equal(time.Date(2024, 3, 4, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("first: abstract %q, date %s; want its <description> and its <pubDate>", p.Abstract, p.Published)
	}
	if id := papers[1].ID; id != "id:https://example.org/b" {
		t.Errorf("second: id %q, want its link's", id)
	}
}

func TestRSSItemTextsOfOtherVocabulariesStandIn(t *testing.T) {
	t.Parallel()
	in := `<rss version="2.0" xmlns:dcterms="http://purl.org/dc/terms/" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<item><title></title><dcterms:title>Terms Title</dcterms:title><link>https://example.org/a</link><description>Fine.</description></item>
<item><media:title>Media Title</media:title><media:category>q-bio.BM</media:category><link>https://example.org/b</link><description>Fine.</description></item>
</channel></rss>`
	papers, errs, _ := readString(t, in, "f", Options{})
	if len(papers) != 2 || len(errs) != 0 {
		t.Fatalf("%d papers, errors %v", len(papers), errs)
	}
	if got := papers[0].Title; got != "Terms Title" {
		t.Errorf("first: title %q, want <dcterms:title>'s", got)
	}
	if p := papers[1]; p.Title != "Media Title" || !reflect.DeepEqual(p.Categories, []string{"q-bio.BM"}) {
		t.Errorf("second: title %q, categories %q; want <media:title>'s and <media:category>'s", p.Title, p.Categories)
	}
}
