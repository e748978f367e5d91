package upstream

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/socketdock/socketdock/pkg/wsframe"
)

// wss:// upstreams: gnet has no TLS, so each gets a reader goroutine (blocked in Read while
// idle), and a writer goroutine only while it has frames to write. Pausing is natural here:
// the reader waits for the client before it reads on. Timers are read deadlines.

// tlsReadBuffer is the reader goroutine's buffer.
const tlsReadBuffer = 4 << 10

func pingFrame() []byte { return wsframe.AppendMaskedFrame(nil, wsframe.OpPing, nil, maskKey()) }

// readTLS reads and decodes the upstream until its socket closes. It owns the socket's end.
func (p *pair) readTLS() {
	defer p.finish()
	conn, o := p.conn, &p.b.opts
	defer conn.Close()
	p.mu.Lock()
	kick := p.kickLocked() // frames queued before the client opened
	p.mu.Unlock()
	p.kick(kick)

	buf := make([]byte, tlsReadBuffer)
	lastRead := time.Now()
	var pingSentAt time.Time
	ended := false // a close frame or a protocol error: read on only until the socket closes
	for {
		if len(p.carry) > 0 && !ended {
			consumed, stalled, done := p.decode(p.carry)
			p.carry = p.carry[:copy(p.carry, p.carry[consumed:])]
			if stalled {
				p.waitForClient()
				continue
			}
			if done {
				ended, p.carry = true, nil
				if p.state.Load() == upClosing { // the echo of our close
					return
				}
			}
		}
		if p.state.Load() == upDone {
			return
		}
		deadline := lastRead.Add(o.PingInterval)
		switch {
		case p.state.Load() == upClosing || ended:
			deadline = time.Unix(0, p.closeBy.Load())
			if p.closeBy.Load() == 0 {
				deadline = time.Now().Add(o.CloseTimeout)
				p.closeBy.Store(deadline.UnixNano())
			}
		case !pingSentAt.IsZero():
			deadline = pingSentAt.Add(o.PingTimeout)
		}
		_ = conn.SetReadDeadline(deadline)
		n, err := conn.Read(buf)
		if n > 0 {
			lastRead, pingSentAt = time.Now(), time.Time{}
			if !ended {
				p.carry = append(p.carry, buf[:n]...)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			switch {
			case p.state.Load() == upClosing || ended:
				if time.Now().UnixNano() >= p.closeBy.Load() {
					p.state.Store(upDone)
					return
				}
			case !pingSentAt.IsZero():
				p.lost(endPingTimeout, "ping timeout")
				return
			case time.Since(lastRead) >= o.PingInterval:
				p.queueControl(pingFrame())
				pingSentAt = time.Now()
			}
		default:
			if p.state.Load() == upOpen && !ended {
				p.drainCarry() // what it sent before the socket closed still reaches the client
				p.lost(endLost, lostText(err))
			}
			return
		}
	}
}

// writeTLS writes the queued frames until none are left.
func (p *pair) writeTLS() {
	o := &p.b.opts
	for {
		frames, closing, echo := p.takeOut()
		if len(frames) == 0 {
			p.mu.Lock()
			if len(p.out) == 0 {
				p.writing = false
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			continue
		}
		deadline := time.Now().Add(o.WriteTimeout)
		if closeBy := p.closeBy.Load(); closeBy != 0 {
			deadline = time.Unix(0, min(closeBy, deadline.UnixNano()))
		}
		_ = p.conn.SetWriteDeadline(deadline)
		bufs := net.Buffers(frames)
		if _, err := bufs.WriteTo(p.conn); err != nil {
			why := endLost
			if errors.Is(err, os.ErrDeadlineExceeded) {
				why = endWriteTimeout
			}
			p.lost(why, lostText(err))
			_ = p.conn.Close() // the reader ends the link
			p.mu.Lock()
			p.writing, p.out = false, nil
			p.mu.Unlock()
			return
		}
		if !closing {
			continue
		}
		if echo {
			p.state.Store(upDone)
			_ = p.conn.Close()
			continue
		}
		p.closeBy.CompareAndSwap(0, time.Now().Add(o.CloseTimeout).UnixNano())
		p.state.Store(upClosing)
		_ = p.conn.SetReadDeadline(time.Now()) // the reader picks up the closing deadline
	}
}
