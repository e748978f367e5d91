package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/socketdock/socketdock/bench/internal/benchkit"
	"github.com/socketdock/socketdock/bench/internal/wsclient"
)

// HoldResult is the RESULT line of "sdbench hold".
type HoldResult struct {
	Mode        string  `json:"mode"`
	Transport   string  `json:"transport"`
	Target      string  `json:"target"`
	Conns       int     `json:"conns"`
	Procs       int     `json:"procs"`
	Established int     `json:"established"`
	Failed      int     `json:"failed"`
	AliveAtEnd  int     `json:"alive_at_end"`
	ConnectS    float64 `json:"connect_s"`
	HeldS       float64 `json:"held_s"`
	RSSBefore   int64   `json:"rss_before_bytes,omitempty"`
	RSSAfter    int64   `json:"rss_after_bytes,omitempty"`
	RSSPerConn  float64 `json:"rss_per_conn_bytes,omitempty"`
	// PollAnswers counts the poll answers received from connect to the end (-transport
	// poll): about Conns × held time / ttl when the polls are really held.
	PollAnswers int64  `json:"poll_answers"`
	FirstError  string `json:"first_error,omitempty"`
}

// holder keeps connections open; a reader goroutine per connection answers
// the server's pings so that a relay with idle timeouts keeps them.
type holder struct {
	established atomic.Int64
	alive       atomic.Int64
	answers     atomic.Int64 // poll answers received (-transport poll)
	errs        errTally
	mu          sync.Mutex
	conns       []interface{ Abort() error }
	poll        bool          // long-poll sessions (one held poll each) instead of WebSockets
	pollTTL     time.Duration // ttl of each held poll
	pollPrefix  string
}

func (h *holder) connect(ctx context.Context, c *common, n, offset, conc int) {
	if h.poll {
		h.connectPoll(ctx, c, n, offset, conc)
		return
	}
	benchkit.Bounded(ctx, n, conc, func(i int) {
		conn, err := wsclient.Dial(ctx, c.addr, wsclient.Options{
			LocalIP:        benchkit.SourceIP(c.srcBase, offset+i, c.perIP),
			ReadBufferSize: 256,
			Path:           c.path,
			Timeout:        c.timeout,
		})
		if err != nil {
			h.errs.add(err)
			return
		}
		h.established.Add(1)
		h.alive.Add(1)
		h.mu.Lock()
		h.conns = append(h.conns, conn)
		h.mu.Unlock()
		go func() {
			buf := make([]byte, 0, 128)
			for {
				_, m, err := conn.ReadMessage(buf)
				if err != nil {
					h.alive.Add(-1)
					return
				}
				buf = m[:0]
			}
		}()
	})
}

func (h *holder) abortAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		_ = c.Abort()
	}
	h.conns = nil
}

