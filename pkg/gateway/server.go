package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	gnerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/rs/zerolog"

	"github.com/socketdock/socketdock/pkg/backend"
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/longpoll"
	"github.com/socketdock/socketdock/pkg/metrics"
	"github.com/socketdock/socketdock/pkg/timerwheel"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// Server is the public listener. Create it with New, start it with Start.
type Server struct {
	gnet.BuiltinEventEngine

	opts  Options
	log   zerolog.Logger
	tick  time.Duration
	start time.Time

	loopsMu sync.Mutex
	loops   map[gnet.EventLoop]*loop

	pollCfg   longpoll.Config
	sessions  sessionTable
	stopSweep chan struct{}
	sends     sync.Pool // *sendRequest

	eng     gnet.Engine
	booted  chan struct{}
	stopped chan struct{}
	runErr  error
}

// loop is the state one event loop owns: its timer wheel and output scratch space.
type loop struct {
	srv      *Server
	el       gnet.EventLoop
	wheel    timerwheel.Wheel[*wsConn]
	out      []byte  // OnTraffic's output batch
	batching *wsConn // whose output is being batched, if any
	tmp      []byte
	iov      [2][]byte        // a Send's header and payload, for one writev
	headers  []wsframe.Header // reused by every handshake on this loop
	traffic  *metrics.Traffic // this loop's message counters

	pollParams longpoll.Params    // reused by every poll request on this loop
	pollOut    []byte             // poll answers are built here
	pollBatch  []longpoll.Message // and their batches taken here
}

func (l *loop) scratch() []byte { return l.tmp[:0] }

// New prepares a Server; it listens once Start is called.
func New(opts Options) *Server {
	opts.setDefaults()
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		loops:   make(map[gnet.EventLoop]*loop),
		booted:  make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.sends.New = newSendRequest
	s.tick = tickFor(&s.opts)
	s.pollCfg = longpoll.Config{
		MaxMessageBytes:  s.opts.MaxMessageSize,
		MaxOutboundBytes: s.opts.MaxOutboundBytes,
		MaxBatchBytes:    s.opts.PollMaxBatchBytes,
		MaxTTL:           s.opts.PollMaxTTL,
		NoJSONP:          s.opts.PollNoJSONP,
	}
	s.sessions.gauge = s.opts.Metrics.PollSessions
	return s
}

// Start binds the listener and returns once it accepts connections, or with the bind error.
func (s *Server) Start() error {
	s.start = time.Now()
	loops := s.opts.Loops
	if loops <= 0 {
		loops = runtime.NumCPU()
	}
	go func() {
		s.runErr = gnet.Run(s, "tcp://"+s.opts.Addr,
			gnet.WithNumEventLoop(loops),
			gnet.WithReusePort(s.opts.ReusePort),
			gnet.WithReuseAddr(true),
			gnet.WithTicker(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithLogger(gnetLogger{s.log}),
		)
		close(s.stopped)
	}()
	select {
	case <-s.booted:
		if s.opts.Poll {
			s.stopSweep = make(chan struct{})
			go s.sweepSessions(s.stopSweep)
		}
		return nil
	case <-s.stopped:
		return fmt.Errorf("public listener %s: %w", s.opts.Addr, s.runErr)
	}
}

// Stop closes the listener and every remaining connection, and waits for the engine to end.
func (s *Server) Stop(ctx context.Context) error {
	select {
	case <-s.booted:
	default:
		return nil
	}
	if s.stopSweep != nil {
		close(s.stopSweep)
		s.stopSweep = nil
	}
	err := s.eng.Stop(ctx)
	if errors.Is(err, gnerrors.ErrEngineInShutdown) {
		err = nil // a second (or concurrent) Stop waits like the first: Stop is idempotent
	}
	select {
	case <-s.stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

// OnBoot implements gnet.EventHandler.
func (s *Server) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	close(s.booted)
	return gnet.None
}

// OnTick asks every loop to advance its timer wheel.
func (s *Server) OnTick() (time.Duration, gnet.Action) {
	now := int64(time.Since(s.start) / s.tick)
	s.loopsMu.Lock()
	loops := make([]*loop, 0, len(s.loops))
	for _, l := range s.loops {
		loops = append(loops, l)
	}
	s.loopsMu.Unlock()
	for _, l := range loops { // Execute takes gnet's own lock: not under loopsMu
		_ = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			l.wheel.Advance(now, (*wsConn).timer)
			return nil
		}))
	}
	return s.tick, gnet.None
}

