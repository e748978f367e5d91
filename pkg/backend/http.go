package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/socketdock/socketdock/pkg/limits"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"

	"github.com/socketdock/socketdock/internal/redact"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// HTTPOptions configures the HTTP backend. Zero values mean the defaults noted.
type HTTPOptions struct {
	MessageURI    string // required
	ConnectURI    string // optional: no connect POST when empty
	DisconnectURI string // optional: no disconnect POST when empty
	Endpoint      string // base URL of the control listener, without a trailing slash

	Timeout         time.Duration // per attempt; default 30s
	Retries         int           // extra attempts for retryable failures; default 0
	RetryBaseDelay  time.Duration // first backoff; default 100ms
	RetryMaxDelay   time.Duration // largest backoff and Retry-After honoured; default 5s
	MaxConns        int           // connections per backend host; default 512
	MaxQueue        int           // queued messages per client connection; default 256
	MaxQueueBytes   int           // message bytes per client connection, queued or being POSTed; default 8 MiB
	MaxResponseBody int           // default 4 MiB
	ReplyInResponse bool

	// Security (docs/SECURITY.md, sign.go, authorize.go).
	Secret         []byte   // signs every POST (HeaderTimestamp, HeaderSignature) when set
	ForwardHeaders []string // upgrade headers put into the connect POST (lower-case); nil: all
	Authorize      bool     // connect POST happens in Authorize, before the upgrade; Opened skips it

	Logger  zerolog.Logger
	Metrics *metrics.Metrics
}

// HTTP POSTs every event as JSON (CONTRACT §3). Each connection has its own queue served by
// at most one goroutine, so its POSTs go one at a time and in order; the goroutine exists
// only while the queue is not empty.
type HTTP struct {
	opts    HTTPOptions
	targets [3]target // by eventKind, resolved once in NewHTTP
	clients []*fasthttp.HostClient
	conns   *connTracker
	log     zerolog.Logger
	m       *metrics.Metrics

	busy Pending // connections with queued or in-flight events
}

// eventKind is what a queued event tells the backend.
type eventKind uint8

const (
	evConnect eventKind = iota
	evMessage
	evDisconnect
)

var kindNames = [...]string{evConnect: "connect", evMessage: "message", evDisconnect: "disconnect"}

// target is where one kind of event goes: its URI, the client for that URI's host (shared
// by URIs on the same host), and its latency histogram.
type target struct {
	uri     string
	logURI  string // uri without userinfo, query and fragment, for errors and logs
	client  *fasthttp.HostClient
	latency prometheus.Observer
}

type event struct {
	kind eventKind
	op   conntable.MessageType // of a message, to pick the reply's frame type
	raw  bool                  // data is a message's payload, streamed as JSON when POSTed (see connQueue)
	seq  uint64                // the event's number on its connection, from 1: its id is <connection_id>-<seq>
	data []byte                // the JSON body, encoded on the event loop; or the payload, when raw
}

// connQueue is the per-connection state kept in Conn.BackendState.
//
// The inbound bound counts the bytes the relay holds for a connection's messages, queued
// or being POSTed, as they are held. A message of up to streamAbove bytes is held as its
// JSON body, encoded on the event loop (the payload must be copied there anyway; encoding
// is that copy), and counted at the body's size: escaping can make it six times the
// payload (a NUL is \u0000), and that is what is held. A larger message is held as a copy
// of its payload and streamed into JSON when POSTed (messageStream), so escaping neither
// multiplies what is held nor stalls the loop. One message always fits when nothing is
// held: a connection holds at most max(MaxQueueBytes, one message) and a stream buffer.
type connQueue struct {
	mu       sync.Mutex
	seq      uint64 // events queued so far
	events   []event
	messages int  // queued message events
	bytes    int  // bytes held for queued messages and the one being POSTed
	running  bool // a goroutine is serving the queue
	failed   bool // a POST failed for good; the client was told, later messages are not sent
}

