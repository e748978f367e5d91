package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
		{websocket.TextMessage, []byte{}},
		{websocket.BinaryMessage, []byte{}},
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

// dialStatus upgrades through the relay and returns the HTTP status it got (101 on success).
func dialStatus(t testing.TB, url string, header http.Header) int {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 15 * time.Second}
	c, resp, err := d.Dial(url, header)
	if err == nil {
		c.Close()
		return 101
	}
	if resp == nil {
		t.Fatalf("dial %s: %v (no response)", url, err)
	}
	return resp.StatusCode
}

// CONTRACT §9: the upstream is dialled before the client's 101; 401/403/404 pass through,
// other failures are 502, a dial timeout 504.
func TestUpstreamDialFailures(t *testing.T) {
	up := newGoUpstream(t, echoUpstream)
	r := upstreamRelay(t, up.URL)
	for _, status := range []int{401, 403, 404, 500, 503, 400} {
		up.mu.Lock()
		up.refuse = status
		up.mu.Unlock()
		want := status
		if status != 401 && status != 403 && status != 404 {
			want = 502
		}
		if got := dialStatus(t, r.WSURL, nil); got != want {
			t.Errorf("upstream answered %d: client got %d, want %d", status, got, want)
		}
	}

	// Nothing listens: 502.
	dead := freePort(t)
	r2 := upstreamRelay(t, "ws://127.0.0.1:"+strconv.Itoa(dead)+"/")
	if got := dialStatus(t, r2.WSURL, nil); got != 502 {
		t.Errorf("refused connection: %d, want 502", got)
	}

	// A blackhole accepts and never answers: 504 once the dial timeout runs out.
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		hole.Close()
		heldMu.Lock()
		for _, c := range held {
			c.Close()
		}
		heldMu.Unlock()
	})
	r3 := upstreamRelay(t, "ws://"+hole.Addr().String()+"/", "--upstream-dial-timeout", "300ms")
	start := time.Now()
	if got := dialStatus(t, r3.WSURL, nil); got != 504 {
		t.Errorf("blackhole: %d, want 504", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("504 took %v", d)
	}
	// The refusals are counted by result.
	if m := metricsText(t, r); !strings.Contains(m, `socketdock_upstream_dials_total{result="502"} 3`) ||
		!strings.Contains(m, `socketdock_upstream_dials_total{result="401"} 1`) {
		t.Errorf("dial metrics:\n%s", grepLines(m, "upstream_dials"))
	}
}

