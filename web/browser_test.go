package web_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
)

// chromiumPath is where Debian's chromium package puts the browser; deploy/test-deps.sh (run
// by `make test`) installs it.
const chromiumPath = "/usr/bin/chromium"

// artifactsDir is where the browser test saves its screenshots: $PAPERPIPE_ARTIFACTS, or a
// temporary directory of the test.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PAPERPIPE_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium for the test, stopped when it ends, and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("chromium is not installed at %s: run deploy/test-deps.sh (make test does)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelCtx)
	return ctx
}

// evaluator returns a function that evaluates js in the page of ctx and returns its value,
// failing the test when it cannot.
func evaluator(t *testing.T, ctx context.Context) func(js string) any {
	return func(js string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
}

// TestBrowserSearchPaperAndMap drives the UI in headless Chromium: search for a topic of the
// sample archive, open the first result, read its TL;DR and related papers, open the map.
// Screenshots of each step are saved as artifacts.
func TestBrowserSearchPaperAndMap(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	dir := artifactsDir(t)

	ctx := browser(t)

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			png, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, png, 0o644); err != nil {
				return err
			}
			t.Logf("screenshot: %s", p)
			return nil
		})
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	eval := evaluator(t, ctx)

	// fitsScreen checks the page is no wider than the screen: nothing makes the reader scroll
	// sideways (or a phone's browser zoom out) to read a line.
	fitsScreen := func(what string) {
		t.Helper()
		w, _ := eval(`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`).([]any)
		if len(w) != 2 || w[0] != w[1] {
			t.Errorf("%s on a phone: %v px wide on a screen of %v", what, w[0], w[1])
		}
	}

	// The first Run starts the browser; the timeout bounds the steps after it.
	if err := chromedp.Do(ctx, chromedp.Navigate(b.http.URL+"/")); err != nil {
		t.Fatalf("open the front page: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	// Search from the header's search box, as a user would.
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`header form.searchbox input[name=q]`)),
		shot("front.png"),
		chromedp.SendKeys(chromedp.CSS(`header form.searchbox input[name=q]`), "mixture of experts load balancing"),
		chromedp.Submit(chromedp.CSS(`header form.searchbox`)),
		chromedp.WaitVisible(chromedp.CSS(`ol.results li.paper`)),
		shot("search.png"),
	)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	results := eval(`document.querySelectorAll("ol.results li.paper").length`)
	firstTitle := text(`ol.results li.paper h2 a`)
	firstTLDR := text(`ol.results li.paper p.tldr`)
	if results != float64(10) || !strings.Contains(firstTitle, "Load Balancing Loss") || firstTLDR == "" {
		t.Fatalf("search results: %v, first %q with TL;DR %q", results, firstTitle, firstTLDR)
	}

	// Open the first result: its TL;DR, the model that wrote it, and related papers.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`ol.results li.paper h2 a`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`section.tldrbox p.tldr`)),
		shot("paper.png"),
	)
	if err != nil {
		t.Fatalf("open the first result: %v", err)
	}
	h1, tldr, by := text(`article.paperpage h1`), text(`section.tldrbox p.tldr`), text(`section.tldrbox p.by`)
	if h1 != firstTitle || tldr != firstTLDR || !strings.Contains(by, summarizeModel) {
		t.Errorf("paper page: title %q, TL;DR %q, by %q", h1, tldr, by)
	}
	related, _ := eval(`[...document.querySelectorAll("section.related li.paper h3 a")].map(a => a.textContent)`).([]any)
	moe := 0
	for _, r := range related {
		if s, _ := r.(string); isMoE(s) {
			moe++
		}
	}
	if len(related) != 10 || moe < 4 {
		t.Errorf("related papers (%d about experts): %q", moe, related)
	}

	// Open the map from the navigation; each point links to its paper.
	err = chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`header nav a[href="/map"]`), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS(`figure.map svg`)),
		shot("map.png"),
	)
	if err != nil {
		t.Fatalf("open the map: %v", err)
	}
	points := eval(`document.querySelectorAll("figure.map svg a circle").length`)
	href, _ := eval(`document.querySelector("figure.map svg a").getAttribute("href")`).(string)
	if points != float64(108) || !strings.HasPrefix(href, "/papers/") {
		t.Errorf("map: %v points, first links to %q", points, href)
	}

	// The front page on a phone-sized screen.
	err = chromedp.Do(ctx,
		chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile),
		chromedp.Navigate(b.http.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`ol.papers`)),
		shot("front-phone.png"),
	)
	if err != nil {
		t.Fatalf("front page on a phone: %v", err)
	}
	fitsScreen("the front page")

	// A paper whose abstract ends in an 85-character URL: the URL wraps, the page stays as wide
	// as the phone's screen.
	lamb := idOf(t, sampledata.Papers(t), "Large Batch Optimization for Deep Learning")
	err = chromedp.Do(ctx,
		chromedp.Navigate(b.http.URL+"/papers/"+url.PathEscape(lamb)),
		chromedp.WaitVisible(chromedp.CSS(`p.abstract`)),
		shot("paper-phone.png"),
	)
	if err != nil {
		t.Fatalf("paper page on a phone: %v", err)
	}
	fitsScreen("the page of a paper with a long URL in its abstract")
}

