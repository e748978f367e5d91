package upstream

import (
	"encoding/base64"
	"errors"
	"net"
	"net/url"
	"strings"
)

// target is one upstream URL, taken apart once for dialling and for the handshake.
type target struct {
	secure     bool   // wss://
	addr       string // host:port to dial
	host       string // the Host header: host[:port] as written in the URL
	serverName string // TLS server name
	path       string // the URL's path, "/" when empty
	query      string // the URL's raw query, without "?"
	auth       string // Authorization header value from the URL's user:password, or ""
	display    string // scheme://host/path: what close reasons and logs name (no credentials, no query)
}

// parseTarget takes a ws:// or wss:// URL apart.
func parseTarget(s string) (*target, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "ws" && u.Scheme != "wss":
		return nil, errors.New("scheme must be ws or wss")
	case u.Hostname() == "":
		return nil, errors.New("no host")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return nil, errors.New("a WebSocket URL has no fragment")
	}
	t := &target{secure: u.Scheme == "wss", host: u.Host, serverName: u.Hostname(), path: u.EscapedPath(), query: u.RawQuery}
	if t.path == "" {
		t.path = "/"
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if t.secure {
			port = "443"
		}
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		pw, _ := u.User.Password()
		t.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
	}
	t.display = u.Scheme + "://" + u.Host + t.path
	return t, nil
}

// requestURI is the request line's target.
func (t *target) requestURI() string {
	if t.query == "" {
		return t.path
	}
	return t.path + "?" + t.query
}

// withClientPath returns t with the client's path and query appended (--upstream-pass-path):
// ws://up/base + /ws?room=1 is ws://up/base/ws?room=1. A poll session's path is the relay's
// own /poll/create, so only its query is passed on.
func (t *target) withClientPath(clientTarget string, poll bool) *target {
	path, query, _ := strings.Cut(clientTarget, "?")
	out := *t
	if !poll && path != "" && path != "/" {
		out.path = strings.TrimSuffix(t.path, "/") + "/" + strings.TrimPrefix(path, "/")
	}
	switch {
	case query == "":
	case out.query == "":
		out.query = query
	default:
		out.query += "&" + query
	}
	return &out
}