func metricsText(t testing.TB, r *testRelay) string {
	t.Helper()
	status, body := do(t, "GET", r.Control+"/metrics", "", nil)
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	return body
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// CONTRACT §9: the upstream handshake carries the client's subprotocol offer (the upstream's
// choice comes back in the 101), the headers --forward-headers names, X-Forwarded-For with the
// client appended, and the connection id; --upstream-pass-path appends path and query.
func TestUpstreamHandshakeForwarding(t *testing.T) {
	up := newGoUpstream(t, echoUpstream)
	up.upgrader.Subprotocols = []string{"v2.chat", "v1.chat"}
	r := upstreamRelay(t, up.URL+"/base?key=k", "--forward-headers", "Authorization,X-Trace", "--upstream-pass-path")
	d := websocket.Dialer{Subprotocols: []string{"v1.chat", "v2.chat"}}
	h := http.Header{"Authorization": {"Bearer t0k"}, "X-Trace": {"abc"}, "Cookie": {"secret=1"}, "X-Forwarded-For": {"10.1.2.3"}}
	c, resp, err := d.Dial(r.WSURL+"?room=7", h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Subprotocol() != "v2.chat" || resp.Header.Get("Sec-WebSocket-Protocol") != "v2.chat" {
		t.Fatalf("client got subprotocol %q; the upstream prefers v2.chat", c.Subprotocol())
	}
	req := up.request(t, 1)
	if got := req.Header.Get("Sec-WebSocket-Protocol"); got != "v1.chat, v2.chat" {
		t.Errorf("offer upstream: %q", got)
	}
	if req.Header.Get("Authorization") != "Bearer t0k" || req.Header.Get("X-Trace") != "abc" {
		t.Errorf("named headers not forwarded: %v", req.Header)
	}
	if req.Header.Get("Cookie") != "" {
		t.Errorf("a header --forward-headers does not name was forwarded: %v", req.Header)
	}
	if got := req.Header.Get("X-Forwarded-For"); got != "10.1.2.3, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	id := req.Header.Get("X-SocketDock-Connection-Id")
	if len(id) != 32 {
		t.Errorf("connection id header %q", id)
	}
	if status, _ := do(t, "GET", r.Control+"/socket/"+id, "", nil); status != 200 {
		t.Errorf("the forwarded id is not the connection's: %d", status)
	}
	if req.URL.Path != "/base/ws" || req.URL.RawQuery != "key=k&room=7" {
		t.Errorf("pass-path: %s?%s", req.URL.Path, req.URL.RawQuery)
	}

	// Without a subprotocol from the upstream, the client gets none; without
	// --forward-headers every end-to-end header goes (as for the connect POST).
	up2 := newGoUpstream(t, echoUpstream)
	r2 := upstreamRelay(t, up2.URL)
	c2, _, err := d.Dial(r2.WSURL, http.Header{"Cookie": {"a=b"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.Subprotocol() != "" {
		t.Errorf("subprotocol %q from an upstream that chose none", c2.Subprotocol())
	}
	if req := up2.request(t, 1); req.Header.Get("Cookie") != "a=b" || req.URL.Path != "/" {
		t.Errorf("default forwarding: %v %s", req.Header, req.URL.Path)
	}
}

// CONTRACT §9 closes: an upstream's code and reason reach the client (an empty close is
// 1000); the client's code reaches the upstream (1001 when it vanished, an empty close for
// an empty one); /disconnect closes both hops; never 1005/1006/1015 on the wire.
func TestUpstreamCloseCodes(t *testing.T) {
	t.Run("upstream closes", func(t *testing.T) {
		for _, c := range []struct {
			code       int
			reason     string
			wantCode   int
			wantReason string
		}{
			{4404, "room gone", 4404, "room gone"},
			{1000, "bye", 1000, "bye"},
			{1001, "", 1001, ""},
			{1011, "oops", 1011, "oops"},
			{1008, "policy", 1008, "policy"},
			{1005, "", 1000, ""}, // an empty close frame
		} {
			up := newGoUpstream(t, func(u *goUpstream, c *websocket.Conn) { _, _, _ = c.ReadMessage() })
			r := upstreamRelay(t, up.URL)
			cl := dial(t, r.WSURL, nil)
			uc := up.conn(t, 1)
			msg := websocket.FormatCloseMessage(c.code, c.reason)
			if c.code == 1005 {
				msg = nil
			}
			if err := uc.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			code, reason := expectClose(t, cl)
			if code != c.wantCode || reason != c.wantReason {
				t.Errorf("upstream closed %d %q: client got %d %q, want %d %q", c.code, c.reason, code, reason, c.wantCode, c.wantReason)
			}
		}
	})

	t.Run("client closes", func(t *testing.T) {
		up := newGoUpstream(t, echoUpstream)
		r := upstreamRelay(t, up.URL)
		for i, c := range []struct {
			code int
			want int
		}{{4001, 4001}, {1000, 1000}, {1001, 1001}, {3999, 3999}} {
			cl := dial(t, r.WSURL, nil)
			_ = cl.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.code, "client says"), time.Now().Add(time.Second))
			if got := up.closeFrame(t, i+1); got.Code != c.want || got.Text != "client says" {
				t.Errorf("client closed %d: upstream got %d %q", c.code, got.Code, got.Text)
			}
		}
		// A client that vanishes without a close frame: 1001 upstream.
		cl := dial(t, r.WSURL, nil)
		readUntilOpen(t, cl)
		_ = cl.NetConn().Close()
		if got := up.closeFrame(t, 5); got.Code != 1001 {
			t.Errorf("vanished client: upstream got %d %q, want 1001", got.Code, got.Text)
		}
		// An empty close frame from the client: an empty one upstream (1005 as received).
		cl = dial(t, r.WSURL, nil)
		_ = cl.WriteControl(websocket.CloseMessage, nil, time.Now().Add(time.Second))
		if got := up.closeFrame(t, 6); got.Code != websocket.CloseNoStatusReceived {
			t.Errorf("empty client close: upstream got %d", got.Code)
		}
	})

	t.Run("control API disconnect", func(t *testing.T) {
		up := newGoUpstream(t, echoUpstream)
		r := upstreamRelay(t, up.URL)
		cl := dial(t, r.WSURL, nil)
		id := up.request(t, 1).Header.Get("X-SocketDock-Connection-Id")
		// /send injects a message into the client's stream; the upstream does not see it.
		if status, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("from the control API")); status != 200 {
			t.Fatalf("send: %d", status)
		}
		if _, p := readMessage(t, cl); string(p) != "from the control API" {
			t.Fatalf("got %q", p)
		}
		if status, _ := post(t, r.Control+"/socket/"+id+"/disconnect", "application/json", []byte(`{"code":4000,"reason":"kicked"}`)); status != 200 {
			t.Fatalf("disconnect: %d", status)
		}
		if code, reason := expectClose(t, cl); code != 4000 || reason != "kicked" {
			t.Errorf("client got %d %q", code, reason)
		}
		if got := up.closeFrame(t, 1); got.Code != 4000 || got.Text != "kicked" {
			t.Errorf("upstream got %d %q", got.Code, got.Text)
		}
	})
}

// readUntilOpen round-trips one message so the link is known to be up.
func readUntilOpen(t testing.TB, c *websocket.Conn) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte("up?")); err != nil {
		t.Fatal(err)
	}
	readMessage(t, c)
}

