package bench

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// The charts are plain SVG written by hand: a fixed canvas, a plot area,
// axes with "nice" ticks, one <rect class="bar"> per bar.

const (
	svgW, svgH                  = 860, 420
	padL, padR, padTop, padBott = 80, 24, 48, 64
	plotW, plotH                = svgW - padL - padR, svgH - padTop - padBott
)

type svgWriter struct {
	w   *bufio.Writer
	err error
}

func (s *svgWriter) printf(format string, a ...any) {
	if s.err == nil {
		_, s.err = fmt.Fprintf(s.w, format, a...)
	}
}

func (s *svgWriter) text(x, y float64, anchor, class, text string) {
	s.printf(`<text x="%.1f" y="%.1f" text-anchor="%s" class="%s">%s</text>`+"\n", x, y, anchor, class, esc(text))
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (s *svgWriter) begin(title, subtitle string) {
	s.printf(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	s.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, sans-serif">`+"\n", svgW, svgH, svgW, svgH)
	s.printf(`<style>.t{font-size:16px;font-weight:600}.s{font-size:12px;fill:#555}.a{font-size:11px;fill:#333}.l{font-size:12px;fill:#333}.bar{fill:#3b6fb6}.mark{stroke:#c0392b;stroke-width:1.5;stroke-dasharray:4 3}.step{stroke:#999;stroke-width:1;stroke-dasharray:2 3}.grid{stroke:#e3e3e3;stroke-width:1}.axis{stroke:#333;stroke-width:1}</style>` + "\n")
	s.printf(`<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`+"\n", svgW, svgH)
	s.text(padL, 22, "start", "t", title)
	if subtitle != "" {
		s.text(padL, 38, "start", "s", subtitle)
	}
}

// yAxis draws horizontal grid lines and labels for 0..top.
func (s *svgWriter) yAxis(top float64, label string) {
	for _, v := range ticks(top) {
		y := padTop + plotH - v/top*plotH
		s.printf(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/>`+"\n", padL, y, padL+plotW, y)
		s.text(padL-6, y+4, "end", "a", human(v))
	}
	s.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>`+"\n", padL, padTop, padL, padTop+plotH)
	s.printf(`<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>`+"\n", padL, padTop+plotH, padL+plotW, padTop+plotH)
	s.printf(`<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle" class="l">%s</text>`+"\n", padTop+plotH/2, padTop+plotH/2, esc(label))
}

func (s *svgWriter) end() error {
	s.printf("</svg>\n")
	if s.err != nil {
		return s.err
	}
	return s.w.Flush()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// ticks are 0..top in four or five even steps (top is a niceCeil value).
func ticks(top float64) []float64 {
	step := niceCeil(top / 5)
	var out []float64
	for v := 0.0; v <= top*(1+1e-9); v += step {
		out = append(out, v)
	}
	return out
}

// human prints 1234567 as 1.2M, 0.5 as 0.5.
func human(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// msLabel prints a millisecond value the short way: 0.1 ms, 10 ms, 1 s.
func msLabel(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v/1000, 'g', 3, 64) + " s"
	}
	if v < 0.001 {
		return strconv.FormatFloat(v*1e6, 'g', 3, 64) + " ns"
	}
	if v < 1 {
		return strconv.FormatFloat(v*1000, 'g', 3, 64) + " µs"
	}
	return strconv.FormatFloat(v, 'g', 3, 64) + " ms"
}

// Mark is a labelled vertical line on a chart (a percentile, a step start).
type Mark struct {
	At    float64 // x value: milliseconds on a histogram, seconds on a timeline
	Label string
}

// WriteHistogramSVG draws a latency histogram: one bar per bin, the bins
// equally wide on a logarithmic time axis, with marks (p50, p99…).
func WriteHistogramSVG(w io.Writer, title, subtitle string, bins []Bin, marks []Mark) error {
	s := &svgWriter{w: bufio.NewWriter(w)}
	s.begin(title, subtitle)
	var top uint64
	for _, b := range bins {
		top = max(top, b.Count)
	}
	yTop := niceCeil(float64(top))
	s.yAxis(yTop, "samples")
	if len(bins) > 0 {
		lo, hi := math.Log10(bins[0].LoMs), math.Log10(bins[len(bins)-1].HiMs)
		x := func(v float64) float64 { return padL + (math.Log10(v)-lo)/(hi-lo)*plotW }
		bw := float64(plotW) / float64(len(bins))
		for i, b := range bins {
			h := float64(b.Count) / yTop * plotH
			s.printf(`<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f"><title>%s–%s: %d</title></rect>`+"\n",
				padL+float64(i)*bw+0.5, padTop+plotH-h, max(bw-1, 0.5), h, esc(msLabel(b.LoMs)), esc(msLabel(b.HiMs)), b.Count)
		}
		for d := math.Ceil(lo - 1e-9); d <= hi+1e-9; d++ {
			xv := x(math.Pow(10, d))
			s.printf(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="axis"/>`+"\n", xv, padTop+plotH, xv, padTop+plotH+5)
			s.text(xv, padTop+plotH+18, "middle", "a", msLabel(math.Pow(10, d)))
		}
		for i, m := range marks {
			if m.At <= 0 {
				continue
			}
			xv := min(max(x(m.At), padL), padL+plotW)
			s.printf(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="mark"/>`+"\n", xv, padTop, xv, padTop+plotH)
			s.text(xv+3, float64(padTop+12+14*i), "start", "l", m.Label)
		}
	}
	s.text(padL+plotW/2, svgH-16, "middle", "l", "latency (logarithmic buckets)")
	return s.end()
}

// Sample is one point of a timeline: a per-second count.
type Sample struct {
	T     float64 `json:"t_s"`   // seconds since the start of the run
	Value float64 `json:"value"` // per second
}

// WriteTimelineSVG draws a per-second series as bars over time, with
// vertical marks (step boundaries).
func WriteTimelineSVG(w io.Writer, title, subtitle, yLabel string, samples []Sample, marks []Mark) error {
	s := &svgWriter{w: bufio.NewWriter(w)}
	s.begin(title, subtitle)
	var top, end float64
	for _, p := range samples {
		top = max(top, p.Value)
		end = max(end, p.T)
	}
	yTop := niceCeil(top)
	s.yAxis(yTop, yLabel)
	end = max(end, 1)
	x := func(t float64) float64 { return padL + t/end*plotW }
	bw := float64(plotW) / float64(max(len(samples), 1))
	for _, p := range samples {
		h := p.Value / yTop * plotH
		s.printf(`<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f"><title>t=%gs: %s</title></rect>`+"\n",
			x(p.T)-bw, padTop+plotH-h, max(bw-0.5, 0.5), h, p.T, human(math.Round(p.Value)))
	}
	for _, t := range ticks(niceCeil(end)) {
		if t > end {
			break
		}
		s.text(x(t), padTop+plotH+18, "middle", "a", human(t)+" s")
	}
	for _, m := range marks {
		xv := x(m.At)
		s.printf(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="step"/>`+"\n", xv, padTop, xv, padTop+plotH)
		s.text(xv+3, padTop+12, "start", "a", m.Label)
	}
	s.text(padL+plotW/2, svgH-16, "middle", "l", "time since start")
	return s.end()
}
