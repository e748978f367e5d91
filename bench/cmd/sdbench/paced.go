package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/socketdock/socketdock/bench/internal/benchkit"
	"github.com/socketdock/socketdock/bench/internal/wsclient"
)

// The open-loop paced mode of "echo" and "rawpath" (-rate): the schedule, the late
// sends and the latency from each message's due time are benchkit.Pacer's; here is only
// how each protocol sends a message and gets its reply.

// pacedFlags are the flags of the paced mode.
type pacedFlags struct {
	rate   float64
	window int
}

func (p *pacedFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&p.rate, "rate", 0, "open loop: total messages per second over all connections, each on its own staggered schedule, latency from the due time (0: closed loop)")
	fs.IntVar(&p.window, "window", 16, "paced mode: most messages in flight per connection; a message due while the window is full is sent late")
}

func (p *pacedFlags) check() error {
	if p.rate > 0 && p.window < 1 {
		return fmt.Errorf("-window must be at least 1")
	}
	return nil
}

// pacedStart leaves the goroutines a moment to start before the first message is due.
func pacedStart() time.Time { return time.Now().Add(200 * time.Millisecond) }

// waitWindow sleeps through the warm-up, reads the targets' CPU time, sleeps through the
// measured window and reads it again.
func waitWindow(ctx context.Context, p *benchkit.Pacer, pids []int) (cpu time.Duration) {
	from, until := p.Window()
	clock := ctxSleeper{ctx}
	clock.until(from)
	cpu0, _ := benchkit.SumCPU(pids)
	clock.until(until)
	cpu1, _ := benchkit.SumCPU(pids)
	return cpu1 - cpu0
}

type ctxSleeper struct{ ctx context.Context }

func (s ctxSleeper) until(t time.Time) {
	select {
	case <-time.After(time.Until(t)):
	case <-s.ctx.Done():
	}
}

var errConnDead = errors.New("connection failed")

type echoPacedOpts struct {
	pacedFlags
	size, frags        int
	binary             bool
	timeout, warm, dur time.Duration
	pids               []int
}

// echoPaced sends on every connection on its own schedule; a reader goroutine per
// connection takes the replies, which come in order, with their due times from a queue as
// long as the window.
func echoPaced(ctx context.Context, cl []*wsclient.Conn, res *EchoResult, o echoPacedOpts) error {
	if err := o.check(); err != nil {
		return err
	}
	p := benchkit.NewPacer(o.rate, len(cl), pacedStart(), o.warm, o.dur, nil)
	logf("echo: paced, %.0f msgs/s over %d connections (one every %s each), window %d",
		o.rate, len(cl), p.Interval(), o.window)
	op := wsclient.OpText
	if o.binary {
		op = wsclient.OpBinary
	}
	var (
		errs errTally
		mism atomic.Int64
		wg   sync.WaitGroup
	)
	for i, conn := range cl {
		due := make(chan benchkit.PacedMsg, o.window)
		var dead atomic.Bool
		fail := func(err error) {
			if dead.CompareAndSwap(false, true) {
				errs.add(err)
				_ = conn.Abort()
			}
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			in := make([]byte, 0, o.size+64)
			want := make([]byte, o.size)
			nc := conn.NetConn()
			for m := range due {
				if dead.Load() {
					continue
				}
				_ = nc.SetReadDeadline(time.Now().Add(o.timeout))
				gotOp, got, err := conn.ReadMessage(in)
				now := time.Now()
				if err != nil {
					fail(fmt.Errorf("read: %w", err))
					continue
				}
				in = got[:0]
				fillPayload(want, i, m.K, o.binary)
				if gotOp != op || !bytes.Equal(got, want) {
					mism.Add(1)
					fail(fmt.Errorf("reply mismatch on conn %d seq %d (op %d, %d bytes)", i, m.K, gotOp, len(got)))
					continue
				}
				p.Done(i, m, now)
			}
		}()
		go func() {
			defer wg.Done()
			defer close(due)
			out := make([]byte, o.size)
			nc := conn.NetConn()
			err := p.Run(ctx, i, func(m benchkit.PacedMsg) error {
				if dead.Load() {
					return errConnDead
				}
				// Blocks while the window is full: the message goes out late.
				select {
				case due <- m:
				case <-ctx.Done():
					return ctx.Err()
				}
				fillPayload(out, i, m.K, o.binary)
				_ = nc.SetWriteDeadline(time.Now().Add(o.timeout))
				if o.frags > 1 {
					return conn.WriteFragments(op, out, o.frags)
				}
				return conn.WriteMessage(op, out)
			})
			if err != nil && !errors.Is(err, errConnDead) && ctx.Err() == nil {
				fail(fmt.Errorf("write: %w", err))
			}
		}()
	}
	cpu := waitWindow(ctx, p, o.pids)
	wg.Wait()

	st := p.Stats(o.window)
	res.PacedStats = &st
	res.DurationS = o.dur.Seconds()
	res.Msgs = st.Answered
	res.MsgsPerSec = st.AchievedRate
	res.Latency = p.Latency()
	res.Errors = errs.n.Load()
	res.Mismatches = mism.Load()
	if errs.first != "" && res.FirstError == "" {
		res.FirstError = errs.first
	}
	if len(o.pids) > 0 && res.Msgs > 0 {
		res.TargetCPUS = cpu.Seconds()
		res.CPUPerMsgUS = float64(cpu.Microseconds()) / float64(res.Msgs)
	}
	logf("echo: paced %.0f/%.0f msgs/s  p50 %dµs p90 %dµs p99 %dµs max %dµs  late %d/%d  errors %d mismatches %d",
		st.AchievedRate, st.TargetRate, res.Latency.P50, res.Latency.P90, res.Latency.P99, res.Latency.Max,
		st.LateSends, st.Sent, res.Errors, res.Mismatches)
	return nil
}

