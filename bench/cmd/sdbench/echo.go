package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketdock/socketdock/bench/internal/benchkit"
	"github.com/socketdock/socketdock/bench/internal/wsclient"
)

// EchoResult is the RESULT line of "sdbench echo".
type EchoResult struct {
	Mode          string           `json:"mode"`
	Target        string           `json:"target"`
	Conns         int              `json:"conns"`
	Connected     int              `json:"connected"`
	Size          int              `json:"size"`
	Binary        bool             `json:"binary"`
	DurationS     float64          `json:"duration_s"`
	Msgs          int64            `json:"msgs"`
	MsgsPerSec    float64          `json:"msgs_per_s"`
	Latency       benchkit.Summary `json:"latency"`
	ConnectErrors int64            `json:"connect_errors"`
	Errors        int64            `json:"errors"`
	Mismatches    int64            `json:"mismatches"`
	FirstError    string           `json:"first_error,omitempty"`
	TargetCPUS    float64          `json:"target_cpu_s,omitempty"`
	CPUPerMsgUS   float64          `json:"target_cpu_us_per_msg,omitempty"`
	// Set in paced mode (-rate): target and achieved rate, late sends.
	*benchkit.PacedStats
}

type errTally struct {
	n     atomic.Int64
	once  sync.Once
	first string
}

func (e *errTally) add(err error) {
	e.n.Add(1)
	e.once.Do(func() { e.first = err.Error() })
}

func runEcho(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	var c common
	c.register(fs)
	conns := fs.Int("conns", 1000, "connections")
	size := fs.Int("size", 64, "message size in bytes")
	dur := fs.Duration("duration", 10*time.Second, "measured duration (after warm-up)")
	warm := fs.Duration("warmup", 2*time.Second, "warm-up before measuring")
	binary := fs.Bool("binary", false, "binary frames with random (mostly non-UTF-8) bytes instead of ASCII text")
	frags := fs.Int("fragments", 1, "send every message as this many frames")
	conc := fs.Int("connect-concurrency", 128, "parallel dials while connecting")
	pidList := fs.String("pid", "", "target pid(s) whose CPU time is reported per message")
	var pf pacedFlags
	pf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(c.addr); err != nil {
		return err
	}
	pids, err := benchkit.ParsePIDs(*pidList)
	if err != nil {
		return err
	}
	res := EchoResult{Mode: "echo", Target: c.addr, Conns: *conns, Size: *size, Binary: *binary}

	cl, connErrs := dialAll(ctx, &c, *conns, *conc, 4096)
	res.Connected = len(cl)
	res.ConnectErrors = connErrs.n.Load()
	if connErrs.first != "" {
		res.FirstError = connErrs.first
	}
	logf("echo: %d/%d connected to %s", len(cl), *conns, c.addr)
	if len(cl) == 0 {
		benchkit.PrintResult(os.Stdout, res)
		return fmt.Errorf("no connection: %s", connErrs.first)
	}
	if pf.rate > 0 {
		err := echoPaced(ctx, cl, &res, echoPacedOpts{pacedFlags: pf, size: *size, binary: *binary,
			frags: *frags, timeout: c.timeout, warm: *warm, dur: *dur, pids: pids})
		closeAll(cl)
		if err != nil {
			return err
		}
		return benchkit.PrintResult(os.Stdout, res)
	}

	lat := benchkit.NewLatency(64)
	var (
		recording atomic.Bool
		stopping  atomic.Bool
		msgs      atomic.Int64
		errs      errTally
		mism      atomic.Int64
		wg        sync.WaitGroup
	)
	op := wsclient.OpText
	if *binary {
		op = wsclient.OpBinary
	}
	for i, conn := range cl {
		wg.Add(1)
		go func(i int, conn *wsclient.Conn) {
			defer wg.Done()
			out := make([]byte, *size)
			in := make([]byte, 0, *size+64)
			nc := conn.NetConn()
			for seq := uint64(0); !stopping.Load() && ctx.Err() == nil; seq++ {
				if *binary {
					rand.Read(out)
					// Keep the first bytes distinct per message.
					out[0], out[len(out)-1] = byte(seq), byte(i)
				} else {
					wsclient.FormatPayload(out, i, seq)
				}
				_ = nc.SetDeadline(time.Now().Add(c.timeout))
				t0 := time.Now()
				var err error
				if *frags > 1 {
					err = conn.WriteFragments(op, out, *frags)
				} else {
					err = conn.WriteMessage(op, out)
				}
				if err != nil {
					errs.add(fmt.Errorf("write: %w", err))
					return
				}
				gotOp, got, err := conn.ReadMessage(in)
				if err != nil {
					errs.add(fmt.Errorf("read: %w", err))
					return
				}
				d := time.Since(t0)
				in = got[:0]
				if gotOp != op || !bytes.Equal(got, out) {
					mism.Add(1)
					errs.add(fmt.Errorf("reply mismatch on conn %d seq %d (op %d, %d bytes)", i, seq, gotOp, len(got)))
					return
				}
				if recording.Load() && !stopping.Load() {
					msgs.Add(1)
					lat.Record(i, d)
				}
			}
		}(i, conn)
	}
	select {
	case <-time.After(*warm):
	case <-ctx.Done():
	}
	cpu0, _ := benchkit.SumCPU(pids)
	recording.Store(true)
	t0 := time.Now()
	select {
	case <-time.After(*dur):
	case <-ctx.Done():
	}
	stopping.Store(true)
	elapsed := time.Since(t0)
	cpu1, _ := benchkit.SumCPU(pids)
	wg.Wait()
	closeAll(cl)

	res.DurationS = elapsed.Seconds()
	res.Msgs = msgs.Load()
	res.MsgsPerSec = float64(res.Msgs) / elapsed.Seconds()
	res.Latency = lat.Summarize()
	res.Errors = errs.n.Load()
	res.Mismatches = mism.Load()
	if errs.first != "" && res.FirstError == "" {
		res.FirstError = errs.first
	}
	if len(pids) > 0 && res.Msgs > 0 {
		res.TargetCPUS = (cpu1 - cpu0).Seconds()
		res.CPUPerMsgUS = float64((cpu1 - cpu0).Microseconds()) / float64(res.Msgs)
	}
	logf("echo: %.0f msgs/s  p50 %dµs p90 %dµs p99 %dµs max %dµs  errors %d mismatches %d",
		res.MsgsPerSec, res.Latency.P50, res.Latency.P90, res.Latency.P99, res.Latency.Max, res.Errors, res.Mismatches)
	return benchkit.PrintResult(os.Stdout, res)
}

// dialAll opens n connections with at most conc dials in flight.
func dialAll(ctx context.Context, c *common, n, conc, rbuf int) ([]*wsclient.Conn, *errTally) {
	var (
		mu   sync.Mutex
		out  = make([]*wsclient.Conn, 0, n)
		errs = &errTally{}
		sem  = make(chan struct{}, conc)
		wg   sync.WaitGroup
	)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			conn, err := wsclient.Dial(ctx, c.addr, wsclient.Options{
				LocalIP:        benchkit.SourceIP(c.srcBase, i, c.perIP),
				ReadBufferSize: rbuf,
				Path:           c.path,
				Timeout:        c.timeout,
			})
			if err != nil {
				errs.add(err)
				return
			}
			mu.Lock()
			out = append(out, conn)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	return out, errs
}

// closeAll runs closing handshakes in parallel, bounded.
func closeAll(cl []*wsclient.Conn) {
	benchkit.Bounded(context.Background(), len(cl), 256, func(i int) { _ = cl[i].Close(2 * time.Second) })
}
