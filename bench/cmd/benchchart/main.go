// Command benchchart draws the benchmark results as SVG bar charts with no
// dependency beyond the standard library: latency percentiles of the HTTP
// round trip and the echo (closed loop, and paced at half the raw path's
// capacity), throughput ratios, and memory per idle connection.
//
//	benchchart -in bench/results/latest-short.json -out bench/results
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
)

type subject struct {
	Name      string    `json:"name"`
	Yardstick bool      `json:"yardstick"`
	Values    []float64 `json:"values"`
	Median    float64   `json:"median"`
	P50       float64   `json:"p50_us"`
	P90       float64   `json:"p90_us"`
	P99       float64   `json:"p99_us"`
	MaxLat    float64   `json:"max_us"`
	Skipped   string    `json:"skipped"`
	Paced     bool      `json:"paced"`
}

type scenario struct {
	ID       string     `json:"id"`
	Title    string     `json:"title"`
	Unit     string     `json:"unit"`
	Subjects []*subject `json:"subjects"`
}

type results struct {
	Scenarios []*scenario `json:"scenarios"`
}

// series is one colour in a grouped bar chart.
type series struct {
	name  string
	color string
	get   func(*subject) float64
}

var palette = []string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948"}

// bars draws groups (one per subject) of bars (one per series), on a log
// scale when the values span more than two decades.
func bars(title, unit string, subs []*subject, ser []series) string {
	const w, rowH, left, top = 860, 26, 250, 50
	var vals []float64
	for _, s := range subs {
		for _, se := range ser {
			if v := se.get(s); v > 0 {
				vals = append(vals, v)
			}
		}
	}
	if len(vals) == 0 {
		return ""
	}
	lo, hi := vals[0], vals[0]
	for _, v := range vals {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	logScale := hi/lo > 100
	scale := func(v float64) float64 {
		if v <= 0 {
			return 0
		}
		if logScale {
			l0 := math.Floor(math.Log10(lo))
			return (math.Log10(v) - l0 + 0.05) / (math.Log10(hi) - l0 + 0.05) * float64(w-left-90)
		}
		return v / hi * float64(w-left-90)
	}
	groupH := rowH*len(ser) + 12
	h := top + groupH*len(subs) + 40
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`, w, h)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="10" y="20" font-size="15" font-weight="bold">%s</text>`, html.EscapeString(title))
	axis := unit
	if logScale {
		axis += " (log scale)"
	}
	fmt.Fprintf(&sb, `<text x="10" y="38" fill="#555">%s</text>`, html.EscapeString(axis))
	for i, se := range ser {
		fmt.Fprintf(&sb, `<rect x="%d" y="28" width="12" height="12" fill="%s"/><text x="%d" y="38">%s</text>`, left+i*120, se.color, left+i*120+16, html.EscapeString(se.name))
	}
	y := top
	for _, s := range subs {
		label := s.Name
		if s.Yardstick {
			label += " (yardstick)"
		}
		fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="end">%s</text>`, left-8, y+groupH/2, html.EscapeString(label))
		for i, se := range ser {
			v := se.get(s)
			bw := scale(v)
			fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`, left, y+i*rowH, bw, rowH-6, se.color)
			fmt.Fprintf(&sb, `<text x="%.1f" y="%d">%s</text>`, float64(left)+bw+4, y+i*rowH+rowH-10, fmtV(v))
		}
		y += groupH
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

func fmtV(v float64) string {
	switch {
	case v <= 0:
		return "n/a"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func live(subs []*subject) []*subject {
	var out []*subject
	for _, s := range subs {
		if s.Skipped == "" && s.Median > 0 {
			out = append(out, s)
		}
	}
	return out
}

func main() {
	in := flag.String("in", "bench/results/latest-short.json", "results JSON written by benchrun")
	out := flag.String("out", "bench/results", "directory for the SVG files")
	flag.Parse()
	data, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchchart:", err)
		os.Exit(1)
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		fmt.Fprintln(os.Stderr, "benchchart:", err)
		os.Exit(1)
	}
	lat := []series{
		{"p50", palette[0], func(s *subject) float64 { return s.P50 / 1000 }},
		{"p90", palette[1], func(s *subject) float64 { return s.P90 / 1000 }},
		{"p99", palette[3], func(s *subject) float64 { return s.P99 / 1000 }},
	}
	pacedLat := append(lat[:len(lat):len(lat)], series{"max", palette[4], func(s *subject) float64 { return s.MaxLat / 1000 }})
	thr := []series{{"median", palette[2], func(s *subject) float64 { return s.Median }}}
	written := 0
	for _, sc := range r.Scenarios {
		subs := live(sc.Subjects)
		if len(subs) == 0 {
			continue
		}
		var charts = map[string]string{}
		switch {
		case strings.HasPrefix(sc.ID, "paced-"):
			// The paced subjects only: the capacity run's latency is a closed loop's.
			var paced []*subject
			for _, s := range subs {
				if s.Paced {
					paced = append(paced, s)
				}
			}
			charts["latency-"+sc.ID] = bars(strings.SplitN(sc.Title, " (", 2)[0]+": latency", "ms from due time", paced, pacedLat)
		case strings.HasPrefix(sc.ID, "http-"), sc.ID == "loopback-echo", sc.ID == "poll-echo":
			charts["latency-"+sc.ID] = bars(sc.Title+": round-trip latency", "milliseconds", subs, lat)
			charts["throughput-"+sc.ID] = bars(sc.Title+": throughput", sc.Unit, subs, thr)
		default:
			charts[sc.ID] = bars(sc.Title, sc.Unit, subs, thr)
		}
		for name, svg := range charts {
			if svg == "" {
				continue
			}
			p := filepath.Join(*out, "chart-"+name+".svg")
			if err := os.WriteFile(p, []byte(svg), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "benchchart:", err)
				os.Exit(1)
			}
			fmt.Println("wrote", p)
			written++
		}
	}
	if written == 0 {
		fmt.Fprintln(os.Stderr, "benchchart: nothing to draw")
	}
}
