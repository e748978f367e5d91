package e2e

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wss:// upstreams (CONTRACT §9): Go's crypto/tls with the system roots and
// --upstream-ca-file; the same relaying, closes and flow control as ws://.
func TestUpstreamTLS(t *testing.T) {
	up, ca := newGoUpstreamTLS(t, echoUpstream)

	// Without the CA the certificate is not trusted: 502, nothing relayed.
	r0 := upstreamRelay(t, up.URL)
	if got := dialStatus(t, r0.WSURL, nil); got != 502 {
		t.Errorf("untrusted upstream certificate: %d, want 502", got)
	}

	r := upstreamRelay(t, up.URL+"/tls", "--upstream-ca-file", ca, "--upstream-errors", "message")
	c := dial(t, r.WSURL, nil)
	for i := 0; i < 100; i++ {
		_ = c.WriteMessage(websocket.TextMessage, []byte("snot"))
	}
	for i := 0; i < 100; i++ {
		if _, p := readMessage(t, c); string(p) != "badger" {
			t.Fatalf("%d: %q", i, p)
		}
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4003, "tls bye"), time.Now().Add(time.Second))
	if got := up.closeFrame(t, 1); got.Code != 4003 || got.Text != "tls bye" {
		t.Errorf("upstream got %d %q", got.Code, got.Text)
	}

	// The upstream closes with a code: the client gets it.
	c2 := dial(t, r.WSURL, nil)
	readUntilOpen(t, c2)
	_ = up.conn(t, 2).WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4404, "tls gone"), time.Now().Add(time.Second))
	if code, reason := expectClose(t, c2); code != 4404 || reason != "tls gone" {
		t.Errorf("client got %d %q", code, reason)
	}

	// The tremor demo over TLS: the error message, then 1014.
	raw := rawDial(t, r.Public)
	raw.send(t, frame(true, 0x1, []byte("snot"), true))
	if _, _, p := raw.readFrame(t); string(p) != "badger" {
		t.Fatalf("got %q", p)
	}
	up.kill()
	code, reason, before := raw.rawClose(t)
	if code != 1014 || len(before) != 1 || !strings.Contains(reason, "wss://127.0.0.1:") {
		t.Fatalf("got %d %q after %q", code, reason, before)
	}
}

// A flooding wss:// upstream is not read while its client's outbound buffer is full (its
// reader goroutine waits), and everything arrives in order.
func TestUpstreamTLSFlood(t *testing.T) {
	const n, size = 2000, 16 << 10
	up, ca := newGoUpstreamTLS(t, func(u *goUpstream, c *websocket.Conn) {
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
		echoUpstream(u, c)
	})
	r := upstreamRelay(t, up.URL, "--upstream-ca-file", ca, "--max-outbound-bytes", "131072")
	c := dial(t, r.WSURL, nil)
	before := heapInUse()
	_ = c.WriteMessage(websocket.TextMessage, []byte("go"))
	time.Sleep(time.Second)
	if grew := int64(heapInUse()) - int64(before); grew > 24<<20 {
		t.Errorf("heap grew %d MiB holding a paused wss upstream", grew>>20)
	}
	for i := 0; i < n; i++ {
		_, p := readMessage(t, c)
		if binary.BigEndian.Uint32(p) != uint32(i) {
			t.Fatalf("message %d: seq %d", i, binary.BigEndian.Uint32(p))
		}
	}
	readUntilOpen(t, c)
}
