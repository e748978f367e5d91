package backend

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// listen returns a loopback listener that accepts and holds connections until the test ends.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return ln
}

// dialFrom connects to addr from local (SO_REUSEADDR, so two connections to different
// backends can share one local port, as the kernel's own port choice also allows).
func dialFrom(t *testing.T, local *net.TCPAddr, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: local, Timeout: time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnTrackerTellsPooledFromFresh(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	tr := newConnTracker()
	c, err := tr.dialer(time.Second)(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tr.wasPooled(c.LocalAddr(), c.RemoteAddr()) {
		t.Fatal("a fresh connection counts as pooled")
	}
	tr.served(c.LocalAddr(), c.RemoteAddr())
	if !tr.wasPooled(c.LocalAddr(), c.RemoteAddr()) || tr.wasPooled(nil, nil) {
		t.Fatal("a connection that carried a response is not pooled, or nil is")
	}
}

// Two backend hosts: one local port can carry a connection to each. A response on one must
// not make the other, fresh one look pooled (a reset on it would then be retried: a
// duplicate POST the backend may already have acted on).
func TestConnTrackerKeysByBothEnds(t *testing.T) {
	a, b := listen(t, "127.0.0.1:0"), listen(t, "127.0.0.2:0")
	first := dialFrom(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, a.Addr().String())
	second := dialFrom(t, first.LocalAddr().(*net.TCPAddr), b.Addr().String())
	if first.LocalAddr().String() != second.LocalAddr().String() {
		t.Fatalf("local addresses differ: %v, %v", first.LocalAddr(), second.LocalAddr())
	}
	tr := newConnTracker()
	tr.dialed(first)
	tr.dialed(second)
	tr.served(first.LocalAddr(), first.RemoteAddr())
	if !tr.wasPooled(first.LocalAddr(), first.RemoteAddr()) {
		t.Fatal("the connection that carried a response is not pooled")
	}
	if tr.wasPooled(second.LocalAddr(), second.RemoteAddr()) {
		t.Fatalf("fresh connection %v→%v counts as pooled because %v→%v carried a response",
			second.LocalAddr(), second.RemoteAddr(), first.LocalAddr(), first.RemoteAddr())
	}
	tr.served(second.LocalAddr(), second.RemoteAddr())
	tr.dialed(first) // redialled: fresh again, the other end untouched
	if tr.wasPooled(first.LocalAddr(), first.RemoteAddr()) || !tr.wasPooled(second.LocalAddr(), second.RemoteAddr()) {
		t.Fatal("a new dial on one 4-tuple changed the other")
	}
}
