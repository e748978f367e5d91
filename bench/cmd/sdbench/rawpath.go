package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/socketdock/socketdock/bench/internal/benchkit"
	"github.com/socketdock/socketdock/bench/internal/wsclient"
)

// RawPathResult is the RESULT line of "sdbench rawpath".
type RawPathResult struct {
	Mode       string           `json:"mode"`
	Path       string           `json:"path"` // "callback" (two POSTs) or "response" (one POST)
	Target     string           `json:"target"`
	Conns      int              `json:"conns"`
	Size       int              `json:"size"`
	DurationS  float64          `json:"duration_s"`
	Msgs       int64            `json:"msgs"`
	MsgsPerSec float64          `json:"msgs_per_s"`
	Latency    benchkit.Summary `json:"latency"`
	Errors     int64            `json:"errors"`
	Mismatches int64            `json:"mismatches"`
	FirstError string           `json:"first_error,omitempty"`
}

// runRawPath measures the relay's HTTP work without any WebSocket: each of
// C workers POSTs the contract's message JSON to the backend and waits for
// the echo, either as the backend's callback POST to our own control-like
// listener ("callback", the relay's default path) or in the HTTP response
// ("response", the --reply-in-response path).
func runRawPath(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rawpath", flag.ContinueOnError)
	msgURI := fs.String("message-uri", "http://127.0.0.1:9000/message", "backend message URI (loopback only)")
	cbAddr := fs.String("callback-addr", "127.0.0.1:0", "listen address for the callback POSTs")
	path := fs.String("path", "callback", "callback (two POSTs per message) or response (one POST, echo in the response)")
	conns := fs.Int("conns", 1000, "concurrent closed loops (the relay's connections)")
	size := fs.Int("size", 64, "message size in bytes")
	binary := fs.Bool("binary", false, "binary messages with random bytes (base64 in the JSON)")
	dur := fs.Duration("duration", 10*time.Second, "measured duration")
	warm := fs.Duration("warmup", 2*time.Second, "warm-up before measuring")
	timeout := fs.Duration("timeout", 10*time.Second, "per-message timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*msgURI)
	if err != nil {
		return err
	}
	if err := checkLoopback(u.Host); err != nil {
		return err
	}
	if *path != "callback" && *path != "response" {
		return fmt.Errorf("-path must be callback or response")
	}
	res := RawPathResult{Mode: "rawpath", Path: *path, Target: *msgURI, Conns: *conns, Size: *size}

	// One channel per worker, keyed by a 32-hex id like the relay's.
	ids := make([]string, *conns)
	inbox := make(map[string]chan []byte, *conns)
	for i := range ids {
		var b [16]byte
		rand.Read(b[:])
		ids[i] = hex.EncodeToString(b[:])
		inbox[ids[i]] = make(chan []byte, 1)
	}
	ln, err := net.Listen("tcp4", *cbAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var cbErrs atomic.Int64
	srv := &fasthttp.Server{
		Handler: func(rc *fasthttp.RequestCtx) {
			p := string(rc.Path())
			rest, ok := strings.CutPrefix(p, "/socket/")
			id, verb, _ := strings.Cut(rest, "/")
			ch := inbox[id]
			if !ok || verb != "send" || ch == nil || !rc.IsPost() {
				cbErrs.Add(1)
				rc.Error("unknown", fasthttp.StatusNotFound)
				return
			}
			body := append([]byte(nil), rc.PostBody()...)
			select {
			case ch <- body:
				rc.SetBodyString("OK")
			default:
				rc.Error("busy", fasthttp.StatusServiceUnavailable)
			}
		},
		Concurrency:                   *conns * 4,
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		ReadTimeout:                   30 * time.Second,
		IdleTimeout:                   30 * time.Second,
	}
	go srv.Serve(ln)
	defer srv.Shutdown()
	cbBase := "http://" + ln.Addr().String()

	hc := &fasthttp.HostClient{
		Addr:                u.Host,
		MaxConns:            *conns + 16,
		MaxConnWaitTimeout:  *timeout,
		ReadTimeout:         *timeout,
		WriteTimeout:        *timeout,
		MaxIdleConnDuration: time.Minute,
		MaxResponseBodySize: 8 << 20,
	}

	lat := benchkit.NewLatency(64)
	var (
		recording, stopping atomic.Bool
		msgs, mism          atomic.Int64
		errs                errTally
		wg                  sync.WaitGroup
	)
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := ids[i]
			send := cbBase + "/socket/" + id + "/send"
			disc := cbBase + "/socket/" + id + "/disconnect"
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			out := make([]byte, *size)
			var body []byte
			for seq := uint64(0); !stopping.Load() && ctx.Err() == nil; seq++ {
				if *binary {
					rand.Read(out)
				} else {
					wsclient.FormatPayload(out, i, seq)
				}
				body = benchkit.AppendMessageJSON(body[:0], id, send, disc, *binary, out)
				req.Reset()
				req.Header.SetMethod(fasthttp.MethodPost)
				req.SetRequestURI(*msgURI)
				req.Header.SetContentType("application/json")
				req.SetBodyRaw(body)
				t0 := time.Now()
				if err := hc.DoTimeout(req, resp, *timeout); err != nil {
					errs.add(fmt.Errorf("POST: %w", err))
					time.Sleep(10 * time.Millisecond)
					continue
				}
				if sc := resp.StatusCode(); sc < 200 || sc > 299 {
					errs.add(fmt.Errorf("POST answered %d", sc))
					time.Sleep(10 * time.Millisecond)
					continue
				}
				var got []byte
				if *path == "response" {
					got = resp.Body()
				} else {
					select {
					case got = <-inbox[id]:
					case <-time.After(*timeout):
						errs.add(fmt.Errorf("no callback within %s", *timeout))
						return
					}
				}
				d := time.Since(t0)
				if !bytes.Equal(got, out) {
					mism.Add(1)
					errs.add(fmt.Errorf("echo mismatch on worker %d seq %d (%d bytes)", i, seq, len(got)))
					return
				}
				if recording.Load() && !stopping.Load() {
					msgs.Add(1)
					lat.Record(i, d)
				}
			}
		}(i)
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
	res.Msgs = msgs.Load()
	res.MsgsPerSec = float64(res.Msgs) / elapsed.Seconds()
	res.Latency = lat.Summarize()
	res.Errors = errs.n.Load() + cbErrs.Load()
	res.Mismatches = mism.Load()
	res.FirstError = errs.first
	logf("rawpath(%s): %.0f msgs/s  p50 %dµs p99 %dµs max %dµs errors %d",
		*path, res.MsgsPerSec, res.Latency.P50, res.Latency.P99, res.Latency.Max, res.Errors)
	return benchkit.PrintResult(os.Stdout, res)
}
