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

	"github.com/socketdock/socketdock/pkg/limits"

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

	// Bounds on what one caller can hold (docs/SECURITY.md). A request is judged on its head
	// alone (token, route, method, id shape, declared size); a refused one is answered at once,
	// its body never read, and its connection closed.
	MaxConns    int           // connections served at once; more get 503 and are closed; default 1024
	HeadTimeout time.Duration // time a request head may take to arrive; default 5s
	BodyTimeout time.Duration // time an accepted request's body may take after its head; default 10s

	Table   *conntable.Table
	Metrics *metrics.Metrics
	Logger  zerolog.Logger
	Started time.Time // for /status uptime

	Forward Forwarder // answers for connections other instances hold (CONTRACT §10); nil: none
}

// Forwarder reaches the connections other instances hold (pkg/cluster).
type Forwarder interface {
	// Remote reports whether id belongs to another instance.
	Remote(id string) bool
	// Forward serves op ("send", "disconnect" or "info") for id at its owner, which answers
	// through ServeLocal, and writes the owner's answer (or 404, 503, 504) into ctx.
	Forward(ctx *fasthttp.RequestCtx, op string, id string)
	// ClusterStatus answers GET /status?scope=cluster: every instance's figures and their sums.
	ClusterStatus(ctx *fasthttp.RequestCtx)
}

// Ops a Forwarder forwards, as ServeLocal takes them.
const (
	OpSend       = "send"
	OpDisconnect = "disconnect"
	OpInfo       = "info"
)

// ServeLocal serves op for id as the owner of the connection, for another instance that
// forwarded the request (its body and Content-Type in ctx.Request): the same answers as the
// route's, never forwarded again.
func (s *Server) ServeLocal(ctx *fasthttp.RequestCtx, op string, id string) {
	v := verdict{route: routeInfo, id: id}
	switch op {
	case OpSend:
		v.route = routeSend
	case OpDisconnect:
		v.route = routeDisconnect
	}
	s.serveSocket(ctx, v, false)
}

// Server serves the control API over fasthttp.
type Server struct {
	opts     Options
	srv      *fasthttp.Server
	ln       net.Listener
	metrics  fasthttp.RequestHandler
	pprof    fasthttp.RequestHandler
	ready    atomic.Bool // the public listener is up: SetReady
	draining atomic.Bool
	done     chan error
}

