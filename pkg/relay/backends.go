package relay

import (
	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/config"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// builtBackend is what a --backend kind gives the relay: the backend, the roles it plays
// besides (nil when it does not), and whether it reads the opening request's headers and path.
type builtBackend struct {
	backend     backend.Backend
	authorizer  backend.Authorizer // --connect-mode authorize: asked before the open
	linker      backend.Linker     // a per-connection upstream dialled before the open
	keepRequest bool
}

// backendFactories builds each --backend kind from validated options: adding a backend is
// adding an entry here and its kind in config.
var backendFactories = map[config.BackendKind]func(config.Options, zerolog.Logger, *metrics.Metrics) (builtBackend, error){
	config.BackendLoopback: func(config.Options, zerolog.Logger, *metrics.Metrics) (builtBackend, error) {
		return builtBackend{backend: backend.Loopback{}}, nil
	},
	config.BackendHTTP: newHTTPBackend,
	config.BackendWS: func(opts config.Options, log zerolog.Logger, m *metrics.Metrics) (builtBackend, error) {
		up, err := newUpstream(opts, log, m)
		if err != nil {
			return builtBackend{}, err
		}
		return builtBackend{backend: up, linker: up, keepRequest: true}, nil // the upstream handshake forwards them
	},
}

// httpOptions are the HTTP backend's settings every use shares: where the notifications go,
// how they are retried and signed.
func httpOptions(opts config.Options, log zerolog.Logger, m *metrics.Metrics) backend.HTTPOptions {
	return backend.HTTPOptions{
		MessageURI:     opts.MessageURI,
		ConnectURI:     opts.ConnectURI,
		DisconnectURI:  opts.DisconnectURI,
		Endpoint:       opts.Endpoint,
		Timeout:        opts.BackendTimeout,
		Retries:        opts.BackendRetries,
		MaxConns:       opts.BackendMaxConns,
		Secret:         secretBytes(opts.BackendSecret),
		ForwardHeaders: lowerList(opts.ForwardHeaders),
		Logger:         log,
		Metrics:        m,
	}
}

// newHTTPBackend builds the HTTP backend (CONTRACT §3).
func newHTTPBackend(opts config.Options, log zerolog.Logger, m *metrics.Metrics) (builtBackend, error) {
	authorize := opts.ConnectMode == config.ConnectAuthorize
	ho := httpOptions(opts, log, m)
	ho.MaxQueue, ho.MaxQueueBytes, ho.MaxResponseBody = opts.MaxInboundQueue, opts.MaxInboundBytes, opts.MaxMessageSize
	ho.ReplyInResponse, ho.Authorize = opts.ReplyInResponse, authorize
	h, err := backend.NewHTTP(ho)
	if err != nil {
		return builtBackend{}, err
	}
	b := builtBackend{backend: h, keepRequest: opts.ConnectURI != ""} // only the connect POST reads them
	if authorize {
		b.authorizer = h
	}
	return b, nil
}
