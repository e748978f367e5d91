// Command socketdock relays WebSocket clients to an HTTP backend: every client message is
// POSTed to the backend, which answers through a per-connection callback URL.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/config"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/control"
	"github.com/socketdock/socketdock/pkg/gateway"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	opts, err := config.Parse(os.Args[1:], os.LookupEnv, os.Stdout)
	switch {
	case errors.Is(err, config.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, "socketdock: "+err.Error())
		os.Exit(2)
	case opts.Version:
		fmt.Println("socketdock " + version)
		os.Exit(0)
	}
	log := newLogger(opts)
	if err := run(opts, log); err != nil {
		log.Error().Err(err).Msg("socketdock stopped")
		os.Exit(1)
	}
}

func newLogger(opts config.Options) zerolog.Logger {
	level, _ := config.ParseLevel(opts.LogLevel) // validated by config.Parse
	var log zerolog.Logger
	if opts.LogFormat == "console" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339})
	} else {
		log = zerolog.New(os.Stderr)
	}
	return log.Level(level).With().Timestamp().Logger()
}

func run(opts config.Options, log zerolog.Logger) error {
	started := time.Now()
	table := conntable.New()
	m := metrics.New(func() float64 { return float64(table.Active()) }, func() float64 { return float64(table.Lifetime()) })

	var be backend.Backend = backend.Loopback{}
	if opts.Backend == "http" {
		h, err := backend.NewHTTP(backend.HTTPOptions{
			MessageURI:      opts.MessageURI,
			ConnectURI:      opts.ConnectURI,
			DisconnectURI:   opts.DisconnectURI,
			Endpoint:        opts.Endpoint,
			Timeout:         opts.BackendTimeout,
			Retries:         opts.BackendRetries,
			MaxConns:        opts.BackendMaxConns,
			MaxQueue:        opts.MaxInboundQueue,
			MaxResponseBody: opts.MaxMessageSize,
			ReplyInResponse: opts.ReplyInResponse,
			Logger:          log,
			Metrics:         m,
		})
		if err != nil {
			return err
		}
		be = h
	}

	controlAddr := net.JoinHostPort(opts.ControlBindIP, strconv.Itoa(opts.ControlBindPort))
	ctl := control.New(control.Options{
		Addr:           controlAddr,
		MaxMessageSize: opts.MaxMessageSize,
		Token:          opts.ControlToken,
		Table:          table,
		Metrics:        m,
		Logger:         log,
		Started:        started,
	})
	if err := ctl.Start(); err != nil {
		return err
	}
	if opts.ControlToken == "" && !net.ParseIP(opts.ControlBindIP).IsLoopback() {
		log.Warn().Str("control", controlAddr).Msg("control API is reachable beyond loopback without a token: set --control-token-file (or SOCKETDOCK_CONTROL_TOKEN)")
	}

	gw := gateway.New(gateway.Options{
		Addr:                net.JoinHostPort(opts.BindIP, strconv.Itoa(opts.BindPort)),
		Loops:               opts.Loops,
		ReusePort:           opts.ReusePort,
		MaxMessageSize:      opts.MaxMessageSize,
		MaxOutboundBytes:    opts.MaxOutboundBytes,
		MaxHeaderBytes:      opts.MaxHeaderBytes,
		MaxConnections:      opts.MaxConnections,
		MaxConnectionsPerIP: opts.MaxConnectionsPerIP,
		PingInterval:        opts.PingInterval,
		PingTimeout:         opts.PingTimeout,
		HandshakeTimeout:    opts.HandshakeTimeout,
		WriteTimeout:        opts.WriteTimeout,
		Table:               table,
		Backend:             be,
		Metrics:             m,
		Logger:              log,
	})
	if err := gw.Start(); err != nil {
		_ = ctl.Stop()
		return err
	}
	log.Info().Str("version", version).Str("public", "ws://"+net.JoinHostPort(opts.BindIP, strconv.Itoa(opts.BindPort))+"/ws").
		Str("control", controlAddr).Str("endpoint", opts.Endpoint).Str("backend", opts.Backend).Msg("socketdock listening")

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	sig := <-signals
	log.Info().Str("signal", sig.String()).Dur("drain_timeout", opts.DrainTimeout).Msg("draining")
	go func() {
		<-signals
		log.Warn().Msg("second signal: exiting now")
		os.Exit(1)
	}()
	return drain(opts, log, table, ctl, gw, be)
}

// drain stops taking connections, closes clients with 1001, lets queued backend POSTs (the
// disconnects among them) finish within the drain timeout, then stops both listeners.
func drain(opts config.Options, log zerolog.Logger, table *conntable.Table, ctl *control.Server, gw *gateway.Server, be backend.Backend) error {
	ctx, cancel := context.WithTimeout(context.Background(), opts.DrainTimeout)
	defer cancel()
	ctl.SetDraining()
	gw.Drain()
	for table.Active() > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	if err := gw.Stop(stopCtx); err != nil {
		log.Warn().Err(err).Msg("public listener stop")
	}
	if err := be.Drain(ctx); err != nil {
		log.Warn().Err(err).Msg("backend drain incomplete")
	}
	if err := ctl.Stop(); err != nil {
		log.Warn().Err(err).Msg("control listener stop")
	}
	log.Info().Msg("drained; bye")
	return nil
}
