package upstream

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// upState is the upstream hop's closing state.
type upState = int32

const (
	upOpen    upState = iota
	upClosing         // our close frame is written; waiting for the echo (bounded by CloseTimeout)
	upDone            // the socket is closed, or being closed
)

// pair is one client connection linked to its upstream connection: Conn.BackendState.
//
// Who owns what: the upstream-side fields (dec, carry, conn, stalled) belong to whoever drives
// the upstream socket at the time: its gnet loop while attached (loop.go), the pause goroutine
// while detached (flow.go), the reader goroutine for wss:// (tls.go). The outbox and the
// flags under mu are shared with the client's side (Message and Closed, called from the
// client's event loop or poll request).
type pair struct {
	b      *Backend
	c      *conntable.Conn
	t      *target
	secure bool
	audit  *conntable.Conn // the audit backend's record, or nil
	loop   gnet.EventLoop  // the client's event loop, where a ws:// upstream is enrolled too; nil for poll sessions
	direct loopSender      // the client's transport, when it can take a message from its own loop directly
	onLoop bool            // the driver runs on the client's loop now (an attachment there is decoding)

	dec     wsframe.Decoder // the upstream's frames
	carry   []byte          // upstream bytes read but not yet decoded
	conn    net.Conn        // the socket while no gnet loop holds it; the TLS connection for wss://
	stalled *message        // an upstream message the client's outbound buffer could not take

	state atomic.Int32 // upState

	mu           sync.Mutex
	out          [][]byte     // masked frames for the upstream, in order
	outBytes     int          // client message bytes in out, with queuedOverhead each
	outMsgs      int          // client messages in out
	closeQueued  bool         // our close frame is in out (or written): nothing is queued after it
	closeFlushed bool         // it has been handed to the socket
	echo         bool         // our close answers the upstream's (or ends a failed upstream): close the socket once it is written
	started      bool         // a driver runs (or has run) the socket
	clientGone   bool         // Closed has been called
	upstreamGone bool         // the upstream closed or failed: the client's close is not forwarded
	gc           gnet.Conn    // the socket's gnet connection while attached (ws://)
	kicked       bool         // a flush is on its way to the driver
	blocked      bool         // the upstream takes no frames now: its socket buffer is full, or it is paused
	writing      bool         // wss://: a writer goroutine runs
	why          string       // why the link ends: the first cause, for metrics
	finished     bool         // finish ran
	closeBy      atomic.Int64 // wss://: Unix nanoseconds by which the close echo must arrive
}

// message is a whole upstream message held for the client.
type message struct {
	t       conntable.MessageType
	payload []byte
}

func newPair(b *Backend, c *conntable.Conn, t *target, d *dialed) *pair {
	return &pair{
		b: b, c: c, t: t, secure: t.secure, conn: d.conn, carry: d.early,
		dec: wsframe.Decoder{MaxMessage: b.opts.MaxMessageSize, FromServer: true},
	}
}

// maskKey is a fresh masking key from the runtime's ChaCha8 generator (RFC 6455 §5.3 asks
// for an unpredictable one).
func maskKey() (k [4]byte) {
	binary.LittleEndian.PutUint32(k[:], rand.Uint32())
	return k
}

// opened starts relaying once the client has its 101.
func (p *pair) opened() {
	p.mu.Lock()
	start := !p.started
	p.started = true
	p.mu.Unlock()
	if start {
		p.startDriver()
	}
}

// loopSender is a transport that takes a message from its own event loop without a hop
// through gnet's task queue (the gateway's WebSocket connection).
type loopSender interface {
	SendOnLoop(t conntable.MessageType, payload []byte) error
}

func (p *pair) startDriver() {
	switch {
	case p.secure:
		go p.readTLS()
	case p.loop != nil:
		p.attach() // the loop's Enroll does not wait
	default:
		go p.attach()
	}
}

// queuedOverhead is what a queued message costs beside its frame (slice header, allocation
// rounding), counted against MaxQueueBytes so that tiny messages cannot queue without bound.
const queuedOverhead = 64