// fillPayload writes message k of connection i: the text payload of the closed loop, or
// for binary messages bytes derived from (i, k) (mostly not UTF-8), so that the reader
// can rebuild what it expects.
func fillPayload(out []byte, i int, k int64, binary bool) {
	if !binary {
		wsclient.FormatPayload(out, i, uint64(k))
		return
	}
	x := (uint64(i)<<32 ^ uint64(k) ^ 0x9E3779B97F4A7C15) | 1
	for j := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[j] = byte(x)
	}
}

// rawPaced paces senders raw-path senders; each has window ids of its own (slots), and a
// message due while all of them are busy is sent late. Every message is one goroutine for
// its round trip, so the replies may come in any order.
func rawPaced(ctx context.Context, rc *rawClient, res *RawPathResult, pf pacedFlags, senders, size int, warm, dur time.Duration) {
	p := benchkit.NewPacer(pf.rate, senders, pacedStart(), warm, dur, nil)
	logf("rawpath(%s): paced, %.0f msgs/s over %d senders (one every %s each), window %d",
		rc.path, pf.rate, senders, p.Interval(), pf.window)
	type slotBufs struct{ out, body []byte }
	bufs := make([]slotBufs, senders*pf.window)
	var (
		errs             errTally
		mism             atomic.Int64
		sending, flights sync.WaitGroup
	)
	for i := 0; i < senders; i++ {
		free := make(chan int, pf.window)
		for s := 0; s < pf.window; s++ {
			free <- i*pf.window + s
		}
		sending.Add(1)
		go func() {
			defer sending.Done()
			_ = p.Run(ctx, i, func(m benchkit.PacedMsg) error {
				var slot int
				select {
				case slot = <-free:
				case <-ctx.Done():
					return ctx.Err()
				}
				flights.Add(1)
				go func() {
					defer flights.Done()
					req := fasthttp.AcquireRequest()
					resp := fasthttp.AcquireResponse()
					defer fasthttp.ReleaseRequest(req)
					defer fasthttp.ReleaseResponse(resp)
					b := &bufs[slot]
					if b.out == nil {
						b.out = make([]byte, size)
					}
					fillPayload(b.out, i, m.K, rc.binary)
					err := rc.roundTrip(slot, b.out, req, resp, &b.body)
					now := time.Now()
					var fatal errFatal
					switch {
					case errors.As(err, &fatal):
						// A late callback could still arrive in this slot's inbox: retire it.
						if errors.Is(err, errMismatch) {
							mism.Add(1)
							err = fmt.Errorf("echo mismatch on sender %d seq %d", i, m.K)
						}
						errs.add(err)
						return
					case err != nil:
						errs.add(err)
					default:
						p.Done(i, m, now)
					}
					free <- slot
				}()
				return nil
			})
		}()
	}
	waitWindow(ctx, p, nil)
	sending.Wait()
	flights.Wait()

	st := p.Stats(pf.window)
	res.PacedStats = &st
	res.DurationS = dur.Seconds()
	res.Msgs = st.Answered
	res.MsgsPerSec = st.AchievedRate
	res.Latency = p.Latency()
	res.Errors = errs.n.Load()
	res.Mismatches = mism.Load()
	res.FirstError = errs.first
	logf("rawpath(%s): paced %.0f/%.0f msgs/s  p50 %dµs p90 %dµs p99 %dµs max %dµs  late %d/%d  errors %d",
		rc.path, st.AchievedRate, st.TargetRate, res.Latency.P50, res.Latency.P90, res.Latency.P99, res.Latency.Max,
		st.LateSends, st.Sent, res.Errors)
}
