package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime/debug"
	"sort"
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
	PollAnswers int64 `json:"poll_answers"`
	// Client is "lean" (one epoll loop per process) or "goroutine" (a reader each).
	Client string `json:"client"`
	// Pongs counts the pings the lean client answered from connect to the end.
	Pongs int64 `json:"pongs"`
	// ClientRSS sums the client processes' RSS after settling.
	ClientRSS        int64   `json:"client_rss_bytes,omitempty"`
	ClientRSSPerConn float64 `json:"client_rss_per_conn_bytes,omitempty"`
	// Kernel memory from /proc/meminfo, before connecting and after settling: both ends
	// of every loopback connection are sockets of this machine.
	SlabBefore        int64   `json:"slab_before_bytes,omitempty"`
	SlabAfter         int64   `json:"slab_after_bytes,omitempty"`
	SlabPerConn       float64 `json:"slab_per_conn_bytes,omitempty"`
	SUnreclaimPerConn float64 `json:"sunreclaim_per_conn_bytes,omitempty"`
	// MemUsedPerConn is the drop of MemAvailable per connection: kernel, target and client.
	MemUsedPerConn float64 `json:"mem_used_per_conn_bytes,omitempty"`
	// TCPInUse and TCPMemPages are /proc/net/sockstat's TCP "inuse" and "mem" (pages of
	// socket buffers, what net.ipv4.tcp_mem bounds) after settling.
	TCPInUse    int64 `json:"tcp_inuse,omitempty"`
	TCPMemPages int64 `json:"tcp_mem_pages,omitempty"`
	// SlabTop is the growth per connection of the slab caches whose live objects grew most
	// (/proc/slabinfo: active objects × object size).
	SlabTop map[string]float64 `json:"slab_top_per_conn_bytes,omitempty"`
	// CPU over the hold window (after settling), in % of one core: the target processes
	// (-pid) and the client processes (this one and its children).
	CPUWindowS   float64 `json:"cpu_window_s,omitempty"`
	TargetCPUPct float64 `json:"target_cpu_pct"`
	// TargetCPUSlices is the target's CPU in each -cpu-slice of the window.
	TargetCPUSlices []float64 `json:"target_cpu_slices_pct,omitempty"`
	ClientCPUPct    float64   `json:"client_cpu_pct"`
	// LowMemory says the run stopped connecting (or was ended) because MemAvailable fell
	// below the floor; Established is then the count reached.
	LowMemory  bool   `json:"low_memory,omitempty"`
	FirstError string `json:"first_error,omitempty"`
}

