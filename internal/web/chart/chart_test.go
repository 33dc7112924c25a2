package chart

import (
	"encoding/xml"
	"math"
	"strconv"
	"strings"
	"testing"
)

// node is an element of the rendered SVG, parsed back as XML.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []node     `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// all lists the elements named name under n, depth first.
func (n node) all(name string) []node {
	var out []node
	for _, c := range n.Nodes {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
		out = append(out, c.all(name)...)
	}
	return out
}

func (n node) float(t *testing.T, name string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(n.attr(name), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		t.Fatalf("<%s %s=%q>: not a finite number", n.XMLName.Local, name, n.attr(name))
	}
	return f
}

// parse renders c and parses it as XML, which fails on anything left
// unescaped.
func parse(t *testing.T, c Chart) (node, string) {
	t.Helper()
	out := string(c.SVG())
	var root node
	if err := xml.Unmarshal([]byte(out), &root); err != nil {
		t.Fatalf("the SVG is not well-formed: %v\n%s", err, out)
	}
	if root.XMLName.Local != "svg" {
		t.Fatalf("root element %q", root.XMLName.Local)
	}
	return root, out
}

var twoSeries = []Series{{Key: "accepted", Label: "Accepted", Color: "#2563eb"}, {Key: "refused", Label: "Refused", Color: "#ea580c"}}

