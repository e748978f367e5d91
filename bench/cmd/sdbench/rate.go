package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/socketdock/socketdock/bench/internal/benchkit"
	"github.com/socketdock/socketdock/bench/internal/wsclient"
)

// RateResult is the RESULT line of "sdbench rate".
type RateResult struct {
	Mode          string           `json:"mode"`
	Target        string           `json:"target"`
	Workers       int              `json:"workers"`
	DurationS     float64          `json:"duration_s"`
	Upgrades      int64            `json:"upgrades"`
	UpgradesPerS  float64          `json:"upgrades_per_s"`
	Latency       benchkit.Summary `json:"latency"`
	Errors        int64            `json:"errors"`
	CloseErrors   int64            `json:"close_errors"`
	FirstError    string           `json:"first_error,omitempty"`
	CloseHandshak bool             `json:"close_handshake"`
}

func runRate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rate", flag.ContinueOnError)
	var c common
	c.register(fs)
	workers := fs.Int("workers", 64, "concurrent connect+upgrade+close loops")
	dur := fs.Duration("duration", 10*time.Second, "measured duration")
	warm := fs.Duration("warmup", time.Second, "warm-up before measuring")
	handshake := fs.Bool("close-handshake", true, "close with a WebSocket closing handshake (false: drop TCP right after the upgrade)")
	ips := fs.Int("source-ips", 16, "spread workers over this many source addresses (TIME_WAIT and port space)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(c.addr); err != nil {
		return err
	}
	res := RateResult{Mode: "rate", Target: c.addr, Workers: *workers, CloseHandshak: *handshake}
	lat := benchkit.NewLatency(32)
	var (
		recording, stopping atomic.Bool
		ups, closeErrs      atomic.Int64
		errs                errTally
		wg                  sync.WaitGroup
	)
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			src := benchkit.SourceIP(c.srcBase, w%*ips, 1)
			for !stopping.Load() && ctx.Err() == nil {
				t0 := time.Now()
				conn, err := wsclient.Dial(ctx, c.addr, wsclient.Options{
					LocalIP: src, ReadBufferSize: 512, Path: c.path, Timeout: c.timeout,
				})
				if err != nil {
					if !stopping.Load() {
						errs.add(err)
						// A refused or reset dial must not spin.
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				d := time.Since(t0)
				if *handshake {
					if err := conn.Close(2 * time.Second); err != nil {
						closeErrs.Add(1)
						errs.add(fmt.Errorf("close: %w", err))
					}
				} else {
					_ = conn.Abort()
				}
				if recording.Load() && !stopping.Load() {
					ups.Add(1)
					lat.Record(w, d)
				}
			}
		}(w)
	}
	select {
	case <-time.After(*warm):
	case <-ctx.Done():
	}
	recording.Store(true)
	t0 := time.Now()
	select {
	case <-time.After(*dur):
	case <-ctx.Done():
	}
	stopping.Store(true)
	elapsed := time.Since(t0)
	wg.Wait()
	res.DurationS = elapsed.Seconds()
	res.Upgrades = ups.Load()
	res.UpgradesPerS = float64(res.Upgrades) / elapsed.Seconds()
	res.Latency = lat.Summarize()
	res.Errors = errs.n.Load()
	res.CloseErrors = closeErrs.Load()
	res.FirstError = errs.first
	logf("rate: %.0f upgrades/s (p50 %dµs p99 %dµs) errors %d", res.UpgradesPerS, res.Latency.P50, res.Latency.P99, res.Errors)
	return benchkit.PrintResult(os.Stdout, res)
}