// holder keeps connections open and answers the server's pings so that a relay with idle
// timeouts keeps them: one epoll loop for all of them (lean) or a reader goroutine each.
type holder struct {
	idler       *wsclient.Idler // lean client; nil for a reader goroutine per connection
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
		if h.idler != nil {
			fd, pending, err := conn.Detach()
			if err == nil {
				err = h.idler.Add(fd, pending)
			}
			if err != nil {
				h.errs.add(err)
			}
			h.idler.Poll()
			return
		}
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

func (h *holder) aliveCount() int {
	if h.idler != nil {
		return int(h.idler.Alive())
	}
	return int(h.alive.Load())
}

func (h *holder) pongs() int64 {
	if h.idler != nil {
		return h.idler.Pongs()
	}
	return 0
}

// startIdler starts the lean client's loop (ws transport); it runs until the process ends.
func (h *holder) startIdler() error {
	d, err := wsclient.NewIdler()
	if err != nil {
		return err
	}
	h.idler = d
	go d.Run(make(chan struct{}))
	return nil
}

func (h *holder) abortAll() {
	if h.idler != nil {
		h.idler.CloseAll()
	}
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
	pidList := fs.String("pid", "", "target pid(s): RSS is read before connecting and after settling, CPU over the hold")
	settle := fs.Duration("settle", 3*time.Second, "wait after the last connection before reading RSS")
	hold := fs.Duration("hold", 0, "keep the connections this long after settling (CPU is measured over it), then count the survivors")
	conc := fs.Int("connect-concurrency", 256, "parallel dials per process")
	offset := fs.Int("index-offset", 0, "first connection index (chooses source addresses; set by the parent for children)")
	child := fs.Bool("child", false, "internal: run as a child of a multi-process hold")
	transport := fs.String("transport", "ws", "ws (WebSocket upgrades at -path) or poll (long-poll sessions at -poll-prefix, one held poll on its own keep-alive connection each)")
	client := fs.String("client", "lean", "ws transport: lean (one epoll loop per process answers every connection's pings) or goroutine (a reader goroutine per connection)")
	pollTTL := fs.Duration("poll-ttl", 25*time.Second, "poll transport: ttl of each held poll (re-polled when it ends)")
	pollPrefix := fs.String("poll-prefix", "/poll", "poll transport: path prefix")
	maxTime := fs.Duration("max-time", 10*time.Minute, "hard bound on the whole run")
	stopBelow := fs.Int64("stop-connecting-below", 3<<30, "MemAvailable (bytes) under which no more connections are opened; those open are held")
	quiesce := fs.Duration("quiesce", 0, "before the first memory reading, wait (at most this long) until MemAvailable is steady: a previous run's sockets are still being freed")
	cpuSlice := fs.Duration("cpu-slice", 20*time.Second, "the hold window's CPU is also reported per slice of this length")
	killBelow := fs.Int64("kill-below", 2<<30, "MemAvailable (bytes) under which every client process ends at once")
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
	if *client != "lean" && *client != "goroutine" {
		return fmt.Errorf("unknown -client %q", *client)
	}
	lean := *transport == "ws" && *client == "lean"
	newHolder := func() (*holder, error) {
		h := &holder{poll: *transport == "poll", pollTTL: *pollTTL, pollPrefix: *pollPrefix}
		if lean {
			if err := h.startIdler(); err != nil {
				return nil, err
			}
		}
		return h, nil
	}
	if *child {
		h, err := newHolder()
		if err != nil {
			return err
		}
		return holdChild(ctx, &c, h, *n, *offset, *conc, *stopBelow)
	}
	pids, err := benchkit.ParsePIDs(*pidList)
	if err != nil {
		return err
	}
	if *procs <= 0 {
		*procs = (*n + *perProc - 1) / *perProc
	}
	res := HoldResult{Mode: "hold", Transport: *transport, Target: c.addr, Conns: *n, Procs: *procs, Client: *client}
	if *transport == "poll" {
		res.Client = "goroutine"
	}
	if len(pids) > 0 {
		if res.RSSBefore, err = benchkit.SumRSS(pids); err != nil {
			return err
		}
	}
	if *quiesce > 0 {
		waitQuiet(ctx, *quiesce)
	}
	memBefore, _ := benchkit.MemInfo()
	slabBefore, _ := benchkit.SlabObjects()
	// The floor: below killBelow every client ends (the kernel frees their sockets).
	var lowMemory atomic.Bool
	guardCtx, guardStop := context.WithCancel(ctx)
	defer guardStop()
	runCtx, runCancel := context.WithCancel(ctx)
	defer runCancel()
	go func() {
		for {
			select {
			case <-guardCtx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			if m, err := benchkit.MemInfo(); err == nil && m["MemAvailable"] < *killBelow {
				logf("hold: MemAvailable %d MiB < %d MiB: ending every client", m["MemAvailable"]>>20, *killBelow>>20)
				lowMemory.Store(true)
				runCancel()
				return
			}
		}
	}()
	t0 := time.Now()
	var (
		aliveFn    func() (int, int64, int64, error)
		finishFn   func()
		clientPIDs = []int{os.Getpid()}
	)
	if *procs == 1 {
		h, err := newHolder()
		if err != nil {
			return err
		}
		connectCtx, stopConnecting := context.WithCancel(runCtx)
		go stopWhenLow(connectCtx, stopConnecting, *stopBelow)
		h.connect(connectCtx, &c, *n, *offset, *conc)
		stopConnecting()
		if h.idler != nil {
			debug.FreeOSMemory()
		}
		res.Established = int(h.established.Load())
		res.FirstError = h.errs.first
		aliveFn = func() (int, int64, int64, error) { return h.aliveCount(), h.answers.Load(), h.pongs(), nil }
		finishFn = h.abortAll
	} else {
		extra := []string{"-transport", *transport, "-client", *client, "-poll-ttl", pollTTL.String(), "-poll-prefix", *pollPrefix,
			"-stop-connecting-below", strconv.FormatInt(*stopBelow, 10)}
		kids, err := startChildren(runCtx, &c, *n, *procs, *offset, *conc, *maxTime, extra)
		if err != nil {
			return err
		}
		defer kids.kill()
		for _, cmd := range kids.cmds {
			clientPIDs = append(clientPIDs, cmd.Process.Pid)
		}
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
	case <-runCtx.Done():
	}
	perConn := func(after, before int64) float64 {
		if res.Established == 0 {
			return 0
		}
		return float64(after-before) / float64(res.Established)
	}
	if len(pids) > 0 {
		if res.RSSAfter, err = benchkit.SumRSS(pids); err != nil {
			return err
		}
		res.RSSPerConn = perConn(res.RSSAfter, res.RSSBefore)
		logf("hold: target RSS %d → %d bytes, %.0f bytes per connection",
			res.RSSBefore, res.RSSAfter, res.RSSPerConn)
	}
	if rss, err := benchkit.SumRSS(clientPIDs); err == nil {
		res.ClientRSS = rss
		res.ClientRSSPerConn = perConn(rss, 0)
	}
	if memAfter, err := benchkit.MemInfo(); err == nil && memBefore != nil {
		res.SlabBefore, res.SlabAfter = memBefore["Slab"], memAfter["Slab"]
		res.SlabPerConn = perConn(res.SlabAfter, res.SlabBefore)
		res.SUnreclaimPerConn = perConn(memAfter["SUnreclaim"], memBefore["SUnreclaim"])
		res.MemUsedPerConn = perConn(memBefore["MemAvailable"], memAfter["MemAvailable"])
	}
	if ss, err := benchkit.TCPSockstat(); err == nil {
		res.TCPInUse, res.TCPMemPages = ss["inuse"], ss["mem"]
	}
	if slabAfter, err := benchkit.SlabObjects(); err == nil && slabBefore != nil && res.Established > 0 {
		res.SlabTop = topGrowth(slabBefore, slabAfter, 8, res.Established)
	}
	logf("hold: client RSS %.0f B/conn; kernel slab %.0f B/conn (unreclaimable %.0f); MemAvailable fell %.0f B/conn; slab objects %v; TCP sockets %d, buffer pages %d",
		res.ClientRSSPerConn, res.SlabPerConn, res.SUnreclaimPerConn, res.MemUsedPerConn, res.SlabTop, res.TCPInUse, res.TCPMemPages)
	th := time.Now()
	cpu0, cpuErr := benchkit.SumCPU(pids)
	ccpu0, ccpuErr := benchkit.SumCPU(clientPIDs)
	// The window in slices of -cpu-slice: the spread of the slices shows how steady the figure is.
	prevT, prevCPU := th, cpu0
	for end := th.Add(*hold); time.Now().Before(end) && runCtx.Err() == nil; {
		select {
		case <-time.After(min(*cpuSlice, time.Until(end))):
		case <-runCtx.Done():
		}
		now := time.Now()
		if c, err := benchkit.SumCPU(pids); err == nil && cpuErr == nil && len(pids) > 0 {
			res.TargetCPUSlices = append(res.TargetCPUSlices, math.Round(1000*(c-prevCPU).Seconds()/now.Sub(prevT).Seconds())/10)
			prevCPU = c
		}
		prevT = now
	}
	res.HeldS = time.Since(th).Seconds()
	cpu1, err1 := benchkit.SumCPU(pids)
	ccpu1, err2 := benchkit.SumCPU(clientPIDs)
	if res.HeldS > 0 && cpuErr == nil && ccpuErr == nil && err1 == nil && err2 == nil {
		res.CPUWindowS = res.HeldS
		res.TargetCPUPct = 100 * (cpu1 - cpu0).Seconds() / res.HeldS
		res.ClientCPUPct = 100 * (ccpu1 - ccpu0).Seconds() / res.HeldS
		logf("hold: CPU over %.0fs of holding: target %.1f%% of a core (slices %v), clients %.1f%%", res.HeldS, res.TargetCPUPct, res.TargetCPUSlices, res.ClientCPUPct)
	}
	alive, answers, pongs, err := aliveFn()
	if err != nil {
		logf("hold: counting survivors: %v", err)
	}
	res.AliveAtEnd, res.PollAnswers, res.Pongs = alive, answers, pongs
	guardStop()
	res.LowMemory = lowMemory.Load()
	finishFn()
	logf("hold: %d alive at the end, %d poll answers, %d pongs", alive, answers, pongs)
	return benchkit.PrintResult(os.Stdout, res)
}

// topGrowth is the k slab caches that grew most, in bytes per connection.
func topGrowth(before, after map[string]int64, k, conns int) map[string]float64 {
	type g struct {
		name string
		d    int64
	}
	var gs []g
	for name, v := range after {
		if d := v - before[name]; d > 0 {
			gs = append(gs, g{name, d})
		}
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].d > gs[j].d })
	out := map[string]float64{}
	for i := 0; i < len(gs) && i < k; i++ {
		out[gs[i].name] = math.Round(float64(gs[i].d) / float64(conns))
	}
	return out
}

