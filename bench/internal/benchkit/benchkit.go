// Package benchkit holds what the benchmark commands share: the RESULT line
// they end with, /proc readings, source-address spreading and latency
// summaries.
package benchkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// ResultPrefix starts the one machine-readable line every run prints last.
const ResultPrefix = "RESULT "

// PrintResult writes "RESULT {json}\n" to w.
func PrintResult(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", ResultPrefix, b)
	return err
}

// ParseResult finds the last RESULT line in out and decodes it into v.
func ParseResult(out []byte, v any) error {
	i := bytes.LastIndex(out, []byte(ResultPrefix))
	if i < 0 {
		return fmt.Errorf("no %q line in output", strings.TrimSpace(ResultPrefix))
	}
	line := out[i+len(ResultPrefix):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	return json.Unmarshal(line, v)
}

// RSSBytes reads VmRSS of pid from /proc.
func RSSBytes(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fs := strings.Fields(rest)
			if len(fs) < 1 {
				break
			}
			kb, err := strconv.ParseInt(fs[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// SumRSS adds VmRSS over pids; a pid that vanished is an error.
func SumRSS(pids []int) (int64, error) {
	var t int64
	for _, p := range pids {
		r, err := RSSBytes(p)
		if err != nil {
			return 0, err
		}
		t += r
	}
	return t, nil
}

// ParsePIDs parses "12,34,56".
func ParsePIDs(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("bad pid %q: %w", f, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// SourceIP returns 127.0.0.(first+i/perIP) style addresses: connection i
// gets source address base+i/perIP, walking 127.0.0.2 … 127.0.0.254,
// 127.0.1.1 … so that no address carries more than perIP connections.
func SourceIP(first, i, perIP int) net.IP {
	n := first + i/perIP // index of the address, 0 → 127.0.0.2
	// Skip .0, .1 and .255 in every /24.
	third := n / 253
	fourth := 2 + n%253
	if third > 0 {
		fourth = 1 + n%253
	}
	return net.IPv4(127, byte(third>>8), byte(third), byte(fourth))
}

// Latency is a concurrency-safe HdrHistogram of round trips in microseconds,
// sharded so that a thousand goroutines do not queue on one mutex.
type Latency struct {
	shards []latShard
}

type latShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	_  [40]byte
}

// NewLatency records 1 µs … 60 s with 3 significant figures.
func NewLatency(shards int) *Latency {
	l := &Latency{shards: make([]latShard, shards)}
	for i := range l.shards {
		l.shards[i].h = hdrhistogram.New(1, 60_000_000, 3)
	}
	return l
}

// Record adds one observation to shard k (any int; taken modulo).
func (l *Latency) Record(k int, d time.Duration) {
	s := &l.shards[k%len(l.shards)]
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	s.mu.Lock()
	_ = s.h.RecordValue(us)
	s.mu.Unlock()
}

// Summary is what the RESULT lines carry about latency, in microseconds.
type Summary struct {
	Count int64   `json:"count"`
	P50   int64   `json:"p50_us"`
	P90   int64   `json:"p90_us"`
	P99   int64   `json:"p99_us"`
	P999  int64   `json:"p999_us"`
	Max   int64   `json:"max_us"`
	Mean  float64 `json:"mean_us"`
}

// Summarize merges the shards.
func (l *Latency) Summarize() Summary {
	m := hdrhistogram.New(1, 60_000_000, 3)
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		m.Merge(s.h)
		s.mu.Unlock()
	}
	return Summary{
		Count: m.TotalCount(),
		P50:   m.ValueAtQuantile(50),
		P90:   m.ValueAtQuantile(90),
		P99:   m.ValueAtQuantile(99),
		P999:  m.ValueAtQuantile(99.9),
		Max:   m.Max(),
		Mean:  m.Mean(),
	}
}

// CPUTime reads utime+stime of pid (all threads) from /proc/<pid>/stat.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fs := strings.Fields(string(b[i+1:]))
	// fs[0] is field 3 (state); utime is field 14, stime 15.
	if len(fs) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(fs[11], 10, 64)
	st, err2 := strconv.ParseInt(fs[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat times", pid)
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// SumCPU adds CPUTime over pids.
func SumCPU(pids []int) (time.Duration, error) {
	var t time.Duration
	for _, p := range pids {
		c, err := CPUTime(p)
		if err != nil {
			return 0, err
		}
		t += c
	}
	return t, nil
}

// Bounded calls f(0) … f(n-1) on at most conc goroutines at once and returns when all have
// returned; it starts no more once ctx ends.
func Bounded(ctx context.Context, n, conc int, f func(i int)) {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}(i)
	}
	wg.Wait()
}

// MemInfo reads /proc/meminfo into bytes per field ("MemAvailable", "Slab", "SUnreclaim", …).
func MemInfo() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			continue
		}
		v, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fs) > 1 && fs[1] == "kB" {
			v *= 1024
		}
		m[name] = v
	}
	return m, nil
}

// SlabObjects reads /proc/slabinfo (root only) as bytes of live objects per cache (active
// objects × object size): what the kernel holds for live sockets, files and epoll entries,
// without the allocator's free space, which lags behind what was freed a moment ago.
func SlabObjects() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "slabinfo") || strings.HasPrefix(line, "#") {
			continue
		}
		hf := strings.Fields(line)
		if len(hf) < 4 {
			continue
		}
		active, err1 := strconv.ParseInt(hf[1], 10, 64)
		size, err2 := strconv.ParseInt(hf[3], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		m[hf[0]] += active * size
	}
	return m, nil
}

// TCPSockstat reads the TCP line of /proc/net/sockstat: sockets in use ("inuse"), in
// TIME_WAIT ("tw"), allocated ("alloc") and the pages their buffers hold ("mem", the figure
// net.ipv4.tcp_mem limits).
func TCPSockstat() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "TCP:")
		if !ok {
			continue
		}
		fs := strings.Fields(rest)
		m := map[string]int64{}
		for i := 0; i+1 < len(fs); i += 2 {
			if v, err := strconv.ParseInt(fs[i+1], 10, 64); err == nil {
				m[fs[i]] = v
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("no TCP line in /proc/net/sockstat")
}
