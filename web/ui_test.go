package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/web"
)

func TestPagesOnTheSampleArchive(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	sample := sampledata.Papers(t)
	btm := idOf(t, sample, "Branch-Train-Merge")
	var rec paper.Record
	b.get("/api/papers/"+url.PathEscape(btm)).json(t, &rec)

	page := func(path string, code int) string {
		t.Helper()
		r := b.get(path)
		if r.code != code {
			t.Fatalf("%s: %d, want %d: %.300s", path, r.code, code, r.body)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		body := string(r.body)
		if strings.Contains(body, "<script") {
			t.Errorf("%s: the page has a script", path)
		}
		return body
	}

	t.Run("front page lists recent papers with TL;DRs and a search box", func(t *testing.T) {
		body := page("/", http.StatusOK)
		if !strings.Contains(body, `action="/search"`) || !strings.Contains(body, `name="q"`) {
			t.Error("no search box")
		}
		if n := strings.Count(body, `class="paper"`); n != 25 {
			t.Errorf("%d papers on the front page, want 25", n)
		}
		if n := strings.Count(body, `class="tldr"`); n != 25 {
			t.Errorf("%d TL;DRs on the front page, want 25", n)
		}
		next := regexp.MustCompile(`rel="next" href="([^"]+)"`).FindStringSubmatch(body)
		if next == nil {
			t.Fatal("no link to older papers")
		}
		older := page(strings.ReplaceAll(next[1], "&amp;", "&"), http.StatusOK)
		if strings.Count(older, `class="paper"`) != 25 || !strings.Contains(older, "Older papers") {
			t.Error("the second page is not the next 25 papers")
		}
	})

	t.Run("paper page shows TL;DR with its model, abstract, source and related papers", func(t *testing.T) {
		body := page("/papers/"+url.PathEscape(btm), http.StatusOK)
		for _, want := range []string{
			htmlEscape(rec.Title),
			htmlEscape(rec.TLDR.Text),
			"written by <code>" + summarizeModel + "</code>",
			htmlEscape(rec.Abstract.Abstract[:80]),
			`<h2 id="related-h">Related papers</h2>`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("paper page lacks %q", want)
			}
		}
		related := regexp.MustCompile(`<h3 dir="auto"><a href="/papers/[^"]+">`).FindAllString(body, -1)
		if len(related) != 10 {
			t.Errorf("%d related papers, want 10", len(related))
		}
		page("/papers/no-such-paper", http.StatusNotFound)
	})

	t.Run("search page has TL;DRs under titles and the mode switch", func(t *testing.T) {
		body := page("/search?q="+url.QueryEscape("mixture of experts"), http.StatusOK)
		if n := strings.Count(body, `class="paper"`); n != 10 {
			t.Errorf("%d results, want 10", n)
		}
		for _, mode := range []string{"hybrid", "semantic", "keyword"} {
			if !strings.Contains(body, "mode="+mode) {
				t.Errorf("no switch to %s mode", mode)
			}
		}
		if !strings.Contains(body, `aria-current="true" class="active">Hybrid`) {
			t.Error("hybrid is not marked as the current mode")
		}
		kw := page("/search?mode=keyword&q="+url.QueryEscape("mixture of experts"), http.StatusOK)
		if !strings.Contains(kw, `class="active">Keyword`) {
			t.Error("keyword is not marked as the current mode")
		}
		page("/search", http.StatusOK)
		page("/search?q=x&k=1000", http.StatusBadRequest)
		page("/search?q=x&mode=psychic", http.StatusBadRequest)
	})

	t.Run("status page", func(t *testing.T) {
		body := page("/status", http.StatusOK)
		for _, want := range []string{">108</span> papers", summarizeModel, "<code>workers</code>", ">1</span> dead letter<", "&lt;b&gt;bad&lt;/b&gt;"} {
			if !strings.Contains(body, want) {
				t.Errorf("status page lacks %q", want)
			}
		}
	})

	t.Run("map draws every paper as a link with a tooltip", func(t *testing.T) {
		body := page("/map", http.StatusOK)
		points := regexp.MustCompile(`<a href="/papers/[^"]+"><circle cx="[0-9.]+" cy="[0-9.]+" r="[0-9.]+" fill="#[0-9a-f]{6}"><title>[^<]+</title></circle></a>`).FindAllString(body, -1)
		if len(points) != len(sample) {
			t.Errorf("%d points on the map, want %d", len(points), len(sample))
		}
		if !strings.Contains(body, "Coloured by cluster") || !strings.Contains(body, `class="legend"`) {
			t.Error("no cluster colouring or legend")
		}
	})

	t.Run("map samples large archives and says so", func(t *testing.T) {
		cfg := b.config()
		cfg.MapMaxPoints = 20
		srv := b.serve(cfg)
		r := doTo(t, srv.URL, http.MethodGet, "/map", nil)
		body := string(r.body)
		if n := strings.Count(body, "</title></circle></a>"); n != 20 {
			t.Errorf("%d points, want the sample of 20", n)
		}
		if !strings.Contains(body, "holds 108 embedded papers; the map shows a fixed sample of 20") {
			t.Error("the page does not say it shows a sample")
		}
	})
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

var payloads = []string{
	`' OR '1'='1`,
	`'; DROP TABLE papers; --`,
	`1); SELECT pg_sleep(10); --`,
	`%' OR 1=1 --`,
	`$1::text`,
	`<script>alert(1)</script>`,
	`"><script>alert(1)</script>`,
	`'><img src=x onerror=alert(1)>`,
	`javascript:alert(1)`,
	`</title><script>alert(1)</script>`,
	`{{.}}`,
}

// harmless checks a page shows no payload as live markup.
func harmless(t *testing.T, what string, r response) {
	t.Helper()
	if r.code >= 500 {
		t.Errorf("%s: status %d: %.300s", what, r.code, r.body)
	}
	body := string(r.body)
	for _, bad := range []string{"<script", "<img src=x", `href="javascript:`, "'><img"} {
		if strings.Contains(body, bad) {
			t.Errorf("%s: the answer contains %q unescaped", what, bad)
		}
	}
	if strings.Contains(strings.ToLower(body), "syntax error") || strings.Contains(body, "SQLSTATE") {
		t.Errorf("%s: a database error leaks: %.300s", what, r.body)
	}
}

// TestInjectionIsHarmless sends SQL and HTML/JS payloads in every query parameter, path and
// body field: nothing fails with a 500, every page shows them escaped, and stored text comes
// back exactly as sent.
func TestInjectionIsHarmless(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:12])
	b.process()
	b.serve(b.config())

	evil := map[string]any{
		"id":         "evil-1'; DROP TABLE papers; --",
		"title":      `<script>alert("title")</script> Robert'); DROP TABLE papers;--`,
		"abstract":   `</textarea><script>alert(2)</script> <img src=x onerror=alert(3)> ' OR '1'='1 experts`,
		"authors":    []string{`<script>alert(4)</script>`, `"><img src=x onerror=alert(5)>`},
		"categories": []string{`<script>alert(6)</script>`, `cs.LG" onmouseover="alert(7)`},
		"url":        "javascript:alert(8)",
	}
	body, _ := json.Marshal([]any{evil})
	r := b.do(http.MethodPost, "/api/papers", body)
	var ans postBody
	r.json(t, &ans)
	if r.code != http.StatusAccepted || len(ans.Accepted) != 1 {
		t.Fatalf("POST evil paper: %d %s", r.code, r.body)
	}
	id := ans.Accepted[0].ID
	b.process()

	// Stored exactly as sent.
	var rec paper.Record
	b.get("/api/papers/"+url.PathEscape(id)).json(t, &rec)
	if rec.Title != evil["title"] || rec.Abstract.Abstract != evil["abstract"] {
		t.Errorf("stored paper differs from what was sent: %+v", rec)
	}
	var count int
	if err := b.st.Pool().QueryRow(t.Context(), "SELECT count(*) FROM papers").Scan(&count); err != nil || count != 13 {
		t.Fatalf("papers table: %d rows, %v", count, err)
	}

	// Every page that shows the paper escapes it.
	for _, path := range []string{
		"/",
		"/papers/" + url.PathEscape(id),
		"/search?mode=keyword&q=experts",
		"/search?q=" + url.QueryEscape("Robert DROP TABLE"),
		"/?category=" + url.QueryEscape(`<script>alert(6)</script>`),
		"/map",
		"/status",
	} {
		r := b.get(path)
		harmless(t, path, r)
		if r.code != http.StatusOK {
			t.Errorf("%s: %d", path, r.code)
		}
	}
	paperPage := string(b.get("/papers/" + url.PathEscape(id)).body)
	if !strings.Contains(paperPage, "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;") {
		t.Error("the paper page does not show the title, escaped")
	}

	// Payloads in every parameter of every route, and in the path.
	params := map[string][]string{
		"/api/papers": {"limit", "cursor", "since", "category", "text"},
		"/api/papers/" + url.PathEscape(id) + "/related": {"k"},
		"/api/search":                   {"q", "k", "mode"},
		"/":                             {"after", "category", "text", "since", "limit"},
		"/search":                       {"q", "k", "mode"},
		"/map":                          {"x"},
		"/status":                       {"x"},
		"/papers/" + url.PathEscape(id): {"x"},
	}
	for path, names := range params {
		for _, name := range names {
			for _, p := range payloads {
				q := url.Values{name: {p}}
				if name != "q" {
					q.Set("q", "experts") // so that search routes reach the parameter under test
				}
				r := b.get(path + "?" + q.Encode())
				harmless(t, path+" "+name+"="+p, r)
			}
		}
	}
	for _, p := range payloads {
		for _, prefix := range []string{"/api/papers/", "/papers/"} {
			harmless(t, prefix+p, b.get(prefix+url.PathEscape(p)))
			harmless(t, prefix+p+"/related", b.get(prefix+url.PathEscape(p)+"/related"))
		}
	}
	if err := b.st.Pool().QueryRow(t.Context(), "SELECT count(*) FROM papers").Scan(&count); err != nil || count != 13 {
		t.Errorf("papers table after the payloads: %d rows, %v", count, err)
	}
}

