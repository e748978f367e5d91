package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// CONTRACT §9 backpressure: while the client's outbound bytes are over
// --max-outbound-bytes its upstream is not read, so TCP pushes back on the upstream; when the
// client reads again every message arrives, in order.
func TestUpstreamFloodPausesReading(t *testing.T) {
	const n, size = 4000, 16 << 10 // 64 MiB in all
	var written atomic.Int64
	up := newGoUpstream(t, func(u *goUpstream, c *websocket.Conn) {
		if _, _, err := c.ReadMessage(); err != nil { // the client says go
			return
		}
		msg := make([]byte, size)
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint32(msg, uint32(i))
			if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				return
			}
			written.Add(1)
		}
		echoUpstream(u, c)
	})
	r := upstreamRelay(t, up.URL, "--max-outbound-bytes", "262144")
	c := dial(t, r.WSURL, nil)
	before := heapInUse()
	_ = c.WriteMessage(websocket.TextMessage, []byte("go"))

	// The client reads nothing for a while: the upstream gets stuck on its writes.
	time.Sleep(1500 * time.Millisecond)
	stuck := written.Load()
	time.Sleep(500 * time.Millisecond)
	if w := written.Load(); w >= n || w*size > 32<<20 || w != stuck {
		t.Errorf("the upstream wrote %d of %d messages (%d MiB) while its client read nothing; want it stopped", w, n, w*size>>20)
	}
	grew := int64(heapInUse()) - int64(before)
	if grew > 24<<20 {
		t.Errorf("the relay's heap grew %d MiB holding a paused upstream", grew>>20)
	}
	t.Logf("paused: the upstream wrote %d MiB of %d MiB; the relay's heap grew %d MiB", stuck*size>>20, n*size>>20, grew>>20)
	if m := metricsText(t, r); strings.Contains(m, "socketdock_upstream_pauses_total 0") {
		t.Error("no pause counted")
	}

	// Now the client reads: every message, in order.
	for i := 0; i < n; i++ {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if len(p) != size || binary.BigEndian.Uint32(p) != uint32(i) {
			t.Fatalf("message %d: %d bytes, seq %d", i, len(p), binary.BigEndian.Uint32(p))
		}
	}
	readUntilOpen(t, c) // and the link still works both ways
}

// A client floods an upstream that never reads: the frames waiting for it are bounded and
// the client is closed with 1013 (CONTRACT §9, the inbound queue of §3); the relay's memory
// stays bounded.
func TestUpstreamNeverReads(t *testing.T) {
	stop := make(chan struct{})
	up := newRawUpstream(t, func(conn net.Conn, r *bufio.Reader) { <-stop }) // reads nothing
	t.Cleanup(func() { close(stop) })
	r := upstreamRelay(t, up.URL, "--max-inbound-queue", "64", "--max-inbound-bytes", "4194304")
	c := dial(t, r.WSURL, nil)
	before := heapInUse()
	closed := make(chan *websocket.CloseError, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				ce, _ := err.(*websocket.CloseError)
				closed <- ce
				return
			}
		}
	}()
	msg := bytes.Repeat([]byte("x"), 8<<10)
	sent := 0
	var ce *websocket.CloseError
	deadline := time.Now().Add(20 * time.Second)
flood:
	for ; sent < 50000 && time.Now().Before(deadline); sent++ {
		select {
		case ce = <-closed:
			break flood
		default:
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			break
		}
	}
	if ce == nil {
		ce = <-closed
	}
	if ce == nil || ce.Code != 1013 {
		t.Fatalf("after %d messages: %v, want 1013", sent, ce)
	}
	if grew := int64(heapInUse()) - int64(before); grew > 64<<20 {
		t.Errorf("the relay's heap grew %d MiB for an upstream that reads nothing (the client sent %d MiB)", grew>>20, sent*len(msg)>>20)
	}
	t.Logf("closed with 1013 after %d messages (%d MiB)", sent, sent*len(msg)>>20)
}

// An upstream that sends its last messages and closes while its client is paused: the
// messages still arrive, then its close code.
func TestUpstreamClosesWhilePaused(t *testing.T) {
	const n, size = 200, 16 << 10
	up := newGoUpstream(t, func(u *goUpstream, c *websocket.Conn) {
		if _, _, err := c.ReadMessage(); err != nil {
			return
		}
		msg := make([]byte, size)
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint32(msg, uint32(i))
			if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				return
			}
		}
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4100, "done"), time.Now().Add(10*time.Second))
		_ = c.NetConn().Close()
	})
	r := upstreamRelay(t, up.URL, "--max-outbound-bytes", "65536")
	c := dial(t, r.WSURL, nil)
	_ = c.WriteMessage(websocket.TextMessage, []byte("go"))
	time.Sleep(time.Second)
	for i := 0; i < n; i++ {
		_, p := readMessage(t, c)
		if binary.BigEndian.Uint32(p) != uint32(i) {
			t.Fatalf("message %d: seq %d", i, binary.BigEndian.Uint32(p))
		}
	}
	if code, reason := expectClose(t, c); code != 4100 || reason != "done" {
		t.Fatalf("got %d %q", code, reason)
	}
}