func TestMax(t *testing.T) {
	for _, tc := range []struct{ in, want int64 }{
		{-5, 1}, {0, 1}, {1, 1}, {2, 2}, {3, 5}, {5, 5}, {6, 10}, {10, 10}, {11, 20}, {21, 50}, {99, 100}, {101, 200},
		{123456, 200000}, {math.MaxInt64, math.MaxInt64},
	} {
		if got := Max(tc.in); got != tc.want {
			t.Errorf("Max(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestBarsProportional: each rectangle's height is its value's share of
// the axis's top, stacked in series order from the baseline; zero values
// draw nothing.
func TestBarsProportional(t *testing.T) {
	for _, tc := range []struct {
		name string
		bars [][]int64
		top  float64
	}{
		{"round", [][]int64{{10, 0}, {5, 0}, {0, 0}, {2, 3}}, 10},
		{"axis rounds up", [][]int64{{3, 4}, {1, 1}}, 10},
		{"one", [][]int64{{0, 1}}, 1},
		{"large", [][]int64{{400000, 100000}, {0, 250000}}, 500000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Chart{ID: "c", Title: "t", Series: twoSeries}
			for _, v := range tc.bars {
				c.Bars = append(c.Bars, Bar{Values: v, Title: "bar"})
			}
			root, _ := parse(t, c)
			groups := root.all("g")
			if len(groups) != len(tc.bars) {
				t.Fatalf("%d bars drawn, want %d", len(groups), len(tc.bars))
			}
			for i, g := range groups {
				y := height - bottom
				for j, s := range twoSeries {
					if got := g.attr("data-" + s.Key); got != strconv.FormatInt(tc.bars[i][j], 10) {
						t.Errorf("bar %d: data-%s=%q, want %d", i, s.Key, got, tc.bars[i][j])
					}
					var rects []node
					for _, r := range g.all("rect") {
						if r.attr("class") == s.Key {
							rects = append(rects, r)
						}
					}
					if tc.bars[i][j] == 0 {
						if len(rects) != 0 {
							t.Errorf("bar %d: a %s rectangle for 0", i, s.Key)
						}
						continue
					}
					if len(rects) != 1 {
						t.Fatalf("bar %d: %d %s rectangles, want 1", i, len(rects), s.Key)
					}
					want := float64(tc.bars[i][j]) / tc.top * plotHeight
					h := rects[0].float(t, "height")
					if math.Abs(h-want) > 0.01 {
						t.Errorf("bar %d %s: height %v, want %v", i, s.Key, h, want)
					}
					if ry := rects[0].float(t, "y"); math.Abs(ry+h-y) > 0.02 {
						t.Errorf("bar %d %s: from %v to %v, want it to end at %v", i, s.Key, ry, ry+h, y)
					}
					y -= h
					if rects[0].attr("fill") != s.Color {
						t.Errorf("bar %d %s: fill %q", i, s.Key, rects[0].attr("fill"))
					}
				}
			}
			// Bars side by side, left to right, inside the plot.
			prev := -1.0
			for i, g := range groups {
				for _, r := range g.all("rect") {
					if r.attr("class") == "" {
						continue
					}
					x, w := r.float(t, "x"), r.float(t, "width")
					if x <= prev || x < left || x+w > width-right+0.01 || w <= 0 {
						t.Errorf("bar %d at x %v width %v (previous at %v)", i, x, w, prev)
					}
					prev = x
					break
				}
			}
		})
	}
}

// TestTinyBarShows: one attempt beside thousands is still drawn.
func TestTinyBarShows(t *testing.T) {
	root, _ := parse(t, Chart{Series: twoSeries[:1], Bars: []Bar{{Values: []int64{1}}, {Values: []int64{100000}}}})
	r := root.all("g")[0].all("rect")
	if len(r) != 2 || r[1].float(t, "height") < minVisible {
		t.Errorf("the bar of 1 among 100000: %+v", r)
	}
}

// TestEmpty: a chart with no bars, or only zeros, draws its axes and says
// so with its Empty label.
func TestEmpty(t *testing.T) {
	zeros := make([]Bar, 24)
	for i := range zeros {
		zeros[i] = Bar{Values: []int64{0, 0}, Title: "nothing"}
	}
	for name, bars := range map[string][]Bar{"no bars": nil, "zeros": zeros, "no values": {{Title: "x"}}} {
		t.Run(name, func(t *testing.T) {
			root, _ := parse(t, Chart{ID: "e", Title: "Attempts", Series: twoSeries, Bars: bars, Empty: "No attempts in the last 24 hours"})
			var label string
			for _, tx := range root.all("text") {
				if tx.attr("class") == "empty" {
					label = tx.Text
				}
			}
			if label != "No attempts in the last 24 hours" {
				t.Errorf("empty label %q", label)
			}
			for _, r := range root.all("rect") {
				if r.attr("class") != "" {
					t.Errorf("a %s rectangle in an empty chart", r.attr("class"))
				}
			}
			if len(root.all("line")) < 3 {
				t.Error("no axes")
			}
		})
	}
	// A chart with data has no empty label.
	root, _ := parse(t, Chart{Series: twoSeries, Bars: []Bar{{Values: []int64{1, 0}}}, Empty: "nothing"})
	for _, tx := range root.all("text") {
		if tx.attr("class") == "empty" {
			t.Error("an empty label on a chart with data")
		}
	}
}

// TestFinite: whatever the data, every coordinate is a finite number.
func TestFinite(t *testing.T) {
	many := make([]Bar, 1000)
	for i := range many {
		many[i] = Bar{Values: []int64{int64(i), int64(i % 7)}, Tick: "t"}
	}
	for name, bars := range map[string][]Bar{
		"none":     nil,
		"zeros":    {{Values: []int64{0, 0}}},
		"negative": {{Values: []int64{-5, -1}}, {Values: []int64{-3, 2}}},
		"huge":     {{Values: []int64{math.MaxInt64 / 2, math.MaxInt64 / 2}}, {Values: []int64{1, 0}}},
		"many":     many,
		"one tick": {{Values: []int64{3, 1}, Tick: "00:00"}},
	} {
		t.Run(name, func(t *testing.T) {
			root, out := parse(t, Chart{ID: "f", Series: twoSeries, Bars: bars, Empty: "none"})
			if strings.Contains(out, "NaN") || strings.Contains(out, "Inf") {
				t.Fatalf("NaN or Inf in the SVG:\n%s", out)
			}
			for _, el := range []string{"rect", "line", "text"} {
				for _, n := range root.all(el) {
					for _, a := range n.Attrs {
						switch a.Name.Local {
						case "x", "y", "width", "height", "x1", "x2", "y1", "y2":
							if f := n.float(t, a.Name.Local); f < 0 || f > width {
								t.Errorf("<%s %s=%v> outside the drawing", el, a.Name.Local, f)
							}
						}
					}
				}
			}
		})
	}
}

// TestEscaped: every text the caller gives is escaped, in content and in
// attributes, and reads back as given.
func TestEscaped(t *testing.T) {
	const evil = `<script>alert("x")</script> & 'q' "dq"`
	c := Chart{
		ID: `c"><script>`, Title: evil, Desc: evil, Empty: evil,
		Series: []Series{{Key: `a"><script>x`, Label: evil, Color: `red"><script>`}},
		Bars:   []Bar{{Values: []int64{1}, Title: evil, Tick: evil, Data: map[string]string{"start": evil, `k"><x`: "v"}}},
	}
	root, out := parse(t, c)
	if strings.Contains(out, "<script") {
		t.Fatalf("unescaped markup in the SVG:\n%s", out)
	}
	if got := root.all("title"); len(got) != 2 || got[0].Text != evil || got[1].Text != evil {
		t.Errorf("titles read back as %+v", got)
	}
	if got := root.all("desc"); len(got) != 1 || got[0].Text != evil {
		t.Errorf("desc reads back as %+v", got)
	}
	if g := root.all("g"); len(g) != 1 || g[0].attr("data-start") != evil {
		t.Errorf("data-start reads back as %q", g[0].attr("data-start"))
	}
	var tick bool
	for _, tx := range root.all("text") {
		tick = tick || tx.Text == evil
	}
	if !tick {
		t.Error("the tick label does not read back")
	}
	c.Bars = nil
	if root, _ = parse(t, c); !strings.Contains(string(c.SVG()), "&lt;script&gt;") {
		t.Error("the empty label is not escaped")
	}
}

// TestAccessible: the SVG is an image named by its title and described by
// its description, and each bar has a tooltip.
func TestAccessible(t *testing.T) {
	root, _ := parse(t, Chart{ID: "day", Title: "Attempts per hour", Desc: "Last 24 hours", Series: twoSeries,
		Bars: []Bar{{Values: []int64{1, 2}, Title: "15:00: 1 accepted, 2 refused"}}})
	if root.attr("role") != "img" || root.attr("aria-labelledby") != "day-title day-desc" || root.attr("viewBox") == "" {
		t.Errorf("svg attributes %+v", root.Attrs)
	}
	ids := map[string]string{}
	for _, el := range append(root.all("title"), root.all("desc")...) {
		ids[el.attr("id")] = el.Text
	}
	if ids["day-title"] != "Attempts per hour" || ids["day-desc"] != "Last 24 hours" {
		t.Errorf("ids %v", ids)
	}
	if g := root.all("g"); len(g) != 1 || len(g[0].all("title")) != 1 || g[0].all("title")[0].Text != "15:00: 1 accepted, 2 refused" {
		t.Errorf("bar tooltip missing: %+v", g)
	}
}
