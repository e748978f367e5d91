// Command refbackend is the benchmark's reference backend. It answers the
// SocketDock backend contract (CONTRACT §3) so that a client's message comes
// back to it through the whole path, and it speaks Pushpin's
// WebSocket-over-HTTP protocol so Pushpin can be measured in front of the
// same process.
//
// POST /message (any path ending in /message):
//
//	-mode callback  (default) POST the message back to meta.send: text/plain for
//	                type text, application/octet-stream for binary (base64
//	                decoded when meta.encoding is base64), then answer 204.
//	-mode response  answer 200 with the echo in the body (for --reply-in-response).
//
// Any POST with Content-Type application/websocket-events (Pushpin): OPEN →
// OPEN, TEXT → TEXT echo, BINARY → BINARY echo, PING → PONG with the same
// payload, CLOSE → CLOSE with the same code, DISCONNECT → nothing.
//
// POST /connect and /disconnect answer 204 (for --connect-uri / --disconnect-uri).
//
// -mode grip serves a long-poll echo behind Pushpin with GRIP instead (grip.go).
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

type backendMsg struct {
	Meta struct {
		ConnectionID string `json:"connection_id"`
		Send         string `json:"send"`
		Type         string `json:"type"`
		Encoding     string `json:"encoding"`
	} `json:"meta"`
	Message string `json:"message"`
}

type server struct {
	mode    string
	timeout time.Duration
	// One HostClient per callback host, created on first use.
	mu      sync.Mutex
	clients map[string]*fasthttp.HostClient
	maxConn int

	msgs, callbacks, failures, wsEvents atomic.Int64
}

func (s *server) client(host string) *fasthttp.HostClient {
	s.mu.Lock()
	defer s.mu.Unlock()
	hc := s.clients[host]
	if hc == nil {
		hc = &fasthttp.HostClient{
			Addr:                host,
			MaxConns:            s.maxConn,
			MaxConnWaitTimeout:  s.timeout,
			ReadTimeout:         s.timeout,
			WriteTimeout:        s.timeout,
			MaxIdleConnDuration: time.Minute,
			MaxResponseBodySize: 1 << 20,
		}
		s.clients[host] = hc
	}
	return hc
}

func (s *server) handle(rc *fasthttp.RequestCtx) {
	if bytes.HasPrefix(rc.Request.Header.ContentType(), []byte("application/websocket-events")) {
		s.handlePushpin(rc)
		return
	}
	p := rc.Path()
	switch {
	case bytes.HasSuffix(p, []byte("/message")):
		s.handleMessage(rc)
	case bytes.HasSuffix(p, []byte("/connect")), bytes.HasSuffix(p, []byte("/disconnect")):
		rc.SetStatusCode(fasthttp.StatusNoContent)
	case bytes.Equal(p, []byte("/stats")):
		fmt.Fprintf(rc, "messages %d\ncallbacks %d\nfailures %d\nws_events %d\n",
			s.msgs.Load(), s.callbacks.Load(), s.failures.Load(), s.wsEvents.Load())
	default:
		rc.Error("not found", fasthttp.StatusNotFound)
	}
}

