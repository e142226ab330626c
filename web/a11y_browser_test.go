package web_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/paperpipe/paperpipe/internal/sampledata"
)

// TestBrowserAccessibility drives every page of the sample archive in headless
// Chromium as a keyboard user and a reader zoomed in to 400% (WCAG's reflow at 320 CSS px)
// would.
func TestBrowserAccessibility(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	paperID := idOf(t, sampledata.Papers(t), "Branch-Train-Merge")
	pages := []string{"/", "/search", "/search?q=" + url.QueryEscape("mixture of experts"), "/papers/" + url.PathEscape(paperID),
		"/map", "/status", "/no-such-page"}

	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(b.http.URL+"/")); err != nil { // starts the browser
		t.Fatalf("open the front page: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	eval := evaluator(t, ctx)
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	open := func(path string) {
		t.Helper()
		do("open "+path, chromedp.Navigate(b.http.URL+path), chromedp.WaitReady(chromedp.CSS(`main`)))
	}

	t.Run("the first Tab shows a skip link, which takes the focus past the header", func(t *testing.T) {
		do("a desktop screen", chromedp.EmulateViewport(1280, 900))
		open("/")
		do("press Tab", chromedp.KeyEvent(kb.Tab))
		got := eval(`(() => { const e = document.activeElement, r = e.getBoundingClientRect();
			return [e.tagName + " " + e.getAttribute("href"), r.top >= 0 && r.bottom <= innerHeight && r.width > 20 && r.height > 10] })()`)
		if fmt.Sprint(got) != "[A #main true]" {
			t.Fatalf("the first Tab focuses %v, want a visible link to #main", got)
		}
		do("press Enter", chromedp.KeyEvent(kb.Enter))
		// The heading it jumps to stands below the sticky header, not under it.
		under := eval(`document.querySelector("main h1").getBoundingClientRect().top < document.querySelector("header").getBoundingClientRect().bottom`)
		if under != false {
			t.Errorf("after the skip link the page's heading is under the sticky header")
		}
		do("press Tab", chromedp.KeyEvent(kb.Tab))
		if in := eval(`document.querySelector("main").contains(document.activeElement)`); in != true {
			t.Errorf("the Tab after the skip link focuses %v, not the first link of the content", eval(`document.activeElement.outerHTML.slice(0, 80)`))
		}
	})

	t.Run("at 320 px wide every page fits the screen", func(t *testing.T) {
		do("a 320 px screen", chromedp.EmulateViewport(320, 640))
		for _, p := range pages {
			open(p)
			w, _ := eval(`[document.documentElement.scrollWidth, document.documentElement.clientWidth]`).([]any)
			if len(w) != 2 || w[0] != w[1] {
				wide := eval(`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5).map(e => e.tagName + "." + e.className).slice(0, 3).join(" ")`)
				t.Errorf("%s at 320 px: %v px wide on a screen of %v (too wide: %v)", p, w[0], w[1], wide)
			}
		}
	})

	t.Run("on a short screen the header scrolls away", func(t *testing.T) {
		// 1280×1024 at 400%, a phone on its side: the header takes half of the height.
		do("a 320×256 screen", chromedp.EmulateViewport(320, 256))
		for _, p := range []string{"/", "/papers/" + url.PathEscape(paperID), "/status"} {
			open(p)
			if y, _ := eval(`window.scrollTo(0, 600), scrollY`).(float64); y < 300 {
				t.Fatalf("%s at 320×256: scrolled to %v, want 300 or more", p, y)
			}
			if got, _ := eval(`document.querySelector("header").getBoundingClientRect().bottom`).(float64); got > 0 {
				t.Errorf("%s at 320×256 scrolled down: the header still covers the top %v px of 256", p, got)
			}
		}
		// A phone held upright keeps the header on top.
		do("a 375×812 screen", chromedp.EmulateViewport(375, 812))
		open("/")
		if got := eval(`window.scrollTo(0, 600), [scrollY, document.querySelector("header").getBoundingClientRect().top]`); fmt.Sprint(got) != "[600 0]" {
			t.Errorf("/ at 375×812 scrolled down: [scrollY, the header's top] %v, want [600 0]", got)
		}
	})
}
