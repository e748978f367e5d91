// Package control is the control listener: the callback API backends use to reach clients
// (send, disconnect, connection info), and /status, /metrics, /readyz for operators.
package control

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// Options configures the control API.
type Options struct {
	Addr           string
	MaxMessageSize int    // largest body /send accepts; default 4 MiB
	Token          string // when set, every route but /readyz needs "Authorization: Bearer <Token>"
	Pprof          bool   // serve Go's profiler under /debug/pprof/ (behind the token, if any)

	Table   *conntable.Table
	Metrics *metrics.Metrics
	Logger  zerolog.Logger
	Started time.Time // for /status uptime
}

// Server serves the control API over fasthttp.
type Server struct {
	opts     Options
	srv      *fasthttp.Server
	ln       net.Listener
	metrics  fasthttp.RequestHandler
	pprof    fasthttp.RequestHandler
	draining atomic.Bool
	done     chan error
}

// New prepares the control server.
func New(opts Options) *Server {
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 4 << 20
	}
	if opts.Started.IsZero() {
		opts.Started = time.Now()
	}
	s := &Server{opts: opts, done: make(chan error, 1)}
	s.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(opts.Metrics.Registry, promhttp.HandlerOpts{}))
	if opts.Pprof {
		index := fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index)
		cpu := fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Profile)
		trace := fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Trace)
		s.pprof = func(ctx *fasthttp.RequestCtx) {
			switch string(ctx.Path()) {
			case "/debug/pprof/profile":
				cpu(ctx)
			case "/debug/pprof/trace":
				trace(ctx)
			default:
				index(ctx) // the index page and the named profiles: heap, allocs, goroutine, ...
			}
		}
	}
	s.srv = &fasthttp.Server{
		Handler:                      s.handle,
		Name:                         "socketdock",
		ReadTimeout:                  30 * time.Second,
		WriteTimeout:                 30 * time.Second,
		IdleTimeout:                  2 * time.Minute,
		MaxRequestBodySize:           opts.MaxMessageSize,
		ReadBufferSize:               8 << 10,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		StreamRequestBody:            false,
		DisablePreParseMultipartForm: true,
		Logger:                       fasthttpLogger{opts.Logger},
		ErrorHandler:                 requestError,
	}
	return s
}

// Start binds the listener and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("control listener %s: %w", s.opts.Addr, err)
	}
	s.ln = ln
	go func() { s.done <- s.srv.Serve(ln) }()
	return nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SetDraining makes /readyz answer 503 so load balancers stop routing here.
func (s *Server) SetDraining() { s.draining.Store(true) }

