package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/socketdock/socketdock/bench/internal/benchkit"
	"github.com/socketdock/socketdock/bench/internal/pollclient"
	"github.com/socketdock/socketdock/bench/internal/wsclient"
)

// PollEchoResult is the RESULT line of "sdbench pollecho".
type PollEchoResult struct {
	EchoResult
	Polls      int64   `json:"polls"`       // poll requests answered while recording
	EmptyPolls int64   `json:"empty_polls"` // of which carried no message
	Transport  string  `json:"transport"`
	PollsPerS  float64 `json:"polls_per_s"`
	Client     string  `json:"client"`
	// ClientCPUUSPerMsg is this process's own CPU (user+system) per message while recording.
	ClientCPUUSPerMsg float64 `json:"client_cpu_us_per_msg"`
}

// pollSession is one session's client: the minimal one (its own keep-alive connection) or
// net/http's (a shared Transport).
type pollSession interface {
	SendText(data []byte) error
	Poll(ttl time.Duration, ack int64, into []pollclient.Message) ([]pollclient.Message, error)
	Abort()
}

type rawSession struct {
	c       *pollclient.Conn
	id      string
	timeout time.Duration
}

func (s *rawSession) SendText(data []byte) error {
	_ = s.c.NetConn().SetDeadline(time.Now().Add(s.timeout))
	return s.c.SendText(s.id, data)
}

func (s *rawSession) Poll(ttl time.Duration, ack int64, into []pollclient.Message) ([]pollclient.Message, error) {
	_ = s.c.NetConn().SetDeadline(time.Now().Add(s.timeout + ttl))
	return s.c.Poll(s.id, ttl, ack, into)
}

func (s *rawSession) Abort() { _ = s.c.Abort() }

type netHTTPSession struct {
	h       *pollclient.HTTPClient
	id      string
	timeout time.Duration
}

func (s *netHTTPSession) SendText(data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return s.h.SendText(ctx, s.id, data)
}

func (s *netHTTPSession) Poll(ttl time.Duration, ack int64, into []pollclient.Message) ([]pollclient.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout+ttl)
	defer cancel()
	return s.h.Poll(ctx, s.id, ttl, ack, into)
}