// TestSearchFormDefaultFallsBackLikeTheHeaderBox: the search page's own form, submitted as it
// comes (on the empty page and on a results page), names no mode, as the header's search box
// does not: where the embedder cannot serve the active space, both fall back to keyword
// results instead of answering 409.
func TestSearchFormDefaultFallsBackLikeTheHeaderBox(t *testing.T) {
	t.Parallel()
	b := servedWithAnotherSpacesEmbedder(t)
	checkedMode := regexp.MustCompile(`<input type="radio" name="mode" value="([a-z]*)" checked>`)
	for _, path := range []string{"/search", "/search?q=language"} {
		r := b.get(path)
		m := checkedMode.FindStringSubmatch(string(r.body))
		if r.code != http.StatusOK || m == nil {
			t.Fatalf("GET %s: %d, no mode checked", path, r.code)
		}
		if strings.Contains(string(r.body), `<input type="hidden" name="mode"`) {
			t.Errorf("GET %s: the header box names a mode", path)
		}
		// Submit the form with its checked mode.
		submit := "/search?" + url.Values{"q": {"language"}, "mode": {m[1]}}.Encode()
		res := b.get(submit)
		if res.code != http.StatusOK || !strings.Contains(string(res.body), "showing keyword results") {
			t.Errorf("the form of %s submits %s: %d, want 200 with keyword results", path, submit, res.code)
		}
	}
	// A mode chosen stays chosen, and answers as chosen.
	r := b.get("/search?q=language&mode=hybrid")
	if r.code != http.StatusConflict || !checkedMode.MatchString(string(r.body)) || checkedMode.FindStringSubmatch(string(r.body))[1] != "hybrid" {
		t.Errorf("an explicit hybrid search: %d, want 409 with hybrid checked", r.code)
	}
}