// NewHTTP validates the URIs and prepares one fasthttp.HostClient per backend host.
func NewHTTP(opts HTTPOptions) (*HTTP, error) {
	if opts.MessageURI == "" {
		return nil, errors.New("http backend needs a message URI")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.RetryBaseDelay <= 0 {
		opts.RetryBaseDelay = 100 * time.Millisecond
	}
	if opts.RetryMaxDelay <= 0 {
		opts.RetryMaxDelay = 5 * time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 512
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 256
	}
	if opts.MaxQueueBytes <= 0 {
		opts.MaxQueueBytes = limits.MaxInboundBytes
	}
	if opts.MaxResponseBody <= 0 {
		opts.MaxResponseBody = limits.MaxMessageSize
	}
	b := &HTTP{opts: opts, conns: newConnTracker(), log: opts.Logger, m: opts.Metrics}
	byHost := map[string]*fasthttp.HostClient{}
	for kind, uri := range [...]string{evConnect: opts.ConnectURI, evMessage: opts.MessageURI, evDisconnect: opts.DisconnectURI} {
		if uri == "" {
			continue
		}
		key, addr, tls, err := hostOf(uri)
		if err != nil {
			return nil, err
		}
		hc, ok := byHost[key]
		if !ok {
			hc = &fasthttp.HostClient{
				Addr:                          addr,
				IsTLS:                         tls,
				Dial:                          b.conns.dialer(min(opts.Timeout, 10*time.Second)),
				Name:                          "socketdock",
				MaxConns:                      opts.MaxConns,
				MaxConnWaitTimeout:            opts.Timeout,
				MaxIdleConnDuration:           30 * time.Second,
				ReadTimeout:                   opts.Timeout,
				WriteTimeout:                  opts.Timeout,
				MaxResponseBodySize:           opts.MaxResponseBody,
				WriteBufferSize:               16 << 10, // a 4 KiB message's POST leaves in one write
				ReadBufferSize:                16 << 10,
				DisableHeaderNamesNormalizing: false,
				RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
			}
			byHost[key] = hc
			b.clients = append(b.clients, hc)
		}
		b.targets[kind] = target{uri: uri, logURI: redact.URI(uri), client: hc, latency: opts.Metrics.BackendLatency.WithLabelValues(kindNames[kind])}
	}
	return b, nil
}

// hostOf splits a backend URI into its client key and dial address.
func hostOf(uri string) (key, addr string, tls bool, err error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", "", false, fmt.Errorf("backend URI %s: not a URL", redact.URI(uri)) // err repeats the URI
	}
	switch u.Scheme {
	case "http":
	case "https":
		tls = true
	default:
		return "", "", false, fmt.Errorf("backend URI %s: scheme must be http or https", redact.URI(uri))
	}
	if u.Host == "" {
		return "", "", false, fmt.Errorf("backend URI %s: no host", redact.URI(uri))
	}
	addr = u.Host
	if u.Port() == "" {
		if tls {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	return u.Scheme + "://" + u.Host, addr, tls, nil
}

// queueOf returns c's queue, creating it on first use: a connection that never sends costs
// no queue. Calls for one connection never overlap (Opened, Message, Closed), so no lock is needed.
func queueOf(c *conntable.Conn) *connQueue {
	q, _ := c.BackendState.(*connQueue)
	if q == nil {
		q = &connQueue{}
		c.BackendState = q
	}
	return q
}

// Opened queues the connect POST when a connect URI is set, and forgets the headers. An
// authorized connection's connect POST, its event 1, happened in Authorize.
func (b *HTTP) Opened(c *conntable.Conn) {
	if b.opts.ConnectURI != "" && !b.opts.Authorize {
		body := AppendConnect(nil, SubjectOf(b.opts.Endpoint, c), c.Path(), forwardable(c.Headers(), b.opts.ForwardHeaders))
		b.enqueue(c, queueOf(c), event{kind: evConnect, data: body})
	}
	c.Request = nil
}

// Message queues the message POST; it fails with ErrInboundFull when the connection is at
// its bound in messages or bytes. A single message always fits when the connection holds
// nothing.
func (b *HTTP) Message(c *conntable.Conn, op conntable.MessageType, payload []byte) (Reply, bool, error) {
	if len(payload) == 0 {
		return Reply{}, false, nil // not POSTed (CONTRACT §3, compat); the transport counts it
	}
	ev := event{kind: evMessage, op: op}
	if len(payload) > streamAbove {
		ev.raw, ev.data = true, append([]byte(nil), payload...)
	} else {
		ev.data = AppendMessage(make([]byte, 0, jsonSize(len(payload))), SubjectOf(b.opts.Endpoint, c), op, payload)
	}
	if !b.enqueue(c, queueOf(c), ev) {
		return Reply{}, false, ErrInboundFull
	}
	return Reply{}, false, nil
}

// jsonSize guesses a message body's size: base64 growth plus the meta object.
func jsonSize(n int) int { return n*4/3 + 256 }

// streamAbove is the largest payload whose JSON body is built whole, on the event loop; a
// larger one is streamed when POSTed.
const streamAbove = 64 << 10

// Closed queues the disconnect POST, after everything the connection queued before.
func (b *HTTP) Closed(c *conntable.Conn, code int, reason string) {
	if b.opts.DisconnectURI == "" {
		return
	}
	b.enqueue(c, queueOf(c), event{kind: evDisconnect, data: AppendDisconnect(nil, SubjectOf(b.opts.Endpoint, c), code, reason)})
}

// enqueue adds ev to c's queue and starts its goroutine if none runs. A message is refused
// (false) when MaxQueue messages wait or the bytes held would pass MaxQueueBytes; one always
// fits when nothing is held.
func (b *HTTP) enqueue(c *conntable.Conn, q *connQueue, ev event) bool {
	q.mu.Lock()
	if ev.kind == evMessage {
		if q.messages >= b.opts.MaxQueue || (q.bytes > 0 && q.bytes+len(ev.data) > b.opts.MaxQueueBytes) {
			q.mu.Unlock()
			return false
		}
		q.messages++
		q.bytes += len(ev.data)
	}
	q.seq++
	ev.seq = q.seq
	if b.opts.Authorize {
		ev.seq++ // the connect POST in Authorize was event 1
	}
	q.events = append(q.events, ev)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		b.busy.Add()
		go b.serve(c, q)
	}
	return true
}

// serve delivers a connection's events one at a time until its queue is empty.
func (b *HTTP) serve(c *conntable.Conn, q *connQueue) {
	defer b.idle()
	posted := 0 // bytes held for the message just POSTed, counted until its POST ended
	for {
		q.mu.Lock()
		q.bytes -= posted
		posted = 0
		if len(q.events) == 0 {
			q.running = false
			q.events = nil // an idle connection keeps no queue memory
			q.mu.Unlock()
			return
		}
		ev := q.events[0]
		q.events[0] = event{}
		q.events = q.events[1:]
		if ev.kind == evMessage {
			q.messages--
			posted = len(ev.data)
		}
		failed := q.failed
		q.mu.Unlock()

		switch ev.kind {
		case evConnect:
			if _, err := b.post(c, ev); err != nil {
				b.fail(c, q, err)
			}
		case evMessage:
			if failed {
				continue // the client already has a close code saying messages were not delivered
			}
			resp, err := b.post(c, ev)
			if err != nil {
				b.fail(c, q, err)
				continue
			}
			if b.opts.ReplyInResponse && resp.body != nil {
				b.replyInResponse(c, resp)
			}
		case evDisconnect:
			if _, err := b.post(c, ev); err != nil {
				b.log.Warn().Str("connection_id", c.ID).Err(err).Msg("disconnect POST failed")
			}
		}
	}
}

// replyInResponse hands the backend's answer to the client and waits for the transport's
// verdict before the next POST: gnet's task queue does not keep the order of tasks under
// load (a task can overflow into its second queue and run after a later one), so a reply
// must be written before the next can be queued.
func (b *HTTP) replyInResponse(c *conntable.Conn, resp postResult) {
	if err := c.Transport.Send(conntable.TypeForContent(resp.contentType), resp.body); err != nil && !errors.Is(err, conntable.ErrClosing) {
		b.log.Warn().Str("connection_id", c.ID).Err(err).Msg("reply in response not delivered")
	}
}

func (b *HTTP) fail(c *conntable.Conn, q *connQueue, err error) {
	q.mu.Lock()
	q.failed = true
	q.mu.Unlock()
	var de *DeliveryError
	if !errors.As(err, &de) {
		de = &DeliveryError{Code: conntable.CloseInternalError, Reason: "backend unavailable", Err: err}
	}
	b.log.Warn().Str("connection_id", c.ID).Int("close_code", de.Code).Err(de.Err).Msg("backend did not accept; closing client")
	c.Transport.Close(de.Code, de.Reason)
}

func (b *HTTP) idle() { b.busy.Done() }

// Drain waits until no connection has queued or in-flight events.
func (b *HTTP) Drain(ctx context.Context) error {
	if err := b.busy.Wait(ctx); err != nil {
		return fmt.Errorf("backend drain: %d connections still have events queued: %w", b.busy.Count(), err)
	}
	for _, hc := range b.clients { // nothing left to send: let the backend's sockets go
		hc.CloseIdleConnections()
	}
	return nil
}

// DeliveryError is a POST that failed for good, with the close code the client gets.
type DeliveryError struct {
	Code   int
	Reason string
	Err    error
}

func (e *DeliveryError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *DeliveryError) Unwrap() error { return e.Err }

type postResult struct {
	contentType []byte
	body        []byte // nil when empty
}

// post delivers one event of connection id, retrying what CONTRACT §3 allows: transport
// failures before the request went out, and 429/503 answers, with capped exponential
// backoff and full jitter. Every attempt carries the same event id. A raw message is
// streamed (connQueue says why).
func (b *HTTP) post(c *conntable.Conn, ev event) (postResult, error) {
	id := c.ID
	kind, body := ev.kind, ev.data
	var stream *messageStream
	streamSize := 0
	if ev.raw {
		body = nil
		stream = newMessageStream(SubjectOf(b.opts.Endpoint, c), ev.op, ev.data)
		streamSize = stream.size()
	}
	eventID := id + "-" + strconv.FormatUint(ev.seq, 10)
	tg := &b.targets[kind]
	hc, logURI := tg.client, tg.logURI
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(tg.uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	b.setEvent(req, kind, eventID)

	latency := tg.latency
	raceRetried := false // the keep-alive race is retried once; a second reset is the backend's doing
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			b.m.BackendRetries.Inc()
		}
		if stream != nil {
			stream.rewind()
			req.SetBodyStream(stream, streamSize) // consumed by each attempt
		}
		b.sign(req, kind, eventID, body, stream)
		start := time.Now()
		err := hc.DoTimeout(req, resp, b.opts.Timeout)
		latency.Observe(time.Since(start).Seconds())
		if err == nil {
			b.conns.served(resp.LocalAddr(), resp.RemoteAddr())
		}
		var wait time.Duration
		switch {
		case err == nil && resp.StatusCode() >= 200 && resp.StatusCode() < 300:
			var res postResult
			if len(resp.Body()) > 0 {
				res = postResult{contentType: append([]byte(nil), resp.Header.ContentType()...), body: append([]byte(nil), resp.Body()...)}
			}
			return res, nil
		case err == nil && (resp.StatusCode() == 429 || resp.StatusCode() == 503):
			b.m.BackendErrors.WithLabelValues(statusClass(resp.StatusCode())).Inc()
			wait = retryAfter(resp.Header.Peek("Retry-After"), time.Now())
			if attempt >= b.opts.Retries {
				return postResult{}, &DeliveryError{Code: conntable.CloseInternalError,
					Reason: "backend unavailable: " + statusText(resp.StatusCode()), Err: errors.New("retries exhausted")}
			}
		case err == nil:
			s := resp.StatusCode()
			b.m.BackendErrors.WithLabelValues(statusClass(s)).Inc()
			code := conntable.CloseInternalError
			if s >= 400 && s < 500 {
				code = conntable.ClosePolicyViolation
			}
			return postResult{}, &DeliveryError{Code: code, Reason: "backend answered " + statusText(s), Err: fmt.Errorf("POST %s: status %d", logURI, s)}
		case retryable(err, b.conns.wasPooled(resp.LocalAddr(), resp.RemoteAddr()) && !raceRetried):
			raceRetried = raceRetried || isReset(err)
			b.m.BackendErrors.WithLabelValues("transport").Inc()
			// A pooled connection the backend had closed (its keep-alive timeout is shorter
			// than ours) means the rest of the pool is likely stale too: without this, every
			// retry can pick another dead connection and exhaust the budget (soak finding).
			hc.CloseIdleConnections()
			if attempt >= b.opts.Retries {
				return postResult{}, &DeliveryError{Code: conntable.CloseInternalError, Reason: "backend unreachable", Err: fmt.Errorf("POST %s: %w", logURI, err)}
			}
		case errors.Is(err, fasthttp.ErrTimeout):
			b.m.BackendErrors.WithLabelValues("timeout").Inc()
			return postResult{}, &DeliveryError{Code: conntable.CloseInternalError, Reason: "backend timeout", Err: fmt.Errorf("POST %s: %w", logURI, err)}
		default:
			b.m.BackendErrors.WithLabelValues("transport").Inc()
			return postResult{}, &DeliveryError{Code: conntable.CloseInternalError, Reason: "backend failed", Err: fmt.Errorf("POST %s: %w", logURI, err)}
		}
		time.Sleep(b.backoff(attempt, wait))
	}
}

