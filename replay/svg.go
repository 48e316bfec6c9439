package replay

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
)

// svgColors are the strategies' line colours, in Strategies order.
var svgColors = []string{"#999999", "#bcbd22", "#8c564b", "#e377c2", "#ff7f0e", "#1f77b4", "#2ca02c", "#000000"}

// AppendSVG appends to dst an SVG picture of rep: the hit ratio and the p99
// time to first token against the fleet size G (log scale), one line per
// strategy, and the infinite-cache bound as a dashed line. It uses no
// library: the picture is a few hundred lines of plain SVG.
func AppendSVG(dst []byte, rep *Report) []byte {
	const (
		panelW, panelH = 420.0, 300.0
		left, top      = 60.0, 40.0
		gap            = 90.0
		legendW        = 190.0
	)
	var gs []int
	var names []string
	maxTTFT, minTTFT := 0.0, math.Inf(1)
	for _, r := range rep.Results {
		if !slices.Contains(gs, r.Gateways) {
			gs = append(gs, r.Gateways)
		}
		if !slices.Contains(names, r.Strategy) {
			names = append(names, r.Strategy)
		}
		maxTTFT = max(maxTTFT, r.TTFTP99Seconds)
		if r.TTFTP99Seconds > 0 {
			minTTFT = min(minTTFT, r.TTFTP99Seconds)
		}
	}
	slices.Sort(gs)
	// p99 TTFT spans decades between strategies: a log scale, whole
	// decades.
	lo := math.Floor(math.Log10(min(minTTFT, maxTTFT, 1)))
	hi := math.Ceil(math.Log10(max(maxTTFT, 1e-9)))
	if hi <= lo {
		hi = lo + 1
	}
	width := left + 2*panelW + gap + legendW
	height := top + panelH + 60
	dst = fmt.Appendf(dst, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	dst = fmt.Appendf(dst, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	x := func(g int) float64 {
		if len(gs) == 1 {
			return panelW / 2
		}
		lo, hi := math.Log2(float64(gs[0])), math.Log2(float64(gs[len(gs)-1]))
		return 20 + (math.Log2(float64(g))-lo)/(hi-lo)*(panelW-40)
	}
	// Each panel maps its values to [0, 1] (scale) and has ticks.
	type tick struct {
		v     float64
		label string
	}
	var hitTicks, ttftTicks []tick
	for k := 0; k <= 5; k++ {
		v := float64(k) / 5
		hitTicks = append(hitTicks, tick{v, strconv.FormatFloat(v, 'f', 1, 64)})
	}
	for e := lo; e <= hi; e++ {
		ttftTicks = append(ttftTicks, tick{math.Pow(10, e), strconv.FormatFloat(math.Pow(10, e), 'g', 3, 64)})
	}
	panels := []struct {
		title string
		scale func(float64) float64
		ticks []tick
		val   func(Result) float64
		bound float64
	}{
		{"cache hit ratio (input tokens)", func(v float64) float64 { return v }, hitTicks,
			func(r Result) float64 { return r.HitRatio }, rep.Trace.InfiniteCacheHitRatio},
		{"p99 time to first token (s, log scale)", func(v float64) float64 {
			if v <= 0 {
				return 0
			}
			return (math.Log10(v) - lo) / (hi - lo)
		}, ttftTicks, func(r Result) float64 { return r.TTFTP99Seconds }, -1},
	}
	for pi, p := range panels {
		ox := left + float64(pi)*(panelW+gap)
		y := func(v float64) float64 { return top + panelH - p.scale(v)*panelH }
		dst = fmt.Appendf(dst, `<g transform="translate(%.1f,0)">`+"\n", ox)
		dst = fmt.Appendf(dst, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="14">%s</text>`+"\n", panelW/2, top-14, html.EscapeString(p.title))
		dst = fmt.Appendf(dst, `<rect x="0" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`+"\n", top, panelW, panelH)
		for _, tk := range p.ticks {
			dst = fmt.Appendf(dst, `<line x1="0" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", panelW, y(tk.v), y(tk.v))
			dst = fmt.Appendf(dst, `<text x="-6" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", y(tk.v), tk.label)
		}
		for _, g := range gs {
			dst = fmt.Appendf(dst, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", x(g), top+panelH+16, g)
		}
		dst = fmt.Appendf(dst, `<text x="%.1f" y="%.1f" text-anchor="middle">gateways G</text>`+"\n", panelW/2, top+panelH+36)
		if p.bound >= 0 {
			dst = fmt.Appendf(dst, `<line x1="0" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="6 4"/>`+"\n", panelW, y(p.bound), y(p.bound))
		}
		for si, name := range names {
			color := strategyColor(name, si)
			var pts []byte
			for _, g := range gs {
				for _, r := range rep.Results {
					if r.Gateways == g && r.Strategy == name {
						pts = fmt.Appendf(pts, "%.1f,%.1f ", x(g), y(p.val(r)))
						dst = fmt.Appendf(dst, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x(g), y(p.val(r)), color)
					}
				}
			}
			dst = fmt.Appendf(dst, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", pts, color)
		}
		dst = append(dst, "</g>\n"...)
	}
	lx := left + 2*panelW + gap - 10
	for si, name := range names {
		ly := top + 10 + float64(si)*20
		dst = fmt.Appendf(dst, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", lx, lx+24, ly, ly, strategyColor(name, si))
		dst = fmt.Appendf(dst, `<text x="%.1f" y="%.1f" dominant-baseline="middle">%s</text>`+"\n", lx+30, ly, html.EscapeString(name))
	}
	ly := top + 10 + float64(len(names))*20
	dst = fmt.Appendf(dst, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="6 4"/>`+"\n", lx, lx+24, ly, ly)
	dst = fmt.Appendf(dst, `<text x="%.1f" y="%.1f" dominant-baseline="middle">infinite cache</text>`+"\n", lx+30, ly)
	return append(dst, "</svg>\n"...)
}

func strategyColor(name string, i int) string {
	if k := slices.Index(Strategies(), name); k >= 0 {
		return svgColors[k%len(svgColors)]
	}
	return svgColors[i%len(svgColors)]
}
