package main

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
)

// The plot is a grid of panels, one row per scenario and one column per
// mode. Each panel stacks the pods' shares of the calls, second by second:
// the initial pods in blues at the bottom, the pods the scenario started in
// oranges and greens on top. A dashed line marks where the initial pods'
// band ends when every pod has its fair share; grey verticals mark the
// scenario's events; red ticks under the axis mark seconds with failed
// calls. Bars right of the panel stack the running pods' shares over the
// imbalance window: of the calls, of the cost (when calls differ in cost)
// and of the CPU.
const (
	panelW   = 380 // plot area
	panelH   = 140
	marginL  = 44
	marginR  = 70 // room for the share bars
	marginT  = 52
	marginB  = 30
	cellW    = marginL + panelW + marginR
	cellH    = marginT + panelH + marginB
	headerH  = 72
	maxTickX = 10 // seconds between x ticks
)

var (
	oldColors = []string{"#1f4e79", "#2e75b6", "#5b9bd5", "#9dc3e6", "#c5dcf0"}
	newColors = []string{"#c55a11", "#ed7d31", "#f4b183", "#548235", "#a9d18e", "#7f6000", "#bf9000", "#ffd966"}
)

func podColor(p podInfo, i, firstNew int) string {
	if p.New {
		return newColors[(i-firstNew)%len(newColors)]
	}
	return oldColors[i%len(oldColors)]
}

