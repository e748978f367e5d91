package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func fmtNum(v float64) string {
	switch {
	case v != v:
		return "n/a"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func spread(med, lo, hi float64, n int) string {
	if n <= 1 {
		return fmtNum(med)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(med), fmtNum(lo), fmtNum(hi))
}

func ms(us float64) string {
	if us == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", us/1000)
}

// markdown renders the results as the tables docs/BENCHMARKS.md quotes.
func (b *bench) markdown(elapsed time.Duration) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Profile `%s`, %d run(s) per figure (median, with min–max when more than one), %s measured after %s warm-up; %d CPUs; %s; total %s.\n\n",
		b.cfg.profile, b.cfg.runs, b.cfg.duration, b.cfg.warmup, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02 15:04 MST"), elapsed.Round(time.Second))
	for _, sc := range b.Scenarios {
		fmt.Fprintf(&sb, "### %s\n\n", sc.Title)
		if sc.Note != "" {
			fmt.Fprintf(&sb, "%s\n\n", sc.Note)
		}
		fmt.Fprintf(&sb, "| subject | %s | p50 ms | p90 ms | p99 ms | max ms | errors |\n|---|---:|---:|---:|---:|---:|---:|\n", sc.Unit)
		for _, s := range sc.Subjects {
			name := s.Name
			if s.Yardstick {
				name += " (yardstick)"
			}
			if s.Skipped != "" {
				fmt.Fprintf(&sb, "| %s | %s | | | | | |\n", name, s.Skipped)
				continue
			}
			n := len(sortedCopy(s.Values))
			if n == 0 {
				fmt.Fprintf(&sb, "| %s | failed: %s | | | | | |\n", name, strings.Join(s.Failures, "; "))
				continue
			}
			fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %.0f |\n", name, spread(s.Median, s.Min, s.Max, n),
				ms(s.P50), ms(s.P90), ms(s.P99), ms(s.MaxLat), s.Errors)
		}
		if len(sc.Ratios) > 0 {
			fmt.Fprintf(&sb, "\n| ratio | same-run value | target | met |\n|---|---:|---|---|\n")
			for _, r := range sc.Ratios {
				if len(r.PerRun) == 0 {
					fmt.Fprintf(&sb, "| %s | n/a | %s | |\n", r.Name, r.Target)
					continue
				}
				met := ""
				if r.Met != nil {
					met = map[bool]string{true: "yes", false: "no"}[*r.Met]
				}
				fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", r.Name, spread(r.Median, r.Min, r.Max, len(r.PerRun)), r.Target, met)
			}
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

func (b *bench) report(elapsed time.Duration) {
	md := b.markdown(elapsed)
	fmt.Println()
	fmt.Print(md)
	stamp := time.Now().UTC().Format("20060102-150405")
	b.write(fmt.Sprintf("%s-%s.json", b.cfg.profile, stamp), b)
	b.write("latest-"+b.cfg.profile+".json", b)
	_ = os.WriteFile(filepath.Join(b.cfg.out, "latest-"+b.cfg.profile+".md"), []byte(md), 0o644)
	fmt.Printf("results: %s\n", filepath.Join(b.cfg.out, "latest-"+b.cfg.profile+".json"))
}
