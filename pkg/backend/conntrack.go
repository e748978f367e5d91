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
// Entries are keyed by local address and never deleted: a new dial from the same port
// resets its entry, and the ephemeral port range bounds the map.
type connTracker struct {
	mu     sync.RWMutex
	pooled map[netip.AddrPort]bool
}

func newConnTracker() *connTracker { return &connTracker{pooled: make(map[netip.AddrPort]bool)} }

// key is a connection's local address as a comparable value (no allocation).
func key(a net.Addr) (netip.AddrPort, bool) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return t.AddrPort(), true
}

// dialer returns a HostClient.Dial that records every new connection as fresh.
func (t *connTracker) dialer(timeout time.Duration) fasthttp.DialFunc {
	return func(addr string) (net.Conn, error) {
		c, err := fasthttp.DialTimeout(addr, timeout)
		if err != nil {
			return nil, err
		}
		if k, ok := key(c.LocalAddr()); ok {
			t.mu.Lock()
			t.pooled[k] = false
			t.mu.Unlock()
		}
		return c, nil
	}
}

// served records that the connection with local address a carried a complete response.
// After a connection's first response this is a read lock and a map lookup.
func (t *connTracker) served(a net.Addr) {
	k, ok := key(a)
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

// wasPooled reports whether the connection with local address a had carried a response
// before; false for a fresh connection or none at all.
func (t *connTracker) wasPooled(a net.Addr) bool {
	k, ok := key(a)
	if !ok {
		return false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.pooled[k]
}
