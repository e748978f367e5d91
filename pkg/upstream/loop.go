package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/socketdock/socketdock/pkg/timerwheel"
)

// ws:// upstreams on event loops: a WebSocket client's upstream on the client's own gateway
// loop (the gateway passes its events on), a poll session's on the loops of our gnet Client,
// whose ticker also drives every loop's timer wheel here. A socket is enrolled (attached)
// when its client opens, and again after each pause (flow.go); each enrollment is an
// attachment, the gnet connection's context.

// tick is the upstream loops' timer resolution. Fine, because output held back for a slow
// upstream socket (softOutbound) is retried on it.
const tick = 10 * time.Millisecond

// softOutbound is how many bytes may wait in gnet's buffer for an upstream socket before the
// frames behind them stay in the pair's bounded queue. gnet does not say when its buffer
// drains, so the queue is counted exactly and this buffer is only topped up.
const softOutbound = 256 << 10

// iovBatch is the most frames handed to one writev (gnet passes them to the kernel as is).
const iovBatch = 256

type clientEvents struct {
	gnet.BuiltinEventEngine
	b     *Backend
	start time.Time

	mu    sync.Mutex
	loops map[gnet.EventLoop]*upLoop
}

// upLoop is one client event loop's own state.
type upLoop struct {
	el      gnet.EventLoop
	wheel   timerwheel.Wheel[*attachment]
	scratch []byte // client frames written straight to an upstream socket are masked here
}

// attachment is one enrollment of a pair's socket in a gnet loop, from attach to detach or
// close. Its fields belong to that loop.
type attachment struct {
	timerwheel.Handle
	p      *pair
	events *clientEvents
	gc     gnet.Conn
	loop   *upLoop

	inTraffic bool // inside OnTraffic or OnOpen: close by returning gnet.Close
	closeNow  bool // close the socket when OnTraffic or OnOpen returns
	gone      bool // OnClose ran
	detaching bool // the socket leaves gnet for the pause goroutine; OnClose does not end the link
	pausing   bool // a message waits for the client: read nothing, detach once our output is out
	left      int  // bytes left unconsumed in gnet's buffer when OnTraffic last returned

	lastRead   int64 // tick of the last bytes from the upstream
	pingSentAt int64 // tick of our unanswered ping, 0 for none
	stuckSince int64 // tick since which our output has not shrunk, 0 for none
	lastOut    int   // our output at the last timer check
	deadline   int64 // the closing handshake's deadline tick, 0 while open
}

func newClientEvents(b *Backend) *clientEvents {
	return &clientEvents{b: b, start: time.Now(), loops: make(map[gnet.EventLoop]*upLoop)}
}

func (e *clientEvents) now() int64 { return int64(time.Since(e.start) / tick) }

func ticks(d time.Duration) int64 { return max(int64(d/tick), 1) }

func (e *clientEvents) loopOf(gc gnet.Conn) *upLoop {
	el := gc.EventLoop()
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.loops[el]
	if !ok {
		l = &upLoop{el: el}
		l.wheel.Start(e.now())
		e.loops[el] = l
	}
	return l
}

// OnTick advances every loop's timer wheel, on that loop.
func (e *clientEvents) OnTick() (time.Duration, gnet.Action) {
	now := e.now()
	e.mu.Lock()
	for _, l := range e.loops {
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			l.wheel.Advance(now, (*attachment).timer)
			return nil
		}))
	}
	e.mu.Unlock()
	return tick, gnet.None
}

// OnOpen starts an attachment: it takes over the pair's queued output and any bytes read
// before it (the 101's tail, or what a pause left).
func (e *clientEvents) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	a := gc.Context().(*attachment)
	a.gc, a.loop = gc, e.loopOf(gc)
	a.lastRead = a.loop.wheel.Now()
	p := a.p
	p.mu.Lock()
	p.gc, p.kicked = gc, false
	p.mu.Unlock()
	a.inTraffic = true
	a.flush()
	a.inTraffic = false
	if a.closeNow {
		return nil, gnet.Close
	}
	a.schedule(a.loop.wheel.Now() + 1)
	if len(p.carry) > 0 {
		_ = gc.Wake(nil)
	}
	return nil, gnet.None
}

