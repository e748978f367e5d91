package relay

import (
	"net"
	"strings"

	"github.com/socketdock/socketdock/pkg/config"
)

// warnOpenControl logs, once at startup, that a control listener reachable beyond loopback
// has no token: anyone who reaches it can write to and close every client (docs/SECURITY.md).
func (r *Relay) warnOpenControl() {
	if r.opts.ControlToken == "" && !net.ParseIP(r.opts.ControlBindIP).IsLoopback() {
		r.log.Warn().Str("control", r.ControlAddr()).
			Msg("control API is reachable beyond loopback without a token: set --control-token-file (or SOCKETDOCK_CONTROL_TOKEN)")
	}
}

// lowerList is a comma-separated list of header names, lower-cased; nil when empty.
func lowerList(s string) []string {
	items := config.SplitList(s)
	for i := range items {
		items[i] = strings.ToLower(items[i])
	}
	return items
}

func secretBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
