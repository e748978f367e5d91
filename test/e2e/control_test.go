package e2e

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// CONTRACT §4 send: Content-Type picks the frame type; 200 once written.
func TestSendFrameTypeByContentType(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	c := dial(t, r.WSURL, nil)
	id := b.connID(t, 1)
	send := r.Control + "/socket/" + id + "/send"
	cases := []struct {
		contentType string
		body        string
		want        int
	}{
		{"text/plain", "plain text", websocket.TextMessage},
		{"text/plain; charset=utf-8", "with params ✓", websocket.TextMessage},
		{"TEXT/HTML", "<b>upper-case type</b>", websocket.TextMessage},
		{"application/didcomm-envelope-enc", `{"protected":"..."}`, websocket.BinaryMessage},
		{"application/json", `{"a":1}`, websocket.BinaryMessage},
		{"", "no content type", websocket.BinaryMessage},
	}
	for _, tc := range cases {
		status, body := post(t, send, tc.contentType, []byte(tc.body))
		if status != 200 || body != "OK" {
			t.Fatalf("send %q: %d %q", tc.contentType, status, body)
		}
		typ, got := readMessage(t, c)
		if typ != tc.want || string(got) != tc.body {
			t.Fatalf("send %q: got type %d %q, want type %d", tc.contentType, typ, got, tc.want)
		}
	}
	// Text that is not UTF-8 is refused, and nothing reaches the client.
	if status, _ := post(t, send, "text/plain", []byte{0xff, 0xfe}); status != 400 {
		t.Fatalf("non-UTF-8 text: status %d, want 400", status)
	}
	// Binary bytes pass untouched.
	raw := []byte{0xff, 0x00, 0xfe}
	if status, _ := post(t, send, "application/octet-stream", raw); status != 200 {
		t.Fatalf("binary send: %d", status)
	}
	if typ, got := readMessage(t, c); typ != websocket.BinaryMessage || string(got) != string(raw) {
		t.Fatalf("binary send arrived as %d %v", typ, got)
	}
}

// CONTRACT §4: 404 for an unknown or malformed id; 413 over the size limit.
func TestSendErrors(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b, "--max-message-size", "1024")
	dial(t, r.WSURL, nil)
	id := b.connID(t, 1)
	for _, bad := range []string{strings.Repeat("0", 32), "short", strings.ToUpper(id), id + "0", "../" + id} {
		if status, _ := post(t, r.Control+"/socket/"+bad+"/send", "text/plain", []byte("x")); status != 404 {
			t.Errorf("send to %q: status %d, want 404", bad, status)
		}
	}
	if status, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", make([]byte, 1025)); status != 413 {
		t.Errorf("oversized send: status %d, want 413", status)
	}
	if status, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", make([]byte, 1024)); status != 200 {
		t.Errorf("send at the limit: status %d, want 200", status)
	}
	if status, _ := do(t, "GET", r.Control+"/socket/"+id+"/send", "", nil); status != 405 {
		t.Errorf("GET send: status %d, want 405", status)
	}
	if status, _ := do(t, "GET", r.Control+"/nope", "", nil); status != 404 {
		t.Errorf("unknown route: status %d, want 404", status)
	}
}

// CONTRACT §4: send to a connection that is closing → 410; after it is gone → 404; never a hang.
func TestSendToClosingAndClosedConnection(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b, "--ping-timeout", "5s")
	// A raw client that never answers our close frame keeps the connection in "closing".
	c := rawDial(t, r.Public)
	id := b.connID(t, 1)
	if status, _ := post(t, r.Control+"/socket/"+id+"/disconnect", "", nil); status != 200 {
		t.Fatalf("disconnect: %d", status)
	}
	if code := c.expectCloseFrame(t); code != 1000 {
		t.Fatalf("close code %d, want 1000", code)
	}
	if status, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("late")); status != 410 {
		t.Fatalf("send while closing: %d, want 410", status)
	}
	c.send(t, frame(true, 0x8, []byte{0x03, 0xe8}, true))
	c.expectEOF(t)
	eventually(t, 5*time.Second, "connection removed", func() bool {
		status, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("gone"))
		return status == 404
	})

	// A racing send right as the client drops: every answer is 200, 404 or 410, promptly.
	g := dial(t, r.WSURL, nil)
	id2 := b.connID(t, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			status, _ := post(t, r.Control+"/socket/"+id2+"/send", "text/plain", []byte("race"))
			if status != 200 && status != 404 && status != 410 {
				t.Errorf("send during close: %d", status)
				return
			}
			if status == 404 {
				return
			}
		}
	}()
	g.Close()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("sends hung")
	}
}

// CONTRACT §4: 503 when the client's outbound buffer is full (slow consumer).
func TestSendSlowConsumer503(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b, "--max-outbound-bytes", "65536", "--write-timeout", "30s")
	// A client with a tiny receive buffer that never reads.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	nc, err := d.Dial("tcp", r.Public)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte(upgradeRequest(r.Public)))
	br := bufio.NewReader(nc)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	id := b.connID(t, 1)
	chunk := make([]byte, 16<<10)
	got503 := false
	for i := 0; i < 2000 && !got503; i++ {
		status, _ := post(t, r.Control+"/socket/"+id+"/send", "application/octet-stream", chunk)
		switch status {
		case 200:
		case 503:
			got503 = true
		default:
			t.Fatalf("send %d: status %d", i, status)
		}
	}
	if !got503 {
		t.Fatal("never answered 503 to a client that reads nothing")
	}
	// A neighbour is unaffected.
	n := dial(t, r.WSURL, nil)
	id2 := b.connID(t, 2)
	if status, _ := post(t, r.Control+"/socket/"+id2+"/send", "text/plain", []byte("hi")); status != 200 {
		t.Fatalf("neighbour send: %d", status)
	}
	if _, p := readMessage(t, n); string(p) != "hi" {
		t.Fatalf("neighbour got %q", p)
	}
}