// TestMapOfAnEmptyArchiveThenOfThreePapers: before any paper is embedded the map says so, in
// sentences that are whole (no "Coloured by ." of a layout that has no points); once a worker
// has embedded three papers, the next request draws them, with a legend (an empty map is not
// shown again for a minute).
func TestMapOfAnEmptyArchiveThenOfThreePapers(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.serve(b.config())
	r := b.get("/map")
	body := string(r.body)
	if r.code != http.StatusOK || !strings.Contains(body, "No paper is embedded yet") {
		t.Fatalf("map of an empty archive: %d %s", r.code, body)
	}
	if strings.Contains(body, "Coloured by") || strings.Contains(body, "Each dot is a paper") {
		t.Errorf("the map of an empty archive describes dots it does not draw: %s", body)
	}

	b.publish(sampledata.Papers(t)[:3])
	b.process()
	body = string(b.get("/map").body)
	if n := strings.Count(body, "</title></circle></a>"); n != 3 {
		t.Errorf("%d points on the map once 3 papers are embedded, want 3", n)
	}
	if !strings.Contains(body, "Coloured by cluster") || strings.Count(body, "<li><svg") < 1 || !strings.Contains(body, "3 of 3 papers") {
		t.Errorf("the map of 3 papers lacks its colouring, legend or count: %s", body)
	}
}