// fromClient queues one client message for the upstream (backend.ErrInboundFull closes the
// client with 1013). The queue is bounded in bytes, each message counting its frame and
// queuedOverhead; one message always fits an empty queue. While the upstream takes nothing
// (its socket buffer is full, or it is paused) the queue is bounded in messages too: a burst
// passing through a healthy upstream is not "waiting" however many messages it holds.
// Once our close frame is queued or the upstream is gone, messages are dropped: the client
// is being closed and hears why.
func (p *pair) fromClient(t conntable.MessageType, payload []byte) error {
	o := &p.b.opts
	size := wsframe.MaskedFrameSize(len(payload)) + queuedOverhead
	p.mu.Lock()
	if p.closeQueued || p.upstreamGone {
		p.mu.Unlock()
		return nil
	}
	if (p.blocked && p.outMsgs >= o.MaxQueue) || (p.outMsgs > 0 && p.outBytes+size > o.MaxQueueBytes) {
		p.mu.Unlock()
		return backend.ErrInboundFull
	}
	if p.loop != nil && p.gc != nil && len(p.out) == 0 && p.gc.OutboundBuffered() <= softOutbound {
		// We are on the client's loop, which holds the upstream socket too: write it now,
		// from the loop's scratch buffer (gnet copies what the socket does not take).
		l := p.gc.Context().(*attachment).loop
		l.scratch = wsframe.AppendMaskedFrame(l.scratch[:0], ws.OpCode(t), payload, maskKey())
		_, _ = p.gc.Write(l.scratch)
		if cap(l.scratch) > 64<<10 {
			l.scratch = nil
		}
		p.mu.Unlock()
		return nil
	}
	p.out = append(p.out, wsframe.AppendMaskedFrame(make([]byte, 0, size-queuedOverhead), ws.OpCode(t), payload, maskKey()))
	p.outBytes += size
	p.outMsgs++
	kick := p.kickLocked()
	p.mu.Unlock()
	p.kick(kick)
	return nil
}

// queueControl queues a ping, pong or close frame (not counted against the bound).
func (p *pair) queueControl(frame []byte) {
	p.mu.Lock()
	if p.closeQueued {
		p.mu.Unlock()
		return
	}
	p.out = append(p.out, frame)
	kick := p.kickLocked()
	p.mu.Unlock()
	p.kick(kick)
}

type kickKind uint8

const (
	kickNone   kickKind = iota
	kickLoop            // wake the gnet loop that holds the socket
	kickWriter          // start a wss:// writer goroutine
)

// kickLocked decides how the driver learns that out has frames. With mu held.
func (p *pair) kickLocked() kickKind {
	switch {
	case p.secure && !p.writing && p.started && p.conn != nil:
		p.writing = true
		return kickWriter
	case !p.secure && !p.kicked && p.gc != nil:
		p.kicked = true
		return kickLoop
	}
	return kickNone // a flush is coming, or the socket is between loops: attach flushes
}

func (p *pair) kick(k kickKind) {
	switch k {
	case kickLoop:
		p.mu.Lock()
		gc := p.gc
		p.mu.Unlock()
		if gc != nil {
			_ = gc.Wake(nil)
		}
	case kickWriter:
		go p.writeTLS()
	}
}

// takeOut hands the queued frames to the driver. closing reports that our close frame is
// among them (then echo says whether to close the socket once they are written).
func (p *pair) takeOut() (frames [][]byte, closing, echo bool) {
	p.mu.Lock()
	frames = p.out
	p.out, p.outBytes, p.outMsgs = nil, 0, 0
	p.kicked, p.blocked = false, false
	if p.closeQueued && !p.closeFlushed && len(frames) > 0 {
		p.closeFlushed = true
		closing = true
	}
	echo = p.echo
	p.mu.Unlock()
	return frames, closing, echo
}

// clientClosed forwards the end of the client's connection: the upstream gets the same close
// code (CONTRACT §9), unless it closed or failed first.
func (p *pair) clientClosed(code int, reason string) {
	p.mu.Lock()
	p.clientGone = true
	if p.closeQueued || p.upstreamGone {
		p.mu.Unlock()
		return
	}
	p.setWhyLocked(endClientClose)
	code = upstreamCode(code)
	if code == conntable.CloseGoingAway && reason == "" {
		reason = "client went away"
	}
	p.out = append(p.out, wsframe.AppendMaskedClose(nil, code, reason, maskKey()))
	p.closeQueued = true
	start := !p.started
	p.started = true
	kick := p.kickLocked()
	p.mu.Unlock()
	if p.secure && !start { // a write stuck behind a stalled upstream gives up by then
		closeBy := time.Now().Add(p.b.opts.CloseTimeout)
		p.closeBy.CompareAndSwap(0, closeBy.UnixNano())
		_ = p.conn.SetWriteDeadline(closeBy)
	}
	if start { // the client left before its upgrade completed: the driver runs just to close
		p.startDriver()
		return
	}
	p.kick(kick)
}

// block marks the upstream as taking no frames (see fromClient). It reports whether our
// close frame is among those waiting.
func (p *pair) block() (closing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	return p.closeQueued
}

func (p *pair) setWhyLocked(why string) {
	if p.why == "" {
		p.why = why
	}
}

// deliver hands an upstream message to the client. It reports false when the client's
// outbound buffer is full: the message is kept in stalled and reading must stop.
func (p *pair) deliver(ev wsframe.Event) bool {
	t := conntable.MessageType(ev.Op)
	var err error
	if p.onLoop && p.direct != nil {
		err = p.direct.SendOnLoop(t, ev.Payload)
	} else {
		err = p.c.Transport.Send(t, ev.Payload)
	}
	if errors.Is(err, conntable.ErrSlowConsumer) {
		p.stalled = &message{t: t, payload: append([]byte(nil), ev.Payload...)}
		return false
	}
	return true // sent, or the client is closing (it hears why from its own close)
}