// writePlot draws the runs as one SVG document.
func writePlot(out io.Writer, runs []run, title string) error {
	var rows, cols []string
	for _, r := range runs {
		if !slices.Contains(rows, r.label()) {
			rows = append(rows, r.label())
		}
		if !slices.Contains(cols, r.Mode) {
			cols = append(cols, r.Mode)
		}
	}
	width := max(len(cols), 1)*cellW + 10
	height := headerH + max(len(rows), 1)*cellH
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(w, `<text x="10" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	// Legend.
	x := 10
	fmt.Fprintf(w, `<text x="%d" y="42">share of calls per second, stacked by pod:</text>`+"\n", x)
	x += 250
	fmt.Fprintf(w, `<text x="%d" y="42">initial pods</text>`+"\n", x)
	x += 72
	for _, c := range oldColors {
		fmt.Fprintf(w, `<rect x="%d" y="33" width="12" height="12" fill="%s"/>`+"\n", x, c)
		x += 14
	}
	x += 12
	fmt.Fprintf(w, `<text x="%d" y="42">new pods</text>`+"\n", x)
	x += 58
	for _, c := range newColors[:5] {
		fmt.Fprintf(w, `<rect x="%d" y="33" width="12" height="12" fill="%s"/>`+"\n", x, c)
		x += 14
	}
	x += 12
	fmt.Fprintf(w, `<line x1="%d" y1="39" x2="%d" y2="39" stroke="black" stroke-dasharray="4 3"/><text x="%d" y="42">fair share boundary</text>`+"\n", x, x+22, x+26)
	x += 140
	fmt.Fprintf(w, `<line x1="%d" y1="33" x2="%d" y2="46" stroke="#555" stroke-dasharray="2 2"/><text x="%d" y="42">event</text>`+"\n", x, x, x+5)
	x += 45
	fmt.Fprintf(w, `<rect x="%d" y="36" width="3" height="8" fill="#d00000"/><text x="%d" y="42">failed calls</text>`+"\n", x, x+7)
	fmt.Fprintln(w, `<text x="10" y="60">bars right of each panel: the running pods' shares of the calls, the cost and the CPU over the imbalance window; second line: load over that window (bound: best placement of whole connections).</text>`)

	for _, r := range runs {
		row, col := slices.Index(rows, r.label()), slices.Index(cols, r.Mode)
		drawPanel(w, r, col*cellW+10, headerH+row*cellH)
	}
	fmt.Fprintln(w, "</svg>")
	return w.Flush()
}

func drawPanel(w *bufio.Writer, r run, ox, oy int) {
	px, py := float64(ox+marginL), float64(oy+marginT)
	fmt.Fprintf(w, `<g>`+"\n")
	fmt.Fprintf(w, `<text x="%d" y="%d" font-size="12" font-weight="bold">%s / %s</text>`+"\n", ox+marginL, oy+14,
		html.EscapeString(r.label()), html.EscapeString(r.Mode))
	if r.Skipped != "" || r.Error != "" {
		why := r.Skipped
		if r.Error != "" {
			why = "failed: " + firstLine(r.Error)
		}
		fmt.Fprintf(w, `<text x="%d" y="%d">%s</text></g>`+"\n", ox+marginL, oy+marginT+20, html.EscapeString(truncate(why, 70)))
		return
	}
	s := r.Summary
	sub := fmt.Sprintf("failed %d", s.Failed)
	if s.FairShare > 0 {
		sub += " · fair after " + fmtSecs(s.TimeToFair)
	}
	sub += fmt.Sprintf(" · imbalance %.2f · p99 %.1f ms · %d conns", s.Imbalance, s.P99Ms, s.Dials)
	fmt.Fprintf(w, `<text x="%d" y="%d" fill="#333">%s</text>`+"\n", ox+marginL, oy+28, html.EscapeString(sub))
	if s.LoadUnit != "" {
		sub2 := s.LoadUnit
		if s.LowerBound > 0 {
			sub2 += fmt.Sprintf(" · bound %.2f · imbalance %.2f (%.2f × bound) · p90 1s %.2f", s.LowerBound, s.ImbalanceLoad, s.ImbalanceVsBound, s.Imbalance1sP90)
		} else {
			sub2 += fmt.Sprintf(" · imbalance %.2f · p90 1s %.2f", s.ImbalanceLoad, s.Imbalance1sP90)
		}
		if s.ImbalanceCPU > 0 {
			sub2 += fmt.Sprintf(" · cpu %.2f", s.ImbalanceCPU)
		}
		fmt.Fprintf(w, `<text x="%d" y="%d" fill="#333">%s</text>`+"\n", ox+marginL, oy+41, html.EscapeString(sub2))
	}

	dur := r.Duration
	if n := len(r.Seconds); n > 0 {
		dur = max(dur, float64(r.Seconds[n-1].T+1))
	}
	dur = max(dur, 1)
	xOf := func(t float64) float64 { return px + t/dur*panelW }
	yOf := func(v float64) float64 { return py + (1-v)*panelH }

	// Frame.
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%d" height="%d" fill="#f4f4f4" stroke="none"/>`+"\n", px, py, panelW, panelH)

	// Stacked bands: one polygon per pod, its lower edge the cumulative
	// share of the pods before it. Each second is a flat step.
	firstNew := slices.IndexFunc(r.Pods, func(p podInfo) bool { return p.New })
	if firstNew < 0 {
		firstNew = len(r.Pods)
	}
	totals := make([]float64, len(r.Seconds))
	for i, sec := range r.Seconds {
		totals[i] = float64(sumMap(sec.Calls))
	}
	lower := make([]float64, len(r.Seconds))
	for i, p := range r.Pods {
		upper := make([]float64, len(r.Seconds))
		nonEmpty := false
		for j, sec := range r.Seconds {
			upper[j] = lower[j]
			if totals[j] > 0 {
				upper[j] += float64(sec.Calls[p.Name]) / totals[j]
			}
			nonEmpty = nonEmpty || upper[j] > lower[j]
		}
		if nonEmpty {
			var pts []string
			for j, sec := range r.Seconds {
				t := float64(sec.T)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", xOf(t), yOf(upper[j]), xOf(t+1), yOf(upper[j])))
			}
			for j := len(r.Seconds) - 1; j >= 0; j-- {
				t := float64(r.Seconds[j].T)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f %.1f,%.1f", xOf(t+1), yOf(lower[j]), xOf(t), yOf(lower[j])))
			}
			fmt.Fprintf(w, `<polygon points="%s" fill="%s"><title>%s %s</title></polygon>`+"\n",
				strings.Join(pts, " "), podColor(p, i, firstNew), shortName(i, p), html.EscapeString(p.Name))
		}
		lower = upper
	}

	drawShareBars(w, r, px+panelW+8, py, yOf, firstNew)

	// Fair share boundary: where the initial pods' band ends when every
	// pod has its fair share.
	if s.FairShare > 0 {
		y := yOf(1 - s.FairShare)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" stroke-dasharray="4 3"/>`+"\n", px, y, px+panelW, y)
	}
	// Events.
	for i, e := range r.Events {
		t := e.Done
		if e.Kind == eventReplace {
			t = e.At
		}
		x := xOf(t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333" stroke-dasharray="2 2"><title>%s at %.1f s</title></line>`+"\n",
			x, py-4, x, py+panelH, html.EscapeString(e.Label), t)
		if e.Kind == eventScale || i == 0 {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="10" fill="#333">%s</text>`+"\n", x+3, py+10, html.EscapeString(e.Label))
		}
	}
	// Failed calls.
	for _, sec := range r.Seconds {
		if f := sumMap(sec.Failed); f > 0 {
			x := xOf(float64(sec.T))
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="6" fill="#d00000"><title>%d failed at %d s</title></rect>`+"\n",
				x, py+panelH+1, math.Max(panelW/dur, 2), f, sec.T)
		}
	}
	// Axes.
	fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", px, py, panelW, panelH)
	for _, v := range []float64{0, 0.5, 1} {
		y := yOf(v)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888"/><text x="%.1f" y="%.1f" text-anchor="end">%g</text>`+"\n",
			px-4, y, px, y, px-6, y+4, v)
	}
	step := float64(maxTickX)
	if dur <= 20 {
		step = 5
	}
	for t := 0.0; t <= dur+0.01; t += step {
		x := xOf(t)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888"/><text x="%.1f" y="%.1f" text-anchor="middle">%g</text>`+"\n",
			x, py+panelH, x, py+panelH+4, x, py+panelH+17, t)
	}
	fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">s</text>`+"\n", px+panelW, py+panelH+28)
	fmt.Fprintln(w, `</g>`)
}