// New prepares the control server.
func New(opts Options) *Server {
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = limits.MaxMessageSize
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.HeadTimeout <= 0 {
		opts.HeadTimeout = 5 * time.Second
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = 10 * time.Second
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
		HeaderReceived:               s.headerReceived,
		Name:                         "socketdock",
		Concurrency:                  opts.MaxConns,
		ReadTimeout:                  opts.HeadTimeout, // from the accept, or from a kept-alive request's first byte
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

// SetReady makes /readyz answer 200 (unless draining): the relay calls it once the public
// listener accepts connections, so a load balancer never routes to a relay still starting.
func (s *Server) SetReady() { s.ready.Store(true) }

// Stop closes the listener and waits for in-flight requests.
func (s *Server) Stop() error { return s.srv.Shutdown() }

// DefaultMaxConns is the control listener's default connection bound: enough for a large
// fleet of backends with kept-alive pools, small enough that the buffers of every slot
// (about 20 KiB each, plus bodies only token holders can send) stay a few tens of MiB.
const DefaultMaxConns = 1024

// smallBodyLimit bounds the body of every route but /send: /disconnect's JSON fits in far less.
const smallBodyLimit = 16 << 10

type route int

const (
	routeReadyz route = iota
	routeStatus
	routeMetrics
	routeInfo
	routeSend
	routeDisconnect
	routePprof
)

// verdict is what the request head alone decides: a route, or a refusal (status != 0).
type verdict struct {
	route     route
	id        string // routeInfo, routeSend, routeDisconnect
	bodyLimit int    // largest body the route takes

	status int    // refusals: 400, 401, 404, 405
	msg    string // refusals: the answer's body
	allow  string // 405: the method the route takes
}

// judge decides a request from its head: the same answer before the body is read
// (headerReceived) and after (handle), as it reads nothing the body can change.
func (s *Server) judge(h *fasthttp.RequestHeader, path string) verdict {
	small := func(r route, allow string) verdict {
		if allow != "" && string(h.Method()) != allow {
			return verdict{status: fasthttp.StatusMethodNotAllowed, msg: "method not allowed", allow: allow}
		}
		return verdict{route: r, bodyLimit: smallBodyLimit}
	}
	if !strictLines(h.RawHeaders()) {
		return verdict{status: fasthttp.StatusBadRequest, msg: "header lines must end in CRLF and not be folded"}
	}
	if path == "/readyz" {
		return small(routeReadyz, "")
	}
	if s.opts.Token != "" && !s.authorized(h) {
		return verdict{status: fasthttp.StatusUnauthorized, msg: "unauthorized"}
	}
	switch {
	case path == "/status":
		return small(routeStatus, "GET")
	case path == "/metrics":
		return small(routeMetrics, "GET")
	case strings.HasPrefix(path, "/socket/"):
		id, verb, _ := strings.Cut(path[len("/socket/"):], "/")
		var v verdict
		switch verb {
		case "":
			v = small(routeInfo, "GET")
		case "send":
			v = small(routeSend, "POST")
			v.bodyLimit = s.opts.MaxMessageSize
		case "disconnect":
			v = small(routeDisconnect, "POST")
		default:
			return verdict{status: fasthttp.StatusNotFound, msg: "not found"}
		}
		if v.status == 0 && !conntable.ValidID(id) {
			return verdict{route: v.route, status: fasthttp.StatusNotFound, msg: "unknown connection"}
		}
		v.id = id
		return v
	case s.pprof != nil && strings.HasPrefix(path, "/debug/pprof/"):
		return small(routePprof, "")
	}
	return verdict{status: fasthttp.StatusNotFound, msg: "not found"}
}

// strictLines reports whether the header block as received has no bare LF and no obs-fold,
// which fasthttp accepts (RFC 9112 §2.2, §5.2): a proxy in front that splits lines
// differently would see other headers than we do. fasthttp itself refuses NUL, bare CR
// and other control bytes.
func strictLines(raw []byte) bool {
	for i, c := range raw {
		switch {
		case c == '\n' && (i == 0 || raw[i-1] != '\r'):
			return false
		case (c == ' ' || c == '\t') && (i == 0 || raw[i-1] == '\n'):
			return false
		}
	}
	return true
}

// headerReceived runs once a request head is read, before any of its body. A refused
// request's body is dropped unread (the handler answers and closes the connection); an
// accepted one may bring a body up to its route's limit, within BodyTimeout. fasthttp
// answers a declared length over the limit with 413 without reading it.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	uri := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(uri)
	if err := uri.Parse(nil, h.RequestURI()); err != nil {
		return fasthttp.RequestConfig{} // fasthttp answers 400 when it parses the URI itself
	}
	v := s.judge(h, string(uri.Path()))
	if v.status != 0 {
		h.SetContentLength(0) // also drops Transfer-Encoding: nothing more is read
		h.Del(fasthttp.HeaderExpect)
		return fasthttp.RequestConfig{}
	}
	return fasthttp.RequestConfig{ReadTimeout: s.opts.BodyTimeout, MaxRequestBodySize: v.bodyLimit}
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	v := s.judge(&ctx.Request.Header, string(ctx.Path()))
	if v.status != 0 {
		s.refuse(ctx, v)
		return
	}
	if s.opts.Token != "" && !s.authorized(&ctx.Request.Header) {
		ctx.SetConnectionClose() // /readyz probes: no kept-alive slot without the token
	}
	switch v.route {
	case routeReadyz:
		s.readyz(ctx)
	case routeStatus:
		s.status(ctx)
	case routeMetrics:
		s.metrics(ctx)
	case routePprof:
		s.pprof(ctx)
	default:
		s.socket(ctx, v)
	}
}

// refuse answers a request its head refused, and closes the connection: whatever body the
// caller sent after the head is never read.
func (s *Server) refuse(ctx *fasthttp.RequestCtx, v verdict) {
	switch v.status {
	case fasthttp.StatusUnauthorized:
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="socketdock"`)
	case fasthttp.StatusMethodNotAllowed:
		ctx.Response.Header.Set("Allow", v.allow)
	case fasthttp.StatusNotFound:
		if v.route == routeSend {
			s.opts.Metrics.SendResults.WithLabelValues("unknown").Inc()
		}
	}
	plain(ctx, v.status, v.msg)
	ctx.SetConnectionClose()
}

func (s *Server) authorized(h *fasthttp.RequestHeader) bool {
	got, ok := bytes.CutPrefix(h.Peek("Authorization"), []byte("Bearer "))
	return ok && subtle.ConstantTimeCompare(got, []byte(s.opts.Token)) == 1
}

// socket serves /socket/<id>, /socket/<id>/send and /socket/<id>/disconnect.
func (s *Server) socket(ctx *fasthttp.RequestCtx, v verdict) { s.serveSocket(ctx, v, true) }

func (s *Server) serveSocket(ctx *fasthttp.RequestCtx, v verdict, forward bool) {
	c := s.opts.Table.Get(v.id)
	if c == nil && forward && s.opts.Forward != nil && s.opts.Forward.Remote(v.id) {
		op := OpInfo
		switch v.route {
		case routeSend:
			op = OpSend
		case routeDisconnect:
			op = OpDisconnect
		}
		s.opts.Forward.Forward(ctx, op, v.id)
		return
	}
	if c == nil {
		if v.route == routeSend {
			s.opts.Metrics.SendResults.WithLabelValues("unknown").Inc()
		}
		plain(ctx, fasthttp.StatusNotFound, "unknown connection")
		return
	}
	switch v.route {
	case routeSend:
		s.send(ctx, c)
	case routeDisconnect:
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
	if s.opts.Forward != nil && string(ctx.QueryArgs().Peek("scope")) == "cluster" {
		s.opts.Forward.ClusterStatus(ctx)
		return
	}
	up := time.Since(s.opts.Started)
	writeJSON(ctx, map[string]any{
		"uptime":      map[string]int64{"ns": up.Nanoseconds(), "seconds": int64(up / time.Second)},
		"connections": map[string]any{"active": s.opts.Table.Active(), "lifetime": s.opts.Table.Lifetime()},
	})
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	switch {
	case s.draining.Load():
		plain(ctx, fasthttp.StatusServiceUnavailable, "draining")
	case !s.ready.Load():
		plain(ctx, fasthttp.StatusServiceUnavailable, "starting")
	default:
		plain(ctx, fasthttp.StatusOK, "ready")
	}
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
// 431 for an oversized head, 408 for a head or body that took too long, 400 otherwise.
func requestError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		plain(ctx, fasthttp.StatusRequestEntityTooLarge, "message over the size limit")
	case errors.As(err, &small):
		plain(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request header too large")
	case errors.As(err, &netErr) && netErr.Timeout():
		plain(ctx, fasthttp.StatusRequestTimeout, "request not received in time")
	default:
		plain(ctx, fasthttp.StatusBadRequest, "bad request")
	}
	ctx.SetConnectionClose()
}

type fasthttpLogger struct{ log zerolog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) { l.log.Debug().Msgf(format, args...) }
