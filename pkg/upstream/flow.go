package upstream

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// Flow control, upstream to client (CONTRACT §9): while the client's outbound buffer is over
// --max-outbound-bytes, its upstream is not read, so TCP pushes back on the upstream.
//
// gnet reads every socket it watches as soon as bytes arrive and keeps what the handler leaves
// in a buffer without bound; it has no way to stop watching one. So a pause takes the socket
// out of gnet: the attachment duplicates the descriptor, and gnet closes its own (after our
// output has left, so none is lost). The kernel then holds the upstream's bytes and its
// window closes. A goroutine, one per paused pair only, offers the held message to the client
// with a short backoff until it is taken (or the client is gone), then enrolls the socket in
// gnet again, where the bytes read before the pause (carry) are decoded first.
//
// Costs: a pause is a few system calls and a goroutine; an idle or flowing pair pays nothing.
// A paused pair is not pinged (it is not read), and its client's own write timeout bounds it.

// maxBackoff bounds the wait between offers of a held message: the resume latency once the
// client has drained.
const maxBackoff = 50 * time.Millisecond

// tryDetach takes a pausing socket out of gnet once gnet holds none of our output for it
// (gnet's close would drop that output). On the loop; the caller closes the gnet connection.
func (a *attachment) tryDetach() {
	if a.detaching || a.gc.OutboundBuffered() > 0 {
		a.schedule(a.loop.wheel.Now() + 1)
		return
	}
	p := a.p
	buf, _ := a.gc.Peek(-1)
	p.carry = append(p.carry, buf...)
	_, _ = a.gc.Discard(-1)
	conn, err := dupConn(a.gc.Dup)
	if err != nil {
		p.lost(endLost, "pausing the upstream: "+err.Error())
		a.shut()
		return
	}
	p.conn = conn
	p.block()
	a.detaching = true
	a.loop.wheel.Cancel(a)
}

// dupConn turns a duplicate of a socket's descriptor into a net.Conn of its own.
func dupConn(dup func() (int, error)) (net.Conn, error) {
	fd, err := dup()
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "upstream")
	defer f.Close() // FileConn holds a descriptor of its own
	return net.FileConn(f)
}

// resume runs on the pause goroutine: the held message reaches the client, then the socket
// goes back to a gnet loop (or, if it closed while paused, what it sent before is delivered).
func (p *pair) resume() {
	p.waitForClient()
	if p.conn == nil {
		p.drainOffline()
		return
	}
	p.attach()
}

// waitForClient offers the held message until the client takes it or is gone.
func (p *pair) waitForClient() {
	m := p.stalled
	p.stalled = nil
	if m == nil {
		return
	}
	for d := time.Millisecond; ; d = min(2*d, maxBackoff) {
		time.Sleep(d)
		if err := p.c.Transport.Send(m.t, m.payload); !errors.Is(err, conntable.ErrSlowConsumer) {
			return
		}
	}
}

// attach enrolls the detached socket in a gnet loop (OnOpen takes over): its client's own
// loop, so that both hops are served by one thread and pass messages by plain calls; for a
// poll session one of the client engine's loops (EnrollContext waits for it: not on a loop).
func (p *pair) attach() {
	conn := p.conn
	p.conn = nil
	a := &attachment{p: p, events: p.b.events}
	var err error
	if p.loop != nil {
		if _, err = p.loop.Enroll(gnet.NewContext(context.Background(), a), conn); err != nil {
			conn.Close()
		}
	} else {
		_, err = p.b.cli.EnrollContext(conn, a) // it closes conn either way
	}
	if err != nil {
		p.lost(endLost, "the relay could not watch the upstream socket: "+err.Error())
		p.finish()
	}
}

// drainOffline delivers what an upstream sent before its socket closed during a pause, in
// order and with the same waits, then ends the link as lost (drainCarry ends it by the
// upstream's close frame if it sent one).
func (p *pair) drainOffline() {
	p.drainCarry()
	p.lost(endLost, "EOF")
	p.finish()
}

// drainCarry decodes what is left in carry after the upstream's socket closed, waiting for
// the client as a live link would: up to a close frame, a protocol error, or a message the
// close cut off.
func (p *pair) drainCarry() {
	for len(p.carry) > 0 && p.state.Load() == upOpen {
		consumed, stalled, done := p.decode(p.carry)
		p.carry = p.carry[consumed:]
		if stalled {
			p.waitForClient()
			continue
		}
		if done || consumed == 0 {
			return
		}
	}
}
