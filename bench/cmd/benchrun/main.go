// Command benchrun is the benchmark orchestrator behind "make bench" and
// "make bench-full". It starts every server itself (SocketDock, the bare
// gnet echo ceiling, the reference backend, Pushpin), drives them with
// sdbench, and reports every SocketDock figure as a ratio against a
// yardstick measured in the same run. Everything listens on 127.0.0.1, every
// client run is bounded in time, and every process it started is killed when
// it ends (normally, on error, or on SIGINT/SIGTERM).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	profile     string
	relay       string
	tools       string
	out         string
	only        map[string]bool
	runs        int
	warmup      time.Duration
	duration    time.Duration
	conns       int
	idleConns   int
	scaleConns  int
	scaleRelays int
	// scaleSettle is the wait after the connect storm before memory is read and the CPU
	// window opens; scaleHold is that window (and the time the connections are held).
	scaleSettle   time.Duration
	scaleHold     time.Duration
	scaleSubjects map[string]bool
	scaleConc     int
	scalePerIP    int
	scalePing     time.Duration
	pushpin       bool
	basePort      int
	pacedAt       float64 // fraction of the raw path's capacity the paced scenario runs at
}

type bench struct {
	cfg  config
	sup  *supervisor
	ctx  context.Context
	port int
	// results
	Scenarios []*Scenario `json:"scenarios"`
}

