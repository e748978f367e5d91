package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
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
				if len(sortedCopy(r.PerRun)) == 0 {
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
		if sc.ID == "scale" {
			scaleDetails(&sb, sc)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// scaleDetails is the scale run's breakdown: where the memory went and what holding costs.
func scaleDetails(sb *strings.Builder, sc *Scenario) {
	fmt.Fprintf(sb, "\n| subject | established | held to the end | connect s | server RSS B/conn | client RSS B/conn | kernel slab B/conn | MemAvailable drop B/conn | server CPU %% of a core | client CPU %% | pongs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range sc.Subjects {
		for _, r := range s.Runs {
			if r == nil {
				continue
			}
			low := ""
			if r["low_memory"] == true {
				low = " (stopped: low memory)"
			}
			fmt.Fprintf(sb, "| %s | %.0f%s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f | %.0f |\n", s.Name,
				num(r["established"]), low, num(r["alive_at_end"]), num(r["connect_s"]), num(r["rss_per_conn_bytes"]),
				num(r["client_rss_per_conn_bytes"]), num(r["slab_per_conn_bytes"]), num(r["mem_used_per_conn_bytes"]),
				num(r["target_cpu_pct"]), num(r["client_cpu_pct"]), num(r["pongs"]))
		}
	}
	for _, s := range sc.Subjects {
		for _, r := range s.Runs {
			if sl, ok := r["target_cpu_slices_pct"].([]any); ok && len(sl) > 0 {
				var parts []string
				for _, v := range sl {
					parts = append(parts, fmt.Sprintf("%.1f", num(v)))
				}
				fmt.Fprintf(sb, "\n%s: server CPU per %s slice of the hold, %% of a core: %s.\n", s.Name, "20 s", strings.Join(parts, ", "))
			}
			if top, ok := r["slab_top_per_conn_bytes"].(map[string]any); ok && len(top) > 0 {
				names := make([]string, 0, len(top))
				for name := range top {
					names = append(names, name)
				}
				sort.Slice(names, func(i, j int) bool { return num(top[names[i]]) > num(top[names[j]]) })
				var parts []string
				for _, name := range names {
					parts = append(parts, fmt.Sprintf("%s %.0f", name, num(top[name])))
				}
				fmt.Fprintf(sb, "\n%s: slab growth per connection (B, both ends): %s.\n", s.Name, strings.Join(parts, ", "))
			}
		}
	}
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
