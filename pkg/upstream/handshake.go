package upstream

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// maxResponseHead bounds the upstream's 101 (or error) head.
const maxResponseHead = 16 << 10

// dialed is an upstream connection whose handshake succeeded.
type dialed struct {
	conn  net.Conn // *net.TCPConn for ws://, *tls.Conn for wss://
	early []byte   // frames the upstream sent right behind its 101
	proto string   // its chosen subprotocol
}

// dial connects to t and runs the client handshake for c within the dial timeout. A failure
// comes back as the status the client gets: the upstream's 401/403/404, 504 for a timeout,
// 502 for anything else.
func (b *Backend) dial(t *target, c *conntable.Conn, offer []string) (*dialed, backend.LinkResult, error) {
	deadline := time.Now().Add(b.opts.DialTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, failure(err), fmt.Errorf("connect: %w", err)
	}
	conn := nc
	if t.secure {
		tc := tls.Client(nc, &tls.Config{ServerName: t.serverName, RootCAs: b.opts.RootCAs, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, failure(err), fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	_ = conn.SetDeadline(deadline)
	key := newKey()
	if _, err := conn.Write(b.appendRequest(nil, t, c, key, offer)); err != nil {
		conn.Close()
		return nil, failure(err), fmt.Errorf("handshake: %w", err)
	}
	buf := make([]byte, 0, 512) // a 101 is some 200 bytes; every connection makes one, so keep it small
	var resp wsframe.Response
	var n int
	for {
		if resp, n, err = wsframe.ParseResponse(buf, maxResponseHead); n > 0 || err != nil {
			break
		}
		if len(buf) == cap(buf) {
			buf = append(make([]byte, 0, 2*cap(buf)), buf...)
		}
		m, rerr := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if rerr != nil && m == 0 {
			conn.Close()
			return nil, failure(rerr), fmt.Errorf("handshake: %w", rerr)
		}
	}
	if err != nil {
		conn.Close()
		return nil, backend.LinkResult{Status: 502, Reason: "bad gateway"}, fmt.Errorf("handshake: %w", err)
	}
	switch resp.Status {
	case 101:
	case 401, 403, 404:
		conn.Close()
		return nil, backend.LinkResult{Status: resp.Status, Reason: "refused by the upstream"}, fmt.Errorf("upstream answered %d", resp.Status)
	default:
		conn.Close()
		return nil, backend.LinkResult{Status: 502, Reason: "bad gateway"}, fmt.Errorf("upstream answered %d", resp.Status)
	}
	proto, err := wsframe.CheckUpgradeResponse(&resp, key, offer)
	if err != nil {
		conn.Close()
		return nil, backend.LinkResult{Status: 502, Reason: "bad gateway"}, err
	}
	_ = conn.SetDeadline(time.Time{})
	early := append([]byte(nil), buf[n:]...)
	if len(early) == 0 {
		early = nil
	}
	return &dialed{conn: conn, early: early, proto: proto}, backend.LinkResult{Status: 101, Subprotocol: proto}, nil
}

// failure maps a dial or handshake error to the client's status: 504 when time ran out.
func failure(err error) backend.LinkResult {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return backend.LinkResult{Status: 504, Reason: "upstream timeout"}
	}
	return backend.LinkResult{Status: 502, Reason: "bad gateway"}
}

// newKey is a fresh Sec-WebSocket-Key: 16 random bytes, base64.
func newKey() string {
	var k [16]byte
	_, _ = rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])
}

// notForwarded are request headers the relay writes itself or that belong to one hop.
var notForwarded = map[string]bool{
	"host": true, "upgrade": true, "connection": true, "keep-alive": true, "te": true, "trailer": true,
	"transfer-encoding": true, "proxy-connection": true, "proxy-authorization": true, "content-length": true,
	"sec-websocket-key": true, "sec-websocket-version": true, "sec-websocket-protocol": true,
	"sec-websocket-extensions": true, "sec-websocket-accept": true,
	"x-forwarded-for": true, HeaderConnectionID: true,
}

// HeaderConnectionID carries the client's connection id to the upstream.
const HeaderConnectionID = "x-socketdock-connection-id"

// appendRequest builds the upstream handshake: the client's subprotocol offer, the headers
// --forward-headers names (all end-to-end ones when it is unset), X-Forwarded-For with the
// client's address appended, and the connection id.
func (b *Backend) appendRequest(dst []byte, t *target, c *conntable.Conn, key string, offer []string) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, t.requestURI()...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, t.host...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	dst = append(dst, key...)
	dst = append(dst, "\r\n"...)
	if len(offer) > 0 {
		dst = appendHeader(dst, "Sec-WebSocket-Protocol", strings.Join(offer, ", "))
	}
	if t.auth != "" {
		dst = appendHeader(dst, "Authorization", t.auth)
	}
	var xff string
	for _, h := range c.Headers() {
		name, value := h[0], h[1]
		if name == "x-forwarded-for" {
			xff = value
		}
		if notForwarded[name] || (t.auth != "" && name == "authorization") || !b.forwards(name) {
			continue
		}
		dst = appendHeader(dst, name, value)
	}
	if ip := clientIP(c.RemoteAddr); ip != "" {
		if xff != "" {
			xff += ", "
		}
		xff += ip
	}
	if xff != "" {
		dst = appendHeader(dst, "X-Forwarded-For", xff)
	}
	dst = appendHeader(dst, "X-SocketDock-Connection-Id", c.ID)
	return append(dst, "\r\n"...)
}

// forwards reports whether the client's header name (lower-case) goes upstream.
func (b *Backend) forwards(name string) bool {
	if b.opts.ForwardHeaders == nil {
		return true
	}
	for _, n := range b.opts.ForwardHeaders {
		if n == name {
			return true
		}
	}
	return false
}

func appendHeader(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}

func clientIP(a net.Addr) string {
	switch a := a.(type) {
	case nil:
		return ""
	case *net.TCPAddr:
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// statusText names a link status in logs and metrics.
func statusText(status int) string {
	if status == 101 {
		return "ok"
	}
	return strconv.Itoa(status)
}
