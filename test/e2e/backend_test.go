package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

var idPattern = func(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CONTRACT §3: the connect, message and disconnect bodies, field by field.
func TestBackendBodiesFieldByField(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b, "--endpoint", "http://callback.example:9/base/")
	c := dial(t, r.WSURL, http.Header{"X-Custom-Header": {"Value-1"}, "Cookie": {"a=b"}})

	id := b.connID(t, 1)
	if !idPattern(id) {
		t.Fatalf("connection id %q is not 32 lower-case hex characters", id)
	}
	connect := b.on("/connect")[0]
	if connect.ContentType != "application/json" {
		t.Errorf("connect Content-Type %q", connect.ContentType)
	}
	meta := connect.meta()
	wantSend := "http://callback.example:9/base/socket/" + id + "/send"
	wantDisc := "http://callback.example:9/base/socket/" + id + "/disconnect"
	if meta["send"] != wantSend || meta["disconnect"] != wantDisc {
		t.Errorf("connect meta send/disconnect = %v / %v", meta["send"], meta["disconnect"])
	}
	headers, _ := meta["headers"].(map[string]any)
	if headers["x-custom-header"] != "Value-1" || headers["cookie"] != "a=b" || headers["upgrade"] != "websocket" {
		t.Errorf("connect meta.headers = %v", headers)
	}
	for name := range headers {
		if name != strings.ToLower(name) {
			t.Errorf("header name %q not lower-cased", name)
		}
	}

	msgs := []struct {
		typ      int
		data     []byte
		wantType string
		wantMsg  string
		wantEnc  string
	}{
		{websocket.TextMessage, []byte(`{"json":"stays a string"}`), "text", `{"json":"stays a string"}`, ""},
		{websocket.TextMessage, []byte("quote \" backslash \\ newline \n tab \t nul \x00 ✓"), "text", "quote \" backslash \\ newline \n tab \t nul \x00 ✓", ""},
		{websocket.BinaryMessage, []byte("binary but UTF-8 ✓"), "binary", "binary but UTF-8 ✓", ""},
		{websocket.BinaryMessage, []byte{0x00, 0xff, 0xfe, 0x80, 'a'}, "binary", base64.StdEncoding.EncodeToString([]byte{0x00, 0xff, 0xfe, 0x80, 'a'}), "base64"},
	}
	for _, m := range msgs {
		if err := c.WriteMessage(m.typ, m.data); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "message POSTs", func() bool { return len(b.on("/message")) == len(msgs) })
	for i, p := range b.on("/message") {
		want := msgs[i]
		meta := p.meta()
		if p.ContentType != "application/json" {
			t.Errorf("message %d Content-Type %q", i, p.ContentType)
		}
		if meta["connection_id"] != id || meta["send"] != wantSend || meta["disconnect"] != wantDisc {
			t.Errorf("message %d meta = %v", i, meta)
		}
		if meta["type"] != want.wantType {
			t.Errorf("message %d meta.type = %v, want %s", i, meta["type"], want.wantType)
		}
		if enc, _ := meta["encoding"].(string); enc != want.wantEnc {
			t.Errorf("message %d meta.encoding = %q, want %q", i, enc, want.wantEnc)
		}
		got, ok := p.Body["message"].(string)
		if !ok || got != want.wantMsg {
			t.Errorf("message %d message = %#v, want the string %q", i, p.Body["message"], want.wantMsg)
		}
	}

	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "done here"), time.Now().Add(time.Second))
	eventually(t, 5*time.Second, "disconnect POST", func() bool { return len(b.on("/disconnect")) == 1 })
	d := b.on("/disconnect")[0].Body
	if d["connection_id"] != id || d["code"] != float64(4001) || d["reason"] != "done here" {
		t.Errorf("disconnect body = %v", d)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(b.on("/disconnect")); n != 1 {
		t.Errorf("%d disconnect POSTs, want exactly 1", n)
	}
}