// waitQuiet waits until MemAvailable moves less than 16 MiB and the count of TCP sockets
// less than 500 over 2 s (a previous run's sockets freed), or max has passed.
func waitQuiet(ctx context.Context, max time.Duration) {
	end := time.Now().Add(max)
	prev, _ := benchkit.MemInfo()
	prevSS, _ := benchkit.TCPSockstat()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		cur, err1 := benchkit.MemInfo()
		curSS, err2 := benchkit.TCPSockstat()
		if err1 != nil || err2 != nil || prev == nil || prevSS == nil {
			return
		}
		d := cur["MemAvailable"] - prev["MemAvailable"]
		ds := curSS["alloc"] - prevSS["alloc"]
		if d < 16<<20 && d > -16<<20 && ds < 500 && ds > -500 {
			return
		}
		logf("hold: still settling from before (MemAvailable %+d MiB, TCP sockets %+d in 2 s), waiting", d>>20, ds)
		prev, prevSS = cur, curSS
	}
}

// stopWhenLow cancels (stops the connecting) once MemAvailable falls below floor.
func stopWhenLow(ctx context.Context, cancel context.CancelFunc, floor int64) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		if m, err := benchkit.MemInfo(); err == nil && m["MemAvailable"] < floor {
			logf("hold: MemAvailable %d MiB < %d MiB: no more connections", m["MemAvailable"]>>20, floor>>20)
			cancel()
			return
		}
	}
}

