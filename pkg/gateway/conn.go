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
	stateHandshake    connState = iota // reading a request: an upgrade, or a poll request
	stateAuthorizing                   // upgrade request valid, waiting for the backend's verdict (security.go)
	stateOpen                          // upgraded
	stateClosing                       // our close frame is out; waiting for the echo
	stateClosed                        // gone, or about to be: nothing more is read or written
	statePollCreating                  // a /poll/create waits for the backend's verdict (poll.go)
	statePollHeld                      // a /poll/j is held until a message, its ttl, or a newer poll
	stateKeepAlive                     // a poll request was answered; the next may come (poll.go)
)

// wsConn is one client connection's gateway state. Fields without atomics belong to the
// event loop and are touched only there. Every idle connection has one, so it is kept to
// 96 bytes, a size class of its own (TestWSConnSize): fields are ordered to leave no
// padding, deadline doubles as the outstanding ping's tick while the connection is open, and
// what few connections need at a time is in wsRare, allocated on first use.
type wsConn struct {
	timerwheel.Handle
	gc     gnet.Conn
	loop   *loop
	conn   *conntable.Conn // nil until upgraded
	held   *heldPoll       // the poll this connection holds (statePollHeld)
	rare   *wsRare         // nil until needed
	dec    wsframe.Stream  // decoded with the server's MaxMessageSize, from a client
	ticket hub.Ticket      // the slot held against the connection limits, from admission to the end

	lastRead int64 // tick of the last bytes received
	// deadline is the handshake, request or closing deadline tick; in stateOpen, which has
	// none, it is the tick of the outstanding ping, 0 for none (pingSentAt).
	deadline int64

	state     connState // 1 byte
	closeCode uint16    // a close code (1000-4999), 0 for none yet; its reason is in rare

	// Read from other goroutines by Send and Close.
	closing atomic.Bool // the connection takes no more messages: Send answers ErrClosing
}

// wsRare is the part of a connection's state that an idle connection does not need: an
// upgrade waiting for the backend's verdict, a write stall being timed, a close's reason.
type wsRare struct {
	authz       *authorizing // while stateAuthorizing
	stuckSince  int64        // tick since which outbound bytes have not shrunk, 0 for none
	lastOutSize int          // outbound bytes at the last timer check
	closeReason string       // reported to the backend when the connection ends, with closeCode
}

// rareState returns w's rare state, allocating it on first use. On the loop.
func (w *wsConn) rareState() *wsRare {
	if w.rare == nil {
		w.rare = &wsRare{}
	}
	return w.rare
}

// authorizing is the upgrade waiting for the backend's verdict, or nil. On the loop.
func (w *wsConn) authorizing() *authorizing {
	if w.rare == nil {
		return nil
	}
	return w.rare.authz
}

// setClose records the code and reason reported when the connection ends. On the loop.
func (w *wsConn) setClose(code int, reason string) {
	w.closeCode = uint16(code)
	if reason != "" || w.rare != nil {
		w.rareState().closeReason = reason
	}
}

// closeReason is the reason recorded with closeCode. On the loop.
func (w *wsConn) closeReason() string {
	if w.rare == nil {
		return ""
	}
	return w.rare.closeReason
}

// pingSentAt is the tick of the outstanding ping, 0 for none; open connections only.
func (w *wsConn) pingSentAt() int64 { return w.deadline }

func (w *wsConn) setPingSentAt(tick int64) { w.deadline = tick }

// Name implements conntable.Transport.
func (w *wsConn) Name() string { return "ws" }

// sendWait bounds how long Send waits for the event loop to take a message. A loop that has
// not run the message by then answers 503 (retry later) and the message is dropped unwritten.
const sendWait = time.Second

// Send implements conntable.Transport. The message is written on the loop, where the
// connection's state and outbound bytes are known exactly, and Send waits for that verdict:
// nil means the frame went out (or into gnet's bounded buffer) before any close frame, so a
// message that loses a race with a close is refused, never written after the close frame;
// and concurrent sends are checked against the outbound bound one at a time. It must not be
// called on an event loop, which would wait for itself.
func (w *wsConn) Send(t conntable.MessageType, payload []byte) error {
	if w.closing.Load() {
		return conntable.ErrClosing
	}
	s := w.loop.srv
	if len(payload) > s.opts.MaxMessageSize {
		return conntable.ErrTooBig
	}
	req := s.sends.Get().(*sendRequest)
	req.w, req.op, req.payload = w, ws.OpCode(t), payload
	req.state.Store(sendPending)
	if err := w.gc.EventLoop().Execute(context.Background(), req); err != nil {
		req.w, req.payload = nil, nil
		s.sends.Put(req)
		return conntable.ErrClosing // the engine is shutting down
	}
	req.timer.Reset(sendWait)
	select {
	case <-req.done:
	case <-req.timer.C:
		if req.state.CompareAndSwap(sendPending, sendAbandoned) {
			return conntable.ErrSlowConsumer // req stays with the loop's queue, never reused
		}
		<-req.done // the loop has started it: the write is a moment away
	}
	req.timer.Stop()
	err := req.err
	req.w, req.payload, req.err = nil, nil, nil
	s.sends.Put(req)
	return err
}