// Stop closes the listener and waits for in-flight requests.
func (s *Server) Stop() error { return s.srv.Shutdown() }

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	if path == "/readyz" {
		s.readyz(ctx)
		return
	}
	if s.opts.Token != "" && !s.authorized(ctx) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="socketdock"`)
		plain(ctx, fasthttp.StatusUnauthorized, "unauthorized")
		return
	}
	switch {
	case path == "/status":
		if !method(ctx, "GET") {
			return
		}
		s.status(ctx)
	case path == "/metrics":
		if !method(ctx, "GET") {
			return
		}
		s.metrics(ctx)
	case strings.HasPrefix(path, "/socket/"):
		s.socket(ctx, path[len("/socket/"):])
	case s.pprof != nil && strings.HasPrefix(path, "/debug/pprof/"):
		s.pprof(ctx)
	default:
		plain(ctx, fasthttp.StatusNotFound, "not found")
	}
}

func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	got, ok := bytes.CutPrefix(ctx.Request.Header.Peek("Authorization"), []byte("Bearer "))
	return ok && subtle.ConstantTimeCompare(got, []byte(s.opts.Token)) == 1
}

// socket routes /socket/<id>, /socket/<id>/send and /socket/<id>/disconnect.
func (s *Server) socket(ctx *fasthttp.RequestCtx, rest string) {
	id, verb, _ := strings.Cut(rest, "/")
	if verb != "" && verb != "send" && verb != "disconnect" {
		plain(ctx, fasthttp.StatusNotFound, "not found")
		return
	}
	want := "POST"
	if verb == "" {
		want = "GET"
	}
	if !method(ctx, want) {
		return
	}
	var c *conntable.Conn
	if conntable.ValidID(id) {
		c = s.opts.Table.Get(id)
	}
	if c == nil {
		if verb == "send" {
			s.opts.Metrics.SendResults.WithLabelValues("unknown").Inc()
		}
		plain(ctx, fasthttp.StatusNotFound, "unknown connection")
		return
	}
	switch verb {
	case "send":
		s.send(ctx, c)
	case "disconnect":
		s.disconnect(ctx, c)
	default:
		s.info(ctx, c)
	}
}

func (s *Server) send(ctx *fasthttp.RequestCtx, c *conntable.Conn) {
	body := ctx.PostBody()
	typ := conntable.TypeForContent(ctx.Request.Header.ContentType())
	if typ == conntable.Text {
		if !utf8.Valid(body) {
			s.sendResult(ctx, "bad_utf8", fasthttp.StatusBadRequest, "text body is not valid UTF-8")
			return
		}
	}
	if len(body) > s.opts.MaxMessageSize {
		s.sendResult(ctx, "too_big", fasthttp.StatusRequestEntityTooLarge, "message over the size limit")
		return
	}
	err := c.Transport.Send(typ, body) // Send copies the body, which dies with this handler
	switch {
	case err == nil:
		s.sendResult(ctx, "ok", fasthttp.StatusOK, "OK")
	case errors.Is(err, conntable.ErrClosing):
		s.sendResult(ctx, "closing", fasthttp.StatusGone, "connection is closing")
	case errors.Is(err, conntable.ErrSlowConsumer):
		ctx.Response.Header.Set("Retry-After", "1")
		s.sendResult(ctx, "slow_consumer", fasthttp.StatusServiceUnavailable, "client outbound buffer full")
	case errors.Is(err, conntable.ErrTooBig):
		s.sendResult(ctx, "too_big", fasthttp.StatusRequestEntityTooLarge, "message over the size limit")
	default:
		s.sendResult(ctx, "error", fasthttp.StatusInternalServerError, err.Error())
	}
}

func (s *Server) sendResult(ctx *fasthttp.RequestCtx, result string, status int, msg string) {
	s.opts.Metrics.SendResults.WithLabelValues(result).Inc()
	plain(ctx, status, msg)
}

type disconnectRequest struct {
	Code   *int   `json:"code"`
	Reason string `json:"reason"`
}

func (s *Server) disconnect(ctx *fasthttp.RequestCtx, c *conntable.Conn) {
	code, reason := conntable.CloseNormal, ""
	if body := bytes.TrimSpace(ctx.PostBody()); len(body) > 0 {
		var req disconnectRequest
		if err := json.Unmarshal(body, &req); err != nil {
			plain(ctx, fasthttp.StatusBadRequest, "body must be JSON {\"code\":4000,\"reason\":\"...\"}")
			return
		}
		if req.Code != nil {
			code = *req.Code
		}
		reason = req.Reason
	}
	if !sendableCloseCode(code) {
		plain(ctx, fasthttp.StatusBadRequest, "code must be 1000 or 3000-4999")
		return
	}
	if len(reason) > 123 || !utf8.ValidString(reason) {
		plain(ctx, fasthttp.StatusBadRequest, "reason must be UTF-8 of at most 123 bytes")
		return
	}
	c.Transport.Close(code, reason)
	plain(ctx, fasthttp.StatusOK, "OK")
}

// sendableCloseCode: what a backend may ask us to close with.
func sendableCloseCode(code int) bool {
	return code == conntable.CloseNormal || code == conntable.CloseGoingAway || (code >= 3000 && code <= 4999)
}

func (s *Server) info(ctx *fasthttp.RequestCtx, c *conntable.Conn) {
	remote := ""
	if c.RemoteAddr != nil {
		remote = c.RemoteAddr.String()
	}
	writeJSON(ctx, map[string]any{
		"connection_id": c.ID,
		"connected_at":  time.Unix(0, c.ConnectedAt).UTC().Format(time.RFC3339),
		"remote_addr":   remote,
		"messages_in":   c.MessagesIn(),
		"messages_out":  c.MessagesOut(),
	})
}

func (s *Server) status(ctx *fasthttp.RequestCtx) {
	up := time.Since(s.opts.Started)
	writeJSON(ctx, map[string]any{
		"uptime":      map[string]int64{"ns": up.Nanoseconds(), "seconds": int64(up / time.Second)},
		"connections": map[string]any{"active": s.opts.Table.Active(), "lifetime": s.opts.Table.Lifetime()},
	})
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	if s.draining.Load() {
		plain(ctx, fasthttp.StatusServiceUnavailable, "draining")
		return
	}
	plain(ctx, fasthttp.StatusOK, "ready")
}

func method(ctx *fasthttp.RequestCtx, want string) bool {
	if string(ctx.Method()) == want {
		return true
	}
	ctx.Response.Header.Set("Allow", want)
	plain(ctx, fasthttp.StatusMethodNotAllowed, "method not allowed")
	return false
}

func plain(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(msg)
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		plain(ctx, fasthttp.StatusInternalServerError, err.Error())
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// requestError answers requests fasthttp could not read: 413 for a body over the limit,
// 431 for an oversized head, 400 otherwise.
func requestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		plain(ctx, fasthttp.StatusRequestEntityTooLarge, "message over the size limit")
	case errors.As(err, &small):
		plain(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request header too large")
	default:
		plain(ctx, fasthttp.StatusBadRequest, "bad request")
	}
	ctx.SetConnectionClose()
}

type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) { l.log.Debug().Msgf(format, args...) }