// OnTraffic writes the client's queued frames, then reads the upstream's.
func (e *clientEvents) OnTraffic(gc gnet.Conn) gnet.Action {
	a := gc.Context().(*attachment)
	p := a.p
	if gc.InboundBuffered() > a.left {
		a.lastRead = a.loop.wheel.Now()
	}
	a.inTraffic = true
	defer func() { a.inTraffic = false }()
	a.flush()
	switch {
	case a.closeNow:
	case p.state.Load() == upDone:
		_, _ = gc.Discard(-1)
	case a.pausing && p.isClientGone():
		a.pausing, p.stalled = false, nil // nobody waits for the held message any more
		a.read()
	case a.pausing:
		a.tryDetach()
	default:
		a.read()
	}
	a.flush()
	a.left = gc.InboundBuffered()
	if a.closeNow || a.detaching {
		return gnet.Close
	}
	return gnet.None
}

// OnClose ends the attachment: the socket went to the pause goroutine, or the link is over.
func (e *clientEvents) OnClose(gc gnet.Conn, err error) gnet.Action {
	a, _ := gc.Context().(*attachment)
	if a == nil {
		return gnet.None
	}
	a.gone = true
	a.loop.wheel.Cancel(a)
	p := a.p
	p.mu.Lock()
	if p.gc == gc {
		p.gc, p.kicked = nil, false
	}
	p.mu.Unlock()
	if a.detaching {
		go p.resume()
		return gnet.None
	}
	if a.pausing && p.state.Load() == upOpen {
		// The upstream closed while paused: what it sent before still reaches the client.
		buf, _ := gc.Peek(-1)
		p.carry = append(p.carry, buf...)
		go p.resume()
		return gnet.None
	}
	if p.state.Load() == upOpen { // nobody chose this close: the upstream went away
		p.onLoop = p.loop != nil && gc.EventLoop() == p.loop // the client's messages go out directly
		p.lost(endLost, lostText(err))
		p.onLoop = false
	}
	p.finish()
	return gnet.None
}

// On its client's loop the gateway hands the attachment its events (gateway.Enrolled).

func (a *attachment) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) { return a.events.OnOpen(gc) }
func (a *attachment) OnTraffic(gc gnet.Conn) gnet.Action        { return a.events.OnTraffic(gc) }
func (a *attachment) OnClose(gc gnet.Conn, err error) gnet.Action {
	return a.events.OnClose(gc, err)
}

// lostText describes how a socket ended for the client's close reason.
func lostText(err error) string {
	switch {
	case err == nil, errors.Is(err, net.ErrClosed):
		return "connection closed"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	return err.Error()
}

func (p *pair) isClientGone() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clientGone
}

// read decodes what the upstream sent, after what a pause left in carry. On the loop.
func (a *attachment) read() {
	p, gc := a.p, a.gc
	p.onLoop = p.loop != nil && gc.EventLoop() == p.loop
	defer func() { p.onLoop = false }()
	buf, _ := gc.Peek(-1)
	if len(p.carry) > 0 {
		p.carry = append(p.carry, buf...)
		_, _ = gc.Discard(len(buf))
		consumed, stalled, done := p.decode(p.carry)
		p.carry = p.carry[:copy(p.carry, p.carry[consumed:])]
		if len(p.carry) == 0 {
			p.carry = nil
		}
		a.afterDecode(stalled, done)
		return
	}
	consumed, stalled, done := p.decode(buf)
	if consumed > 0 { // after decode: event payloads alias buf. Discard(0) would drop everything
		_, _ = gc.Discard(consumed)
	}
	a.afterDecode(stalled, done)
}

func (a *attachment) afterDecode(stalled, done bool) {
	p := a.p
	switch {
	case done:
		_, _ = a.gc.Discard(-1) // nothing after a close frame or a protocol error counts
		p.carry = nil
		if p.state.Load() == upClosing { // the echo of our close
			a.shut()
		}
	case stalled:
		a.pausing = true
		p.b.m.pauses.Inc()
		a.tryDetach()
	}
}

