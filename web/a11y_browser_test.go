package web_test

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/paperpipe/paperpipe/internal/sampledata"
)

// TestBrowserAccessibility drives every page of the sample archive in headless
// Chromium as a keyboard user, a reader zoomed in to 400% (WCAG's reflow at 320 CSS px) and a
// low-vision reader would.
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
	prefer := func(scheme string) {
		t.Helper()
		do("prefer "+scheme, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
			return err
		}))
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

	t.Run("the search fields' edges stand out from the page, light and dark", func(t *testing.T) {
		do("a desktop screen", chromedp.EmulateViewport(1280, 900))
		// edges is, for each field, its border's colour, its own background and the one behind it
		// (the first ancestor's that is not transparent), as [r, g, b] lists.
		const edges = `[...document.querySelectorAll("input[type=search]")].map(e => {
			const rgb = c => c.match(/[\d.]+/g).slice(0, 3).map(Number);
			const opaque = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (!/rgba\(.*, 0\)$|transparent/.test(c)) return c; } return "rgb(255, 255, 255)"; };
			return [e.closest("header") ? "header field" : "search page field", rgb(getComputedStyle(e).borderTopColor), rgb(opaque(e)), rgb(opaque(e.parentElement))];
		})`
		for _, scheme := range []string{"light", "dark"} {
			prefer(scheme)
			open("/search")
			fields, _ := eval(edges).([]any)
			if len(fields) != 2 {
				t.Fatalf("%s: %d search fields on the search page, want 2", scheme, len(fields))
			}
			for _, f := range fields {
				f := f.([]any)
				border, inside, behind := color(f[1]), color(f[2]), color(f[3])
				for _, bg := range [][3]float64{inside, behind} {
					if c := contrast(border, bg); c < 3 {
						t.Errorf("%s: the %s's edge %v has a contrast of %.2f:1 with %v, want 3:1 or more", scheme, f[0], border, c, bg)
					}
				}
			}
		}
	})

	t.Run("every dot of the map stands out from it, light and dark", func(t *testing.T) {
		for _, width := range []int64{1280, 375} {
			do("a screen", chromedp.EmulateViewport(width, 900))
			for _, scheme := range []string{"light", "dark"} {
				prefer(scheme)
				open("/map")
				// For each dot: its fill, its edge's colour and rendered width in CSS px, and the
				// map's background.
				dots, _ := eval(`(() => {
					const rgb = c => c.match(/[\d.]+/g).slice(0, 3).map(Number);
					const svg = document.querySelector("figure.map svg"), scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
					const bg = rgb(getComputedStyle(svg.querySelector(".mapbg")).fill);
					return [...svg.querySelectorAll("a circle")].map(c => { const cs = getComputedStyle(c);
						return [rgb(cs.fill), cs.stroke === "none" ? bg : rgb(cs.stroke), parseFloat(cs.strokeWidth) * (cs.vectorEffect === "non-scaling-stroke" ? 1 : scale), bg, c.parentElement.getAttribute("href")] });
				})()`).([]any)
				if len(dots) != 108 {
					t.Fatalf("%d px, %s: %d dots on the map, want 108", width, scheme, len(dots))
				}
				bad := 0
				for _, d := range dots {
					d := d.([]any)
					fill, edge, edgeWidth, bg := color(d[0]), color(d[1]), d[2].(float64), color(d[3])
					if contrast(fill, bg) < 3 && (contrast(edge, bg) < 3 || edgeWidth < 1) {
						if bad++; bad <= 3 {
							t.Errorf("%d px, %s: the dot of %v (fill %v, an edge of %v %.2f px wide) has no part of 3:1 against the map's %v", width, scheme, d[4], fill, edge, edgeWidth, bg)
						}
					}
				}
				if bad > 3 {
					t.Errorf("%d px, %s: %d dots in all stand out too little", width, scheme, bad)
				}
			}
		}
		prefer("light")
	})
}

// color is an [r, g, b] list of numbers evaluated in the browser.
func color(v any) [3]float64 {
	var c [3]float64
	for i, x := range v.([]any) {
		c[i] = x.(float64)
	}
	return c
}

// contrast is WCAG 2's contrast ratio of two colours given as [r, g, b] in 0..255.
func contrast(a, b [3]float64) float64 {
	lum := func(c [3]float64) float64 {
		var l [3]float64
		for i, v := range c {
			v /= 255
			if v <= 0.04045 {
				l[i] = v / 12.92
			} else {
				l[i] = math.Pow((v+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*l[0] + 0.7152*l[1] + 0.0722*l[2]
	}
	la, lb := lum(a), lum(b)
	return (math.Max(la, lb) + 0.05) / (math.Min(la, lb) + 0.05)
}
