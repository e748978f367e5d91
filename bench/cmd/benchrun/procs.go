package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/socketdock/socketdock/bench/internal/benchkit"
)

// proc is a server the benchmark started; it is killed with its whole
// process group when the benchmark ends, however it ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// pids is the process and its descendants (Pushpin runs four children),
// read from /proc so that RSS and CPU cover all of them.
func (p *proc) pids() []int {
	root := p.cmd.Process.Pid
	out := []int{root}
	for i := 0; i < len(out); i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", out[i], out[i]))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if v, err := strconv.Atoi(f); err == nil {
				out = append(out, v)
			}
		}
	}
	return out
}

func (p *proc) pidList() string {
	var s []string
	for _, v := range p.pids() {
		s = append(s, strconv.Itoa(v))
	}
	return strings.Join(s, ",")
}

type supervisor struct {
	mu     sync.Mutex
	procs  []*proc
	logDir string
}

func (s *supervisor) start(name string, argv []string, ready []string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	logf, err := os.Create(filepath.Join(s.logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	for _, addr := range ready {
		if err := waitListening(addr, p, 15*time.Second); err != nil {
			s.stop(p)
			tail, _ := os.ReadFile(filepath.Join(s.logDir, name+".log"))
			return nil, fmt.Errorf("%s not listening on %s: %w\n%s", name, addr, err, lastLines(tail, 8))
		}
	}
	return p, nil
}

func lastLines(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func waitListening(addr string, p *proc, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("timeout after %s", d)
}

// stop sends SIGTERM to the group, then SIGKILL after 3 s.
func (s *supervisor) stop(p *proc) {
	if p == nil {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	s.mu.Lock()
	for i, q := range s.procs {
		if q == p {
			s.procs = append(s.procs[:i], s.procs[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
}

func (s *supervisor) stopAll() {
	s.mu.Lock()
	ps := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	for _, p := range ps {
		s.stop(p)
	}
}

// runTool runs a client command (sdbench) bounded by timeout and decodes its
// RESULT line into a generic map.
func (s *supervisor) runTool(ctx context.Context, name string, timeout time.Duration, argv []string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	logf, err := os.OpenFile(filepath.Join(s.logDir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "$ %s\n", strings.Join(argv, " "))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	runErr := cmd.Run()
	logf.Write(out.Bytes())
	var m map[string]any
	if err := benchkit.ParseResult(out.Bytes(), &m); err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("%s: %w", name, runErr)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return m, nil
}
