// Package upstream is the WebSocket upstream backend (CONTRACT §9, --backend ws): each client
// connection, WebSocket or poll session, is linked to a WebSocket connection of its own to
// the upstream URL. Messages pass both ways whole, with their type and bytes, in order;
// control frames stay on their hop; closes are mapped (close.go).
//
// ws:// upstreams are driven by event loops (loop.go), so an idle pair costs no goroutine: a
// WebSocket client's upstream is enrolled in the client's own gateway loop, where the two hops
// pass messages by plain calls (the gateway hands such connections their events,
// gateway.Enrolled); a poll session's upstream goes to the loops of a gnet Client of ours.
// gnet has no TLS, so a wss:// upstream gets a reader goroutine, and a writer goroutine while
// it has frames to write (tls.go).
//
// Flow control (flow.go): client to upstream, the frames waiting for the upstream socket are
// bounded like the HTTP backend's inbound queue (a client that floods a stalled upstream is
// closed with 1013); upstream to client, a message the client's outbound buffer cannot take
// stops the upstream's reading until the client has taken it, so TCP pushes back on the
// upstream.
package upstream

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/socketdock/socketdock/pkg/limits"

	"github.com/panjf2000/gnet/v2"
	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/gateway"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// Options configures the upstream backend. Zero values mean the defaults noted.
type Options struct {
	URL            string        // ws:// or wss://, required
	DialTimeout    time.Duration // connect, TLS and handshake; default 10s
	PassPath       bool          // append the client's path and query to URL
	ErrorMessages  bool          // --upstream-errors message: a JSON error message before 1014
	Allow          []string      // URL prefixes a poll create's target may start with
	PingInterval   time.Duration // silence after which the upstream is pinged; default 20s
	PingTimeout    time.Duration // an unanswered ping this old loses the upstream; default 20s
	WriteTimeout   time.Duration // an upstream that reads none of our bytes this long is lost; default 30s
	CloseTimeout   time.Duration // wait for the upstream's close echo; default 5s
	RootCAs        *x509.CertPool
	ForwardHeaders []string // client request headers passed on (lower-case); nil: every end-to-end one
	MaxMessageSize int      // largest upstream message; default 4 MiB
	MaxQueue       int      // client messages waiting for the upstream socket; default 256
	MaxQueueBytes  int      // their bytes; default 8 MiB
	Loops          int      // gnet client event loops; default one per CPU

	// Audit, when set, hears Opened and Closed of every connection (--connect-uri and
	// --disconnect-uri beside the upstream); its failures never touch the proxied pair.
	Audit backend.Backend

	Logger  zerolog.Logger
	Metrics *metrics.Metrics
}

func (o *Options) setDefaults() {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 20 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 20 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = limits.MaxMessageSize
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 256
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = limits.MaxInboundBytes
	}
}

// Backend links every client connection to an upstream WebSocket connection. It implements
// backend.Backend and backend.Linker.
type Backend struct {
	opts   Options
	target *target
	log    zerolog.Logger
	m      *instruments

	cli    *gnet.Client
	events *clientEvents

	links backend.Pending // upstream sockets not yet closed
}

// New validates the URL and prepares the gnet client; Start starts its loops.
func New(opts Options) (*Backend, error) {
	opts.setDefaults()
	t, err := parseTarget(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream URL %q: %w", opts.URL, err)
	}
	b := &Backend{opts: opts, target: t, log: opts.Logger, m: newInstruments(opts.Metrics)}
	b.events = newClientEvents(b)
	return b, nil
}

// Start starts the event loops that drive ws:// upstreams.
func (b *Backend) Start() error {
	cli, err := gnet.NewClient(b.events,
		gnet.WithNumEventLoop(b.opts.Loops),
		gnet.WithMulticore(b.opts.Loops <= 0),
		gnet.WithTicker(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gateway.GnetLogger(b.log)),
	)
	if err != nil {
		return fmt.Errorf("upstream client: %w", err)
	}
	if err := cli.Start(); err != nil {
		return fmt.Errorf("upstream client: %w", err)
	}
	b.cli = cli
	return nil
}

