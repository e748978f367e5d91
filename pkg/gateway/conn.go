package gateway

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/hub"
	"github.com/socketdock/socketdock/pkg/timerwheel"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

type connState uint8

const (
	stateHandshake    connState = iota // reading the upgrade request
	stateAuthorizing                   // upgrade request valid, waiting for the backend's verdict (security.go)
	stateOpen                          // upgraded
	stateClosing                       // our close frame is out; waiting for the echo
	stateClosed                        // gone, or about to be: nothing more is read or written
	statePollCreating                  // a /poll/create waits for the backend's verdict (poll.go)
	statePollHeld                      // a /poll/j is held until a message, its ttl, or a newer poll
)

// wsConn is one client connection's gateway state. Fields without atomics belong to the
// event loop and are touched only there.
type wsConn struct {
	timerwheel.Handle
	gc     gnet.Conn
	loop   *loop
	conn   *conntable.Conn // nil until upgraded
	authz  *authorizing    // while stateAuthorizing
	state  connState
	held   *heldPoll // the poll this connection holds (statePollHeld)
	dec    wsframe.Decoder
	ticket hub.Ticket // the slot held against the connection limits, from admission to the end

	lastRead    int64 // tick of the last bytes received
	pingSentAt  int64 // tick of the outstanding ping, 0 for none
	stuckSince  int64 // tick since which outbound bytes have not shrunk, 0 for none
	lastOutSize int   // outbound bytes at the last timer check
	deadline    int64 // handshake or closing deadline tick

	closeCode   int // reported to the backend when the connection ends
	closeReason string

	// Read from other goroutines by Send.
	closing     atomic.Bool  // Send answers ErrClosing
	outQueued   atomic.Int64 // bytes handed to AsyncWrite, not yet written
	outBuffered atomic.Int64 // gnet's outbound buffer at the last look
}

// Name implements conntable.Transport.
func (w *wsConn) Name() string { return "ws" }

// Send implements conntable.Transport.
func (w *wsConn) Send(t conntable.MessageType, payload []byte) error {
	op := ws.OpCode(t)
	o := &w.loop.srv.opts
	if w.closing.Load() {
		return conntable.ErrClosing
	}
	if len(payload) > o.MaxMessageSize {
		return conntable.ErrTooBig
	}
	size := int64(wsframe.FrameSize(len(payload)))
	limit := int64(o.MaxOutboundBytes)
	if w.outQueued.Load()+w.outBuffered.Load()+size > limit {
		// The snapshot may be stale: gnet drains its buffer without telling us. Look again.
		w.refreshOutbound()
		if w.outQueued.Load()+w.outBuffered.Load()+size > limit {
			return conntable.ErrSlowConsumer
		}
	}
	w.outQueued.Add(size)
	// One buffer for header and payload: the caller's payload is free when Send returns, and
	// gnet keeps this one until the write runs on the loop.
	frame := wsframe.AppendFrame(make([]byte, 0, size), op, payload)
	n := len(payload)
	err := w.gc.AsyncWrite(frame, func(c gnet.Conn, err error) error {
		w.outQueued.Add(-size)
		if err != nil {
			return nil
		}
		w.noteOutbound(c.OutboundBuffered())
		w.countOut(op, n)
		return nil
	})
	if err != nil {
		w.outQueued.Add(-size)
		return conntable.ErrClosing
	}
	return nil
}

// noteOutbound records gnet's outbound buffer size after a write, on the loop. When bytes are
// left over, the timer is brought forward so the write-stall clock starts now rather than
// at the next ping check (which may be a whole --ping-interval away).
func (w *wsConn) noteOutbound(out int) {
	w.outBuffered.Store(int64(out))
	if out > 0 && w.state == stateOpen {
		if at := w.loop.wheel.Now() + max(w.loop.srv.ticks(w.loop.srv.opts.WriteTimeout)/4, 1); at < w.At() {
			w.loop.wheel.Schedule(w, at)
		}
	}
}

// refreshOutbound reads gnet's outbound buffer size on the loop, waiting at most a second.
func (w *wsConn) refreshOutbound() {
	done := make(chan struct{})
	err := w.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		if w.state != stateClosed {
			w.outBuffered.Store(int64(w.gc.OutboundBuffered()))
		}
		close(done)
		return nil
	}))
	if err != nil {
		return
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// Close implements conntable.Transport.
func (w *wsConn) Close(code int, reason string) {
	if w.closing.Swap(true) {
		return
	}
	_ = w.gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		w.startClose(code, reason)
		return nil
	}))
}

// countOut records a message written to the client. On the loop.
func (w *wsConn) countOut(op ws.OpCode, n int) {
	countOut(w.loop.traffic, conntable.MessageType(op), n, false)
	w.conn.CountOut()
}