// CONTRACT §4 disconnect: 1000 by default, or the code and reason given; 404 unknown.
func TestDisconnectCall(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	c1 := dial(t, r.WSURL, nil)
	id1 := b.connID(t, 1)
	if status, _ := post(t, r.Control+"/socket/"+id1+"/disconnect", "", nil); status != 200 {
		t.Fatalf("disconnect: %d", status)
	}
	if code, _ := expectClose(t, c1); code != 1000 {
		t.Fatalf("close %d, want 1000", code)
	}
	c2 := dial(t, r.WSURL, nil)
	id2 := b.connID(t, 2)
	if status, _ := post(t, r.Control+"/socket/"+id2+"/disconnect", "application/json", []byte(`{"code":4000,"reason":"go away"}`)); status != 200 {
		t.Fatalf("disconnect with body: %d", status)
	}
	if code, reason := expectClose(t, c2); code != 4000 || reason != "go away" {
		t.Fatalf("close %d %q, want 4000 \"go away\"", code, reason)
	}
	eventually(t, 5*time.Second, "both disconnects", func() bool { return len(b.on("/disconnect")) == 2 })
	if d := b.on("/disconnect"); d[1].Body["code"] != float64(4000) && d[0].Body["code"] != float64(4000) {
		t.Fatalf("disconnect POSTs %v %v do not carry code 4000", d[0].Body, d[1].Body)
	}
	if status, _ := post(t, r.Control+"/socket/"+strings.Repeat("a", 32)+"/disconnect", "", nil); status != 404 {
		t.Fatalf("unknown disconnect: %d", status)
	}
	dial(t, r.WSURL, nil)
	id3 := b.connID(t, 3)
	for _, bad := range []string{`{"code":1006}`, `{"code":99999}`, `not json`, `{"reason":"` + strings.Repeat("r", 124) + `"}`} {
		if status, _ := post(t, r.Control+"/socket/"+id3+"/disconnect", "application/json", []byte(bad)); status != 400 {
			t.Errorf("disconnect body %s: %d, want 400", bad, status)
		}
	}
}

// CONTRACT §4: GET /socket/<id>, /status, /metrics, /readyz.
func TestInfoStatusMetricsReadyz(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	before := time.Now().Add(-time.Second)
	c := dial(t, r.WSURL, nil)
	id := b.connID(t, 1)
	for i := 0; i < 3; i++ {
		c.WriteMessage(websocket.TextMessage, []byte("in"))
	}
	post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("out"))
	readMessage(t, c)
	eventually(t, 5*time.Second, "messages", func() bool { return len(b.on("/message")) == 3 })

	status, body := do(t, "GET", r.Control+"/socket/"+id, "", nil)
	var info map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &info) != nil {
		t.Fatalf("info: %d %q", status, body)
	}
	at, err := time.Parse(time.RFC3339, info["connected_at"].(string))
	if info["connection_id"] != id || err != nil || at.Before(before) || info["messages_in"] != float64(3) || info["messages_out"] != float64(1) {
		t.Fatalf("info = %v", info)
	}
	if host, _, err := net.SplitHostPort(info["remote_addr"].(string)); err != nil || host != "127.0.0.1" {
		t.Fatalf("remote_addr = %v", info["remote_addr"])
	}
	if status, _ := do(t, "GET", r.Control+"/socket/"+strings.Repeat("b", 32), "", nil); status != 404 {
		t.Fatalf("unknown info: %d", status)
	}

	status, body = do(t, "GET", r.Control+"/status", "", nil)
	var st struct {
		Uptime      struct{ Ns, Seconds *int64 }
		Connections struct{ Active, Lifetime *int64 }
	}
	if status != 200 || json.Unmarshal([]byte(body), &st) != nil || st.Uptime.Ns == nil || st.Uptime.Seconds == nil ||
		st.Connections.Active == nil || *st.Connections.Active != 1 || *st.Connections.Lifetime != 1 {
		t.Fatalf("status: %d %s", status, body)
	}

	status, body = do(t, "GET", r.Control+"/metrics", "", nil)
	for _, name := range []string{"socketdock_connections_active 1", "socketdock_connections_total 1",
		`socketdock_messages_in_total{type="text"} 3`, `socketdock_messages_out_total{type="text"} 1`,
		"socketdock_bytes_in_total 6", "socketdock_bytes_out_total 3",
		`socketdock_backend_request_duration_seconds_count{kind="message"} 3`, "socketdock_backend_errors_total",
		`socketdock_control_send_total{result="ok"} 1`} {
		if status != 200 || !strings.Contains(body, name) {
			t.Errorf("metrics lack %q", name)
		}
	}
	if status, body := do(t, "GET", r.Control+"/readyz", "", nil); status != 200 {
		t.Fatalf("readyz: %d %s", status, body)
	}
	_ = http.StatusOK
}

// --pprof serves Go's profiler on the control listener; off by default.
func TestPprofOnlyWhenAsked(t *testing.T) {
	off := startRelay(t)
	if status, _ := do(t, "GET", off.Control+"/debug/pprof/heap", "", nil); status != 404 {
		t.Fatalf("pprof without --pprof: %d", status)
	}
	on := startRelay(t, "--pprof")
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1"} {
		if status, body := do(t, "GET", on.Control+path, "", nil); status != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d (%d bytes)", path, status, len(body))
		}
	}
}