// TestBrowserShowsRightToLeftTextInItsDirection: a paper in Arabic (or Hebrew, Persian) has its
// title, TL;DR and abstract laid out right to left, whatever the page's own direction, so that
// its final punctuation and numbers stand where its readers expect them; and one author's
// unterminated bidi override does not reverse the names after it.
func TestBrowserShowsRightToLeftTextInItsDirection(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	st := b.st
	ar := paper.Abstract{ID: "arxiv:2401.00001", Title: "تدريب فعال لنماذج اللغة الكبيرة باستخدام GPT-4.",
		Abstract: "نقترح طريقة جديدة تقلل تكلفة التدريب بنسبة 40%.", Authors: []string{"Mallory \u202e", "Jones"}}
	en := paper.Abstract{ID: "arxiv:2401.00002", Title: "Sparse expert routing", Abstract: "We route tokens to experts."}
	if _, err := st.UpsertPapers(t.Context(), []paper.Abstract{ar, en}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	sums := []paper.Summary{
		{PaperID: ar.ID, Text: "طريقة تقلل تكلفة تدريب النماذج الكبيرة بنسبة 40%.", Model: "m", PromptVersion: "p", ContentHash: ar.ContentHash(), Validation: paper.ValidOK},
		{PaperID: en.ID, Text: "Routes tokens to experts.", Model: "m", PromptVersion: "p", ContentHash: en.ContentHash(), Validation: paper.ValidOK},
	}
	if _, err := st.SaveSummaries(t.Context(), sums); err != nil {
		t.Fatal(err)
	}
	b.serve(b.config())
	ctx, cancel := context.WithTimeout(browser(t), 90*time.Second)
	defer cancel()
	eval := evaluator(t, ctx)
	direction := func(sel string) string {
		t.Helper()
		d, _ := eval(`[...document.querySelectorAll(` + strconv.Quote(sel) + `)].map(e => getComputedStyle(e).direction).join(" ")`).(string)
		return d
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(b.http.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`ol.papers`))); err != nil {
		t.Fatalf("open the front page: %v", err)
	}
	// Newest first: the English paper, then the Arabic one.
	if got := direction(`ol.papers li.paper h2`); got != "ltr rtl" {
		t.Errorf("front page: titles laid out %v, want ltr rtl", got)
	}
	if got := direction(`ol.papers li.paper p.tldr`); got != "ltr rtl" {
		t.Errorf("front page: TL;DRs laid out %v, want ltr rtl", got)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(b.http.URL+"/search?mode=keyword&q="+url.QueryEscape("تدريب")), chromedp.WaitVisible(chromedp.CSS(`ol.results`))); err != nil {
		t.Fatalf("search: %v", err)
	}
	if got := direction(`ol.results li.paper h2`) + " " + direction(`ol.results li.paper p.tldr`); got != "rtl rtl" {
		t.Errorf("search results: title and TL;DR laid out %v, want rtl rtl", got)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(b.http.URL+"/papers/"+url.PathEscape(ar.ID)), chromedp.WaitVisible(chromedp.CSS(`p.abstract`))); err != nil {
		t.Fatalf("open the paper: %v", err)
	}
	for _, sel := range []string{`article h1`, `section.tldrbox p.tldr`, `p.abstract`} {
		if got := direction(sel); got != "rtl" {
			t.Errorf("paper page: %s laid out %v, want rtl", sel, got)
		}
	}
	// "Jones" reads from left to right: its J left of its s.
	jones := eval(`(() => {
		const w = document.createTreeWalker(document.querySelector("dl.metadata"), NodeFilter.SHOW_TEXT);
		for (let n = w.nextNode(); n; n = w.nextNode()) {
			const i = n.data.indexOf("Jones");
			if (i < 0) continue;
			const x = k => { const r = document.createRange(); r.setStart(n, i + k); r.setEnd(n, i + k + 1); return r.getBoundingClientRect().left; };
			return x(0) < x(4);
		}
		return "no Jones";
	})()`)
	if jones != true {
		t.Errorf("the author after one with a bidi override: J left of s is %v, want true (the override reversed the name)", jones)
	}
}