// decode handles the upstream's events in data and returns how many bytes it consumed. It
// stops early when a message waits for the client (stalled) or the upstream's stream ended:
// a close frame or a protocol error (done).
func (p *pair) decode(data []byte) (consumed int, stalled, done bool) {
	for consumed < len(data) {
		ev, n, err := p.dec.Next(data[consumed:])
		if err != nil {
			p.protocolError(err)
			return len(data), false, true
		}
		consumed += n
		switch ev.Kind {
		case wsframe.NeedMore:
			if n == 0 {
				return consumed, false, false
			}
		case wsframe.Message:
			if p.state.Load() != upOpen {
				continue // our close is out: the client is gone
			}
			if !p.deliver(ev) {
				return consumed, true, false
			}
		case wsframe.Ping:
			p.queueControl(wsframe.AppendMaskedFrame(nil, wsframe.OpPong, ev.Payload, maskKey()))
		case wsframe.Pong:
		case wsframe.Close:
			p.upstreamClosed(ev.Code, ev.Reason)
			return len(data), false, true
		}
	}
	return consumed, false, false
}

// upstreamClosed handles the upstream's close frame: the echo of ours, or its own close,
// which it gets answered with the same code while the client gets the code too.
func (p *pair) upstreamClosed(code int, reason string) {
	if p.state.Load() == upClosing {
		return // the echo of our close: the driver closes the socket
	}
	p.mu.Lock()
	p.upstreamGone = true
	p.echo = true
	p.setWhyLocked(endUpstreamClose)
	if !p.closeQueued { // else our queued close (the client's) answers it
		p.out = append(p.out, wsframe.AppendMaskedClose(nil, upstreamCode(code), "", maskKey()))
		p.closeQueued = true
	}
	gone := p.clientGone
	kick := p.kickLocked()
	p.mu.Unlock()
	p.kick(kick)
	if !gone {
		p.c.Transport.Close(clientCode(code), reason)
	}
}

// protocolError ends an upstream that broke RFC 6455: it gets the close code for what it
// did, the client 1014.
func (p *pair) protocolError(err error) {
	var ce *wsframe.CloseError
	if !errors.As(err, &ce) {
		ce = &wsframe.CloseError{Code: conntable.CloseProtocolError, Reason: err.Error()}
	}
	why := endProtocol
	switch ce.Code {
	case conntable.CloseInvalidPayload:
		why = endInvalidUTF8
	case conntable.CloseTooBig:
		why = endTooBig
	}
	p.mu.Lock()
	p.upstreamGone = true
	p.echo = true
	p.setWhyLocked(why)
	if !p.closeQueued {
		p.out = append(p.out, wsframe.AppendMaskedClose(nil, ce.Code, ce.Reason, maskKey()))
		p.closeQueued = true
	}
	kick := p.kickLocked()
	p.mu.Unlock()
	p.kick(kick)
	p.tellClient("protocol error: " + ce.Reason)
}

// lost records an upstream that went without a close handshake (EOF, reset, ping or write
// timeout); the driver closes the socket.
func (p *pair) lost(why, detail string) {
	p.state.Store(upDone)
	p.mu.Lock()
	told := p.upstreamGone // its close frame or protocol error already reached the client
	p.upstreamGone = true
	p.setWhyLocked(why)
	p.mu.Unlock()
	if !told {
		p.tellClient("lost: " + detail)
	}
}

// tellClient closes the client with 1014 and a reason naming the upstream; with
// --upstream-errors message it gets tremor's JSON error message first.
func (p *pair) tellClient(what string) {
	p.mu.Lock()
	gone := p.clientGone
	p.mu.Unlock()
	if gone {
		return
	}
	reason := "upstream " + p.t.display + " " + what
	if p.b.opts.ErrorMessages {
		msg := errorMessage(reason, p.c.ID)
		if p.onLoop && p.direct != nil { // Send would wait for this very loop
			_ = p.direct.SendOnLoop(conntable.Text, msg)
		} else {
			_ = p.c.Transport.Send(conntable.Text, msg)
		}
	}
	p.c.Transport.Close(conntable.CloseBadGateway, reason)
}

// finish records that the upstream socket is closed. Once.
func (p *pair) finish() {
	p.state.Store(upDone)
	p.mu.Lock()
	if p.finished {
		p.mu.Unlock()
		return
	}
	p.finished = true
	why := p.why
	p.out, p.carry = nil, nil
	p.mu.Unlock()
	if why == "" {
		why = endLost
	}
	p.b.m.ends.WithLabelValues(why).Inc()
	p.b.unlinked()
}
