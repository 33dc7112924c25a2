// Package chart draws bar charts as inline SVG for the gateway's pages,
// which run no script (their Content-Security-Policy allows none): the
// chart is markup, readable without a browser's help, with a title and a
// description for screen readers and one per bar as a tooltip.
package chart

import (
	"fmt"
	"html"
	"html/template"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Series is one quantity the bars stack, bottom first.
type Series struct {
	// Key names the series in the markup: each bar carries its value as
	// data-<Key>, and each of its rectangles class <Key>. Letters and '-'
	// only.
	Key   string
	Label string
	Color string // a CSS colour
}

// Bar is one bar: a value per series, in the chart's order.
type Bar struct {
	Values []int64
	// Title is the bar's tooltip and accessible name.
	Title string
	// Tick, when set, labels the bar on the x axis.
	Tick string
	// Data are data-* attributes of the bar (name without "data-").
	Data map[string]string
}

// Chart is a stacked bar chart.
type Chart struct {
	// ID prefixes the ids the SVG's title and description take, so that
	// several charts can share a page.
	ID     string
	Title  string
	Desc   string
	Series []Series
	Bars   []Bar
	// Empty is written across a chart with nothing to show.
	Empty string
}

// The drawing's coordinate system. The SVG scales to its container, text
// with it; this size keeps 11-unit text legible from a phone's width (about
// 320 CSS pixels) up to the 32rem the page lets it grow to.
const (
	width, height             = 360.0, 170.0
	left, right, top, bottom  = 34.0, 8.0, 8.0, 22.0
	plotWidth, plotHeight     = width - left - right, height - top - bottom
	fontSize                  = 11
	barFill                   = 0.8 // of each bar's slot; the rest is the gap
	minVisible                = 0.75
	axisColor, gridColor, ink = "#a8a29e", "#e7e5e4", "#57534e"
)

// Max is the top of the y axis for the largest stacked total: 1, 2 or 5
// times a power of ten, at least 1.
func Max(largest int64) int64 {
	if largest <= 1 {
		return 1
	}
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= largest {
				return m * p
			}
		}
		if p > math.MaxInt64/100 {
			return largest
		}
	}
}

// SVG renders the chart. Every text in it is escaped; every number is
// finite, whatever the data (no bars, all zero, one huge bar).
func (c Chart) SVG() template.HTML {
	var b strings.Builder
	esc := html.EscapeString
	id := esc(c.ID)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" role="img" aria-labelledby="%s-title %s-desc" class="chart" font-size="%d" font-family="system-ui,sans-serif">`,
		num(width), num(height), id, id, fontSize)
	fmt.Fprintf(&b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, esc(c.Title), id, esc(c.Desc))

	var largest int64
	for _, bar := range c.Bars {
		var total int64
		for _, v := range bar.Values {
			if v > 0 {
				total = min(total, math.MaxInt64-v) + v
			}
		}
		largest = max(largest, total)
	}
	ceil := Max(largest)
	baseline := height - bottom
	// Grid lines and the y axis's labels: 0, half and the top.
	for _, f := range []float64{0, 0.5, 1} {
		y := baseline - f*plotHeight
		color := gridColor
		if f == 0 {
			color = axisColor
		}
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>`, num(left), num(y), num(width-right), num(y), color)
		label := strconv.FormatFloat(f*float64(ceil), 'f', -1, 64)
		if f == 0.5 && ceil%2 == 1 {
			continue // no half attempts
		}
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="end" dominant-baseline="middle" fill="%s">%s</text>`, num(left-4), num(y), ink, esc(label))
	}
	fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>`, num(left), num(top), num(left), num(baseline), axisColor)

	if largest == 0 {
		fmt.Fprintf(&b, `<text class="empty" x="%s" y="%s" text-anchor="middle" dominant-baseline="middle" fill="%s">%s</text>`,
			num(left+plotWidth/2), num(top+plotHeight/2), ink, esc(c.Empty))
	}
	n := len(c.Bars)
	for i, bar := range c.Bars {
		slot := plotWidth / float64(n)
		x := left + float64(i)*slot
		w := slot * barFill
		b.WriteString(`<g class="bar"`)
		for _, s := range c.Series {
			fmt.Fprintf(&b, ` data-%s="%d"`, name(s.Key), value(bar, c.Series, s.Key))
		}
		for _, k := range slices.Sorted(maps.Keys(bar.Data)) {
			fmt.Fprintf(&b, ` data-%s="%s"`, name(k), esc(bar.Data[k]))
		}
		fmt.Fprintf(&b, `><title>%s</title>`, esc(bar.Title))
		// An invisible full-height target, so that the tooltip of a short
		// bar can be found.
		fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="transparent"/>`, num(x), num(top), num(slot), num(plotHeight))
		y := baseline
		for j, s := range c.Series {
			if j >= len(bar.Values) || bar.Values[j] <= 0 {
				continue
			}
			h := float64(bar.Values[j]) / float64(ceil) * plotHeight
			// A bar of one attempt among thousands still shows.
			h = max(h, minVisible)
			y -= h
			fmt.Fprintf(&b, `<rect class="%s" x="%s" y="%s" width="%s" height="%s" fill="%s"/>`,
				name(s.Key), num(x+(slot-w)/2), num(y), num(w), num(h), esc(s.Color))
		}
		b.WriteString(`</g>`)
		if bar.Tick != "" {
			cx, anchor := x+slot/2, "middle"
			// A label that would run off the drawing is pulled back to its
			// edge (its width estimated: the drawing has no text metrics).
			half := float64(utf8.RuneCountInString(bar.Tick)) * fontSize * 0.3
			if cx-half < 0 {
				cx, anchor = 0, "start"
			} else if cx+half > width {
				cx, anchor = width, "end"
			}
			fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>`, num(x+slot/2), num(baseline), num(x+slot/2), num(baseline+3), axisColor)
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="%s" fill="%s">%s</text>`, num(cx), num(height-6), anchor, ink, esc(bar.Tick))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func value(bar Bar, series []Series, key string) int64 {
	for j, s := range series {
		if s.Key == key && j < len(bar.Values) {
			return bar.Values[j]
		}
	}
	return 0
}

// name keeps what an attribute name or class may hold of a key: lower-case
// letters, digits and '-'.
func name(key string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '-':
			return r
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A'
		}
		return -1
	}, key)
}

// num writes a coordinate with at most two decimals; one that is not
// finite (which the arithmetic above never makes) is written as 0 rather
// than as NaN, which would break the drawing.
func num(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		f = 0
	}
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}
