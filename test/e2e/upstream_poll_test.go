package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pollGet sends a long-poll request and decodes its JSON answer.
func pollGet(t testing.TB, base, path string, q url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + base + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %q is not JSON", path, body)
	}
	return resp.StatusCode, m
}

// pollMessages polls until n messages (or a close record) arrived.
func pollMessages(t testing.TB, base, session string, n int) []map[string]any {
	t.Helper()
	var out []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		status, m := pollGet(t, base, "/poll/j/"+session, url.Values{"ttl": {"2000"}})
		if status != 200 {
			t.Fatalf("poll: %d %v", status, m)
		}
		msgs, _ := m["messages"].([]any)
		for _, x := range msgs {
			msg := x.(map[string]any)
			if msg["type"] == "heartbeat" {
				continue
			}
			out = append(out, msg)
			if msg["type"] == "close" {
				return out
			}
		}
	}
	return out
}

// CONTRACT §8 + §9: a poll session is linked to the upstream like a WebSocket client;
// create may name a target only under --upstream-allow; a refused dial is answered inside
// {"ok":false,...} with its status.
func TestUpstreamPollSessions(t *testing.T) {
	up := newGoUpstream(t, echoUpstream)
	other := newGoUpstream(t, func(u *goUpstream, c *websocket.Conn) {
		for {
			typ, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			_ = c.WriteMessage(typ, append([]byte("other:"), p...))
		}
	})
	r := upstreamRelay(t, up.URL, "--upstream-allow", other.URL+"/allowed/")

	status, m := pollGet(t, r.Public, "/poll/create", url.Values{"token": {"abc"}})
	if status != 200 || m["ok"] != true {
		t.Fatalf("create: %d %v", status, m)
	}
	session := m["socket"].(string)
	for _, d := range []string{"snot", "two"} {
		if status, m := pollGet(t, r.Public, "/poll/s/"+session, url.Values{"d": {d}}); status != 201 {
			t.Fatalf("send: %d %v", status, m)
		}
	}
	msgs := pollMessages(t, r.Public, session, 2)
	if len(msgs) != 2 || msgs[0]["data"] != "badger" || msgs[1]["data"] != "two" {
		t.Fatalf("poll answers %v", msgs)
	}
	if req := up.request(t, 1); req.Header.Get("X-SocketDock-Connection-Id") == "" {
		t.Error("no connection id upstream")
	}

	// The upstream closes: the session's close record carries its code.
	_ = up.conn(t, 1).WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4404, "gone"), time.Now().Add(time.Second))
	msgs = pollMessages(t, r.Public, session, 1)
	if len(msgs) != 1 || msgs[0]["type"] != "close" || msgs[0]["code"] != float64(4404) || msgs[0]["reason"] != "gone" {
		t.Fatalf("close record %v", msgs)
	}

	// An allowed target.
	status, m = pollGet(t, r.Public, "/poll/create", url.Values{"target": {other.URL + "/allowed/room"}})
	if status != 200 || m["ok"] != true {
		t.Fatalf("create with target: %d %v", status, m)
	}
	session = m["socket"].(string)
	pollGet(t, r.Public, "/poll/s/"+session, url.Values{"d": {"hi"}})
	if msgs := pollMessages(t, r.Public, session, 1); len(msgs) != 1 || msgs[0]["data"] != "other:hi" {
		t.Fatalf("target's answer %v", msgs)
	}
	if got := other.request(t, 1).URL.Path; got != "/allowed/room" {
		t.Errorf("target path %q", got)
	}

	// Targets outside the allow-list: 403, and nothing is dialled.
	for _, target := range []string{other.URL + "/elsewhere", "ws://127.0.0.2:1/", "http://" + strings.TrimPrefix(other.URL, "ws://") + "/allowed/"} {
		if status, m := pollGet(t, r.Public, "/poll/create", url.Values{"target": {target}}); status != 403 || m["ok"] != false {
			t.Errorf("target %s: %d %v", target, status, m)
		}
	}

	// The upstream refuses: its status inside {"ok":false}; a JSONP create gets 200 with it.
	up.mu.Lock()
	up.refuse = 401
	up.mu.Unlock()
	if status, m := pollGet(t, r.Public, "/poll/create", nil); status != 401 || m["ok"] != false || m["status"] != float64(401) {
		t.Errorf("refused: %d %v", status, m)
	}
	up.mu.Lock()
	up.refuse = 500
	up.mu.Unlock()
	if status, m := pollGet(t, r.Public, "/poll/create", nil); status != 502 || m["status"] != float64(502) {
		t.Errorf("upstream 500: %d %v", status, m)
	}
}

// Without --backend ws a target is refused, as before.
func TestPollTargetRefusedWithoutUpstream(t *testing.T) {
	r := startRelay(t)
	if status, m := pollGet(t, r.Public, "/poll/create", url.Values{"target": {"ws://127.0.0.1:1/"}}); status != 403 || m["ok"] != false {
		t.Errorf("%d %v", status, m)
	}
}

// --connect-uri and --disconnect-uri beside --backend ws: an HTTP backend hears every
// connection's connect and disconnect (an audit trail), and its failures never touch the
// proxying.
func TestUpstreamAuditTrail(t *testing.T) {
	up := newGoUpstream(t, echoUpstream)
	b := newBackend(t)
	r := upstreamRelay(t, up.URL, "--connect-uri", b.URL+"/connect", "--disconnect-uri", b.URL+"/disconnect")
	c := dial(t, r.WSURL, http.Header{"X-Trace": {"t1"}})
	readUntilOpen(t, c)
	id := b.connID(t, 1)
	if got := up.request(t, 1).Header.Get("X-SocketDock-Connection-Id"); got != id {
		t.Errorf("connect POST id %s, upstream id %s", id, got)
	}
	if h, _ := b.on("/connect")[0].meta()["headers"].(map[string]any); h["x-trace"] != "t1" {
		t.Errorf("connect headers %v", h)
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"), time.Now().Add(time.Second))
	eventually(t, 5*time.Second, "disconnect POST", func() bool { return len(b.on("/disconnect")) == 1 })
	if d := b.on("/disconnect")[0].Body; d["connection_id"] != id || d["code"] != float64(4001) {
		t.Errorf("disconnect %v", d)
	}
	if len(b.on("/message")) != 0 {
		t.Error("a message reached the audit backend")
	}

	// The audit backend fails: the client is proxied all the same.
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool { w.WriteHeader(500); return true })
	c2 := dial(t, r.WSURL, nil)
	eventually(t, 5*time.Second, "the failed connect POST", func() bool { return len(b.on("/connect")) == 2 })
	time.Sleep(100 * time.Millisecond)
	readUntilOpen(t, c2)
}