// ticks converts a duration into wheel ticks, at least one.
func (s *Server) ticks(d time.Duration) int64 { return max(int64(d/s.tick), 1) }

func (s *Server) loopOf(c gnet.Conn) *loop {
	el := c.EventLoop()
	s.loopsMu.Lock()
	defer s.loopsMu.Unlock()
	l, ok := s.loops[el]
	if !ok {
		l = &loop{srv: s, el: el, tmp: make([]byte, 0, 256), traffic: s.opts.Metrics.NewTraffic()}
		l.wheel.Start(int64(time.Since(s.start) / s.tick))
		s.loops[el] = l
	}
	return l
}

// OnOpen starts the handshake clock for a new TCP connection.
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if h, ok := c.Context().(Enrolled); ok {
		return h.OnOpen(c)
	}
	l := s.loopOf(c)
	w := &wsConn{gc: c, loop: l}
	w.lastRead = l.wheel.Now()
	w.deadline = l.wheel.Now() + s.ticks(s.opts.HandshakeTimeout)
	l.wheel.Schedule(w, w.deadline)
	c.SetContext(w)
	return nil, gnet.None
}

// OnClose reports an upgraded connection's end to the backend, exactly once.
func (s *Server) OnClose(c gnet.Conn, err error) gnet.Action {
	w, _ := c.Context().(*wsConn)
	if w == nil {
		if h, ok := c.Context().(Enrolled); ok {
			return h.OnClose(c, err)
		}
		return gnet.None
	}
	w.state = stateClosed
	w.closing.Store(true)
	w.loop.wheel.Cancel(w)
	s.pollConnClosed(w)
	if w.conn == nil {
		if w.rare != nil {
			w.rare.authz = nil // a verdict still on its way finds the connection gone (security.go)
		}
		s.opts.Hub.Release(&w.ticket)
		return gnet.None
	}
	code, reason := int(w.closeCode), w.closeReason()
	if code == 0 {
		code, reason = conntable.CloseAbnormal, "connection lost"
		if err != nil && !errors.Is(err, net.ErrClosed) {
			reason = "connection lost: " + err.Error()
		}
	}
	s.opts.Hub.Closed(w.conn, &w.ticket, code, reason)
	// The wheel may hold w until its slot comes round (up to a ping interval): let go of
	// what it points to, so a burst of short connections does not stay in the heap.
	w.conn, w.dec, w.rare = nil, wsframe.Stream{}, nil
	return gnet.None
}

// OnTraffic reads the upgrade request, then frames, as far as the bytes go.
func (s *Server) OnTraffic(c gnet.Conn) gnet.Action {
	w, ok := c.Context().(*wsConn)
	if !ok {
		return c.Context().(Enrolled).OnTraffic(c)
	}
	l := w.loop
	l.batching = w
	l.out = l.out[:0]
	action := s.read(w)
	l.batching = nil
	if len(l.out) > 0 {
		_, _ = c.Write(l.out)
		if cap(l.out) > 64<<10 {
			l.out = nil
		}
	}
	if w.state == stateClosed {
		return gnet.Close
	}
	w.noteOutbound(c.OutboundBuffered())
	return action
}