func runHold(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hold", flag.ContinueOnError)
	var c common
	c.register(fs)
	n := fs.Int("conns", 1000, "connections to hold in all")
	procs := fs.Int("procs", 0, "client processes (0 = enough for -per-proc connections each)")
	perProc := fs.Int("per-proc", 19000, "connections per client process at most (this machine allows 20,000 files per process)")
	pidList := fs.String("pid", "", "target pid(s): RSS is read before connecting and after settling")
	settle := fs.Duration("settle", 3*time.Second, "wait after the last connection before reading RSS")
	hold := fs.Duration("hold", 0, "keep the connections this long after settling, then count the survivors")
	conc := fs.Int("connect-concurrency", 256, "parallel dials per process")
	offset := fs.Int("index-offset", 0, "first connection index (chooses source addresses; set by the parent for children)")
	child := fs.Bool("child", false, "internal: run as a child of a multi-process hold")
	transport := fs.String("transport", "ws", "ws (WebSocket upgrades at -path) or poll (long-poll sessions at -poll-prefix, one held poll on its own keep-alive connection each)")
	pollTTL := fs.Duration("poll-ttl", 25*time.Second, "poll transport: ttl of each held poll (re-polled when it ends)")
	pollPrefix := fs.String("poll-prefix", "/poll", "poll transport: path prefix")
	maxTime := fs.Duration("max-time", 10*time.Minute, "hard bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(c.addr); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()
	if *transport != "ws" && *transport != "poll" {
		return fmt.Errorf("unknown -transport %q", *transport)
	}
	newHolder := func() *holder {
		return &holder{poll: *transport == "poll", pollTTL: *pollTTL, pollPrefix: *pollPrefix}
	}
	if *child {
		return holdChild(ctx, &c, newHolder(), *n, *offset, *conc)
	}
	pids, err := benchkit.ParsePIDs(*pidList)
	if err != nil {
		return err
	}
	if *procs <= 0 {
		*procs = (*n + *perProc - 1) / *perProc
	}
	res := HoldResult{Mode: "hold", Transport: *transport, Target: c.addr, Conns: *n, Procs: *procs}
	if len(pids) > 0 {
		if res.RSSBefore, err = benchkit.SumRSS(pids); err != nil {
			return err
		}
	}
	t0 := time.Now()
	var (
		aliveFn  func() (int, int64, error)
		finishFn func()
	)
	if *procs == 1 {
		h := newHolder()
		h.connect(ctx, &c, *n, *offset, *conc)
		res.Established = int(h.established.Load())
		res.FirstError = h.errs.first
		aliveFn = func() (int, int64, error) { return int(h.alive.Load()), h.answers.Load(), nil }
		finishFn = h.abortAll
	} else {
		extra := []string{"-transport", *transport, "-poll-ttl", pollTTL.String(), "-poll-prefix", *pollPrefix}
		kids, err := startChildren(ctx, &c, *n, *procs, *offset, *conc, *maxTime, extra)
		if err != nil {
			return err
		}
		defer kids.kill()
		est, firstErr := kids.waitEstablished()
		res.Established = est
		res.FirstError = firstErr
		aliveFn = kids.alive
		finishFn = kids.kill
	}
	res.ConnectS = time.Since(t0).Seconds()
	res.Failed = *n - res.Established
	logf("hold: %d/%d established in %.1fs (%d processes)", res.Established, *n, res.ConnectS, *procs)
	select {
	case <-time.After(*settle):
	case <-ctx.Done():
	}
	if len(pids) > 0 {
		if res.RSSAfter, err = benchkit.SumRSS(pids); err != nil {
			return err
		}
		if res.Established > 0 {
			res.RSSPerConn = float64(res.RSSAfter-res.RSSBefore) / float64(res.Established)
		}
		logf("hold: target RSS %d → %d bytes, %.0f bytes per connection",
			res.RSSBefore, res.RSSAfter, res.RSSPerConn)
	}
	th := time.Now()
	if *hold > 0 {
		select {
		case <-time.After(*hold):
		case <-ctx.Done():
		}
	}
	res.HeldS = time.Since(th).Seconds()
	alive, answers, err := aliveFn()
	if err != nil {
		logf("hold: counting survivors: %v", err)
	}
	res.AliveAtEnd, res.PollAnswers = alive, answers
	finishFn()
	logf("hold: %d alive at the end, %d poll answers", alive, answers)
	return benchkit.PrintResult(os.Stdout, res)
}

// holdChild connects, reports "ESTABLISHED n", waits for stdin to close,
// reports "ALIVE n" and exits (the kernel closes the sockets).
func holdChild(ctx context.Context, c *common, h *holder, n, offset, conc int) error {
	h.connect(ctx, c, n, offset, conc)
	fmt.Printf("ESTABLISHED %d %s\n", h.established.Load(), strings.ReplaceAll(h.errs.first, "\n", " "))
	done := make(chan struct{})
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	fmt.Printf("ALIVE %d %d\n", h.alive.Load(), h.answers.Load())
	return nil
}

type children struct {
	cmds   []*exec.Cmd
	stdins []interface{ Close() error }
	outs   []*bufio.Reader
	killed bool
}

func startChildren(ctx context.Context, c *common, n, procs, offset, conc int, maxTime time.Duration, extra []string) (*children, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	k := &children{}
	per := (n + procs - 1) / procs
	for p := 0; p < procs; p++ {
		cnt := min(per, n-p*per)
		if cnt <= 0 {
			break
		}
		cmd := exec.CommandContext(ctx, exe, "hold", "-child",
			"-addr", c.addr, "-path", c.path,
			"-src-first", strconv.Itoa(c.srcBase), "-per-ip", strconv.Itoa(c.perIP),
			"-timeout", c.timeout.String(),
			"-conns", strconv.Itoa(cnt), "-index-offset", strconv.Itoa(offset+p*per),
			"-connect-concurrency", strconv.Itoa(conc), "-max-time", maxTime.String())
		cmd.Args = append(cmd.Args, extra...)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		in, err := cmd.StdinPipe()
		if err != nil {
			k.kill()
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			k.kill()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			k.kill()
			return nil, err
		}
		k.cmds = append(k.cmds, cmd)
		k.stdins = append(k.stdins, in)
		k.outs = append(k.outs, bufio.NewReader(out))
	}
	return k, nil
}

func (k *children) readLine(i int, prefix string) (string, error) {
	for {
		line, err := k.outs[i].ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("child %d: %w", i, err)
		}
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			return strings.TrimSpace(rest), nil
		}
	}
}

func (k *children) waitEstablished() (int, string) {
	total, first := 0, ""
	for i := range k.cmds {
		line, err := k.readLine(i, "ESTABLISHED")
		if err != nil {
			if first == "" {
				first = err.Error()
			}
			continue
		}
		num, rest, _ := strings.Cut(line, " ")
		v, _ := strconv.Atoi(num)
		total += v
		if first == "" && rest != "" {
			first = rest
		}
	}
	return total, first
}

func (k *children) alive() (int, int64, error) {
	for _, in := range k.stdins {
		_ = in.Close()
	}
	total, answers := 0, int64(0)
	var firstErr error
	for i := range k.cmds {
		line, err := k.readLine(i, "ALIVE")
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		alive, ans, _ := strings.Cut(line, " ")
		v, _ := strconv.Atoi(alive)
		a, _ := strconv.ParseInt(ans, 10, 64)
		total += v
		answers += a
	}
	return total, answers, firstErr
}

func (k *children) kill() {
	if k.killed {
		return
	}
	k.killed = true
	for _, in := range k.stdins {
		_ = in.Close()
	}
	for _, cmd := range k.cmds {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}
	for _, cmd := range k.cmds {
		_ = cmd.Wait()
	}
}