// TestStatusPageCostOfNoAPICall: an archive processed by the offline models has recorded no
// API call, which costs nothing: the status page says $0, not "cost unknown" (which reads as
// prices missing from PAPERPIPE_PRICES).
func TestStatusPageCostOfNoAPICall(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.serve(b.config())
	b.publish(sampledata.Papers(t)[:3])
	b.process()
	body := string(b.get("/status").body)
	if !strings.Contains(body, "No API calls recorded") {
		t.Fatalf("the status page lists API usage of the offline models: %s", body)
	}
	if !strings.Contains(body, "cost $0.00") || strings.Contains(body, "unknown") {
		t.Errorf("the status page's cost of no API call is not $0: %s", body)
	}
}

// TestFrontPagePagingKeepsFilters: every page of a filtered front page links to the next and
// back to the newest with the same filters and page size, and the last says there are no
// older papers.
func TestFrontPagePagingKeepsFilters(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	var papers []paper.Abstract
	for i := range 6 {
		a := paper.Abstract{ID: fmt.Sprintf("paging-%d", i), Title: fmt.Sprintf("Routing experts, part %d", i),
			Abstract: "We route tokens to experts.", Categories: []string{"cs.LG"}}
		if i == 5 {
			a.Categories = []string{"cs.CL"} // filtered out
		}
		papers = append(papers, a)
	}
	b.publish(papers)
	b.process()
	b.serve(b.config())

	filters := url.Values{"category": {"cs.LG"}, "text": {"experts"}, "since": {"2000-01-01"}, "limit": {"2"}}
	link := regexp.MustCompile(`<a (?:rel="next" )?href="([^"]+)">(← Newest papers|Older papers →)</a>`)
	path, seen := "/?"+filters.Encode(), 0
	for page := 1; ; page++ {
		body := string(b.get(path).body)
		seen += strings.Count(body, `class="paper"`)
		links, next := map[string]url.Values{}, ""
		for _, m := range link.FindAllStringSubmatch(body, -1) {
			href := strings.ReplaceAll(m[1], "&amp;", "&")
			u, err := url.Parse(href)
			if err != nil {
				t.Fatal(err)
			}
			links[m[2]] = u.Query()
			if m[2] == "Older papers →" {
				next = href
			}
		}
		newest, hasNewest := links["← Newest papers"]
		older, hasOlder := links["Older papers →"]
		if page == 1 && hasNewest || page > 1 && !hasNewest {
			t.Errorf("page %d: link to the newest papers %v", page, hasNewest)
		}
		if hasNewest && newest.Encode() != filters.Encode() {
			t.Errorf("page %d: the newest papers are %v, want the filters %v", page, newest, filters)
		}
		if !hasOlder {
			if page != 3 || seen != 5 || !strings.Contains(body, "No older papers.") {
				t.Errorf("page %d is the last, after %d papers; it says no older papers: %v", page, seen, strings.Contains(body, "No older papers."))
			}
			break
		}
		older.Del("after")
		if older.Encode() != filters.Encode() {
			t.Errorf("page %d: the older papers are %v, want the filters %v", page, older, filters)
		}
		if page == 3 {
			t.Fatalf("more than 3 pages of 2 for 5 papers")
		}
		path = next
	}
}