// sendRequest carries one Send to the loop and its verdict back. Pooled per Server.
type sendRequest struct {
	w       *wsConn
	op      ws.OpCode
	payload []byte // the caller's: valid until Send returns, so only while state is sendTaken
	err     error
	state   atomic.Int32
	done    chan struct{} // one value when err is set
	timer   *time.Timer
}

const (
	sendPending   = iota // queued on the loop
	sendTaken            // the loop runs it; Send waits for done
	sendAbandoned        // Send gave up waiting; the loop must not touch payload
)

func newSendRequest() any {
	t := time.NewTimer(sendWait)
	t.Stop()
	return &sendRequest{done: make(chan struct{}, 1), timer: t}
}

// Run writes the message on the loop, unless Send has given up on it. It implements
// gnet.Runnable, so handing it to Execute allocates no closure of ours.
func (r *sendRequest) Run(context.Context) error {
	if !r.state.CompareAndSwap(sendPending, sendTaken) {
		return nil
	}
	r.err = r.w.sendOnLoop(r.op, r.payload)
	r.done <- struct{}{}
	return nil
}

// sendOnLoop writes one message from another goroutine, header and payload in one writev
// straight from the caller's buffer (gnet copies what the socket does not take). On the loop,
// never inside OnTraffic.
func (w *wsConn) sendOnLoop(op ws.OpCode, payload []byte) error {
	if w.state != stateOpen {
		return conntable.ErrClosing
	}
	if !w.fits(wsframe.FrameSize(len(payload))) {
		return conntable.ErrSlowConsumer
	}
	l := w.loop
	l.iov[0] = wsframe.AppendHeader(l.scratch(), true, op, len(payload))
	l.iov[1] = payload
	_, err := w.gc.Writev(l.iov[:])
	l.iov = [2][]byte{} // keep no reference to the caller's buffer
	if err != nil {
		return conntable.ErrClosing // gnet has closed the connection
	}
	w.countOut(op, len(payload))
	w.noteOutbound(w.gc.OutboundBuffered())
	return nil
}

// fits reports whether n more bytes keep the connection within --max-outbound-bytes: every
// byte queued for the client counts, in gnet's outbound buffer or in this OnTraffic's batch.
// Only the one close frame a connection ever gets is written whether it fits or not. On the
// loop, in an open connection.
func (w *wsConn) fits(n int) bool {
	out := w.gc.OutboundBuffered() + n
	if w.loop.batching == w {
		out += len(w.loop.out)
	}
	return out <= w.loop.srv.opts.MaxOutboundBytes
}

// noteOutbound looks at gnet's outbound buffer after a write, on the loop. When bytes are
// left over, the timer is brought forward so the write-stall clock starts now rather than
// at the next ping check (which may be a whole --ping-interval away).
func (w *wsConn) noteOutbound(out int) {
	if out > 0 && w.state == stateOpen {
		if at := w.loop.wheel.Now() + max(w.loop.srv.ticks(w.loop.srv.opts.WriteTimeout)/4, 1); at < w.At() {
			w.loop.wheel.Schedule(w, at)
		}
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
	w.setClose(code, reason)
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
		w.setClose(code, reason)
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
		w.setClose(conntable.CloseAbnormal, reason)
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
	case stateKeepAlive: // idle between requests: closed quietly, as HTTP servers do
		if now >= w.deadline {
			w.fail(0, "")
			return
		}
		w.loop.wheel.Schedule(w, w.deadline)
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
		r := w.rareState()
		if r.stuckSince == 0 || out < r.lastOutSize {
			r.stuckSince = now
		}
		r.lastOutSize = out
		if now-r.stuckSince >= s.ticks(s.opts.WriteTimeout) {
			w.failAbnormal("write timeout")
			return
		}
		next = min(next, now+max(s.ticks(s.opts.WriteTimeout)/4, 1))
	} else if w.rare != nil {
		w.rare.stuckSince, w.rare.lastOutSize = 0, 0
	}

	// Liveness: any bytes from the client count as an answer to our ping.
	if w.pingSentAt() != 0 && w.lastRead >= w.pingSentAt() {
		w.setPingSentAt(0)
	}
	switch {
	case w.pingSentAt() != 0:
		if now-w.pingSentAt() >= s.ticks(s.opts.PingTimeout) {
			w.failAbnormal("ping timeout")
			return
		}
		next = min(next, w.pingSentAt()+s.ticks(s.opts.PingTimeout))
	case now-w.lastRead >= s.ticks(s.opts.PingInterval):
		// A client whose outbound bound is full gets no ping: it is stuck, not silent, and
		// the write timeout above judges it.
		if w.fits(wsframe.FrameSize(0)) {
			w.write(wsframe.AppendFrame(w.loop.scratch(), wsframe.OpPing, nil))
			w.setPingSentAt(now)
			next = min(next, now+s.ticks(s.opts.PingTimeout))
		}
	default:
		next = min(next, w.lastRead+s.ticks(s.opts.PingInterval))
	}
	w.loop.wheel.Schedule(w, next)
}