func main() {
	var (
		cfg   config
		only  string
		noPP  bool
		runs  int
		dur   time.Duration
		warm  time.Duration
		scale int
	)
	flag.StringVar(&cfg.profile, "profile", "short", "short (make bench) or full (make bench-full)")
	flag.StringVar(&cfg.relay, "relay", "bin/socketdock", "SocketDock binary")
	flag.StringVar(&cfg.tools, "tools", "bin/bench", "directory holding sdbench, refecho and refbackend")
	flag.StringVar(&cfg.out, "out", "bench/out", "directory for results (JSON, Markdown) and server logs")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run: loopback,http,idle,rate,scale,poll,paced (default: all of the profile)")
	flag.BoolVar(&noPP, "no-pushpin", false, "skip Pushpin even when installed")
	flag.IntVar(&runs, "runs", 0, "runs per measurement (default 1 short, 3 full)")
	flag.DurationVar(&dur, "duration", 0, "measured duration per echo/rate run (default 8s short, 20s full)")
	flag.DurationVar(&warm, "warmup", 2*time.Second, "warm-up per echo/rate run")
	flag.IntVar(&cfg.conns, "conns", 1000, "connections in the echo and HTTP scenarios")
	flag.IntVar(&cfg.idleConns, "idle-conns", 15000, "connections in the idle-memory scenario")
	flag.IntVar(&scale, "scale-conns", 250000, "connections in the scale scenario (full profile)")
	flag.IntVar(&cfg.scaleRelays, "scale-relays", 0, "relay processes sharing the port in the scale run (default: one per 15,000 connections)")
	flag.DurationVar(&cfg.scaleSettle, "scale-settle", 30*time.Second, "scale: wait after connecting (the connect storm's garbage collected) before reading memory and opening the CPU window")
	flag.DurationVar(&cfg.scaleHold, "scale-hold", 60*time.Second, "scale: hold this long after settling, measuring CPU over it")
	flag.IntVar(&cfg.scaleConc, "scale-connect-concurrency", 64, "scale: parallel dials per client process (a storm starves the processes that must answer the first pings)")
	flag.IntVar(&cfg.scalePerIP, "scale-per-ip", 4000, "scale: connections per source address (127.0.0.2, .3, …)")
	flag.DurationVar(&cfg.scalePing, "scale-ping-interval", 20*time.Second, "scale: the relays' --ping-interval (20 s is their default)")
	scaleSubjects := flag.String("scale-subjects", "socketdock,refecho", "scale: servers to measure (socketdock, refecho)")
	flag.IntVar(&cfg.basePort, "base-port", 21000, "first port used; each server gets fresh ones above it")
	flag.Float64Var(&cfg.pacedAt, "paced-at", 0.5, "fraction of the raw path's closed-loop capacity the paced scenario runs at (0 < f ≤ 1)")
	flag.Parse()

	cfg.runs, cfg.duration, cfg.warmup, cfg.scaleConns = runs, dur, warm, scale
	if cfg.pacedAt <= 0 || cfg.pacedAt > 1 {
		fmt.Fprintln(os.Stderr, "benchrun: -paced-at must be in (0, 1]")
		os.Exit(2)
	}
	switch cfg.profile {
	case "short":
		def(&cfg.runs, 1)
		defD(&cfg.duration, 8*time.Second)
	case "full":
		def(&cfg.runs, 3)
		defD(&cfg.duration, 20*time.Second)
	default:
		fatal(fmt.Errorf("unknown profile %q", cfg.profile))
	}
	cfg.only = map[string]bool{}
	if only == "" {
		only = "loopback,http,idle,rate,poll,paced"
		if cfg.profile == "full" {
			only += ",scale"
		}
	}
	for _, s := range strings.Split(only, ",") {
		cfg.only[strings.TrimSpace(s)] = true
	}
	if _, err := exec.LookPath("pushpin"); err == nil && !noPP {
		cfg.pushpin = true
	}
	cfg.scaleSubjects = map[string]bool{}
	for _, s := range strings.Split(*scaleSubjects, ",") {
		cfg.scaleSubjects[strings.TrimSpace(s)] = true
	}
	if cfg.scaleRelays <= 0 {
		cfg.scaleRelays = (cfg.scaleConns + 14999) / 15000
	}

	logDir := filepath.Join(cfg.out, "logs-"+cfg.profile)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	b := &bench{cfg: cfg, sup: &supervisor{logDir: logDir}, ctx: ctx, port: cfg.basePort}
	// Whatever happens, no server outlives the benchmark.
	defer b.sup.stopAll()
	go func() {
		<-ctx.Done()
		b.sup.stopAll()
	}()

	if _, err := os.Stat(cfg.relay); err != nil {
		fmt.Fprintf(os.Stderr, "benchrun: %s missing (run make build): SocketDock rows are skipped\n", cfg.relay)
		cfg.relay = ""
		b.cfg.relay = ""
	}
	started := time.Now()
	b.header()
	steps := []struct {
		key string
		fn  func() error
	}{
		{"loopback", b.scenarioLoopback},
		{"http", func() error { return b.scenarioHTTP(64) }},
		{"http", func() error { return b.scenarioHTTP(4096) }},
		{"idle", b.scenarioIdle},
		{"rate", b.scenarioRate},
		{"scale", b.scenarioScale},
		{"poll", b.scenarioPollEcho},
		{"poll", b.scenarioPollIdle},
		{"paced", b.scenarioPaced},
	}
	for _, st := range steps {
		if !cfg.only[st.key] || ctx.Err() != nil {
			continue
		}
		if err := st.fn(); err != nil {
			fmt.Fprintf(os.Stderr, "benchrun: %s: %v\n", st.key, err)
		}
		b.sup.stopAll()
	}
	stop()
	b.report(time.Since(started))
}

func def(v *int, d int) {
	if *v == 0 {
		*v = d
	}
}

