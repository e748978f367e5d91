// Package hub is what every transport shares around its connections: admission against the
// connection limits, the once-only open and close bookkeeping (connection table, metrics,
// backend notifications), and drain. A transport (the WebSocket gateway, the long-poll
// sessions) only moves bytes; it calls the hub when a connection opens and when it ends.
package hub

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// Admission refusals; each is answered 503 (with Retry-After for the limits).
var (
	ErrDraining       = errors.New("server is shutting down")
	ErrMaxConnections = errors.New("too many connections")
	ErrMaxPerIP       = errors.New("too many connections from this address")
)

// Options configures a Hub. Zero limits mean unlimited.
type Options struct {
	MaxConnections      int
	MaxConnectionsPerIP int

	// NewID makes connection ids; nil: random ones (conntable.NewConn). A cluster sets one
	// that tags ids with the instance (conntable.NewTaggedID).
	NewID func() string

	Table   *conntable.Table
	Backend backend.Backend
	Metrics *metrics.Metrics
	Logger  zerolog.Logger
}

// Hub admits, opens and ends connections for every transport.
type Hub struct {
	opts     Options
	admitted atomic.Int64 // connections holding a slot: opened, or admitted and not yet opened
	draining atomic.Bool

	perIPMu sync.Mutex
	perIP   map[string]*ipCount
}

// ipCount is one address's connections against the per-IP limit; every ticket from that
// address points to it.
type ipCount struct {
	ip string
	n  int
}

// New returns a Hub.
func New(opts Options) *Hub {
	return &Hub{opts: opts, perIP: make(map[string]*ipCount)}
}

// Ticket is a connection's slot against the limits, from Admit until Release or Closed.
// The zero Ticket holds nothing. It is one pointer, so an idle connection pays 8 bytes.
type Ticket struct {
	ip *ipCount // the address's count against the per-IP limit, anyIP when that is off, nil when released
}

// anyIP marks a held ticket that counts against no per-IP limit.
var anyIP = &ipCount{ip: "*"}

// Held reports whether t holds a slot.
func (t Ticket) Held() bool { return t.ip != nil }

// Admit reserves a slot for a new connection from remote, or says why not.
func (h *Hub) Admit(remote net.Addr) (Ticket, error) {
	if h.draining.Load() {
		return Ticket{}, ErrDraining
	}
	if n := h.admitted.Add(1); h.opts.MaxConnections > 0 && n > int64(h.opts.MaxConnections) {
		h.admitted.Add(-1)
		return Ticket{}, ErrMaxConnections
	}
	max := h.opts.MaxConnectionsPerIP
	if max <= 0 {
		return Ticket{ip: anyIP}, nil
	}
	ip := remoteIP(remote)
	h.perIPMu.Lock()
	defer h.perIPMu.Unlock()
	c := h.perIP[ip]
	if c == nil {
		c = &ipCount{ip: ip}
		h.perIP[ip] = c
	}
	if c.n >= max {
		h.admitted.Add(-1)
		return Ticket{}, ErrMaxPerIP
	}
	c.n++
	return Ticket{ip: c}, nil
}

// Release gives back a ticket's slot; releasing a zero or released ticket does nothing.
func (h *Hub) Release(t *Ticket) {
	c := t.ip
	if c == nil {
		return
	}
	t.ip = nil
	h.admitted.Add(-1)
	if c == anyIP {
		return
	}
	h.perIPMu.Lock()
	if c.n--; c.n <= 0 {
		delete(h.perIP, c.ip)
	}
	h.perIPMu.Unlock()
}

// NewConn builds the record of a connection about to open.
func (h *Hub) NewConn(t conntable.Transport, remote net.Addr, headers [][2]string, path string) *conntable.Conn {
	c := conntable.NewConn(h.opts.NewID)
	c.ConnectedAt = time.Now().UnixNano()
	c.RemoteAddr, c.Transport = remote, t
	if headers != nil || path != "" {
		c.Request = &conntable.Request{Headers: headers, Path: path}
	}
	return c
}

// Open announces c to the backend, then makes it reachable through the table (the backend
// hears of a connection before a send can be routed to it). A connection that opens while a
// drain runs is closed with 1001 at once: either Drain's sweep or this check sees it.
func (h *Hub) Open(c *conntable.Conn) {
	h.opts.Backend.Opened(c)
	c.Request = nil // the backend has taken what it needs; an idle connection keeps no request
	h.opts.Table.Add(c)
	if h.draining.Load() {
		c.Transport.Close(conntable.CloseGoingAway, "server shutting down")
	}
	h.opts.Logger.Debug().Str("connection_id", c.ID).Str("transport", c.Transport.Name()).Msg("connected")
}

// Closed does a connection's end-of-life bookkeeping once, however often it is called: the
// table forgets it, its slot is released, the close is counted, and the backend is told.
func (h *Hub) Closed(c *conntable.Conn, t *Ticket, code int, reason string) {
	h.Release(t)
	if !c.MarkEnded() {
		return
	}
	h.opts.Table.Remove(c.ID)
	h.opts.Metrics.Closed(code)
	h.opts.Backend.Closed(c, code, reason)
	h.opts.Logger.Debug().Str("connection_id", c.ID).Int("code", code).Str("reason", reason).Msg("disconnected")
}

// Abandoned tells the backend that a connection it had accepted before the open (connect
// mode authorize) will never open: every connect the backend saw gets one disconnect.
func (h *Hub) Abandoned(c *conntable.Conn, t *Ticket, code int, reason string) {
	h.Release(t)
	if !c.MarkEnded() {
		return
	}
	h.opts.Metrics.Closed(code)
	h.opts.Backend.Closed(c, code, reason)
}

// Draining reports whether Drain has been called.
func (h *Hub) Draining() bool { return h.draining.Load() }

// Drain refuses new connections from now on and closes every open one with 1001.
func (h *Hub) Drain() {
	h.draining.Store(true)
	h.opts.Table.Range(func(c *conntable.Conn) bool {
		c.Transport.Close(conntable.CloseGoingAway, "server shutting down")
		return true
	})
}

// Admitted is the number of connections holding a slot.
func (h *Hub) Admitted() int64 { return h.admitted.Load() }

func remoteIP(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
