package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	// Set in paced mode (-rate): target and achieved rate, late sends.
	*benchkit.PacedStats
}

// rawClient does one message's HTTP work: POST the contract's message JSON to the
// backend, then take the echo from the callback POST to our listener ("callback") or
// from the response ("response"). Each id has at most one message in flight.
type rawClient struct {
	hc      *fasthttp.HostClient
	msgURI  string
	cbBase  string
	ids     []string
	inbox   map[string]chan []byte
	path    string
	binary  bool
	timeout time.Duration
}

// errFatal marks a round trip after which the caller's loop should stop (a lost callback
// or a wrong echo); other errors are retried.
type errFatal struct{ error }

// roundTrip sends out as message seq of id ids[slot] and checks its echo. req, resp and
// body are the caller's, reused across calls.
func (rc *rawClient) roundTrip(slot int, out []byte, req *fasthttp.Request, resp *fasthttp.Response, body *[]byte) error {
	id := rc.ids[slot]
	send := rc.cbBase + "/socket/" + id + "/send"
	disc := rc.cbBase + "/socket/" + id + "/disconnect"
	*body = benchkit.AppendMessageJSON((*body)[:0], id, send, disc, rc.binary, out)
	req.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(rc.msgURI)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(*body)
	if err := rc.hc.DoTimeout(req, resp, rc.timeout); err != nil {
		return fmt.Errorf("POST: %w", err)
	}
	if sc := resp.StatusCode(); sc < 200 || sc > 299 {
		return fmt.Errorf("POST answered %d", sc)
	}
	var got []byte
	if rc.path == "response" {
		got = resp.Body()
	} else {
		select {
		case got = <-rc.inbox[id]:
		case <-time.After(rc.timeout):
			return errFatal{fmt.Errorf("no callback within %s", rc.timeout)}
		}
	}
	if !bytes.Equal(got, out) {
		return errFatal{errMismatch}
	}
	return nil
}

var errMismatch = errors.New("echo mismatch")

// runRawPath measures the relay's HTTP work without any WebSocket: each of
// C workers POSTs the contract's message JSON to the backend and waits for
// the echo, either as the backend's callback POST to our own control-like
// listener ("callback", the relay's default path) or in the HTTP response
// ("response", the --reply-in-response path). With -rate the workers are
// paced instead (see paced.go).
func runRawPath(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("rawpath", flag.ContinueOnError)
	msgURI := fs.String("message-uri", "http://127.0.0.1:9000/message", "backend message URI (loopback only)")
	cbAddr := fs.String("callback-addr", "127.0.0.1:0", "listen address for the callback POSTs")
	path := fs.String("path", "callback", "callback (two POSTs per message) or response (one POST, echo in the response)")
	conns := fs.Int("conns", 1000, "concurrent closed loops (the relay's connections); paced: senders")
	size := fs.Int("size", 64, "message size in bytes")
	binary := fs.Bool("binary", false, "binary messages with random bytes (base64 in the JSON)")
	dur := fs.Duration("duration", 10*time.Second, "measured duration")
	warm := fs.Duration("warmup", 2*time.Second, "warm-up before measuring")
	timeout := fs.Duration("timeout", 10*time.Second, "per-message timeout")
	var pf pacedFlags
	pf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := pf.check(); err != nil {
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

	// One id per message in flight (a worker, or a paced sender's window slot), keyed by
	// a 32-hex id like the relay's, each with its own inbox.
	slots := *conns
	if pf.rate > 0 {
		slots = *conns * pf.window
	}
	rc := &rawClient{msgURI: *msgURI, ids: make([]string, slots), inbox: make(map[string]chan []byte, slots),
		path: *path, binary: *binary, timeout: *timeout}
	for i := range rc.ids {
		var b [16]byte
		rand.Read(b[:])
		rc.ids[i] = hex.EncodeToString(b[:])
		rc.inbox[rc.ids[i]] = make(chan []byte, 1)
	}
	ln, err := net.Listen("tcp4", *cbAddr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var cbErrs atomic.Int64
	srv := &fasthttp.Server{
		Handler: func(c *fasthttp.RequestCtx) {
			p := string(c.Path())
			rest, ok := strings.CutPrefix(p, "/socket/")
			id, verb, _ := strings.Cut(rest, "/")
			ch := rc.inbox[id]
			if !ok || verb != "send" || ch == nil || !c.IsPost() {
				cbErrs.Add(1)
				c.Error("unknown", fasthttp.StatusNotFound)
				return
			}
			body := append([]byte(nil), c.PostBody()...)
			select {
			case ch <- body:
				c.SetBodyString("OK")
			default:
				c.Error("busy", fasthttp.StatusServiceUnavailable)
			}
		},
		Concurrency:                   slots * 4,
		DisableHeaderNamesNormalizing: true,
		NoDefaultServerHeader:         true,
		ReadTimeout:                   30 * time.Second,
		IdleTimeout:                   30 * time.Second,
	}
	go srv.Serve(ln)
	defer srv.Shutdown()
	rc.cbBase = "http://" + ln.Addr().String()
	// Paced or not, at most one backend connection per worker (sender): a backlog waits
	// for a connection, as the relay's bounded pool makes it wait, instead of opening
	// thousands of sockets.
	rc.hc = &fasthttp.HostClient{
		Addr:                u.Host,
		MaxConns:            *conns + 16,
		MaxConnWaitTimeout:  *timeout,
		ReadTimeout:         *timeout,
		WriteTimeout:        *timeout,
		MaxIdleConnDuration: time.Minute,
		MaxResponseBodySize: 8 << 20,
	}
	if pf.rate > 0 {
		rawPaced(ctx, rc, &res, pf, *conns, *size, *warm, *dur)
		res.Errors += cbErrs.Load()
		return benchkit.PrintResult(os.Stdout, res)
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
				t0 := time.Now()
				err := rc.roundTrip(i, out, req, resp, &body)
				d := time.Since(t0)
				var fatal errFatal
				switch {
				case errors.As(err, &fatal):
					if errors.Is(err, errMismatch) {
						mism.Add(1)
						err = fmt.Errorf("echo mismatch on worker %d seq %d", i, seq)
					}
					errs.add(err)
					return
				case err != nil:
					errs.add(err)
					time.Sleep(10 * time.Millisecond)
					continue
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