// The tremor demo: an echo upstream answers "snot" with "badger", then stops. tremor left
// the client open on a dead upstream (one message unanswered, then "Trying to work with
// closed connection"); here the client gets the JSON error (--upstream-errors message) and
// 1014 with a reason naming the upstream, never silence. Default: the close frame only.
func TestUpstreamTremorDemo(t *testing.T) {
	for _, mode := range []string{"message", "close"} {
		t.Run(mode, func(t *testing.T) {
			up := newGoUpstream(t, echoUpstream)
			url := strings.Replace(up.URL, "ws://", "ws://user:pw@", 1) + "/echo?token=secret"
			r := upstreamRelay(t, url, "--upstream-errors", mode)
			c := rawDial(t, r.Public)
			c.send(t, frame(true, 0x1, []byte("snot"), true))
			if _, op, p := c.readFrame(t); op != 0x1 || string(p) != "badger" {
				t.Fatalf("got op %d %q", op, p)
			}
			id := up.request(t, 1).Header.Get("X-SocketDock-Connection-Id")
			if up.request(t, 1).Header.Get("Authorization") == "" {
				t.Error("the URL's credentials were not sent as Basic auth")
			}
			up.kill()
			c.send(t, frame(true, 0x1, []byte("snot"), true))
			code, reason, before := c.rawClose(t)
			if mode == "message" {
				if len(before) != 1 {
					t.Fatalf("want one error message before the close, got %q", before)
				}
				var e struct {
					Error        string `json:"error"`
					ConnectionID string `json:"connection_id"`
				}
				if err := json.Unmarshal(before[0], &e); err != nil || e.ConnectionID != id || !strings.Contains(e.Error, "ws://127.0.0.1:") {
					t.Fatalf("error message %s (%v)", before[0], err)
				}
			} else if len(before) != 0 {
				t.Fatalf("messages before the close in close mode: %q", before)
			}
			if code != 1014 {
				t.Fatalf("want close 1014, got %d %q", code, reason)
			}
			if !strings.Contains(reason, strings.TrimPrefix(up.URL, "ws://")+"/echo") || strings.Contains(reason, "secret") || strings.Contains(reason, "pw") {
				t.Errorf("reason %q should name the upstream, without credentials or query", reason)
			}
		})
	}
}

// An upstream that closes with 1014 itself (it is a gateway too) passes it on.
func TestUpstreamPasses1014(t *testing.T) {
	up := newGoUpstream(t, func(u *goUpstream, c *websocket.Conn) { _, _, _ = c.ReadMessage() })
	r := upstreamRelay(t, up.URL)
	c := rawDial(t, r.Public)
	_ = up.conn(t, 1).WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1014, "its own upstream"), time.Now().Add(time.Second))
	if code, reason, _ := c.rawClose(t); code != 1014 || reason != "its own upstream" {
		t.Fatalf("got %d %q", code, reason)
	}
}

// CONTRACT §9 drain: on shutdown clients get 1001 and so do their upstreams.
func TestUpstreamDrain(t *testing.T) {
	up := newGoUpstream(t, echoUpstream)
	r := upstreamRelay(t, up.URL)
	var clients []*websocket.Conn
	for i := 0; i < 5; i++ {
		c := dial(t, r.WSURL, nil)
		readUntilOpen(t, c)
		clients = append(clients, c)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- r.Shutdown(ctx)
	}()
	for _, c := range clients {
		if code, _ := expectClose(t, c); code != 1001 {
			t.Errorf("client got %d, want 1001", code)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for i := range clients {
		if got := up.closeFrame(t, i+1); got.Code != 1001 {
			t.Errorf("upstream %d got %d, want 1001", i, got.Code)
		}
	}
}
