package backend

import (
	"net"
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
	mu     sync.Mutex
	pooled map[string]bool
}

func newConnTracker() *connTracker { return &connTracker{pooled: make(map[string]bool)} }

// dialer returns a HostClient.Dial that records every new connection as fresh.
func (t *connTracker) dialer(timeout time.Duration) fasthttp.DialFunc {
	return func(addr string) (net.Conn, error) {
		c, err := fasthttp.DialTimeout(addr, timeout)
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		t.pooled[c.LocalAddr().String()] = false
		t.mu.Unlock()
		return c, nil
	}
}

// served records that the connection with local address a carried a complete response.
func (t *connTracker) served(a net.Addr) {
	if a == nil {
		return
	}
	t.mu.Lock()
	t.pooled[a.String()] = true
	t.mu.Unlock()
}

// wasPooled reports whether the connection with local address a had carried a response
// before; false for a fresh connection or none at all.
func (t *connTracker) wasPooled(a net.Addr) bool {
	if a == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pooled[a.String()]
}