// CONTRACT §3: connect precedes the first message; disconnect follows the last.
// Ordering kept for 100 concurrent clients × 100 messages, one POST in flight per connection.
func TestBackendOrderAcrossManyClients(t *testing.T) {
	const clients, perClient = 100, 100
	b := newBackend(t)
	var mu sync.Mutex
	inFlight := map[string]int{}
	var overlap atomic.Int32
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path != "/message" {
			return false
		}
		id := p.meta()["connection_id"].(string)
		mu.Lock()
		inFlight[id]++
		if inFlight[id] > 1 {
			overlap.Add(1)
		}
		mu.Unlock()
		time.Sleep(time.Duration(len(id)%3) * 100 * time.Microsecond)
		mu.Lock()
		inFlight[id]--
		mu.Unlock()
		return false
	})
	r := httpRelay(t, b)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := dial(t, r.WSURL, http.Header{"X-Client": {strconv.Itoa(i)}})
			for j := 0; j < perClient; j++ {
				if err := c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("%d:%d", i, j))); err != nil {
					t.Error(err)
					return
				}
			}
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
		}(i)
	}
	wg.Wait()
	eventually(t, 30*time.Second, "all disconnects", func() bool { return len(b.on("/disconnect")) == clients })

	// Per connection: connect, then messages 0..99 in order, then disconnect.
	seq := map[string][]string{}
	for _, p := range b.all() {
		switch p.Path {
		case "/connect":
			id := p.meta()["connection_id"].(string)
			seq[id] = append(seq[id], "connect")
		case "/message":
			id := p.meta()["connection_id"].(string)
			seq[id] = append(seq[id], p.Body["message"].(string))
		case "/disconnect":
			id := p.Body["connection_id"].(string)
			seq[id] = append(seq[id], "disconnect")
		}
	}
	if len(seq) != clients {
		t.Fatalf("%d connections seen, want %d", len(seq), clients)
	}
	for id, events := range seq {
		if len(events) != perClient+2 || events[0] != "connect" || events[len(events)-1] != "disconnect" {
			t.Fatalf("connection %s: %d events, first %q last %q", id, len(events), events[0], events[len(events)-1])
		}
		client, _, _ := strings.Cut(events[1], ":")
		for j, e := range events[1 : perClient+1] {
			if e != client+":"+strconv.Itoa(j) {
				t.Fatalf("connection %s: event %d is %q, want %s:%d", id, j, e, client, j)
			}
		}
	}
	if n := overlap.Load(); n != 0 {
		t.Fatalf("%d times a connection had two message POSTs in flight", n)
	}
}

// CONTRACT §3: empty messages are not POSTed; they are counted in the metrics.
func TestEmptyMessagesNotPostedButCounted(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	c := dial(t, r.WSURL, nil)
	c.WriteMessage(websocket.TextMessage, nil)
	c.WriteMessage(websocket.BinaryMessage, nil)
	c.WriteMessage(websocket.TextMessage, []byte("after"))
	eventually(t, 5*time.Second, "message POST", func() bool { return len(b.on("/message")) == 1 })
	if got := b.on("/message")[0].Body["message"]; got != "after" {
		t.Fatalf("POSTed %v", got)
	}
	_, metrics := do(t, "GET", r.Control+"/metrics", "", nil)
	if !strings.Contains(metrics, "socketdock_empty_messages_total 2") {
		t.Fatalf("metrics do not count 2 empty messages")
	}
}

// CONTRACT §3 reply in response: a non-empty 2xx body comes back as one message, text for
// text/*, binary otherwise; without the flag it is ignored.
func TestReplyInResponse(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path != "/message" {
			return false
		}
		msg := p.Body["message"].(string)
		if strings.HasPrefix(msg, "t") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		} else {
			w.Header().Set("Content-Type", "application/didcomm-envelope-enc")
		}
		w.Write([]byte("re:" + msg))
		return true
	})
	r := httpRelay(t, b, "--reply-in-response")
	c := dial(t, r.WSURL, nil)
	for _, m := range []string{"text-1", "bin-2", "text-3"} {
		c.WriteMessage(websocket.TextMessage, []byte(m))
		typ, got := readMessage(t, c)
		wantTyp := websocket.BinaryMessage
		if m[0] == 't' {
			wantTyp = websocket.TextMessage
		}
		if typ != wantTyp || string(got) != "re:"+m {
			t.Fatalf("reply to %s: type %d %q", m, typ, got)
		}
	}

	plain := httpRelay(t, b)
	c2 := dial(t, plain.WSURL, nil)
	c2.WriteMessage(websocket.TextMessage, []byte("text-ignored"))
	_ = c2.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, p, err := c2.ReadMessage(); err == nil {
		t.Fatalf("without --reply-in-response the body came back: %q", p)
	}
}

// A reply in the response reaches the client before anything the backend sends for a later
// message, and after what it sent during its own POST: the client pipelines its messages and
// the backend calls /send back for every third one before answering.
func TestReplyInResponseKeepsOrderWithCallbacks(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path != "/message" {
			return false
		}
		msg := p.Body["message"].(string)
		if n, _ := strconv.Atoi(msg[1:]); n%3 == 0 {
			resp, err := http.Post(p.meta()["send"].(string), "text/plain", strings.NewReader("cb:"+msg))
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("callback for %s: %v %v", msg, err, resp)
			} else {
				resp.Body.Close()
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("re:" + msg))
		return true
	})
	r := httpRelay(t, b, "--reply-in-response")
	c := dial(t, r.WSURL, nil)
	const n = 60
	var want []string
	for i := 0; i < n; i++ {
		msg := "m" + strconv.Itoa(i)
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			want = append(want, "cb:"+msg)
		}
		want = append(want, "re:"+msg)
	}
	for i, w := range want {
		if _, got := readMessage(t, c); string(got) != w {
			t.Fatalf("message %d: got %q, want %q", i, got, w)
		}
	}
}

