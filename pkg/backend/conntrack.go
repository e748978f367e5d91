package backend

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// connTracker tells a pooled keep-alive connection (it has carried a response before) from a
// fresh one. Only a failure on a pooled connection is the keep-alive race CONTRACT §3 lets us
// retry: on a fresh connection the backend may have read the request and acted on it.
// Entries are keyed by both ends of the connection: with two backend hosts the kernel may
// give one local port to a connection to each, and they must not share an entry. Entries are
// never deleted: a new dial on the same pair of addresses resets its entry, and the ephemeral
// port range times the backend addresses bounds the map.
type connTracker struct {
	mu     sync.RWMutex
	pooled map[connKey]bool
}

// connKey is a TCP connection's local and remote address (comparable, no allocation).
type connKey struct{ local, remote netip.AddrPort }

func newConnTracker() *connTracker { return &connTracker{pooled: make(map[connKey]bool)} }

func key(local, remote net.Addr) (connKey, bool) {
	l, ok := local.(*net.TCPAddr)
	if !ok {
		return connKey{}, false
	}
	r, ok := remote.(*net.TCPAddr)
	if !ok {
		return connKey{}, false
	}
	return connKey{l.AddrPort(), r.AddrPort()}, true
}

// dialer returns a HostClient.Dial that records every new connection as fresh.
func (t *connTracker) dialer(timeout time.Duration) fasthttp.DialFunc {
	return func(addr string) (net.Conn, error) {
		c, err := fasthttp.DialTimeout(addr, timeout)
		if err != nil {
			return nil, err
		}
		t.dialed(c)
		return c, nil
	}
}

// dialed records c as fresh.
func (t *connTracker) dialed(c net.Conn) {
	if k, ok := key(c.LocalAddr(), c.RemoteAddr()); ok {
		t.mu.Lock()
		t.pooled[k] = false
		t.mu.Unlock()
	}
}

// served records that the connection between local and remote carried a complete response.
// After a connection's first response this is a read lock and a map lookup.
func (t *connTracker) served(local, remote net.Addr) {
	k, ok := key(local, remote)
	if !ok {
		return
	}
	t.mu.RLock()
	done := t.pooled[k]
	t.mu.RUnlock()
	if !done {
		t.mu.Lock()
		t.pooled[k] = true
		t.mu.Unlock()
	}
}

// wasPooled reports whether the connection between local and remote had carried a response
// before; false for a fresh connection or none at all.
func (t *connTracker) wasPooled(local, remote net.Addr) bool {
	k, ok := key(local, remote)
	if !ok {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.pooled[k]
}