// flush writes the pair's queued frames unless gnet already holds softOutbound bytes for the
// socket (the timer retries). A close frame among them moves the link to closing. On the loop.
func (a *attachment) flush() {
	if a.gone || a.closeNow || a.detaching {
		return
	}
	if a.gc.OutboundBuffered() > softOutbound {
		if a.p.block() && a.deadline == 0 {
			// Our close frame cannot even be written: the closing handshake's clock starts now.
			a.deadline = a.loop.wheel.Now() + ticks(a.p.b.opts.CloseTimeout)
		}
		a.schedule(a.loop.wheel.Now() + 1)
		return
	}
	frames, closing, echo := a.p.takeOut()
	for len(frames) > 0 {
		n := min(len(frames), iovBatch)
		_, _ = a.gc.Writev(frames[:n])
		clear(frames[:n])
		frames = frames[n:]
	}
	if !closing {
		return
	}
	if echo {
		a.shut()
		return
	}
	a.p.state.Store(upClosing)
	a.deadline = a.loop.wheel.Now() + ticks(a.p.b.opts.CloseTimeout)
	a.schedule(a.deadline)
}

// shut closes the socket after the output written so far. On the loop.
func (a *attachment) shut() {
	a.p.state.Store(upDone)
	if a.inTraffic {
		a.closeNow = true
		return
	}
	if !a.gone {
		_ = a.loop.el.Close(a.gc)
	}
}

func (a *attachment) schedule(at int64) {
	if a.At() == 0 || at < a.At() {
		a.loop.wheel.Schedule(a, at)
	}
}

// timer runs the attachment's clocks: the closing deadline, a pause waiting for our output to
// leave, held output, write stalls, pings and ping timeouts. On the loop.
func (a *attachment) timer() {
	if a.gone || a.detaching {
		return
	}
	p, o := a.p, &a.p.b.opts
	now := a.loop.wheel.Now()
	if p.state.Load() == upDone {
		return
	}
	p.onLoop = p.loop != nil && a.gc.EventLoop() == p.loop // a timeout's error message goes out directly
	defer func() { p.onLoop = false }()
	if a.deadline != 0 && now >= a.deadline { // no echo, or our close never left
		a.shut()
		return
	}
	if a.pausing {
		if p.isClientGone() {
			a.pausing, p.stalled = false, nil
			_ = a.gc.Wake(nil) // read what waited
		} else if a.tryDetach(); a.detaching {
			_ = a.loop.el.Close(a.gc)
			return
		}
	}
	a.flush()
	if a.gone || p.state.Load() == upDone {
		return
	}
	next := now + ticks(o.PingInterval)
	if p.state.Load() == upClosing {
		next = a.deadline
	}

	// Our output: an upstream that takes none of it for WriteTimeout is lost.
	if out := a.gc.OutboundBuffered(); out > 0 {
		if a.stuckSince == 0 || out < a.lastOut {
			a.stuckSince = now
		}
		a.lastOut = out
		if now-a.stuckSince >= ticks(o.WriteTimeout) {
			p.lost(endWriteTimeout, "write timeout")
			a.shut()
			return
		}
		next = min(next, now+1) // held frames wait for this buffer to shrink
	} else {
		a.stuckSince, a.lastOut = 0, 0
	}

	// Liveness: any bytes from the upstream answer our ping. A paused upstream is not read,
	// so it is not pinged either; its client's own timeouts bound the pause.
	if a.pingSentAt != 0 && a.lastRead >= a.pingSentAt {
		a.pingSentAt = 0
	}
	switch {
	case a.pausing || p.state.Load() == upClosing:
	case a.pingSentAt != 0:
		if now-a.pingSentAt >= ticks(o.PingTimeout) {
			p.lost(endPingTimeout, "ping timeout")
			a.shut()
			return
		}
		next = min(next, a.pingSentAt+ticks(o.PingTimeout))
	case now-a.lastRead >= ticks(o.PingInterval):
		p.queueControl(pingFrame())
		a.flush()
		a.pingSentAt = now
		next = min(next, now+ticks(o.PingTimeout))
	default:
		next = min(next, a.lastRead+ticks(o.PingInterval))
	}
	a.loop.wheel.Schedule(a, next)
}