// holdChild connects, reports "ESTABLISHED n", waits for stdin to close,
// reports "ALIVE n answers pongs" and exits (the kernel closes the sockets).
func holdChild(ctx context.Context, c *common, h *holder, n, offset, conc int, stopBelow int64) error {
	connectCtx, stopConnecting := context.WithCancel(ctx)
	go stopWhenLow(connectCtx, stopConnecting, stopBelow)
	h.connect(connectCtx, c, n, offset, conc)
	stopConnecting()
	if h.idler != nil {
		// The dials' garbage (buffers, goroutine stacks) goes back to the kernel: what stays
		// is what holding costs.
		debug.FreeOSMemory()
	}
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
	fmt.Printf("ALIVE %d %d %d\n", h.aliveCount(), h.answers.Load(), h.pongs())
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

func (k *children) alive() (int, int64, int64, error) {
	for _, in := range k.stdins {
		_ = in.Close()
	}
	total, answers, pongs := 0, int64(0), int64(0)
	var firstErr error
	for i := range k.cmds {
		line, err := k.readLine(i, "ALIVE")
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		fs := strings.Fields(line)
		for len(fs) < 3 {
			fs = append(fs, "0")
		}
		v, _ := strconv.Atoi(fs[0])
		a, _ := strconv.ParseInt(fs[1], 10, 64)
		p, _ := strconv.ParseInt(fs[2], 10, 64)
		total += v
		answers += a
		pongs += p
	}
	return total, answers, pongs, firstErr
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
