package e2e

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// CONTRACT §9: every client message goes upstream with its opcode and bytes, every upstream
// message comes back, in order; a fragmented message arrives whole; control frames stay on
// their hop.
func TestUpstreamRelaysMessagesBothWays(t *testing.T) {
	up := newGoUpstream(t, echoUpstream)
	r := upstreamRelay(t, up.URL)
	c := dial(t, r.WSURL, nil)

	for _, m := range []struct {
		typ  int
		data []byte
	}{
		{websocket.TextMessage, []byte("snot")},
		{websocket.TextMessage, []byte("héllo wörld")},
		{websocket.BinaryMessage, []byte{0, 1, 2, 0xff, 0xfe}},
		{websocket.BinaryMessage, bytes.Repeat([]byte{0xab}, 1<<20)},
	} {
		if err := c.WriteMessage(m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, p := readMessage(t, c)
		want := m.data
		if string(want) == "snot" {
			want = []byte("badger")
		}
		if typ != m.typ || !bytes.Equal(p, want) {
			t.Fatalf("sent %d/%d bytes, got back type %d, %d bytes", m.typ, len(m.data), typ, len(p))
		}
	}

	// Order: a burst comes back in the order sent.
	for i := 0; i < 500; i++ {
		if err := c.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 500; i++ {
		if _, p := readMessage(t, c); string(p) != strconv.Itoa(i) {
			t.Fatalf("message %d came back as %q", i, p)
		}
	}

	// A fragmented client message reaches the upstream whole: gorilla splits a message
	// larger than its write buffer into continuation frames.
	fd := websocket.Dialer{WriteBufferSize: 256}
	fc, _, err := fd.Dial(r.WSURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	long := strings.Repeat("fragment-", 300)
	if err := fc.WriteMessage(websocket.TextMessage, []byte(long)); err != nil {
		t.Fatal(err)
	}
	if _, p := readMessage(t, fc); string(p) != long {
		t.Fatalf("a fragmented message came back as %d bytes", len(p))
	}

	// The relay answers the client's ping itself; the upstream never sees it.
	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("hop"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	_ = c.WriteMessage(websocket.TextMessage, []byte("after ping"))
	if _, p := readMessage(t, c); string(p) != "after ping" {
		t.Fatalf("got %q", p)
	}
	select {
	case s := <-pong:
		if s != "hop" {
			t.Fatalf("pong %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong from the relay")
	}
}