func (s *netHTTPSession) Abort() { s.h.Close() }

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runPollEcho: every session, on its own keep-alive connection, sends one text message,
// then polls (with ack) until the echo arrives, and repeats. Every echoed byte is checked,
// and its seq must be the next one.
func runPollEcho(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pollecho", flag.ContinueOnError)
	addrF := fs.String("addr", "127.0.0.1:8765", "target host:port (loopback only)")
	prefix := fs.String("prefix", "/poll", "long-poll path prefix")
	srcBase := fs.Int("src-first", 0, "index of the first source address (0 = 127.0.0.2)")
	perIP := fs.Int("per-ip", 20000, "connections per source address before moving to the next")
	timeout := fs.Duration("timeout", 10*time.Second, "connect timeout, and per-round-trip timeout")
	conns := fs.Int("conns", 1000, "sessions (one keep-alive connection each)")
	size := fs.Int("size", 64, "message size in bytes (ASCII text)")
	dur := fs.Duration("duration", 10*time.Second, "measured duration (after warm-up)")
	warm := fs.Duration("warmup", 2*time.Second, "warm-up before measuring")
	ttl := fs.Duration("ttl", 5*time.Second, "ttl of each poll")
	conc := fs.Int("connect-concurrency", 128, "parallel dials while connecting")
	pidList := fs.String("pid", "", "target pid(s) whose CPU time is reported per message")
	client := fs.String("client", "raw", "raw (minimal HTTP/1.1 client, one keep-alive connection per session, source addresses 127.0.0.2..) or nethttp (net/http, shared Transport, source 127.0.0.1)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*addrF); err != nil {
		return err
	}
	pids, err := benchkit.ParsePIDs(*pidList)
	if err != nil {
		return err
	}
	if *client != "raw" && *client != "nethttp" {
		return fmt.Errorf("unknown -client %q", *client)
	}
	res := PollEchoResult{EchoResult: EchoResult{Mode: "pollecho", Target: *addrF, Conns: *conns, Size: *size}, Transport: "poll", Client: *client}
	var hc *pollclient.HTTPClient
	if *client == "nethttp" {
		hc = pollclient.NewHTTPClient(*addrF, *prefix, *conns, *timeout)
	}

	var (
		mu       sync.Mutex
		cl       []pollSession
		connErrs errTally
		sem      = make(chan struct{}, *conc)
		cwg      sync.WaitGroup
	)
	for i := 0; i < *conns && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		cwg.Add(1)
		go func(i int) {
			defer func() { <-sem; cwg.Done() }()
			if hc != nil {
				ctx, cancel := context.WithTimeout(ctx, *timeout)
				defer cancel()
				id, err := hc.Create(ctx)
				if err != nil {
					connErrs.add(err)
					return
				}
				mu.Lock()
				cl = append(cl, &netHTTPSession{hc, id, *timeout})
				mu.Unlock()
				return
			}
			c, err := pollclient.Dial(ctx, *addrF, pollclient.Options{LocalIP: benchkit.SourceIP(*srcBase, i, *perIP), Timeout: *timeout, Prefix: *prefix})
			if err != nil {
				connErrs.add(err)
				return
			}
			_ = c.NetConn().SetDeadline(time.Now().Add(*timeout))
			id, err := c.Create()
			if err != nil {
				c.Abort()
				connErrs.add(err)
				return
			}
			mu.Lock()
			cl = append(cl, &rawSession{c, id, *timeout})
			mu.Unlock()
		}(i)
	}
	cwg.Wait()
	res.Connected = len(cl)
	res.ConnectErrors = connErrs.n.Load()
	res.FirstError = connErrs.first
	logf("pollecho: %d/%d sessions created on %s", len(cl), *conns, *addrF)
	if len(cl) == 0 {
		_ = benchkit.PrintResult(os.Stdout, res)
		return fmt.Errorf("no session: %s", connErrs.first)
	}

	lat := benchkit.NewLatency(64)
	var (
		recording, stopping atomic.Bool
		msgs, polls, empty  atomic.Int64
		errs                errTally
		mism                atomic.Int64
		wg                  sync.WaitGroup
	)
	for i, s := range cl {
		wg.Add(1)
		go func(i int, s pollSession) {
			defer wg.Done()
			out := make([]byte, *size)
			var batch []pollclient.Message
			ack := int64(0)
			for seq := uint64(0); !stopping.Load() && ctx.Err() == nil; seq++ {
				wsclient.FormatPayload(out, i, seq)
				t0 := time.Now()
				if err := s.SendText(out); err != nil {
					errs.add(fmt.Errorf("send: %w", err))
					return
				}
				got := false
				for !got {
					var err error
					batch, err = s.Poll(*ttl, ack, batch)
					if err != nil {
						errs.add(fmt.Errorf("poll: %w", err))
						return
					}
					rec := recording.Load() && !stopping.Load()
					if rec {
						polls.Add(1)
					}
					if len(batch) == 0 || batch[0].Type == "heartbeat" {
						if rec {
							empty.Add(1)
						}
						continue
					}
					for _, m := range batch {
						if m.Seq <= ack { // a resend of a message already confirmed: cannot be, we ack each
							mism.Add(1)
							errs.add(fmt.Errorf("session %d: seq %d again after ack %d", i, m.Seq, ack))
							return
						}
						if m.Type != "text" || m.Seq != ack+1 || m.Data != string(out) || got {
							mism.Add(1)
							errs.add(fmt.Errorf("reply mismatch on session %d msg %d (seq %d after %d, type %s, %d bytes)", i, seq, m.Seq, ack, m.Type, len(m.Data)))
							return
						}
						ack = m.Seq
						got = true
					}
				}
				d := time.Since(t0)
				if recording.Load() && !stopping.Load() {
					msgs.Add(1)
					lat.Record(i, d)
				}
			}
		}(i, s)
	}
	select {
	case <-time.After(*warm):
	case <-ctx.Done():
	}
	cpu0, _ := benchkit.SumCPU(pids)
	self0 := selfCPU()
	recording.Store(true)
	t0 := time.Now()
	select {
	case <-time.After(*dur):
	case <-ctx.Done():
	}
	stopping.Store(true)
	elapsed := time.Since(t0)
	cpu1, _ := benchkit.SumCPU(pids)
	self1 := selfCPU()
	wg.Wait()
	for _, s := range cl {
		s.Abort()
	}

	res.DurationS = elapsed.Seconds()
	res.Msgs = msgs.Load()
	res.MsgsPerSec = float64(res.Msgs) / elapsed.Seconds()
	res.Polls, res.EmptyPolls = polls.Load(), empty.Load()
	res.PollsPerS = float64(res.Polls) / elapsed.Seconds()
	res.Latency = lat.Summarize()
	res.Errors = errs.n.Load()
	res.Mismatches = mism.Load()
	if errs.first != "" && res.FirstError == "" {
		res.FirstError = errs.first
	}
	if res.Msgs > 0 {
		res.ClientCPUUSPerMsg = float64((self1 - self0).Microseconds()) / float64(res.Msgs)
	}
	if len(pids) > 0 && res.Msgs > 0 {
		res.TargetCPUS = (cpu1 - cpu0).Seconds()
		res.CPUPerMsgUS = float64((cpu1 - cpu0).Microseconds()) / float64(res.Msgs)
	}
	logf("pollecho: %s client %.1f µs CPU/msg, relay %.1f µs CPU/msg", res.Client, res.ClientCPUUSPerMsg, res.CPUPerMsgUS)
	logf("pollecho: %.0f msgs/s (%.0f polls/s, %d empty)  p50 %dµs p90 %dµs p99 %dµs max %dµs  errors %d mismatches %d",
		res.MsgsPerSec, res.PollsPerS, res.EmptyPolls, res.Latency.P50, res.Latency.P90, res.Latency.P99, res.Latency.Max, res.Errors, res.Mismatches)
	return benchkit.PrintResult(os.Stdout, res)
}
