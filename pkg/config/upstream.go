package config

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// UpstreamOptions configure the WebSocket upstream backend (CONTRACT §9, --backend ws).
type UpstreamOptions struct {
	UpstreamURL          string
	UpstreamDialTimeout  time.Duration
	UpstreamPassPath     bool
	UpstreamErrors       string // close or message
	UpstreamAllow        string // comma-separated URL prefixes a poll create's target may start with
	UpstreamPingInterval time.Duration
	UpstreamCAFile       string
}

func upstreamDefaults() UpstreamOptions {
	return UpstreamOptions{UpstreamDialTimeout: 10 * time.Second, UpstreamErrors: "close"}
}

func (o *UpstreamOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.UpstreamURL, "upstream-url", o.UpstreamURL, "ws:// or wss:// URL each client is linked to (required with --backend ws)")
	fs.DurationVar(&o.UpstreamDialTimeout, "upstream-dial-timeout", o.UpstreamDialTimeout, "time to connect to the upstream and complete its handshake (504 beyond)")
	fs.BoolVar(&o.UpstreamPassPath, "upstream-pass-path", o.UpstreamPassPath, "append the client's path and query to the upstream URL")
	fs.StringVar(&o.UpstreamErrors, "upstream-errors", o.UpstreamErrors, "close: a lost upstream closes the client with 1014; message: a JSON error message first")
	fs.StringVar(&o.UpstreamAllow, "upstream-allow", o.UpstreamAllow, "comma-separated URL prefixes a poll create's target may start with (default: none)")
	fs.DurationVar(&o.UpstreamPingInterval, "upstream-ping-interval", o.UpstreamPingInterval, "silence after which the upstream is pinged (0: --ping-interval)")
	fs.StringVar(&o.UpstreamCAFile, "upstream-ca-file", o.UpstreamCAFile, "PEM file of CA certificates trusted for wss:// upstreams, beside the system roots")
}

// checkUpstream validates the upstream options and what --backend ws rules out.
func (o *Options) checkUpstream() error {
	if o.Backend != BackendWS {
		return nil
	}
	switch {
	case o.UpstreamURL == "":
		return errors.New("--backend ws needs --upstream-url")
	case o.MessageURI != "":
		return errors.New("--message-uri does not apply to --backend ws (messages go to the upstream)")
	case o.Subprotocols != "":
		return errors.New("--subprotocols does not apply to --backend ws (the upstream chooses)")
	case o.ReplyInResponse:
		return errors.New("--reply-in-response does not apply to --backend ws")
	}
	if err := CheckUpstreamURL(o.UpstreamURL); err != nil {
		return fmt.Errorf("--upstream-url %q: %v", o.UpstreamURL, err)
	}
	switch {
	case o.UpstreamDialTimeout <= 0:
		return errors.New("--upstream-dial-timeout must be positive")
	case o.UpstreamPingInterval < 0:
		return errors.New("--upstream-ping-interval must not be negative")
	case o.UpstreamErrors != "close" && o.UpstreamErrors != "message":
		return fmt.Errorf("--upstream-errors %q is not close or message", o.UpstreamErrors)
	}
	for _, prefix := range SplitList(o.UpstreamAllow) {
		if !strings.HasPrefix(prefix, "ws://") && !strings.HasPrefix(prefix, "wss://") {
			return fmt.Errorf("--upstream-allow %q does not start with ws:// or wss://", prefix)
		}
	}
	if o.UpstreamCAFile != "" {
		if _, err := LoadCAFile(o.UpstreamCAFile); err != nil {
			return fmt.Errorf("--upstream-ca-file: %v", err)
		}
	}
	return nil
}

// CheckUpstreamURL reports what is wrong with a WebSocket URL, if anything.
func CheckUpstreamURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "ws" && u.Scheme != "wss":
		return errors.New("scheme must be ws or wss")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("no host")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("a WebSocket URL has no fragment")
	}
	return nil
}

// LoadCAFile reads a PEM file of CA certificates into a pool with the system roots.
func LoadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