// TestStatusPageLinksOnlyDeadLettersOfStoredPapers: the dead letters table links a paper's id
// to its page when the archive has the paper (it failed after it was stored); a record refused
// before it was stored has no page, and a message that is not an abstract has no id: neither is
// a link (to a 404, or an empty link a screen reader reads as nothing).
func TestStatusPageLinksOnlyDeadLettersOfStoredPapers(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	sample := sampledata.Papers(t)[:2]
	b.publish(sample)
	b.process()
	cfg := b.config()
	cfg.Status = testStatus{st: b.st, js: b.js, sum: b.sum, dead: []web.DeadLetter{
		{Seq: 3, PaperID: sample[0].ID, Reason: "summarize: the API refused it", Attempts: 8},
		{Seq: 2, PaperID: "arxiv:2409.99999", Reason: `abstract "arxiv:2409.99999" lacks id, title or text: invalid input`, Attempts: 1},
		{Seq: 1, PaperID: "", Reason: "message is not an abstract: invalid character 'o' in literal null", Attempts: 1},
	}}
	b.serve(cfg)
	body := string(b.get("/status").body)
	rows := regexp.MustCompile(`(?s)<tr><td class="n">(\d)</td><td>(.*?)</td>`).FindAllStringSubmatch(body, -1)
	if len(rows) != 3 {
		t.Fatalf("%d dead letters on the status page, want 3: %s", len(rows), body)
	}
	want := map[string]string{
		"3": `<a href="` + "/papers/" + url.PathEscape(sample[0].ID) + `">` + sample[0].ID + `</a>`,
		"2": `arxiv:2409.99999 <small>(not in the archive)</small>`,
		"1": `<small>no id</small>`,
	}
	for _, r := range rows {
		if r[2] != want[r[1]] {
			t.Errorf("dead letter %s: paper cell %q, want %q", r[1], r[2], want[r[1]])
		}
	}
	if strings.Contains(body, `<a href="/papers/"></a>`) {
		t.Error("the page has an empty link to no paper")
	}
}

