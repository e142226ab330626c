package web_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/paperpipe/paperpipe/internal/sampledata"
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

// TestBrowserSearchPaperAndMap drives the UI in headless Chromium: search for a topic of the
// sample archive, open the first result, read its TL;DR and related papers, open the map.
// Screenshots of each step are saved as artifacts.
func TestBrowserSearchPaperAndMap(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("chromium is not installed at %s: run deploy/test-deps.sh (make test does)", chromiumPath)
	}
	b := withSample(t)
	dir := artifactsDir(t)

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
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()

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
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}

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
