package relay

import (
	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/config"
	"github.com/socketdock/socketdock/pkg/metrics"
	"github.com/socketdock/socketdock/pkg/upstream"
)

// newUpstream builds the WebSocket upstream backend (--backend ws, CONTRACT §9), with an HTTP
// backend beside it for the connect and disconnect notifications when their URIs are set.
func newUpstream(opts config.Options, log zerolog.Logger, m *metrics.Metrics) (*upstream.Backend, error) {
	uo := upstream.Options{
		URL:            opts.UpstreamURL,
		DialTimeout:    opts.UpstreamDialTimeout,
		PassPath:       opts.UpstreamPassPath,
		ErrorMessages:  opts.UpstreamErrors == "message",
		Allow:          config.SplitList(opts.UpstreamAllow),
		PingInterval:   opts.UpstreamPingInterval,
		PingTimeout:    opts.PingTimeout,
		WriteTimeout:   opts.WriteTimeout,
		ForwardHeaders: lowerList(opts.ForwardHeaders),
		MaxMessageSize: opts.MaxMessageSize,
		MaxQueue:       opts.MaxInboundQueue,
		MaxQueueBytes:  opts.MaxInboundBytes,
		Loops:          opts.Loops,
		Logger:         log,
		Metrics:        m,
	}
	if uo.PingInterval == 0 {
		uo.PingInterval = opts.PingInterval
	}
	if opts.UpstreamCAFile != "" {
		pool, err := config.LoadCAFile(opts.UpstreamCAFile)
		if err != nil {
			return nil, err
		}
		uo.RootCAs = pool
	}
	if opts.ConnectURI != "" || opts.DisconnectURI != "" {
		// The HTTP backend needs a message URI; it never gets a message here (Audit hears
		// Opened and Closed only), so either notification URI stands in, on the same host.
		placeholder := opts.ConnectURI
		if placeholder == "" {
			placeholder = opts.DisconnectURI
		}
		ho := httpOptions(opts, log, m)
		ho.MessageURI = placeholder
		audit, err := backend.NewHTTP(ho)
		if err != nil {
			return nil, err
		}
		uo.Audit = audit
	}
	return upstream.New(uo)
}