func (s *server) handleMessage(rc *fasthttp.RequestCtx) {
	var m backendMsg
	if err := json.Unmarshal(rc.PostBody(), &m); err != nil {
		rc.Error("bad json: "+err.Error(), fasthttp.StatusBadRequest)
		return
	}
	s.msgs.Add(1)
	body := []byte(m.Message)
	if m.Meta.Encoding == "base64" {
		dec, err := base64.StdEncoding.DecodeString(m.Message)
		if err != nil {
			rc.Error("bad base64", fasthttp.StatusBadRequest)
			return
		}
		body = dec
	}
	ctype := "application/octet-stream"
	if m.Meta.Type == "text" {
		ctype = "text/plain; charset=utf-8"
	}
	if s.mode == "response" {
		rc.SetContentType(ctype)
		rc.SetBody(body)
		return
	}
	u, err := url.Parse(m.Meta.Send)
	if err != nil || u.Host == "" {
		rc.Error("bad meta.send", fasthttp.StatusBadRequest)
		return
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(m.Meta.Send)
	req.Header.SetContentType(ctype)
	req.SetBodyRaw(body)
	// A keep-alive connection the relay closed is safe to retry: the
	// callback was not delivered.
	var cerr error
	for attempt := 0; attempt < 3; attempt++ {
		cerr = s.client(u.Host).DoTimeout(req, resp, s.timeout)
		if cerr == nil && resp.StatusCode() == fasthttp.StatusServiceUnavailable {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		if cerr != fasthttp.ErrConnectionClosed {
			break
		}
	}
	if cerr != nil {
		s.failures.Add(1)
		rc.Error("callback: "+cerr.Error(), fasthttp.StatusBadGateway)
		return
	}
	if sc := resp.StatusCode(); sc < 200 || sc > 299 {
		s.failures.Add(1)
		rc.Error("callback answered "+strconv.Itoa(sc), fasthttp.StatusBadGateway)
		return
	}
	s.callbacks.Add(1)
	rc.SetStatusCode(fasthttp.StatusNoContent)
}

// handlePushpin answers one WebSocket-over-HTTP request: a sequence of
// events "NAME[ hexlen]\r\n[payload\r\n]".
func (s *server) handlePushpin(rc *fasthttp.RequestCtx) {
	in := rc.PostBody()
	out := make([]byte, 0, len(in)+16)
	for len(in) > 0 {
		i := bytes.Index(in, []byte("\r\n"))
		if i < 0 {
			rc.Error("truncated event", fasthttp.StatusBadRequest)
			return
		}
		line := in[:i]
		in = in[i+2:]
		name, hexlen, hasLen := bytes.Cut(line, []byte(" "))
		var payload []byte
		if hasLen {
			n, err := strconv.ParseUint(string(hexlen), 16, 32)
			if err != nil || int(n)+2 > len(in) {
				rc.Error("bad event length", fasthttp.StatusBadRequest)
				return
			}
			payload = in[:n]
			in = in[n+2:]
		}
		s.wsEvents.Add(1)
		switch string(name) {
		case "OPEN":
			out = append(out, "OPEN\r\n"...)
		case "TEXT", "BINARY":
			s.msgs.Add(1)
			out = appendEvent(out, string(name), payload, true)
		case "PING":
			out = appendEvent(out, "PONG", payload, hasLen)
		case "PONG", "DISCONNECT":
		case "CLOSE":
			out = appendEvent(out, "CLOSE", payload, hasLen)
		default:
			rc.Error("unknown event "+string(name), fasthttp.StatusBadRequest)
			return
		}
	}
	rc.SetContentType("application/websocket-events")
	rc.SetBody(out)
}

func appendEvent(dst []byte, name string, payload []byte, withLen bool) []byte {
	dst = append(dst, name...)
	if withLen {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(len(payload)), 16)
		dst = append(dst, "\r\n"...)
		dst = append(dst, payload...)
	}
	return append(dst, "\r\n"...)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address (loopback)")
	mode := flag.String("mode", "callback", "callback: POST each message back to meta.send; response: return it in the HTTP response")
	timeout := flag.Duration("timeout", 10*time.Second, "callback POST timeout")
	maxConns := flag.Int("max-conns", 4096, "callback connections per relay host")
	publish := flag.String("publish-uri", "", "grip mode: Pushpin's publish URL (http://127.0.0.1:<push_in_http_port>/publish/)")
	flag.Parse()
	if *mode != "callback" && *mode != "response" && *mode != "grip" {
		fmt.Fprintln(os.Stderr, "refbackend: -mode must be callback, response or grip")
		os.Exit(2)
	}
	s := &server{mode: *mode, timeout: *timeout, clients: map[string]*fasthttp.HostClient{}, maxConn: *maxConns}
	handler := s.handle
	if *mode == "grip" {
		handler = newGripServer(*publish, *timeout).handle
	}
	ln, err := net.Listen("tcp4", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "refbackend:", err)
		os.Exit(1)
	}
	srv := &fasthttp.Server{
		Handler:                       handler,
		Name:                          "refbackend",
		Concurrency:                   64 * 1024,
		ReadTimeout:                   60 * time.Second,
		IdleTimeout:                   2 * time.Minute,
		MaxRequestBodySize:            16 << 20,
		DisableHeaderNamesNormalizing: true,
	}
	fmt.Fprintf(os.Stderr, "refbackend: listening on %s (mode %s)\n", ln.Addr(), *mode)
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "refbackend:", err)
		os.Exit(1)
	}
}