// write sends bytes built on the loop. While OnTraffic is batching this connection's output
// it joins the batch, so frames leave in the order they were made. b may be the loop's
// scratch buffer: it is free when write returns.
func (w *wsConn) write(b []byte) {
	l := w.loop
	if l.batching == w {
		l.out = append(l.out, b...)
		return
	}
	_, _ = w.gc.Write(b)
}

// startClose sends our close frame and waits (bounded) for the client's echo. On the loop.
func (w *wsConn) startClose(code int, reason string) {
	if w.state != stateOpen {
		return
	}
	w.closing.Store(true)
	w.state = stateClosing
	w.closeCode, w.closeReason = code, reason
	w.write(wsframe.AppendClose(w.loop.scratch(), code, reason))
	w.deadline = w.loop.wheel.Now() + w.loop.srv.ticks(w.loop.srv.opts.CloseTimeout)
	w.loop.wheel.Schedule(w, w.deadline)
}

// fail records why the connection ends and closes the TCP connection after sending a close
// frame with code, when code is not 0. On the loop.
func (w *wsConn) fail(code int, reason string) {
	if w.state == stateClosed {
		return
	}
	if code != 0 && w.state == stateOpen {
		w.write(wsframe.AppendClose(w.loop.scratch(), code, reason))
	}
	if w.closeCode == 0 || w.state == stateOpen {
		w.closeCode, w.closeReason = code, reason
	}
	w.shut()
}

// shut closes the TCP connection after the output made so far. Inside OnTraffic the close
// waits until the batch is written; OnTraffic returns gnet.Close for it.
func (w *wsConn) shut() {
	w.state = stateClosed
	w.closing.Store(true)
	if w.loop.batching != w {
		_ = w.loop.el.Close(w.gc)
	}
}

// failAbnormal ends a connection that cannot take a close frame (dead or stuck peer); the
// backend hears code 1006 with the reason.
func (w *wsConn) failAbnormal(reason string) {
	if w.state == stateOpen || w.state == stateClosing {
		w.closeCode, w.closeReason = conntable.CloseAbnormal, reason
	}
	w.shut()
}

// timer runs when w's wheel entry comes due: handshake and closing deadlines, write stalls,
// pings and ping timeouts. It always reschedules or closes. On the loop.
func (w *wsConn) timer() {
	s := w.loop.srv
	now := w.loop.wheel.Now()
	switch w.state {
	case stateClosed:
		return
	case statePollHeld:
		s.heldExpired(w)
		return
	case stateHandshake, stateAuthorizing, statePollCreating: // the backend's answer counts against the handshake deadline
		if now >= w.deadline {
			s.opts.Metrics.UpgradesRejected.WithLabelValues("handshake_timeout").Inc()
			w.write(wsframe.AppendResponse(w.loop.scratch(), 408, "", "handshake timeout\n"))
			w.fail(0, "")
			return
		}
		w.loop.wheel.Schedule(w, w.deadline)
		return
	case stateClosing:
		if now >= w.deadline {
			w.fail(0, "") // keeps the code we sent
			return
		}
		w.loop.wheel.Schedule(w, w.deadline)
		return
	}

	// Open: a client that reads nothing for WriteTimeout is stuck.
	next := now + s.ticks(s.opts.PingInterval)
	if out := w.gc.OutboundBuffered(); out > 0 {
		w.outBuffered.Store(int64(out))
		if w.stuckSince == 0 || out < w.lastOutSize {
			w.stuckSince = now
		}
		w.lastOutSize = out
		if now-w.stuckSince >= s.ticks(s.opts.WriteTimeout) {
			w.failAbnormal("write timeout")
			return
		}
		next = min(next, now+max(s.ticks(s.opts.WriteTimeout)/4, 1))
	} else {
		w.outBuffered.Store(0)
		w.stuckSince, w.lastOutSize = 0, 0
	}

	// Liveness: any bytes from the client count as an answer to our ping.
	if w.pingSentAt != 0 && w.lastRead >= w.pingSentAt {
		w.pingSentAt = 0
	}
	switch {
	case w.pingSentAt != 0:
		if now-w.pingSentAt >= s.ticks(s.opts.PingTimeout) {
			w.failAbnormal("ping timeout")
			return
		}
		next = min(next, w.pingSentAt+s.ticks(s.opts.PingTimeout))
	case now-w.lastRead >= s.ticks(s.opts.PingInterval):
		w.write(wsframe.AppendFrame(w.loop.scratch(), wsframe.OpPing, nil))
		w.pingSentAt = now
		next = min(next, now+s.ticks(s.opts.PingTimeout))
	default:
		next = min(next, w.lastRead+s.ticks(s.opts.PingInterval))
	}
	w.loop.wheel.Schedule(w, next)
}
