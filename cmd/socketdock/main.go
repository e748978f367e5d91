// Command socketdock relays WebSocket clients to an HTTP backend: every client message is
// POSTed to the backend, which answers through a per-connection callback URL.
package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/internal/redact"
	"github.com/socketdock/socketdock/pkg/config"
	"github.com/socketdock/socketdock/pkg/relay"
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
	limit, from, err := applyMemoryLimit(opts.MemoryLimit, os.ReadFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "socketdock: "+err.Error())
		os.Exit(2)
	}
	if limit != math.MaxInt64 {
		log.Info().Int64("bytes", limit).Str("from", from).Msg("memory limit")
	}
	go returnIdleMemory(context.Background(), idlePeriod, idleThreshold, log)
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
	fdLimit, fdErr := relay.RaiseFileLimit()
	if fdErr != nil {
		log.Warn().Err(fdErr).Uint64("fd_limit", fdLimit).Msg("could not raise the open-file limit to its hard limit")
	}
	r, err := relay.New(opts, log)
	if err != nil {
		return err
	}
	if err := r.Start(); err != nil {
		return err
	}
	log.Info().Str("version", version).Str("public", "ws://"+r.PublicAddr()+"/ws").Str("control", r.ControlAddr()).
		Str("endpoint", redact.URI(opts.Endpoint)).Str("backend", string(opts.Backend)).
		Uint64("fd_limit", fdLimit).Int64("connection_ceiling", r.ConnectionCeiling()).Msg("socketdock listening")

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	sig := <-signals
	log.Info().Str("signal", sig.String()).Dur("drain_timeout", opts.DrainTimeout).Msg("draining")
	go func() {
		<-signals
		log.Warn().Msg("second signal: exiting now")
		os.Exit(1)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), opts.DrainTimeout)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("drain incomplete")
	}
	log.Info().Msg("drained; bye")
	return nil
}