// LinkTimeout implements backend.Linker.
func (b *Backend) LinkTimeout() time.Duration { return b.opts.DialTimeout }

// TargetAllowed implements backend.Linker: target must start with one of the allowed prefixes.
func (b *Backend) TargetAllowed(target string) bool {
	for _, prefix := range b.opts.Allow {
		if strings.HasPrefix(target, prefix) {
			return true
		}
	}
	return false
}

// Link implements backend.Linker: it dials the upstream for c and runs its handshake.
func (b *Backend) Link(c *conntable.Conn, req backend.LinkRequest) backend.LinkResult {
	t := b.target
	if req.Target != "" {
		var err error
		if !b.TargetAllowed(req.Target) {
			return backend.LinkResult{Status: 403, Reason: "target not allowed"}
		}
		if t, err = parseTarget(req.Target); err != nil {
			return backend.LinkResult{Status: 403, Reason: "target not allowed"}
		}
	}
	if b.opts.PassPath {
		t = t.withClientPath(c.Path(), req.Poll)
	}
	d, res, err := b.dial(t, c, req.Protocols)
	b.m.dials.WithLabelValues(statusText(res.Status)).Inc()
	if err != nil {
		ev := b.log.Warn()
		if res.Status < 500 { // the upstream's own refusal, passed on: not the relay's problem
			ev = b.log.Debug()
		}
		ev.Str("connection_id", c.ID).Str("upstream", t.display).Int("status", res.Status).Err(err).Msg("upstream dial failed")
		return res
	}
	b.links.Add()
	b.m.links.Inc()
	c.BackendState = newPair(b, c, t, d)
	return res
}

func pairOf(c *conntable.Conn) *pair {
	p, _ := c.BackendState.(*pair)
	return p
}

// Opened implements backend.Backend: the client has its 101; relaying starts.
func (b *Backend) Opened(c *conntable.Conn) {
	p := pairOf(c)
	if p == nil {
		return
	}
	if b.opts.Audit != nil {
		p.audit = auditConn(c, b.log)
		b.opts.Audit.Opened(p.audit)
	}
	if l, ok := c.Transport.(interface{ EventLoop() gnet.EventLoop }); ok && !p.secure {
		p.loop = l.EventLoop()
		p.direct, _ = c.Transport.(loopSender)
	}
	p.opened()
}

// Message implements backend.Backend: one client message for the upstream.
func (b *Backend) Message(c *conntable.Conn, t conntable.MessageType, payload []byte) (backend.Reply, bool, error) {
	if p := pairOf(c); p != nil {
		return backend.Reply{}, false, p.fromClient(t, payload)
	}
	return backend.Reply{}, false, nil
}

// Closed implements backend.Backend: the client is gone; the upstream gets its close code.
func (b *Backend) Closed(c *conntable.Conn, code int, reason string) {
	p := pairOf(c)
	if p == nil {
		return
	}
	p.clientClosed(code, reason)
	if p.audit != nil {
		b.opts.Audit.Closed(p.audit, code, reason)
	}
}

// unlinked records that a pair's upstream socket is closed.
func (b *Backend) unlinked() {
	b.m.links.Dec()
	b.links.Done()
}

// Drain waits until every upstream connection has closed (the hub's drain closed their
// clients with 1001, which closes the upstreams with 1001), then stops the event loops.
func (b *Backend) Drain(ctx context.Context) error {
	err := b.waitUnlinked(ctx)
	if b.opts.Audit != nil {
		if aerr := b.opts.Audit.Drain(ctx); err == nil {
			err = aerr
		}
	}
	if b.cli != nil {
		_ = b.cli.Stop()
		b.cli = nil
	}
	return err
}

func (b *Backend) waitUnlinked(ctx context.Context) error {
	if err := b.links.Wait(ctx); err != nil {
		return fmt.Errorf("upstream drain: %d upstream connections still open: %w", b.links.Count(), err)
	}
	return nil
}
