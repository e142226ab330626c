package web_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
)

// parsePage fetches path from b's server, wants code, and parses the page.
func parsePage(t *testing.T, b *bundle, path string, code int) *html.Node {
	t.Helper()
	r := b.get(path)
	if r.code != code {
		t.Fatalf("%s: %d, want %d: %.300s", path, r.code, code, r.body)
	}
	doc, err := html.Parse(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// findAll returns the elements under n, in document order, for which match is true.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			out = append(out, d)
		}
	}
	return out
}

// attr is n's attribute key, "" when it has none.
func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// textOf is the text inside n.
func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return strings.TrimSpace(b.String())
}

// langAt is the language a screen reader reads n in: the lang of n or its nearest ancestor
// that has one.
func langAt(n *html.Node) string {
	for ; n != nil; n = n.Parent {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if a.Key == "lang" {
					return a.Val
				}
			}
		}
	}
	return ""
}

// TestTextInAnotherLanguageIsMarkedSo: a paper in Chinese, Japanese, Arabic or German has its
// title, TL;DR and abstract marked with their language on every page that shows them, so that a
// screen reader reads them with a voice of that language (not the page's English one, which
// spells Chinese out character by character or skips it) and a browser draws Han characters as
// the language writes them; English text keeps the page's "en".
func TestTextInAnotherLanguageIsMarkedSo(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	papers := []struct {
		p    paper.Abstract
		tldr string
		lang string
	}{
		{paper.Abstract{ID: "arxiv:2401.00011", Title: "基于稀疏专家的大规模语言模型训练方法",
			Abstract: "本文提出一种新的稀疏专家路由方法。实验表明该方法在保持精度的同时将训练成本降低百分之四十。"},
			"一种将训练成本降低百分之四十的稀疏专家路由方法。", "zh"},
		{paper.Abstract{ID: "arxiv:2401.00012", Title: "スパースな専門家による大規模言語モデルの効率的な学習",
			Abstract: "本論文では、トークンを専門家に振り分ける新しい方法を提案する。学習コストを四割削減できることを示す。"},
			"トークンを専門家に振り分けて学習コストを四割削減する方法。", "ja"},
		{paper.Abstract{ID: "arxiv:2401.00013", Title: "تدريب فعال لنماذج اللغة الكبيرة باستخدام خبراء متفرقين",
			Abstract: "نقترح طريقة جديدة لتوجيه الرموز إلى الخبراء تقلل تكلفة التدريب بنسبة أربعين بالمئة."},
			"طريقة لتوجيه الرموز إلى الخبراء تقلل تكلفة التدريب.", "ar"},
		{paper.Abstract{ID: "arxiv:2401.00014", Title: "Wie die Experten in einem Sprachmodell die Last für das Training teilen",
			Abstract: "Wir schlagen eine neue Methode für das Routing von Token zu Experten vor, die die Kosten des Trainings um vierzig Prozent senkt und dabei die Genauigkeit erhält."},
			"Eine Methode, die die Kosten für das Training der Experten um vierzig Prozent senkt.", "de"},
		{paper.Abstract{ID: "arxiv:2401.00015", Title: "Sparse expert routing for the training of large language models",
			Abstract: "We propose a new method for the routing of tokens to experts that cuts the cost of training by forty percent."},
			"A routing of tokens to experts that cuts the cost of the training by forty percent.", "en"},
	}
	var abstracts []paper.Abstract
	var sums []paper.Summary
	for _, c := range papers {
		abstracts = append(abstracts, c.p)
		sums = append(sums, paper.Summary{PaperID: c.p.ID, Text: c.tldr, Model: "m", PromptVersion: "p", ContentHash: c.p.ContentHash(), Validation: paper.ValidOK})
	}
	if _, err := b.st.UpsertPapers(t.Context(), abstracts, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.SaveSummaries(t.Context(), sums); err != nil {
		t.Fatal(err)
	}
	b.serve(b.config())

	// check finds, on the page at path, the element holding each paper's text (its whole
	// text) and checks the language it is read in.
	check := func(path string, texts func(paper.Abstract, string) []string) {
		t.Helper()
		doc := parsePage(t, b, path, http.StatusOK)
		if l := findAll(doc, func(n *html.Node) bool { return n.Data == "html" }); len(l) != 1 || attr(l[0], "lang") != "en" {
			t.Errorf("%s: the page's lang is not en", path)
		}
		for _, c := range papers {
			for _, want := range texts(c.p, c.tldr) {
				els := findAll(doc, func(n *html.Node) bool { return n.Data != "a" && n.Data != "title" && textOf(n) == want })
				if len(els) == 0 {
					t.Errorf("%s: no element holds %q", path, want)
					continue
				}
				for _, el := range els {
					if got := langAt(el); got != c.lang {
						t.Errorf("%s: <%s> %.40q is read in %q, want %q", path, el.Data, want, got, c.lang)
					}
				}
			}
		}
	}
	titleAndTLDR := func(p paper.Abstract, tldr string) []string { return []string{p.Title, tldr} }
	check("/", titleAndTLDR)
	for _, c := range papers {
		check("/search?mode=keyword&q="+url.QueryEscape(c.p.Title), func(p paper.Abstract, tldr string) []string {
			if p.ID != c.p.ID {
				return nil
			}
			return []string{p.Title, tldr}
		})
		check("/papers/"+url.PathEscape(c.p.ID), func(p paper.Abstract, tldr string) []string {
			if p.ID != c.p.ID {
				return nil
			}
			return []string{p.Title, tldr, p.Abstract}
		})
	}
}

// TestMapDotsAreLinksAScreenReaderReaches: the map's dots are links to their papers, which a
// keyboard reaches; the drawing that holds them must not be an image (role="img"), whose
// children are presentational: a screen reader then reads the links as nothing, or skips them,
// while the focus still lands on each. Each dot's link is named by its paper's title.
func TestMapDotsAreLinksAScreenReaderReaches(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:3])
	b.process()
	b.serve(b.config())
	doc := parsePage(t, b, "/map", http.StatusOK)
	links := 0
	for _, svg := range findAll(doc, func(n *html.Node) bool { return n.Data == "svg" }) {
		as := findAll(svg, func(n *html.Node) bool { return n.Data == "a" })
		if len(as) == 0 {
			continue
		}
		switch role := attr(svg, "role"); {
		case role == "img" || role == "presentation" || role == "none" || attr(svg, "aria-hidden") == "true":
			t.Errorf("the map's drawing, which holds %d links, has role=%q aria-hidden=%q: its links are hidden from screen readers", len(as), role, attr(svg, "aria-hidden"))
		}
		if attr(svg, "aria-label") == "" {
			t.Error("the map's drawing has no name")
		}
		for _, a := range as {
			links++
			titles := findAll(a, func(n *html.Node) bool { return n.Data == "title" })
			if len(titles) != 1 || textOf(titles[0]) == "" {
				t.Errorf("a dot's link to %s has no title to name it", attr(a, "href"))
			}
		}
	}
	if links != 3 {
		t.Errorf("%d links on the map of 3 papers, want 3", links)
	}
}
