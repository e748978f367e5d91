// Package relay wires the relay's parts together from one config.Options: the connection
// table, metrics, backend, control API and public gateway. The command and the end-to-end
// tests both start relays through it.
package relay

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/cluster"
	"github.com/socketdock/socketdock/pkg/config"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/control"
	"github.com/socketdock/socketdock/pkg/gateway"
	"github.com/socketdock/socketdock/pkg/hub"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// Relay is one running SocketDock.
type Relay struct {
	opts    config.Options
	log     zerolog.Logger
	Table   *conntable.Table
	Metrics *metrics.Metrics
	backend backend.Backend
	hub     *hub.Hub
	control *control.Server
	gateway *gateway.Server
	cluster *cluster.Node // nil without --cluster (cluster.go)
}

// New builds a relay from validated options (see config.Parse).
func New(opts config.Options, log zerolog.Logger) (*Relay, error) {
	r := &Relay{opts: opts, log: log, Table: conntable.New()}
	r.Metrics = metrics.New(func() float64 { return float64(r.Table.Active()) }, func() float64 { return float64(r.Table.Lifetime()) })
	r.registerLimits()
	build, ok := backendFactories[opts.Backend]
	if !ok {
		return nil, fmt.Errorf("--backend %q: no such backend", opts.Backend)
	}
	b, err := build(opts, log, r.Metrics)
	if err != nil {
		return nil, err
	}
	r.backend = b.backend
	authz, linker := b.authorizer, b.linker
	r.newCluster()
	r.hub = hub.New(hub.Options{
		NewID:               r.clusterIDs(),
		MaxConnections:      opts.MaxConnections,
		MaxConnectionsPerIP: opts.MaxConnectionsPerIP,
		Table:               r.Table,
		Backend:             r.backend,
		Metrics:             r.Metrics,
		Logger:              log,
	})
	r.control = control.New(control.Options{
		Addr:           r.ControlAddr(),
		MaxMessageSize: opts.MaxMessageSize,
		Token:          opts.ControlToken,
		Pprof:          opts.Pprof,
		MaxConns:       opts.ControlMaxConns,
		Table:          r.Table,
		Metrics:        r.Metrics,
		Logger:         log,
		Forward:        r.controlForwarder(),
	})
	r.gateway = gateway.New(gateway.Options{
		Addr:               r.PublicAddr(),
		Loops:              opts.Loops,
		ReusePort:          opts.ReusePort,
		MaxMessageSize:     opts.MaxMessageSize,
		MaxOutboundBytes:   opts.MaxOutboundBytes,
		MaxHeaderBytes:     opts.MaxHeaderBytes,
		MaxHeaders:         opts.MaxHeaders,
		PingInterval:       opts.PingInterval,
		PingTimeout:        opts.PingTimeout,
		HandshakeTimeout:   opts.HandshakeTimeout,
		WriteTimeout:       opts.WriteTimeout,
		AllowedOrigins:     config.SplitList(opts.AllowedOrigins),
		Subprotocols:       config.SplitList(opts.Subprotocols),
		Authorizer:         authz,
		Linker:             linker,
		KeepRequest:        b.keepRequest,
		Poll:               opts.Poll,
		PollMaxTTL:         opts.PollMaxTTL,
		PollSessionTimeout: opts.PollSessionTimeout,
		PollMaxBatchBytes:  opts.PollMaxBatchBytes,
		PollNoJSONP:        !opts.PollJSONP,
		PollFQDN:           opts.PollFQDN,
		Hub:                r.hub,
		Backend:            r.backend,
		Metrics:            r.Metrics,
		Logger:             log,
		NewSessionID:       r.clusterIDs(),
		PollForwarder:      r.pollForwarder(),
	})
	r.attachCluster()
	return r, nil
}

// PublicAddr is the WebSocket listener's host:port.
func (r *Relay) PublicAddr() string {
	return net.JoinHostPort(r.opts.BindIP, strconv.Itoa(r.opts.BindPort))
}

// ControlAddr is the control listener's host:port.
func (r *Relay) ControlAddr() string {
	return net.JoinHostPort(r.opts.ControlBindIP, strconv.Itoa(r.opts.ControlBindPort))
}

// Start opens both listeners.
func (r *Relay) Start() error {
	if err := r.joinCluster(); err != nil { // before any id is issued: ids carry its tag
		return err
	}
	if err := r.control.Start(); err != nil {
		r.leaveCluster()
		return err
	}
	r.warnOpenControl()
	if s, ok := r.backend.(interface{ Start() error }); ok { // the upstream backend's event loops
		if err := s.Start(); err != nil {
			_ = r.control.Stop()
			return err
		}
	}
	if err := r.gateway.Start(); err != nil {
		_ = r.control.Stop()
		r.leaveCluster()
		_ = r.backend.Drain(context.Background()) // nothing is queued yet: this only stops its loops
		return err
	}
	r.control.SetReady()
	return nil
}

// pollCloseGrace is how long a drain waits for poll clients to fetch their close record.
const pollCloseGrace = time.Second

// Shutdown drains: /readyz turns 503, new connections get 503, every transport's clients are
// closed with 1001, queued backend POSTs (disconnects among them) get until ctx ends, then
// both listeners stop.
func (r *Relay) Shutdown(ctx context.Context) error {
	r.control.SetDraining()
	r.hub.Drain()
	for r.Table.Active() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	// Poll clients learn of the 1001 only from their next poll: give them a moment to come
	// for it before the listener goes.
	for grace := time.Now().Add(pollCloseGrace); r.gateway.CloseRecordsPending() > 0 && time.Now().Before(grace) && ctx.Err() == nil; {
		time.Sleep(5 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gwErr := r.gateway.Stop(stopCtx)
	beErr := r.backend.Drain(ctx)
	ctlErr := r.control.Stop()
	r.leaveCluster() // after the drain: calls from other instances for draining connections were answered
	for _, err := range []error{beErr, gwErr, ctlErr} {
		if err != nil {
			return err
		}
	}
	return nil
}
