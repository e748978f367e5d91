package soak

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// relayProc is the relay under test: the built binary in a process of its own, so what the
// soak measures is the relay's memory, not the test's clients, backend and ledger.
type relayProc struct {
	cmd     *exec.Cmd
	public  string // host:port
	control string // host:port
	logPath string
	exited  chan struct{}
	waitErr error
}

// relayBinary is SOAK_RELAY_BIN (soak.mk passes the binary `make build` made), or a fresh
// build of ./cmd/socketdock.
func relayBinary(t *testing.T) string {
	if p := os.Getenv("SOAK_RELAY_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	bin := filepath.Join(t.TempDir(), "socketdock")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/socketdock")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startRelay runs bin with args (plus SOAK_RELAY_ARGS, space-separated) and waits until
// /readyz answers. Its log goes to a file that a failed test prints the end of.
func startRelay(t *testing.T, bin string, publicPort, controlPort int, args ...string) *relayProc {
	args = append([]string{"--bindport", strconv.Itoa(publicPort), "--control-bindport", strconv.Itoa(controlPort)}, args...)
	args = append(args, strings.Fields(os.Getenv("SOAK_RELAY_ARGS"))...)
	p := &relayProc{
		public:  "127.0.0.1:" + strconv.Itoa(publicPort),
		control: "127.0.0.1:" + strconv.Itoa(controlPort),
		logPath: filepath.Join(t.TempDir(), "relay.log"),
		exited:  make(chan struct{}),
	}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("relay: pid %d, %s %s", p.cmd.Process.Pid, bin, strings.Join(args, " "))
	go func() {
		p.waitErr = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("relay log (last lines):\n%s", p.logTail(60))
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + p.control + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("relay exited at start: %v\n%s", p.waitErr, p.logTail(20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not ready after 10 s\n%s", p.logTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *relayProc) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM and waits for the drain to finish.
func (p *relayProc) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			t.Errorf("relay exit after SIGTERM: %v", p.waitErr)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("relay still running 20 s after SIGTERM")
	}
}

// gc asks the relay twice for a heap profile with gc=1, which runs a garbage collection
// first (the relay runs with --pprof): twice, because what a sync.Pool holds survives one
// collection. It stands in for the collections the Go runtime forces every two minutes, so
// the live-heap figure after the load is current.
func (p *relayProc) gc() error {
	for range 2 {
		resp, err := http.Get("http://" + p.control + "/debug/pprof/heap?gc=1")
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("pprof heap: %s", resp.Status)
		}
	}
	return nil
}

// goroutines is the relay's goroutine profile, grouped by stack.
func (p *relayProc) goroutines() string {
	resp, err := http.Get("http://" + p.control + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sample is one reading of the relay process.
type sample struct {
	at    time.Duration // since the relay started
	phase string        // idle, load, drain, settle
	rss   int64         // VmRSS, bytes
	// From the relay's /metrics: the Go runtime and process collectors.
	heapLive     int64 // go_gc_heap_live_bytes: marked live by the last GC
	heapInuse    int64 // go_memstats_heap_inuse_bytes
	heapReleased int64 // go_memstats_heap_released_bytes
	heapSys      int64 // go_memstats_heap_sys_bytes
	nextGC       int64 // go_memstats_next_gc_bytes
	goSys        int64 // go_memstats_sys_bytes: all memory the runtime mapped
	goroutines   int64
	fds          int64
	conns        int64 // socketdock_connections_active
}

var sampleMetrics = map[string]func(*sample) *int64{
	"go_gc_heap_live_bytes":           func(s *sample) *int64 { return &s.heapLive },
	"go_memstats_heap_inuse_bytes":    func(s *sample) *int64 { return &s.heapInuse },
	"go_memstats_heap_released_bytes": func(s *sample) *int64 { return &s.heapReleased },
	"go_memstats_heap_sys_bytes":      func(s *sample) *int64 { return &s.heapSys },
	"go_memstats_next_gc_bytes":       func(s *sample) *int64 { return &s.nextGC },
	"go_memstats_sys_bytes":           func(s *sample) *int64 { return &s.goSys },
	"go_goroutines":                   func(s *sample) *int64 { return &s.goroutines },
	"process_open_fds":                func(s *sample) *int64 { return &s.fds },
	"socketdock_connections_active":   func(s *sample) *int64 { return &s.conns },
}

// read takes one sample: VmRSS from /proc, the rest from /metrics.
func (p *relayProc) read(start time.Time, phase string) (sample, error) {
	s := sample{at: time.Since(start), phase: phase}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			s.rss = kib << 10
		}
	}
	resp, err := http.Get("http://" + p.control + "/metrics")
	if err != nil {
		return s, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return s, err
	}
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if f := sampleMetrics[name]; ok && f != nil {
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return s, fmt.Errorf("%s: %v", name, err)
			}
			*f(&s) = int64(v)
			found++
		}
	}
	if found != len(sampleMetrics) {
		return s, fmt.Errorf("/metrics has %d of the %d series sampled", found, len(sampleMetrics))
	}
	return s, nil
}

const csvHeader = "seconds,phase,rss_kib,heap_live_kib,heap_inuse_kib,heap_released_kib,heap_sys_kib,next_gc_kib,go_sys_kib,goroutines,fds,connections"

func (s sample) csv() string {
	return fmt.Sprintf("%.1f,%s,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d", s.at.Seconds(), s.phase, s.rss>>10, s.heapLive>>10, s.heapInuse>>10,
		s.heapReleased>>10, s.heapSys>>10, s.nextGC>>10, s.goSys>>10, s.goroutines, s.fds, s.conns)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