func (s *Server) read(w *wsConn) gnet.Action {
	c := w.gc
	w.lastRead = w.loop.wheel.Now()
	buf, _ := c.Peek(-1)
	switch w.state {
	case stateAuthorizing, statePollCreating, statePollHeld:
		s.holdWhileAuthorizing(w, len(buf))
		return gnet.None
	}
	// Discard only once, at the end: Discard recycles Peek's copy of bytes that wrapped
	// around gnet's ring buffer, and Discard(0) would drop everything.
	consumed := 0
	for (w.state == stateHandshake || w.state == stateKeepAlive) && consumed < len(buf) { // keep-alive poll requests come one after another
		if w.state == stateKeepAlive { // a new request starts: it has the handshake timeout to arrive whole
			w.state = stateHandshake
			w.deadline = w.loop.wheel.Now() + s.ticks(s.opts.HandshakeTimeout)
			w.loop.wheel.Schedule(w, w.deadline)
		}
		n := s.handshake(w, buf[consumed:])
		if n == 0 {
			break
		}
		consumed += n
	}
	switch w.state {
	case stateClosed:
		_, _ = c.Discard(len(buf))
		return gnet.None
	case stateOpen, stateClosing:
	default: // a request still arriving, or waiting on the backend or a held poll: what follows stays in gnet's buffer
		if consumed > 0 {
			_, _ = c.Discard(consumed)
		}
		return gnet.None
	}
	for consumed < len(buf) && (w.state == stateOpen || w.state == stateClosing) {
		ev, n, err := w.dec.Next(buf[consumed:], s.opts.MaxMessageSize, false)
		if err != nil {
			var ce *wsframe.CloseError
			errors.As(err, &ce)
			w.fail(ce.Code, ce.Reason)
			break
		}
		consumed += n
		switch ev.Kind {
		case wsframe.NeedMore:
			if n == 0 {
				goto done
			}
		case wsframe.Message:
			if w.state == stateOpen {
				s.message(w, ev)
			}
		case wsframe.Ping:
			// A pong that does not fit the outbound bound is not queued: a client that reads
			// nothing cannot see it, and RFC 6455 §5.5.3 lets a server answer only the latest
			// of several pings. So pings cost no memory; the write timeout ends such a client.
			if w.state == stateOpen && w.fits(wsframe.FrameSize(len(ev.Payload))) {
				w.write(wsframe.AppendFrame(w.loop.scratch(), wsframe.OpPong, ev.Payload))
			}
		case wsframe.Pong:
			// lastRead already counts it as life.
		case wsframe.Close:
			s.peerClosed(w, ev)
		}
	}
done:
	if w.state == stateClosed {
		_, _ = c.Discard(len(buf))
		return gnet.None
	}
	if consumed > 0 {
		_, _ = c.Discard(consumed)
	}
	return gnet.None
}

// message hands a complete client message, empty ones included (the backend decides what
// to do with them), to the backend and writes an immediate reply.
func (s *Server) message(w *wsConn, ev wsframe.Event) {
	t := w.loop.traffic
	w.conn.CountIn()
	switch {
	case len(ev.Payload) == 0:
		t.EmptyMessages.Add(1)
	default:
		countIn(t, conntable.MessageType(ev.Op), len(ev.Payload), false)
	}
	reply, replied, err := s.opts.Backend.Message(w.conn, conntable.MessageType(ev.Op), ev.Payload)
	if errors.Is(err, backend.ErrInboundFull) {
		w.startClose(conntable.CloseTryAgainLater, "inbound queue full")
		return
	}
	if !replied {
		return
	}
	if !w.fits(wsframe.FrameSize(len(reply.Payload))) {
		w.startClose(conntable.CloseTryAgainLater, "outbound buffer full")
		return
	}
	op := ws.OpCode(reply.Type)
	w.loop.out = wsframe.AppendFrame(w.loop.out, op, reply.Payload)
	w.countOut(op, len(reply.Payload))
}

// peerClosed answers the client's close frame: the echo when the client started the closing
// handshake, then the TCP close either way.
func (s *Server) peerClosed(w *wsConn, ev wsframe.Event) {
	if w.state == stateOpen {
		w.setClose(ev.Code, ev.Reason)
		echo := ev.Code
		if echo == conntable.CloseNoStatus {
			echo = 0
		}
		w.write(wsframe.AppendClose(w.loop.scratch(), echo, ev.Reason))
	}
	w.shut()
}
