package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
)

// Point is one (x, y) of a Series.
type Point struct{ X, Y float64 }

// Series is a named line of a Chart.
type Series struct {
	Name   string
	Color  string // any SVG colour
	Dashed bool
	Points []Point
}

// Chart is a line chart with logarithmic axes (base 2 for x, base 10 for y), drawn as SVG
// without any external tool.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	Width, Height         int // pixels; default 720×440
}

const (
	padLeft, padRight, padTop, padBottom = 80.0, 190.0, 40.0, 56.0
)

// SVG renders the chart. Points with a non-positive coordinate are skipped (log axes).
func (c Chart) SVG() []byte {
	w, h := float64(c.Width), float64(c.Height)
	if w <= 0 {
		w = 720
	}
	if h <= 0 {
		h = 440
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			if p.X <= 0 || p.Y <= 0 {
				continue
			}
			xmin, xmax = math.Min(xmin, p.X), math.Max(xmax, p.X)
			ymin, ymax = math.Min(ymin, p.Y), math.Max(ymax, p.Y)
		}
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax, ymin, ymax = 1, 2, 1, 10
	}
	lx0, lx1 := math.Floor(math.Log2(xmin)), math.Ceil(math.Log2(xmax))
	ly0, ly1 := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
	if lx1 == lx0 {
		lx1++
	}
	if ly1 == ly0 {
		ly1++
	}
	pw, ph := w-padLeft-padRight, h-padTop-padBottom
	px := func(x float64) float64 { return padLeft + (math.Log2(x)-lx0)/(lx1-lx0)*pw }
	py := func(y float64) float64 { return padTop + ph - (math.Log10(y)-ly0)/(ly1-ly0)*ph }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%g" height="%g" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%g" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", padLeft, html.EscapeString(c.Title))
	// Grid and ticks.
	for e := lx0; e <= lx1; e++ {
		x := px(math.Exp2(e))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, padTop, x, padTop+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, padTop+ph+18, strconv.FormatFloat(math.Exp2(e), 'f', -1, 64))
	}
	for e := ly0; e <= ly1; e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if e == ly1 && m > 1 {
				break
			}
			y := py(v)
			stroke := "#eee"
			if m == 1 {
				stroke = "#ccc"
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", padLeft, y, padLeft+pw, y, stroke)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", padLeft-6, y+4, strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#444"/>`+"\n", padLeft, padTop, pw, ph)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", padLeft+pw/2, h-12, html.EscapeString(c.XLabel))
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padTop+ph/2, html.EscapeString(c.YLabel))
	// Series and legend.
	for i, s := range c.Series {
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts bytes.Buffer
		for _, p := range s.Points {
			if p.X > 0 && p.Y > 0 {
				fmt.Fprintf(&pts, "%.1f,%.1f ", px(p.X), py(p.Y))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", s.Color, dash, bytes.TrimSpace(pts.Bytes()))
		for _, p := range s.Points {
			if p.X > 0 && p.Y > 0 {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s: x=%g y=%.1f</title></circle>`+"\n",
					px(p.X), py(p.Y), s.Color, html.EscapeString(s.Name), p.X, p.Y)
			}
		}
		ly := padTop + 12 + float64(i)*20
		lx := padLeft + pw + 14
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly, lx+24, ly, s.Color, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+30, ly+4, html.EscapeString(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}
