// Package gateway is the public listener: a gnet event handler that serves WebSocket upgrades,
// RFC 6455 framing, server pings and /healthz, and hands complete messages to the backend.
package gateway

import (
	"time"

	"github.com/socketdock/socketdock/pkg/limits"

	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/hub"
	"github.com/socketdock/socketdock/pkg/longpoll"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// Options configures a Server. Zero values mean the defaults noted.
type Options struct {
	Addr      string // host:port to listen on
	Loops     int    // event loops; default: one per CPU
	ReusePort bool   // SO_REUSEPORT, so several processes can share the port

	MaxMessageSize   int           // default 4 MiB
	MaxOutboundBytes int           // bytes queued for one client, whatever wrote them (conn.go fits); default 4 MiB + 1 KiB, so one largest message fits
	MaxHeaderBytes   int           // upgrade request head; default 8 KiB
	MaxHeaders       int           // header lines in the upgrade request; default wsframe.DefaultMaxHeaders
	PingInterval     time.Duration // default 20s
	PingTimeout      time.Duration // default 20s
	HandshakeTimeout time.Duration // default 10s
	WriteTimeout     time.Duration // a client that reads nothing for this long is closed; default 30s
	CloseTimeout     time.Duration // wait for the client's close echo; default 5s

	// Security (docs/SECURITY.md, security.go).
	AllowedOrigins []string           // Origin allow-list ("*" for any); nil: any
	Subprotocols   []string           // offered in the 101 in this order of preference; nil: none
	Authorizer     backend.Authorizer // --connect-mode authorize: asked before the 101; nil: notify
	Linker         backend.Linker     // --backend ws: links each connection before its 101 (link.go); nil: none

	KeepRequest bool // keep the upgrade request's headers and path in the Conn for the backend

	// The long-poll transport (CONTRACT §8, poll.go): off unless Poll is set.
	Poll               bool
	PollMaxTTL         time.Duration // longest hold of a poll; default 25s
	PollSessionTimeout time.Duration // a session nobody polls for this long ends (1006); default 60s
	PollMaxBatchBytes  int           // message bytes in one poll answer; default 1 MiB
	PollNoJSONP        bool          // refuse cb (400)
	PollFQDN           string        // the fqdn create answers; default the request's Host
	NewSessionID       func() string // poll session ids; default longpoll.NewSessionID (a cluster tags them)
	PollForwarder      PollForwarder // serves sessions other instances hold (cluster.go); nil: none

	Hub     *hub.Hub // admission, open and close bookkeeping, drain
	Backend backend.Backend
	Metrics *metrics.Metrics
	Logger  zerolog.Logger
}

func (o *Options) setDefaults() {
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = limits.MaxMessageSize
	}
	if o.MaxOutboundBytes <= 0 {
		o.MaxOutboundBytes = limits.MaxOutboundBytes(o.MaxMessageSize)
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = limits.MaxHeaderBytes
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 20 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 20 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	if o.PollMaxTTL <= 0 {
		o.PollMaxTTL = longpoll.DefaultMaxTTL
	}
	if o.PollSessionTimeout <= 0 {
		o.PollSessionTimeout = 60 * time.Second
	}
	if o.NewSessionID == nil {
		o.NewSessionID = longpoll.NewSessionID
	}
}

// tickFor picks the timer wheel's resolution: fine enough for the shortest timeout, coarse
// enough that sweeps cost nothing at rest.
func tickFor(o *Options) time.Duration {
	d := min(o.PingInterval, o.PingTimeout, o.HandshakeTimeout, o.WriteTimeout, o.CloseTimeout) / 8
	return min(max(d, 5*time.Millisecond), 500*time.Millisecond)
}