// TestStatusPageSaysWhyCountsFallShort: the status page names the papers whose TL;DR the API
// withheld (not asked for again: the TL;DR count stays short of the papers for good) and an
// active fitted model missing from the database (semantic search stops on it), as `paperpipe
// status` does; the page said neither.
func TestStatusPageSaysWhyCountsFallShort(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	sample := sampledata.Papers(t)[:3]
	b.publish(sample[:2])
	b.process()
	ctx := t.Context()
	if _, err := b.st.UpsertPapers(ctx, sample[2:], store.Work{}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.st.RecordWithheld(ctx, []store.Withheld{{PaperID: sample[2].ID, Model: b.sum.Model(),
		PromptVersion: b.sum.PromptVersion(), ContentHash: sample[2].ContentHash(), Reason: "the API's content filter withheld it"}}); n != 1 || err != nil {
		t.Fatalf("RecordWithheld = %d, %v", n, err)
	}
	cfg := b.config()
	const note = "the fitted offline model paperpipe-offline-tfidf-0123456789ab is not in the database"
	cfg.Status = testStatus{st: b.st, js: b.js, sum: b.sum, missing: &web.MissingModel{Model: "paperpipe-offline-tfidf-0123456789ab", Note: note}}
	b.serve(cfg)
	body := string(b.get("/status").body)
	if !strings.Contains(body, "1 without one: the API withheld it") {
		t.Errorf("the status page does not say a TL;DR was withheld: %s", body)
	}
	if !strings.Contains(body, "Note: "+note) {
		t.Errorf("the status page does not say the fitted model is missing: %s", body)
	}
	var st web.Status
	if err := json.Unmarshal(b.get("/api/status").body, &st); err != nil || st.TLDRsWithheld != 1 || st.MissingModel == nil || st.WithTLDR != 2 {
		t.Errorf("GET /api/status: %+v, %v; want 2 with a TL;DR, 1 withheld and the missing model", st, err)
	}
}

// TestSearchForAPaperIDShowsThatPaper: every paper's card shows its id, and a reader pastes an
// id (or an arXiv id with its version, or an abstract page's URL) into the search box to find
// the paper. The search page answered "No paper matches" (keyword search finds no id in the
// text, the embedding models no meaning), or ten papers that had nothing to do with it: it
// shows the paper of that id first, with a link to its page.
func TestSearchForAPaperIDShowsThatPaper(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	ar := paper.Abstract{ID: "arxiv:2401.04088", Title: "Mixtral of Experts",
		Abstract: "We introduce Mixtral 8x7B, a Sparse Mixture of Experts language model."}
	if _, err := b.st.UpsertPapers(t.Context(), []paper.Abstract{ar}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	sampleID := idOf(t, sampledata.Papers(t), "Branch-Train-Merge")
	link := regexp.MustCompile(`<p class="notice idmatch">[^\n]*<a href="([^"]*)"`)
	for _, tc := range []struct{ q, id string }{
		{"2401.04088", ar.ID},
		{"2401.04088v2", ar.ID},
		{"https://arxiv.org/abs/2401.04088", ar.ID},
		{"arXiv:2401.04088", ar.ID},
		{sampleID, sampleID},
	} {
		for _, mode := range []string{"", "keyword", "semantic"} {
			path := "/search?" + url.Values{"q": {tc.q}, "mode": {mode}}.Encode()
			r := b.get(path)
			m := link.FindSubmatch(r.body)
			// A semantic search of an id alone answers 400 (no word the model can use), saying
			// so, under the paper.
			if (r.code != http.StatusOK && mode != "semantic") || m == nil || string(m[1]) != "/papers/"+url.PathEscape(tc.id) {
				t.Errorf("GET %s: %d, links the paper %q first, want /papers/%s", path, r.code, m, url.PathEscape(tc.id))
			}
		}
	}
	// Words are not looked up as ids, and an id not in the archive links nothing.
	for _, q := range []string{"mixture of experts", "2401.99999"} {
		if r := b.get("/search?" + url.Values{"q": {q}}.Encode()); r.code != http.StatusOK || link.Match(r.body) {
			t.Errorf("search for %q: %d, links a paper by id", q, r.code)
		}
	}
}

// TestStaticFilesOfAnotherVersionAreNotKept: the pages link their stylesheet and icon with the
// version of the files they were made with (?v=), and a file of that version may be kept for a
// day. During a rolling update a page of the new release asks for ?v=NEW, which the load
// balancer may send to a pod of the old release, and the other way round; a server answered
// any version with its own file, as cacheable for a day: the browser (and any shared cache)
// kept the old stylesheet as the new version's, and showed the new pages with it for a day
// after the update. A version that is not the server's own, or none, is answered with its
// file but not kept.
func TestStaticFilesOfAnotherVersionAreNotKept(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.serve(b.config())
	page := b.get("/")
	m := regexp.MustCompile(`href="/static/style\.css\?v=([^"]+)"`).FindSubmatch(page.body)
	if m == nil {
		t.Fatalf("the front page links no versioned stylesheet: %.500s", page.body)
	}
	v := string(m[1])
	for _, tc := range []struct {
		path string
		kept bool
	}{
		{"/static/style.css?v=" + v, true},
		{"/static/favicon.svg?v=" + v, true},
		{"/static/style.css?v=0" + v, false},
		{"/static/favicon.svg?v=other", false},
		{"/static/style.css", false},
	} {
		r := b.get(tc.path)
		cc := r.header.Get("Cache-Control")
		if r.code != http.StatusOK {
			t.Errorf("GET %s: %d", tc.path, r.code)
		}
		if kept := strings.Contains(cc, "max-age=86400"); kept != tc.kept || (!tc.kept && cc != "no-cache") {
			t.Errorf("GET %s: Cache-Control %q; kept for a day: %v, want %v", tc.path, cc, kept, tc.kept)
		}
	}
}

// TestPaperWithoutTLDRPointsAtTheDeadLetters: a paper whose TL;DR failed for good (dead-lettered:
// an answer the model never got right, an abstract the API refuses) is stored without one, and
// its page asked "is a worker running?" while the worker ran on and would never write it; the
// related papers' note of the same page named the dead letters. The TL;DR's note says it may
// have failed too, and links the status page, which lists the dead letters.
func TestPaperWithoutTLDRPointsAtTheDeadLetters(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	a := paper.Abstract{ID: "arxiv:2401.00003", Title: "A paper whose TL;DR failed", Abstract: "An abstract the model never summarized."}
	if _, err := b.st.UpsertPapers(t.Context(), []paper.Abstract{a}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	b.serve(b.config())
	r := b.get("/papers/" + url.PathEscape(a.ID))
	m := regexp.MustCompile(`(?s)<p class="tldr pending">(.*?)</p>`).FindSubmatch(r.body)
	if r.code != http.StatusOK || m == nil {
		t.Fatalf("page of a paper without a TL;DR: %d, no pending note: %.1000s", r.code, r.body)
	}
	if note := string(m[1]); !strings.Contains(note, "dead letter") || !strings.Contains(note, `href="/status"`) {
		t.Errorf("the pending TL;DR's note %q does not say the paper may have failed, nor link the status page", note)
	}
}

// TestStatusCardsCountOneInTheSingular: a status card of one paper or one dead letter read
// "1 papers", "1 dead letters".
func TestStatusCardsCountOneInTheSingular(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:1])
	b.process()
	b.serve(b.config()) // testStatus gives one dead letter
	body := string(b.get("/status").body)
	for _, want := range []string{">1</span> paper</div>", ">1</span> dead letter</div>"} {
		if !strings.Contains(body, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	cfg := b.config()
	cfg.Status = testStatus{st: b.st, js: b.js, sum: b.sum, dead: []web.DeadLetter{{Seq: 1}, {Seq: 2}}}
	b.serve(cfg)
	if body := string(b.get("/status").body); !strings.Contains(body, ">2</span> dead letters</div>") {
		t.Error(`status page of 2 dead letters lacks "2 dead letters"`)
	}
}

// TestPaperOfAPastedURL: an abstract page's URL pasted after /papers/ or /api/papers/, which
// the lookup reads, was a 404: the mux collapses its "//" (a redirect to "https:/arxiv.org/…").
// It finds the paper.
func TestPaperOfAPastedURL(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	sample := sampledata.Papers(t)[:3]
	const id, num = "arxiv:2401.01234", "2401.01234"
	sample[0].ID = id
	b.publish(sample)
	b.process()
	b.serve(b.config())
	for _, path := range []string{
		"/papers/https://arxiv.org/abs/" + num,
		"/papers/https://arxiv.org/abs/" + num + "v2",
		"/papers/http://arxiv.org/abs/" + num,
		"/api/papers/https://arxiv.org/abs/" + num,
		"/api/papers/https://arxiv.org/abs/" + num + "/related",
	} {
		r := b.get(path)
		if r.code != http.StatusOK || !strings.Contains(string(r.body), id) {
			t.Errorf("GET %s: %d, want 200 with %s; body %.200s", path, r.code, id, r.body)
		}
	}
}

// TestPaperPageOfATrailingSlash: /papers/ID/ (a final slash, as a typed or copied address may
// have) was a 404. It shows the paper.
func TestPaperPageOfATrailingSlash(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	sample := sampledata.Papers(t)[:3]
	b.publish(sample)
	b.process()
	b.serve(b.config())
	path := "/papers/" + url.PathEscape(sample[0].ID) + "/"
	if r := b.get(path); r.code != http.StatusOK || !strings.Contains(string(r.body), sample[0].ID) {
		t.Errorf("GET %s: %d, want 200 with the paper", path, r.code)
	}
	if r := b.get("/papers/nosuchpaper/"); r.code != http.StatusNotFound {
		t.Errorf("GET /papers/nosuchpaper/: %d, want 404", r.code)
	}
}

// fixedStatus is a status source that gives one status, as it is.
type fixedStatus web.Status

func (s fixedStatus) Status(context.Context) (web.Status, error) { return web.Status(s), nil }

// TestStatusPageCountsTheMessagesHandedBackWhenNoWorkerRuns: with no worker running, the page's
// note counted the backlog's pending messages only, so messages delivered and handed back (a
// worker stopped by the API's refusal of its key, its messages returned to come again) made it
// say "its 0 waiting messages are not being processed", while `paperpipe status` said 5 wait.
func TestStatusPageCountsTheMessagesHandedBackWhenNoWorkerRuns(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.Status = fixedStatus{Space: "(none yet)", Backlog: []web.Backlog{
		{Consumer: "workers", Pending: 2, AckPending: 5, Workers: []web.Worker{}, NoWorker: true}}}
	b.serve(cfg)
	if body := string(b.get("/status").body); !strings.Contains(body, "its 7 messages wait, not being processed") {
		t.Errorf("status page with 2 messages pending and 5 handed back, no worker running: want its note to count 7 waiting; page:\n%s", body)
	}
}