func defD(v *time.Duration, d time.Duration) {
	if *v == 0 {
		*v = d
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	os.Exit(1)
}

func (b *bench) header() {
	host, _ := os.Hostname()
	fmt.Printf("benchrun: profile %s, %d run(s), %s measured after %s warm-up, %d CPUs, host %s\n",
		b.cfg.profile, b.cfg.runs, b.cfg.duration, b.cfg.warmup, runtime.NumCPU(), host)
}

func (b *bench) nextPort(n int) int {
	p := b.port
	b.port += n
	return p
}

func (b *bench) tool(name string) string { return filepath.Join(b.cfg.tools, name) }

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// ---- servers ----

func (b *bench) startRefEcho(port int, name string, reuse bool) (*proc, error) {
	argv := []string{b.tool("refecho"), "-addr", addr(port)}
	if reuse {
		argv = append(argv, "-reuseport")
	}
	return b.sup.start(name, argv, []string{addr(port)})
}

func (b *bench) startRelay(port int, name string, extra ...string) (*proc, error) {
	if b.cfg.relay == "" {
		return nil, errSkip
	}
	argv := append([]string{b.cfg.relay,
		"--bindip", "127.0.0.1", "--bindport", strconv.Itoa(port),
		"--control-bindport", strconv.Itoa(port + 1), "--log-level", "ERROR"}, extra...)
	ready := []string{addr(port)}
	if !contains(extra, "--reuseport") {
		ready = append(ready, addr(port+1))
	}
	return b.sup.start(name, argv, ready)
}

func contains(ss []string, s string) bool {
	for _, v := range ss {
		if v == s {
			return true
		}
	}
	return false
}

func (b *bench) startBackend(port int, mode string) (*proc, error) {
	return b.sup.start("refbackend-"+mode, []string{b.tool("refbackend"), "-addr", addr(port), "-mode", mode}, []string{addr(port)})
}

var errSkip = errors.New("skipped")

// ---- measurement plumbing ----

func (b *bench) echoArgs(target string, size int, extra ...string) []string {
	a := []string{b.tool("sdbench"), "echo", "-addr", target, "-conns", strconv.Itoa(b.cfg.conns),
		"-size", strconv.Itoa(size), "-duration", b.cfg.duration.String(), "-warmup", b.cfg.warmup.String()}
	return append(a, extra...)
}

func (b *bench) clientTimeout() time.Duration { return b.cfg.duration + b.cfg.warmup + 90*time.Second }

// measure runs one subject once: start its server(s), run the client,
// stop the server(s).
type runFn func(run int) (map[string]any, error)

func (b *bench) measure(sc *Scenario, subj *Subject, run int, fn runFn) {
	if subj.Skipped != "" {
		return
	}
	res, err := fn(run)
	if errors.Is(err, errSkip) {
		subj.Skipped = "not available"
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchrun: %s / %s run %d: %v\n", sc.ID, subj.Name, run+1, err)
		subj.Failures = append(subj.Failures, err.Error())
		subj.Values = append(subj.Values, nan())
		subj.Runs = append(subj.Runs, nil)
		return
	}
	v, _ := res[sc.Metric].(float64)
	subj.Values = append(subj.Values, v)
	subj.Runs = append(subj.Runs, res)
	fmt.Printf("  %-24s %-26s run %d: %s\n", sc.ID, subj.Name, run+1, brief(sc, res))
}

func brief(sc *Scenario, r map[string]any) string {
	s := fmt.Sprintf("%s=%.0f", sc.Metric, num(r[sc.Metric]))
	if lat, ok := r["latency"].(map[string]any); ok {
		s += fmt.Sprintf(" p50=%.0fµs p99=%.0fµs max=%.0fµs", num(lat["p50_us"]), num(lat["p99_us"]), num(lat["max_us"]))
	}
	if v := num(r["target_rate"]); v > 0 {
		s += fmt.Sprintf(" target_rate=%.0f late_sends=%.0f/%.0f", v, num(r["late_sends"]), num(r["paced_sent"]))
		if a, sent := num(r["paced_answered"]), num(r["paced_sent"]); a < sent {
			s += fmt.Sprintf(" unanswered=%.0f", sent-a)
		}
	}
	for _, k := range []string{"errors", "connect_errors", "mismatches", "failed", "poll_answers", "empty_polls"} {
		if v := num(r[k]); v > 0 {
			s += fmt.Sprintf(" %s=%.0f", k, v)
		}
	}
	if v, ok := r["established"]; ok && sc.Metric != "established" {
		s += fmt.Sprintf(" established=%.0f alive=%.0f", num(v), num(r["alive_at_end"]))
	}
	if v := num(r["client_cpu_us_per_msg"]); v > 0 {
		s += fmt.Sprintf(" client_cpu=%.1fµs/msg target_cpu=%.1fµs/msg", v, num(r["target_cpu_us_per_msg"]))
	}
	if f, ok := r["first_error"].(string); ok && f != "" {
		if len(f) > 120 {
			f = f[:120]
		}
		s += " first_error=" + strconv.Quote(f)
	}
	return s
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func (b *bench) write(name string, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return
	}
	_ = os.WriteFile(filepath.Join(b.cfg.out, name), data, 0o644)
}

func sortedCopy(v []float64) []float64 {
	out := make([]float64, 0, len(v))
	for _, x := range v {
		if x == x { // drop NaN
			out = append(out, x)
		}
	}
	sort.Float64s(out)
	return out
}
