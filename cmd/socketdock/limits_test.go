package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Started with a soft open-file limit below the hard one, the relay raises it to the hard
// limit, logs the connection ceiling that leaves, and exposes it as a metric.
func TestRaisesFileLimitAndReportsCeiling(t *testing.T) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil || l.Max <= 1024 {
		t.Skipf("hard open-file limit %d: nothing to raise", l.Max)
	}
	port, controlPort := freePort(t), freePort(t)
	cmd := exec.Command("bash", "-c", "ulimit -Sn 1024 && exec \"$0\" --bindport "+strconv.Itoa(port)+" --control-bindport "+strconv.Itoa(controlPort), binary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var started map[string]any
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if json.Unmarshal(sc.Bytes(), &started) == nil && started["message"] == "socketdock listening" {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	if got := started["fd_limit"]; got != float64(l.Max) {
		t.Fatalf("fd_limit %v, want the hard limit %d (log %v)", got, l.Max, started)
	}
	ceiling, _ := started["connection_ceiling"].(float64)
	if ceiling <= 0 || ceiling >= float64(l.Max) {
		t.Fatalf("connection_ceiling %v", started["connection_ceiling"])
	}
	var body []byte
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(controlPort) + "/metrics")
		if err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(string(body), "socketdock_connection_ceiling "+strconv.Itoa(int(ceiling))) {
		t.Fatalf("/metrics lacks socketdock_connection_ceiling %v", ceiling)
	}
}
