package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/socketdock/socketdock/pkg/wsframe"
)

// SplitList splits a comma-separated option into its trimmed, non-empty items.
func SplitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// checkSecurity validates the options of docs/SECURITY.md; the first problem wins.
func (o *Options) checkSecurity() error {
	if ip := net.ParseIP(o.ControlBindIP); ip != nil && !ip.IsLoopback() && o.ControlToken == "" && !o.ControlInsecure {
		return fmt.Errorf("control listener %s is reachable beyond loopback without a token: set --control-token-file (or --control-token), bind it with --control-bindip 127.0.0.1, or pass --control-insecure",
			net.JoinHostPort(o.ControlBindIP, strconv.Itoa(o.ControlBindPort)))
	}
	switch o.ConnectMode {
	case ConnectNotify:
	case ConnectAuthorize:
		if o.Backend != BackendHTTP || o.ConnectURI == "" {
			return fmt.Errorf("--connect-mode authorize needs --backend http and --connect-uri")
		}
	default:
		return fmt.Errorf("--connect-mode %q is not notify or authorize", o.ConnectMode)
	}
	for _, origin := range SplitList(o.AllowedOrigins) {
		if origin == "*" {
			continue
		}
		u, err := url.Parse(origin)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("--allowed-origins %q is not * or scheme://host[:port]", origin)
		}
	}
	for _, h := range SplitList(o.ForwardHeaders) {
		if !wsframe.IsToken(h) {
			return fmt.Errorf("--forward-headers %q is not a header name", h)
		}
	}
	for _, p := range SplitList(o.Subprotocols) {
		if !wsframe.IsToken(p) {
			return fmt.Errorf("--subprotocols %q is not a token (RFC 6455 §4.1)", p)
		}
	}
	return nil
}