// drawShareBars stacks the running pods' shares over the imbalance window,
// one bar each for the calls, the cost (when calls differ in cost) and the
// CPU, from x.
func drawShareBars(w *bufio.Writer, r run, x, py float64, yOf func(float64) float64, firstNew int) {
	s := r.Summary
	if len(s.Shares) == 0 {
		return
	}
	type bar struct {
		name, what string
		share      func(podShare) float64
	}
	bars := []bar{{"call", "calls", func(p podShare) float64 { return p.Calls }}}
	if s.LoadUnit == "cost" {
		bars = append(bars, bar{"cost", "cost", func(p podShare) float64 { return p.Load }})
	}
	if s.ImbalanceCPU > 0 {
		bars = append(bars, bar{"cpu", "CPU", func(p podShare) float64 { return p.CPU }})
	}
	for j, b := range bars {
		bx := x + float64(j)*20
		lower := 0.0
		for i, p := range r.Pods {
			sh, ok := s.Shares[p.Name]
			if !ok || b.share(sh) <= 0 {
				continue
			}
			upper := lower + b.share(sh)
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="13" height="%.1f" fill="%s"><title>%s %s: %.0f%% of the %s</title></rect>`+"\n",
				bx, yOf(upper), yOf(lower)-yOf(upper), podColor(p, i, firstNew), shortName(i, p), html.EscapeString(p.Name), 100*b.share(sh), b.what)
			lower = upper
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%.1f" font-size="7" text-anchor="middle" fill="#555">%s</text>`+"\n", bx+6.5, py+panelH+10, b.name)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