// backoff is the pause before retry attempt+1: full jitter over a doubling ceiling, or the
// server's Retry-After, both capped by RetryMaxDelay.
func (b *HTTP) backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, b.opts.RetryMaxDelay)
	}
	ceiling := min(b.opts.RetryBaseDelay<<min(attempt, 20), b.opts.RetryMaxDelay)
	return ceiling/2 + rand.N(ceiling/2+1)
}

// retryAfter parses a Retry-After value (seconds or an HTTP date); 0 when absent or invalid.
func retryAfter(v []byte, now time.Time) time.Duration {
	if len(v) == 0 {
		return 0
	}
	if s, err := strconv.Atoi(string(v)); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := fasthttp.ParseHTTPDate(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// retryable reports whether err happened before the request can have reached the backend,
// so sending it again cannot make the backend act twice: a failed dial, no free connection,
// or a pooled keep-alive connection the backend had already closed (the keep-alive race).
// The same reset on a fresh connection is not retried: the backend may have read the request.
func retryable(err error, pooled bool) bool {
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		return true
	case errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, fasthttp.ErrNoFreeConns), errors.Is(err, syscall.ECONNREFUSED):
		return true
	case isReset(err):
		return pooled
	}
	return false
}

// isReset reports a connection the backend closed or reset under a request.
func isReset(err error) bool {
	return errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func statusClass(s int) string {
	switch {
	case s == 429:
		return "status_429"
	case s == 503:
		return "status_503"
	case s >= 500:
		return "status_5xx"
	case s >= 400:
		return "status_4xx"
	}
	return "status_other"
}

func statusText(s int) string {
	return strconv.Itoa(s) + " " + http.StatusText(s)
}
