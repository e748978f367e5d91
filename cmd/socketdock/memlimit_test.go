package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The limit in effect, as the Go collector reports it on /metrics.
func gomemlimit(t *testing.T, controlPort int) int64 {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(controlPort) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_gc_gomemlimit_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			if f >= 1<<63-1 {
				return 1<<63 - 1 // no limit (the float rounds up past MaxInt64)
			}
			return int64(f)
		}
	}
	t.Fatal("no go_gc_gomemlimit_bytes on /metrics")
	return 0
}

// --memory-limit and SOCKETDOCK_MEMORY_LIMIT set the runtime's soft limit; unset, GOMEMLIMIT
// applies as Go defines it; the flag wins over GOMEMLIMIT.
func TestMemoryLimitApplied(t *testing.T) {
	const none = 1<<63 - 1
	cases := []struct {
		name string
		env  []string
		args []string
		want int64
	}{
		{"default", nil, nil, none},
		{"flag", nil, []string{"--memory-limit", "64M"}, 64 << 20},
		{"env", []string{"SOCKETDOCK_MEMORY_LIMIT=96MiB"}, nil, 96 << 20},
		{"gomemlimit", []string{"GOMEMLIMIT=100MiB"}, nil, 100 << 20},
		{"flag-over-gomemlimit", []string{"GOMEMLIMIT=100MiB"}, []string{"--memory-limit", "48M"}, 48 << 20},
		{"off-over-gomemlimit", []string{"GOMEMLIMIT=100MiB"}, []string{"--memory-limit", "off"}, none},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port, control := freePort(t), freePort(t)
			startCLI(t, tc.env, port, append([]string{"--bindport", strconv.Itoa(port), "--control-bindport", strconv.Itoa(control)}, tc.args...)...)
			if got := gomemlimit(t, control); got != tc.want {
				t.Errorf("go_gc_gomemlimit_bytes %d, want %d", got, tc.want)
			}
		})
	}
}

func TestMemoryLimitPercentAndErrors(t *testing.T) {
	_, stderr, code := runCLI(t, nil, "--memory-limit", "10M")
	if code != 2 || !strings.Contains(stderr, "--memory-limit") {
		t.Errorf("--memory-limit 10M: exit %d, %q", code, stderr)
	}
	port, control := freePort(t), freePort(t)
	startCLI(t, nil, port, "--bindport", strconv.Itoa(port), "--control-bindport", strconv.Itoa(control), "--memory-limit", "50%")
	total, _ := availableMemory(os.ReadFile)
	if got := gomemlimit(t, control); got < total/2-1 || got > total/2+1 {
		t.Errorf("50%%: go_gc_gomemlimit_bytes %d, want half of %d", got, total)
	}
}

func fakeFS(files map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, errors.New("no such file")
	}
}

func TestAvailableMemory(t *testing.T) {
	meminfo := "MemTotal:       24684096 kB\nMemFree:        22321000 kB\n"
	cases := []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"no cgroup", map[string]string{"/proc/meminfo": meminfo}, 24684096 << 10},
		{"v2 container (own group is the root)", map[string]string{"/proc/self/cgroup": "0::/\n",
			"/sys/fs/cgroup/memory.max": "536870912\n", "/proc/meminfo": meminfo}, 512 << 20},
		{"v2 unlimited", map[string]string{"/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "max\n", "/proc/meminfo": meminfo}, 24684096 << 10},
		{"v2 service under a limited slice", map[string]string{"/proc/self/cgroup": "0::/relay.slice/socketdock.service\n",
			"/sys/fs/cgroup/relay.slice/socketdock.service/memory.max": "max\n",
			"/sys/fs/cgroup/relay.slice/memory.max":                    "1073741824\n", "/proc/meminfo": meminfo}, 1 << 30},
		{"v1 unlimited", map[string]string{"/proc/self/cgroup": "4:memory:/process_api/57cc\n0::/\n",
			"/sys/fs/cgroup/memory/process_api/57cc/memory.limit_in_bytes": "9223372036854771712\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes":                  "9223372036854771712\n", "/proc/meminfo": meminfo}, 24684096 << 10},
		{"v1 limited", map[string]string{"/proc/self/cgroup": "11:cpuacct,memory:/docker/abc\n",
			"/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "268435456\n", "/proc/meminfo": meminfo}, 256 << 20},
		{"nothing readable", map[string]string{}, 0},
	}
	for _, tc := range cases {
		if got, from := availableMemory(fakeFS(tc.files)); got != tc.want {
			t.Errorf("%s: %d (%s), want %d", tc.name, got, from, tc.want)
		}
	}
}