// CONTRACT §3 failures and §7: 4xx → 1008 naming the status, 5xx → 1011, timeout → 1011,
// no backend → 1011; the disconnect is POSTed exactly once anyway.
func TestBackendFailuresCloseClient(t *testing.T) {
	cases := []struct {
		name   string
		status int
		delay  time.Duration
		code   int
		reason string
	}{
		{"400", 400, 0, 1008, "400"},
		{"404", 404, 0, 1008, "404"},
		{"500", 500, 0, 1011, "500"},
		{"502", 502, 0, 1011, "502"},
		{"timeout", 200, 2 * time.Second, 1011, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			release := make(chan struct{})
			defer close(release)
			b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
				if p.Path != "/message" {
					return false
				}
				if tc.delay > 0 {
					select {
					case <-time.After(tc.delay):
					case <-release:
					}
				}
				w.WriteHeader(tc.status)
				return true
			})
			r := httpRelay(t, b, "--backend-timeout", "300ms", "--backend-retries", "2")
			c := dial(t, r.WSURL, nil)
			c.WriteMessage(websocket.TextMessage, []byte("m1"))
			code, reason := expectClose(t, c)
			if code != tc.code || !strings.Contains(reason, tc.reason) {
				t.Fatalf("close %d %q, want %d naming %q", code, reason, tc.code, tc.reason)
			}
			eventually(t, 5*time.Second, "disconnect", func() bool { return len(b.on("/disconnect")) == 1 })
			if n := len(b.on("/message")); n != 1 {
				t.Fatalf("%d message POSTs; a non-retryable failure must not be retried", n)
			}
		})
	}
}

// CONTRACT §3: a backend nobody listens on → 1011 after the bounded retries.
func TestBackendDownCloses1011(t *testing.T) {
	port := freePort(t)
	r := startRelay(t, "--backend", "http", "--message-uri", "http://127.0.0.1:"+strconv.Itoa(port)+"/message", "--backend-retries", "2")
	c := dial(t, r.WSURL, nil)
	c.WriteMessage(websocket.TextMessage, []byte("nobody home"))
	if code, reason := expectClose(t, c); code != 1011 {
		t.Fatalf("close %d %q, want 1011", code, reason)
	}
}

// CONTRACT §3: 429 and 503 are retried, honouring Retry-After; the message then arrives once.
func TestRetryOn429And503(t *testing.T) {
	for _, status := range []int{429, 503} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			b := newBackend(t)
			var calls atomic.Int32
			var first, second time.Time
			b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
				if p.Path != "/message" {
					return false
				}
				switch calls.Add(1) {
				case 1:
					first = time.Now()
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(status)
					return true
				case 2:
					second = time.Now()
				}
				return false
			})
			r := httpRelay(t, b, "--backend-retries", "3")
			c := dial(t, r.WSURL, nil)
			c.WriteMessage(websocket.TextMessage, []byte("retry me"))
			c.WriteMessage(websocket.TextMessage, []byte("after"))
			eventually(t, 10*time.Second, "both messages", func() bool { return len(b.on("/message")) == 3 })
			posts := b.on("/message")
			if posts[1].Body["message"] != "retry me" || posts[2].Body["message"] != "after" {
				t.Fatalf("order after retry: %v, %v", posts[1].Body["message"], posts[2].Body["message"])
			}
			if gap := second.Sub(first); gap < 900*time.Millisecond {
				t.Fatalf("retried after %v, Retry-After asked for 1s", gap)
			}
		})
	}
}

// CONTRACT §3: a failed connect POST closes the client (4xx → 1008, else 1011), no message
// is POSTed, and the disconnect still is.
func TestConnectFailure(t *testing.T) {
	for _, tc := range []struct{ status, code int }{{403, 1008}, {500, 1011}} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			b := newBackend(t)
			b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
				if p.Path == "/connect" {
					w.WriteHeader(tc.status)
					return true
				}
				return false
			})
			r := httpRelay(t, b)
			c := dial(t, r.WSURL, nil)
			c.WriteMessage(websocket.TextMessage, []byte("must not arrive"))
			if code, _ := expectClose(t, c); code != tc.code {
				t.Fatalf("close %d, want %d", code, tc.code)
			}
			eventually(t, 5*time.Second, "disconnect", func() bool { return len(b.on("/disconnect")) == 1 })
			if n := len(b.on("/message")); n != 0 {
				t.Fatalf("%d message POSTs after a failed connect", n)
			}
		})
	}
}

// CONTRACT §3: a backend answering through the callback reaches the client (the full path).
func TestCallbackRoundTrip(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path != "/message" {
			return false
		}
		send := p.meta()["send"].(string)
		go func() {
			resp, err := http.Post(send, "text/plain", strings.NewReader("echo:"+p.Body["message"].(string)))
			if err == nil {
				resp.Body.Close()
			}
		}()
		return false
	})
	r := httpRelay(t, b)
	c := dial(t, r.WSURL, nil)
	for i := 0; i < 20; i++ {
		msg := "m" + strconv.Itoa(i)
		c.WriteMessage(websocket.TextMessage, []byte(msg))
		typ, got := readMessage(t, c)
		if typ != websocket.TextMessage || !bytes.Equal(got, []byte("echo:"+msg)) {
			t.Fatalf("got %d %q", typ, got)
		}
	}
}
