package wsclient

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"syscall"
)

// Idler keeps many upgraded connections open on one epoll descriptor and one goroutine: it
// answers the server's pings with pongs and its close with a close, and discards data. A
// held connection costs the Idler nothing but its descriptor (plus a few bytes while a frame
// is split across reads), where a reader goroutine per connection costs a stack and a
// buffer: this is what lets one machine hold hundreds of thousands of client sockets.
type Idler struct {
	epfd   int
	alive  atomic.Int64
	pongs  atomic.Int64
	mu     sync.Mutex
	fds    map[int32]*idleState // every open descriptor; state only while a frame is split
	prng   uint64
	buf    [4096]byte
	events [64]syscall.EpollEvent // Poll's
	wbuf   []byte
}

// idleState is what is left of a frame split across reads.
type idleState struct {
	head []byte // bytes of an incomplete header or control frame
	skip int64  // bytes of a data frame's payload still to discard
}

// NewIdler creates the epoll descriptor; Run serves it.
func NewIdler() (*Idler, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &Idler{epfd: epfd, fds: map[int32]*idleState{}, prng: 0x9E3779B97F4A7C15}, nil
}

// Add takes over a connection from Detach: fd and the bytes read past the handshake.
func (d *Idler) Add(fd int, pending []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fds[int32(fd)] = nil
	d.alive.Add(1)
	// The bytes read past the handshake come before anything the socket still holds.
	d.consume(fd, pending)
	if _, open := d.fds[int32(fd)]; !open {
		return nil // the server closed it already
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(d.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		d.drop(fd)
		return err
	}
	return nil
}

// Alive is the number of connections still open.
func (d *Idler) Alive() int64 { return d.alive.Load() }

// Pongs is the number of pings answered.
func (d *Idler) Pongs() int64 { return d.pongs.Load() }

// Run serves the connections until stop is closed (checked every 200 ms).
func (d *Idler) Run(stop <-chan struct{}) {
	events := make([]syscall.EpollEvent, 256)
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, err := syscall.EpollWait(d.epfd, events, 200)
		if err != nil && err != syscall.EINTR {
			return
		}
		d.mu.Lock()
		for i := 0; i < n; i++ {
			d.readable(int(events[i].Fd))
		}
		d.mu.Unlock()
	}
}

// Poll serves what is ready now, unless another goroutine is serving. Goroutines busy
// opening more connections call it after each one: the Go scheduler shares a process's CPU
// among its runnable goroutines, so during a connect storm Run alone (one goroutine among
// hundreds of dialers) answers pings too late and the server drops the connections.
func (d *Idler) Poll() {
	if !d.mu.TryLock() {
		return
	}
	defer d.mu.Unlock()
	n, err := syscall.EpollWait(d.epfd, d.events[:], 0)
	if err != nil {
		return
	}
	for i := 0; i < n; i++ {
		d.readable(int(d.events[i].Fd))
	}
}

// CloseAll closes every connection (without a closing handshake) and the epoll descriptor.
func (d *Idler) CloseAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for fd := range d.fds {
		syscall.Close(int(fd))
	}
	d.alive.Add(-int64(len(d.fds)))
	clear(d.fds)
	syscall.Close(d.epfd)
}

// readable reads what one connection has (one read a turn: epoll is level-triggered).
func (d *Idler) readable(fd int) {
	if _, ok := d.fds[int32(fd)]; !ok {
		return
	}
	n, err := syscall.Read(fd, d.buf[:])
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return
	}
	if n <= 0 || err != nil {
		d.drop(fd)
		return
	}
	d.consume(fd, d.buf[:n])
}

// drop closes fd and forgets it; called with d.mu held.
func (d *Idler) drop(fd int) {
	if _, ok := d.fds[int32(fd)]; !ok {
		return
	}
	delete(d.fds, int32(fd))
	syscall.Close(fd)
	d.alive.Add(-1)
}

// consume parses server frames in b (continuing a split one), answering pings and closes.
func (d *Idler) consume(fd int, b []byte) {
	st := d.fds[int32(fd)]
	if st != nil {
		if st.skip > 0 {
			k := min(int64(len(b)), st.skip)
			st.skip -= k
			b = b[k:]
		}
		if len(st.head) > 0 {
			b = append(st.head, b...)
			st.head = nil
		}
		if st.skip == 0 && len(st.head) == 0 {
			d.fds[int32(fd)], st = nil, nil
		}
	}
	for len(b) > 0 {
		if len(b) < 2 {
			d.keep(fd, b, 0)
			return
		}
		op := b[0] & 0x0F
		if b[1]&0x80 != 0 || b[0]&0x70 != 0 {
			d.drop(fd) // masked server frame or reserved bits: a protocol error
			return
		}
		l, hl := int64(b[1]&0x7F), 2
		switch l {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if len(b) < hl {
			d.keep(fd, b, 0)
			return
		}
		switch hl {
		case 4:
			l = int64(binary.BigEndian.Uint16(b[2:]))
		case 10:
			l = int64(binary.BigEndian.Uint64(b[2:]) & (1<<63 - 1))
		}
		if op < 0x8 { // data: discard the payload, possibly across reads
			rest := int64(len(b) - hl)
			if rest < l {
				d.keep(fd, nil, l-rest)
				return
			}
			b = b[int64(hl)+l:]
			continue
		}
		if l > 125 {
			d.drop(fd)
			return
		}
		if int64(len(b)-hl) < l {
			d.keep(fd, b, 0)
			return
		}
		payload := b[hl : int64(hl)+l]
		switch op {
		case OpPing:
			d.write(fd, OpPong, payload)
			d.pongs.Add(1)
		case OpClose:
			d.write(fd, OpClose, payload[:min(2, len(payload))])
			d.drop(fd)
			return
		}
		b = b[int64(hl)+l:]
	}
}

// keep remembers a split frame: the bytes of its start (copied) or the payload left to skip.
func (d *Idler) keep(fd int, head []byte, skip int64) {
	d.fds[int32(fd)] = &idleState{head: append([]byte(nil), head...), skip: skip}
}

// write sends one small masked frame; an idle socket's send buffer has room for it.
func (d *Idler) write(fd int, op byte, payload []byte) {
	d.prng ^= d.prng >> 12
	d.prng ^= d.prng << 25
	d.prng ^= d.prng >> 27
	d.wbuf = AppendFrame(d.wbuf[:0], true, op, uint32((d.prng*2685821657736338717)>>32), payload)
	_, _ = syscall.Write(fd, d.wbuf)
}
