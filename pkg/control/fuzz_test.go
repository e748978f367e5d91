package control

import (
	"net"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// nopTransport accepts everything; the fuzzer exercises routing, not sockets.
type nopTransport struct{}

func (nopTransport) Send(conntable.MessageType, []byte) error { return nil }
func (nopTransport) Close(int, string)                        {}
func (nopTransport) Name() string                             { return "nop" }

const fuzzID = "0123456789abcdef0123456789abcdef"

// FuzzRouting drives the control handler with arbitrary methods, paths, bodies, content
// types and Authorization headers: it never panics, answers 2xx or 4xx (the transport
// cannot fail here), never 2xx to a request without the token, and only routes it knows
// answer 2xx. A request its head refuses (before the body is read) gets that refusal from
// the handler, with the connection closed; one its head accepts is never 401 or 405.
func FuzzRouting(f *testing.F) {
	for _, s := range []struct{ method, path, ct, body, auth string }{
		{"POST", "/socket/" + fuzzID + "/send", "text/plain", "hi", "Bearer tok"},
		{"POST", "/socket/" + fuzzID + "/send", "text/plain", "\xff", "Bearer tok"},
		{"POST", "/socket/" + fuzzID + "/disconnect", "", `{"code":4000,"reason":"x"}`, "Bearer tok"},
		{"POST", "/socket/" + fuzzID + "/disconnect", "", `{"code":1005}`, "Bearer tok"},
		{"GET", "/socket/" + fuzzID, "", "", "Bearer tok"},
		{"GET", "/status", "", "", "Bearer tok"},
		{"GET", "/readyz", "", "", ""},
		{"GET", "/socket/%zz/send", "", "", "Bearer tok"},
		{"DELETE", "/socket/" + fuzzID + "/", "", "", "Bearer tok"},
		{"GET", "/status", "", "", "Bearer to"},
		{"GET", "//socket/../status?x#y", "", "", "Bearer tok"},
	} {
		f.Add(s.method, s.path, s.ct, []byte(s.body), s.auth)
	}
	m := metrics.New(func() float64 { return 0 }, func() float64 { return 0 })
	table := conntable.New()
	table.Add(&conntable.Conn{ID: fuzzID, Transport: nopTransport{}})
	s := New(Options{Addr: "127.0.0.1:0", MaxMessageSize: 1024, Token: "tok", Table: table, Metrics: m, Logger: zerolog.Nop()})
	s.SetReady()
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}

	f.Fuzz(func(t *testing.T, method, path, ct string, body []byte, auth string) {
		var req fasthttp.Request
		req.Header.SetMethod(method)
		req.SetRequestURI(path)
		if ct != "" {
			req.Header.SetContentType(ct)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, remote, nil)
		head := s.judge(&req.Header, string(req.URI().Path())) // what headerReceived decides, before any body
		s.handle(&ctx)
		status := ctx.Response.StatusCode()
		if head.status != 0 && (status != head.status || !ctx.Response.ConnectionClose()) {
			t.Fatalf("%q %q: refused from the head with %d, answered %d (close %v)", method, path, head.status, status, ctx.Response.ConnectionClose())
		}
		if head.status == 0 && (status == 401 || status == 405) {
			t.Fatalf("%q %q: accepted from the head, answered %d", method, path, status)
		}
		if status < 200 || status >= 500 || (status >= 300 && status < 400) {
			t.Fatalf("%q %q: status %d", method, path, status)
		}
		p := string(ctx.Path())
		if status < 300 {
			if p != "/readyz" && string(req.Header.Peek("Authorization")) != "Bearer tok" {
				t.Fatalf("%q %q answered %d without the token", method, path, status)
			}
			known := p == "/readyz" || p == "/status" || p == "/metrics" || strings.HasPrefix(p, "/socket/"+fuzzID)
			if !known {
				t.Fatalf("%q (path %q) answered %d", path, p, status)
			}
		}
	})
}
