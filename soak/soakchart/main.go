// Command soakchart draws the relay memory samples of a soak (SOAK_CSV) as an SVG line chart
// and prints a Markdown table of every Nth sample, with only the standard library.
//
//	go run ./soak/soakchart -in soak/results/soak-1h.csv -out soak/results/soak-1h.svg -every 5m
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"html"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

type row struct {
	sec   float64
	phase string
	col   map[string]float64
}

func main() {
	in := flag.String("in", "", "CSV written by the soak (SOAK_CSV)")
	out := flag.String("out", "", "SVG to write")
	title := flag.String("title", "SocketDock relay memory under the soak", "chart title")
	every := flag.Duration("every", 5*time.Minute, "interval of the rows in the Markdown table")
	flag.Parse()
	rows, err := load(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soakchart:", err)
		os.Exit(1)
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(chart(*title, rows)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "soakchart:", err)
			os.Exit(1)
		}
	}
	table(rows, *every)
}

func load(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no samples", path)
	}
	head := recs[0]
	var rows []row
	for _, r := range recs[1:] {
		x := row{col: map[string]float64{}}
		for i, name := range head {
			switch name {
			case "phase":
				x.phase = r[i]
			case "seconds":
				x.sec, _ = strconv.ParseFloat(r[i], 64)
			default:
				x.col[name], _ = strconv.ParseFloat(r[i], 64)
			}
		}
		rows = append(rows, x)
	}
	return rows, nil
}

var lines = []struct{ col, label, color string }{
	{"rss_kib", "RSS (VmRSS)", "#e15759"},
	{"heap_inuse_kib", "Go heap in use", "#4e79a7"},
	{"heap_live_kib", "Go live heap (marked by the last GC)", "#59a14f"},
}

func chart(title string, rows []row) string {
	const w, h, left, right, top, bottom = 900, 380, 60, 20, 50, 70
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	maxX := rows[len(rows)-1].sec
	maxY := 0.0
	for _, r := range rows {
		for _, l := range lines {
			maxY = math.Max(maxY, r.col[l.col]/1024)
		}
	}
	stepY := niceStep(maxY / 5)
	maxY = math.Ceil(maxY/stepY) * stepY
	x := func(s float64) float64 { return left + s/maxX*pw }
	y := func(mib float64) float64 { return top + ph - mib/maxY*ph }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))
	// Phases other than the load, shaded.
	for i := 0; i < len(rows); {
		j := i
		for j+1 < len(rows) && rows[j+1].phase == rows[i].phase {
			j++
		}
		if rows[i].phase != "load" {
			x0, x1 := x(rows[i].sec), x(rows[j].sec)
			if j+1 < len(rows) {
				x1 = x(rows[j+1].sec)
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%.0f" fill="#eeeeee"/>`+"\n", x0, top, math.Max(x1-x0, 2), ph)
			if x1-x0 >= 40 { // label only what has room for it
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" fill="#777" font-size="10">%s</text>`+"\n", x0+2, top+12, rows[i].phase)
			}
		}
		i = j + 1
	}
	for v := 0.0; v <= maxY+stepY/2; v += stepY {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%g</text>`+"\n",
			left, w-right, y(v), y(v), left-6, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">MiB</text>`+"\n", top+int(ph/2), top+int(ph/2))
	stepX := niceStep(maxX / 60 / 8)
	for m := 0.0; m*60 <= maxX; m += stepX {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%.0f" stroke="#999"/><text x="%.1f" y="%.0f" text-anchor="middle">%g</text>`+"\n",
			x(m*60), x(m*60), top+int(ph), top+ph+5, x(m*60), top+ph+18, m)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">minutes since the relay started</text>`+"\n", left+pw/2, top+ph+34)
	for i, l := range lines {
		var pts []string
		for _, r := range rows {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(r.sec), y(r.col[l.col]/1024)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", l.color, strings.Join(pts, " "))
		lx := left + i*270
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="14" height="4" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, h-14, l.color, lx+20, h-9, html.EscapeString(l.label))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds a step up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// table prints the first sample, then the first sample at or after each multiple of every,
// then every sample outside the load, as Markdown.
func table(rows []row, every time.Duration) {
	fmt.Println("| time | phase | RSS MiB | live heap MiB | heap in use MiB | heap released MiB | goroutines | fds | connections |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	next := 0.0
	for i, r := range rows {
		show := r.sec >= next || r.phase != "load" || i == len(rows)-1
		if r.phase == "load" && i+1 < len(rows) && rows[i+1].phase != "load" {
			show = true // the last sample under load
		}
		if !show {
			continue
		}
		if r.sec >= next {
			next = (math.Floor(r.sec/every.Seconds()) + 1) * every.Seconds()
		}
		d := time.Duration(r.sec * float64(time.Second)).Round(time.Second)
		fmt.Printf("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f |\n", d, r.phase,
			r.col["rss_kib"]/1024, r.col["heap_live_kib"]/1024, r.col["heap_inuse_kib"]/1024, r.col["heap_released_kib"]/1024,
			r.col["goroutines"], r.col["fds"], r.col["connections"])
	}
}
