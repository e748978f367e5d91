package e2e

// CONTRACT §8, the long-poll transport, end to end: one test per row or rule, against the
// contract's words. Clients are net/http (keep-alive), raw net.Conn and curl.

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// onlyConnID returns the id of the relay's one connection (loopback relays post no connect).
func onlyConnID(t testing.TB, r *testRelay) string {
	t.Helper()
	var ids []string
	eventually(t, 5*time.Second, "one connection in the table", func() bool {
		ids = ids[:0]
		r.Table.Range(func(c *conntable.Conn) bool { ids = append(ids, c.ID); return true })
		return len(ids) == 1
	})
	return ids[0]
}

// wantCommonHeaders checks what every §8 answer carries.
func wantCommonHeaders(t testing.TB, what string, a pollAnswer) {
	t.Helper()
	if got := a.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, got)
	}
	if got := a.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s: Cache-Control %q", what, got)
	}
}

// §8 create / send / poll / close on the loopback backend: every message comes back with
// seq 1..n in order; text and binary given as d (+t=b, base64) in the query and in a form
// body, and as raw POST bodies (text/* text, anything else binary).
func TestPollRoundTrip(t *testing.T) {
	r := startRelay(t)
	pc := newPollClient(t, r)

	a := pc.do(t, "POST", "/poll/create", "", nil, nil)
	if a.Status != 200 || !a.JSON.ok() || a.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("create: %d %q %s", a.Status, a.Header.Get("Content-Type"), a.Body)
	}
	wantCommonHeaders(t, "create", a)
	s := a.JSON.Socket
	if !sessionPattern(s) {
		t.Fatalf("session %q is not 32 lower-case hex", s)
	}
	if a.JSON.FQDN != r.Public {
		t.Errorf("fqdn %q, want the request Host %q", a.JSON.FQDN, r.Public)
	}
	if id := onlyConnID(t, r); id == s {
		t.Fatalf("the session id is the connection id")
	}

	bin := []byte{0x00, 0xff, 0x80, 0xfb, 0xef, 0x3e} // base64 "AP+A++8+": + and / matter
	b64 := base64.StdEncoding.EncodeToString(bin)
	text := "héllo ✓ & = + % \" \\ \n"
	sends := []struct {
		name, method, pathQuery, contentType, body string
		wantType, wantData                         string
	}{
		{"query d", "GET", "/poll/s/" + s + "?d=plain", "", "", "text", "plain"},
		{"query d t=t", "GET", "/poll/s/" + s + "?t=t&d=" + url.QueryEscape(text), "", "", "text", text},
		{"query d t=b", "GET", "/poll/s/" + s + "?t=b&d=" + url.QueryEscape(b64), "", "", "binary", b64},
		{"form d", "POST", "/poll/s/" + s, "application/x-www-form-urlencoded", "d=" + url.QueryEscape(text), "text", text},
		{"form d t=b", "POST", "/poll/s/" + s, "application/x-www-form-urlencoded; charset=UTF-8", "t=b&d=" + url.QueryEscape(b64), "binary", b64},
		{"form over query", "POST", "/poll/s/" + s + "?d=query", "application/x-www-form-urlencoded", "d=form", "text", "form"},
		{"POST d in query", "POST", "/poll/s/" + s + "?d=in-query", "", "", "text", "in-query"},
		{"raw text/plain", "POST", "/poll/s/" + s, "text/plain; charset=utf-8", "raw ✓ {\"json\":1}", "text", "raw ✓ {\"json\":1}"},
		{"raw TEXT/html", "POST", "/poll/s/" + s, "TEXT/HTML", "<b>", "text", "<b>"},
		{"raw octet-stream", "POST", "/poll/s/" + s, "application/octet-stream", string(bin), "binary", b64},
		{"raw didcomm", "POST", "/poll/s/" + s, "application/didcomm-encrypted+json", `{"a":1}`, "binary", base64.StdEncoding.EncodeToString([]byte(`{"a":1}`))},
		{"raw no type", "POST", "/poll/s/" + s, "", "\x01\x02", "binary", base64.StdEncoding.EncodeToString([]byte{1, 2})},
	}
	for _, c := range sends {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		a := pc.do(t, c.method, c.pathQuery, c.contentType, body, nil)
		if a.Status != 201 || !a.JSON.ok() {
			t.Fatalf("%s: %d %s, want 201 {\"ok\":true}", c.name, a.Status, a.Body)
		}
		wantCommonHeaders(t, c.name, a)
	}
	msgs, closed := pc.collect(t, s, len(sends))
	if closed != nil {
		t.Fatalf("closed early: %+v", closed)
	}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) || m.Type != sends[i].wantType || m.Data != sends[i].wantData {
			t.Errorf("%s: got seq %d %s %q, want seq %d %s %q", sends[i].name, m.Seq, m.Type, m.Data, i+1, sends[i].wantType, sends[i].wantData)
		}
	}

	for _, bad := range []struct {
		name, method, pathQuery, contentType, body string
	}{
		{"raw text/plain not UTF-8", "POST", "/poll/s/" + s, "text/plain", "\xff\xfe"},
		{"d not UTF-8", "GET", "/poll/s/" + s + "?d=%FF%FE", "", ""},
		{"form d not UTF-8", "POST", "/poll/s/" + s, "application/x-www-form-urlencoded", "d=%C3%28"},
		{"bad base64", "GET", "/poll/s/" + s + "?t=b&d=" + url.QueryEscape("!!!"), "", ""},
		{"bad t", "GET", "/poll/s/" + s + "?t=x&d=a", "", ""},
		{"missing d", "GET", "/poll/s/" + s + "?t=t", "", ""},
		{"malformed escape", "GET", "/poll/s/" + s + "?d=%zz", "", ""},
	} {
		var body []byte
		if bad.body != "" {
			body = []byte(bad.body)
		}
		a := pc.do(t, bad.method, bad.pathQuery, bad.contentType, body, nil)
		if a.Status != 400 || a.JSON.ok() || a.JSON.Status != 400 || a.JSON.Error == "" {
			t.Errorf("%s: %d %s, want 400 {\"ok\":false,...}", bad.name, a.Status, a.Body)
		}
	}
	// Nothing of the refused sends reached the echo.
	if extra := pc.poll(t, s, "ttl=0&ack="+strconv.Itoa(len(sends))); len(extra) != 1 || extra[0].Type != "heartbeat" {
		t.Errorf("after the refused sends: %+v, want only a heartbeat", extra)
	}

	if a := pc.do(t, "POST", "/poll/c/"+s, "", nil, nil); a.Status != 200 || !a.JSON.ok() {
		t.Fatalf("close: %d %s", a.Status, a.Body)
	}
	eventually(t, 5*time.Second, "the session leaves the table", func() bool { return r.Table.Active() == 0 })
	for _, path := range []string{"/poll/j/" + s + "?ttl=0", "/poll/s/" + s + "?d=late", "/poll/c/" + s} {
		if a := pc.get(t, path); a.Status != 403 || a.JSON.ok() {
			t.Errorf("GET %s after close: %d %s, want 403", path, a.Status, a.Body)
		}
	}
	// A session id that was never handed out, and one that has not the shape of one.
	for _, path := range []string{"/poll/j/" + conntable.NewID(), "/poll/s/" + conntable.NewID() + "?d=x", "/poll/j/not-a-session"} {
		if a := pc.get(t, path); a.Status != 403 {
			t.Errorf("GET %s: %d %s, want 403", path, a.Status, a.Body)
		}
	}
}

// §8 intro: a poll session gets the connect / message / disconnect POSTs of §3 like a
// WebSocket connection: same fields, same event ids, headers of the create request; the
// session id is not the connection id and never reaches the backend.
func TestPollBackendSeesAConnection(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)

	ws := dial(t, r.WSURL+"?token=abc&cb=wsfn", http.Header{"X-Custom": {"from-ws"}})
	wsID := b.connID(t, 1)
	_ = ws.WriteMessage(websocket.TextMessage, []byte("hello ✓"))
	_ = ws.WriteMessage(websocket.BinaryMessage, []byte{0, 0xff})
	eventually(t, 5*time.Second, "ws messages", func() bool { return len(b.on("/message")) == 2 })
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
	eventually(t, 5*time.Second, "ws disconnect", func() bool { return len(b.on("/disconnect")) == 1 })

	pc := newPollClient(t, r)
	a := pc.do(t, "POST", "/poll/create?token=abc&cb=pollfn", "", nil, http.Header{"X-Custom": {"from-poll"}})
	if a.Status != 200 || !a.JSON.ok() {
		t.Fatalf("create: %d %s", a.Status, a.Body)
	}
	s := a.JSON.Socket
	pollID := b.connID(t, 2)
	if pollID == s || !idPattern(pollID) {
		t.Fatalf("connection id %q (session %q)", pollID, s)
	}
	pc.send(t, s, "t", "hello ✓")
	if a := pc.do(t, "POST", "/poll/s/"+s, "application/octet-stream", []byte{0, 0xff}, nil); a.Status != 201 {
		t.Fatalf("raw send: %d %s", a.Status, a.Body)
	}
	eventually(t, 5*time.Second, "poll messages", func() bool { return len(b.on("/message")) == 4 })
	if a := pc.do(t, "POST", "/poll/c/"+s, "", nil, nil); a.Status != 200 {
		t.Fatalf("close: %d %s", a.Status, a.Body)
	}
	eventually(t, 5*time.Second, "poll disconnect", func() bool { return len(b.on("/disconnect")) == 2 })

	posts := map[string][]backendPost{}
	for _, p := range b.all() {
		id, _ := p.meta()["connection_id"].(string)
		if id == "" {
			id, _ = p.Body["connection_id"].(string)
		}
		posts[id] = append(posts[id], p)
		if strings.Contains(string(p.Raw), s) {
			t.Errorf("the session id reached the backend in %s: %s", p.Path, p.Raw)
		}
		for name, vs := range p.Header {
			for _, v := range vs {
				if strings.Contains(v, s) {
					t.Errorf("the session id reached the backend in header %s of %s", name, p.Path)
				}
			}
		}
	}
	wsPosts, pollPosts := posts[wsID], posts[pollID]
	if len(wsPosts) != 4 || len(pollPosts) != 4 {
		t.Fatalf("POSTs per connection: ws %d, poll %d; want 4 each (connect, 2 messages, disconnect)", len(wsPosts), len(pollPosts))
	}
	for i, path := range []string{"/connect", "/message", "/message", "/disconnect"} {
		w, p := wsPosts[i], pollPosts[i]
		if w.Path != path || p.Path != path {
			t.Fatalf("POST %d: ws %s, poll %s, want %s", i, w.Path, p.Path, path)
		}
		if p.ContentType != "application/json" {
			t.Errorf("poll %s Content-Type %q", path, p.ContentType)
		}
		// CONTRACT §3 event ids: the same numbering as the WebSocket connection's.
		wsEv, pollEv := w.Header.Get("X-SocketDock-Event-Id"), p.Header.Get("X-SocketDock-Event-Id")
		if (wsEv == "") != (pollEv == "") || pollEv != "" && pollEv != pollID+"-"+strconv.Itoa(i+1) {
			t.Errorf("%s event ids: ws %q, poll %q", path, wsEv, pollEv)
		}
		// Same shape: the same keys at top level and in meta, transport and path aside.
		if wk, pk := shapeOf(w.Body), shapeOf(p.Body); wk != pk {
			t.Errorf("%s bodies differ in shape:\n ws   %s\n poll %s", path, wk, pk)
		}
		switch path {
		case "/connect":
			m := p.meta()
			if m["send"] != r.Control+"/socket/"+pollID+"/send" || m["disconnect"] != r.Control+"/socket/"+pollID+"/disconnect" {
				t.Errorf("poll connect meta send/disconnect %v %v", m["send"], m["disconnect"])
			}
			h, _ := m["headers"].(map[string]any)
			if h["x-custom"] != "from-poll" || h["host"] != r.Public {
				t.Errorf("poll connect meta.headers = %v, want the create request's", h)
			}
		case "/message":
			if w.Body["message"] != p.Body["message"] || w.meta()["type"] != p.meta()["type"] || w.meta()["encoding"] != p.meta()["encoding"] {
				t.Errorf("message %d: ws %v / %v, poll %v / %v", i, w.meta(), w.Body["message"], p.meta(), p.Body["message"])
			}
		case "/disconnect":
			if p.Body["code"] != float64(1000) {
				t.Errorf("poll disconnect %v, want code 1000", p.Body)
			}
		}
	}

	t.Run("meta.transport", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if got := wsPosts[i].meta()["transport"]; got != "ws" {
				t.Errorf("ws %s meta.transport %v, want \"ws\"", wsPosts[i].Path, got)
			}
			if got := pollPosts[i].meta()["transport"]; got != "poll" {
				t.Errorf("poll %s meta.transport %v, want \"poll\"", pollPosts[i].Path, got)
			}
		}
	})
	t.Run("meta.path", func(t *testing.T) {
		if got := pollPosts[0].meta()["path"]; got != "/poll/create?token=abc" {
			t.Errorf("poll meta.path %v, want /poll/create?token=abc (cb removed)", got)
		}
		if got := wsPosts[0].meta()["path"]; got != "/ws?token=abc" {
			t.Errorf("ws meta.path %v, want /ws?token=abc (cb removed, CONTRACT §8 'for both transports')", got)
		}
	})
}

// shapeOf lists a body's keys and meta's keys, without the ones §8 adds (transport, path)
// and the ones that depend on the message (encoding).
func shapeOf(body map[string]any) string {
	var keys []string
	for k, v := range body {
		if k == "meta" {
			m, _ := v.(map[string]any)
			for mk := range m {
				if mk != "transport" && mk != "path" && mk != "encoding" {
					keys = append(keys, "meta."+mk)
				}
			}
			continue
		}
		keys = append(keys, k)
	}
	sortStrings(keys)
	return strings.Join(keys, ",")
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// §8 intro + §4: the control API reaches a poll session by its connection id, unchanged;
// the session id is not a connection id there.
func TestPollControlAPI(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	id := b.connID(t, 1)

	sendURL := r.Control + "/socket/" + id + "/send"
	for _, c := range []struct {
		ct   string
		body []byte
	}{
		{"text/plain; charset=utf-8", []byte("from the backend ✓")},
		{"application/didcomm-encrypted+json", []byte{0xff, 0x00, 'x'}},
		{"", []byte("no type: binary")},
	} {
		if st, body := post(t, sendURL, c.ct, c.body); st != 200 {
			t.Fatalf("/send %q: %d %s", c.ct, st, body)
		}
	}
	if st, _ := post(t, sendURL, "text/plain", []byte{0xff}); st != 400 {
		t.Errorf("/send text/plain not UTF-8: %d, want 400", st)
	}
	if st, _ := post(t, r.Control+"/socket/"+s+"/send", "text/plain", []byte("x")); st != 404 {
		t.Errorf("/send to the session id: %d, want 404 (it is not a connection id)", st)
	}
	msgs, _ := pc.collect(t, s, 3)
	want := []pollMsg{
		{Seq: 1, Type: "text", Data: "from the backend ✓"},
		{Seq: 2, Type: "binary", Data: base64.StdEncoding.EncodeToString([]byte{0xff, 0x00, 'x'})},
		{Seq: 3, Type: "binary", Data: base64.StdEncoding.EncodeToString([]byte("no type: binary"))},
	}
	for i := range want {
		if msgs[i] != want[i] {
			t.Errorf("message %d: %+v, want %+v", i, msgs[i], want[i])
		}
	}

	pc.send(t, s, "t", "up")
	eventually(t, 5*time.Second, "message POST", func() bool { return len(b.on("/message")) == 1 })
	st, body := do(t, "GET", r.Control+"/socket/"+id, "", nil)
	if st != 200 {
		t.Fatalf("GET /socket/<id>: %d %s", st, body)
	}
	var info struct {
		ID          string `json:"connection_id"`
		ConnectedAt string `json:"connected_at"`
		RemoteAddr  string `json:"remote_addr"`
		In          int    `json:"messages_in"`
		Out         int    `json:"messages_out"`
	}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("info %q: %v", body, err)
	}
	if _, err := time.Parse(time.RFC3339, info.ConnectedAt); err != nil || info.ID != id || info.In != 1 || info.Out != 3 ||
		!strings.HasPrefix(info.RemoteAddr, "127.0.0.1:") {
		t.Errorf("info %s: want id %s, RFC 3339 connected_at, 1 in, 3 out, 127.0.0.1:port", body, id)
	}
	if st, _ := do(t, "GET", r.Control+"/socket/"+s, "", nil); st != 404 {
		t.Errorf("GET /socket/<session id>: %d, want 404", st)
	}

	if st, body := post(t, r.Control+"/socket/"+id+"/disconnect", "application/json", []byte(`{"code":4000,"reason":"bye now"}`)); st != 200 {
		t.Fatalf("/disconnect: %d %s", st, body)
	}
	if rec := pc.awaitClose(t, s); rec.Code != 4000 || rec.Reason != "bye now" {
		t.Errorf("close record %+v, want 4000 \"bye now\"", rec)
	}
	eventually(t, 5*time.Second, "disconnect POST", func() bool { return len(b.on("/disconnect")) == 1 })
	if d := b.on("/disconnect")[0].Body; d["code"] != float64(4000) || d["reason"] != "bye now" || d["connection_id"] != id {
		t.Errorf("disconnect POST %v", d)
	}
	if a := pc.get(t, "/poll/j/"+s+"?ttl=0"); a.Status != 403 {
		t.Errorf("poll after the close record: %d, want 403", a.Status)
	}
	if st, _ := post(t, sendURL, "text/plain", []byte("late")); st != 404 && st != 410 {
		t.Errorf("/send after the end: %d, want 404 (or 410)", st)
	}
	if st, _ := post(t, r.Control+"/socket/"+id+"/disconnect", "", nil); st != 404 {
		t.Errorf("/disconnect after the end: %d, want 404", st)
	}
}

// §8 JSONP: every route with cb answers 200 /**/cb(...); as application/javascript, nosniff,
// no-store, with the real status inside on errors; a bad cb gets 400 text/plain.
func TestPollJSONP(t *testing.T) {
	r := startRelay(t, "--max-message-size", "64", "--max-connections", "1")
	pc := newPollClient(t, r)
	const cb = "jQuery_1.cb$"

	wantJSONP := func(t *testing.T, what string, a pollAnswer, status int) {
		t.Helper()
		if a.Status != 200 || a.Header.Get("Content-Type") != "application/javascript; charset=utf-8" {
			t.Fatalf("%s: %d %q %s, want 200 application/javascript; charset=utf-8", what, a.Status, a.Header.Get("Content-Type"), a.Body)
		}
		wantCommonHeaders(t, what, a)
		if !strings.HasPrefix(a.Body, "/**/"+cb+"(") || !strings.HasSuffix(a.Body, ");") {
			t.Errorf("%s: body %q, want /**/%s(...);", what, a.Body, cb)
		}
		if a.Header.Get("Retry-After") != "" || a.Header.Get("Allow") != "" {
			t.Errorf("%s: a JSONP answer carries a status-only header: %v", what, a.Header)
		}
		switch {
		case status < 300 && !a.JSON.ok():
			t.Errorf("%s: %s, want ok:true", what, a.Body)
		case status >= 300 && (a.JSON.ok() || a.JSON.Status != status || a.JSON.Error == ""):
			t.Errorf("%s: %s, want ok:false, status %d and an error", what, a.Body, status)
		}
	}

	a := pc.get(t, "/poll/create?cb="+cb)
	wantJSONP(t, "create", a, 200)
	s := a.JSON.Socket
	wantJSONP(t, "send", pc.get(t, "/poll/s/"+s+"?cb="+cb+"&d=hi"), 201)
	a = pc.get(t, "/poll/j/"+s+"?cb="+cb+"&ttl=1000")
	wantJSONP(t, "poll", a, 200)
	if len(a.JSON.Messages) != 1 || a.JSON.Messages[0].Data != "hi" {
		t.Errorf("poll: %s", a.Body)
	}
	wantJSONP(t, "heartbeat", pc.get(t, "/poll/j/"+s+"?cb="+cb+"&ttl=50"), 200)
	wantJSONP(t, "send via form body", pc.do(t, "POST", "/poll/s/"+s, "application/x-www-form-urlencoded", []byte("cb="+url.QueryEscape(cb)+"&d=x"), nil), 201)

	wantJSONP(t, "missing d", pc.get(t, "/poll/s/"+s+"?cb="+cb), 400)
	wantJSONP(t, "bad base64", pc.get(t, "/poll/s/"+s+"?cb="+cb+"&t=b&d=%21"), 400)
	wantJSONP(t, "too big", pc.get(t, "/poll/s/"+s+"?cb="+cb+"&d="+strings.Repeat("x", 65)), 413)
	wantJSONP(t, "bad ttl", pc.get(t, "/poll/j/"+s+"?cb="+cb+"&ttl=soon"), 400)
	wantJSONP(t, "bad ack", pc.get(t, "/poll/j/"+s+"?cb="+cb+"&ack=-1"), 400)
	wantJSONP(t, "unknown session", pc.get(t, "/poll/j/"+conntable.NewID()+"?cb="+cb), 403)
	wantJSONP(t, "malformed session", pc.get(t, "/poll/s/xyz?cb="+cb+"&d=x"), 403)
	wantJSONP(t, "over --max-connections", pc.get(t, "/poll/create?cb="+cb), 503)
	wantJSONP(t, "close", pc.get(t, "/poll/c/"+s+"?cb="+cb), 200)
	wantJSONP(t, "closed session", pc.get(t, "/poll/j/"+s+"?cb="+cb), 403)

	long := strings.Repeat("a", 65)
	for _, bad := range []string{"a<b", "1a", long, "a.b.c.d.e.f", "a.b.c.d.e", "a..b", "a.", ".a", "a-b", "é", "a%3Cb", "alert(1)//", "a%0A"} {
		a := pc.get(t, "/poll/create?cb="+bad)
		if a.Status != 400 || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/plain") || strings.Contains(a.Body, "(") {
			t.Errorf("cb %q: %d %q %q, want 400 text/plain", bad, a.Status, a.Header.Get("Content-Type"), a.Body)
		}
		wantCommonHeaders(t, "bad cb "+bad, a)
		if a := pc.get(t, "/poll/j/"+conntable.NewID()+"?cb="+bad); a.Status != 400 || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("poll with cb %q: %d %q, want 400 text/plain", bad, a.Status, a.Header.Get("Content-Type"))
		}
	}
	if r.Table.Active() != 0 {
		t.Errorf("a create with a bad cb opened a session")
	}
	// The longest names the pattern allows are JavaScript, not refusals.
	good := strings.Repeat("a", 64) + ".$." + strings.Repeat("_", 64) + ".Z9"
	a = pc.get(t, "/poll/j/"+conntable.NewID()+"?cb="+good)
	if a.Status != 200 || !strings.HasPrefix(a.Body, "/**/"+good+"(") {
		t.Errorf("cb %q: %d %s, want JSONP", good, a.Status, a.Body)
	}

	t.Run("--poll-jsonp=false", func(t *testing.T) {
		r := startRelay(t, "--poll-jsonp=false")
		pc := newPollClient(t, r)
		for _, path := range []string{"/poll/create?cb=f", "/poll/j/" + conntable.NewID() + "?cb=f"} {
			a := pc.get(t, path)
			if a.Status != 400 || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/plain") {
				t.Errorf("%s: %d %q %q, want 400 text/plain", path, a.Status, a.Header.Get("Content-Type"), a.Body)
			}
		}
		if r.Table.Active() != 0 {
			t.Errorf("a refused JSONP create opened a session")
		}
		if a := pc.get(t, "/poll/create"); a.Status != 200 {
			t.Errorf("JSON create: %d", a.Status)
		}
	})
}

// §8: U+2028/U+2029 are escaped in every JSON body (they end a line in older JavaScript).
func TestPollLineSeparatorsEscaped(t *testing.T) {
	r := startRelay(t)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	id := onlyConnID(t, r)
	const text = "a\u2028b\u2029c"
	pc.send(t, s, "t", text)
	for _, q := range []string{"ttl=0&ack=0", "ttl=0&ack=0&cb=f"} {
		a := pc.get(t, "/poll/j/"+s+"?"+q)
		if strings.Contains(a.Body, "\u2028") || strings.Contains(a.Body, "\u2029") || !strings.Contains(a.Body, `a\u2028b\u2029c`) {
			t.Errorf("poll %s: body %q, want U+2028/U+2029 as \\u escapes", q, a.Body)
		}
		if len(a.JSON.Messages) != 1 || a.JSON.Messages[0].Data != text {
			t.Errorf("poll %s: %+v, want the text back", q, a.JSON.Messages)
		}
	}
	if st, body := post(t, r.Control+"/socket/"+id+"/disconnect", "application/json", []byte(`{"code":4001,"reason":"x\u2028y"}`)); st != 200 {
		t.Fatalf("/disconnect: %d %s", st, body)
	}
	a := pc.get(t, "/poll/j/"+s+"?ttl=1000&ack=1&cb=f")
	if strings.Contains(a.Body, "\u2028") || !strings.Contains(a.Body, `x\u2028y`) {
		t.Errorf("close record: %q, want the reason's U+2028 escaped", a.Body)
	}
}

// §8 CORS with --allowed-origins: an allowed Origin is echoed with Vary: Origin, a preflight is
// answered, a disallowed Origin is refused.
func TestPollCORS(t *testing.T) {
	const app, evil = "https://app.example", "https://evil.example"
	r := startRelay(t, "--allowed-origins", app+",https://other.example", "--max-connections", "1")
	pc := newPollClient(t, r)
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	wantEcho := func(what string, a pollAnswer) {
		t.Helper()
		if a.Header.Get("Access-Control-Allow-Origin") != app || !hasVaryOrigin(a.Header) {
			t.Errorf("%s: %d, ACAO %q, Vary %q: want the Origin echoed with Vary: Origin", what, a.Status, a.Header.Get("Access-Control-Allow-Origin"), a.Header.Values("Vary"))
		}
	}

	a := pc.do(t, "POST", "/poll/create", "", nil, origin(app))
	if a.Status != 200 {
		t.Fatalf("create from %s: %d %s", app, a.Status, a.Body)
	}
	wantEcho("create", a)
	s := a.JSON.Socket

	pre := pc.do(t, "OPTIONS", "/poll/s/"+s, "", nil, http.Header{"Origin": {app},
		"Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"content-type"}})
	if pre.Status < 200 || pre.Status > 299 {
		t.Fatalf("preflight: %d %s", pre.Status, pre.Body)
	}
	wantEcho("preflight", pre)
	if m := pre.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") || !strings.Contains(m, "GET") {
		t.Errorf("preflight Allow-Methods %q", m)
	}
	if h := strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(h, "content-type") {
		t.Errorf("preflight Allow-Headers %q, want content-type", h)
	}

	a = pc.do(t, "POST", "/poll/s/"+s, "application/octet-stream", []byte{1, 2, 3}, origin(app))
	if a.Status != 201 {
		t.Fatalf("send: %d %s", a.Status, a.Body)
	}
	wantEcho("send", a)
	a = pc.do(t, "GET", "/poll/j/"+s+"?ttl=1000", "", nil, origin(app))
	if a.Status != 200 || len(a.JSON.Messages) != 1 {
		t.Fatalf("poll: %d %s", a.Status, a.Body)
	}
	wantEcho("poll", a)
	// An error answer to an allowed Origin is readable by the page too, Retry-After included
	// (not a CORS-safelisted header: it must be exposed, or fetch cannot see it).
	wantEcho("error", pc.do(t, "GET", "/poll/j/"+conntable.NewID(), "", nil, origin(app)))
	a = pc.do(t, "POST", "/poll/create", "", nil, origin(app))
	if a.Status != 503 || a.Header.Get("Retry-After") == "" {
		t.Fatalf("create over --max-connections: %d %v", a.Status, a.Header)
	}
	wantEcho("503", a)
	if exp := strings.ToLower(a.Header.Get("Access-Control-Expose-Headers")); !strings.Contains(exp, "retry-after") {
		t.Errorf("503 to an allowed Origin: Access-Control-Expose-Headers %q, want Retry-After exposed to the page", exp)
	}

	// Not allowed: refused on every route, and nothing opens.
	for _, c := range []struct{ method, path string }{
		{"POST", "/poll/create"}, {"GET", "/poll/s/" + s + "?d=evil"}, {"GET", "/poll/j/" + s + "?ttl=0"}, {"OPTIONS", "/poll/s/" + s},
	} {
		a := pc.do(t, c.method, c.path, "", nil, http.Header{"Origin": {evil}, "Access-Control-Request-Method": {"POST"}})
		if a.Status != 403 || a.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s %s from %s: %d ACAO %q, want 403 and no ACAO", c.method, c.path, evil, a.Status, a.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	if n := r.Table.Active(); n != 1 {
		t.Errorf("%d connections, want 1 (the refused create opened one)", n)
	}
	if msgs := pc.poll(t, s, "ttl=0&ack=1"); len(msgs) > 0 && msgs[0].Type != "heartbeat" {
		t.Errorf("a send from a refused origin arrived: %+v", msgs)
	}
	// Without Origin (same-origin GET, curl): served, no CORS headers.
	if a := pc.get(t, "/poll/j/"+s+"?ttl=0"); a.Status != 200 || a.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no Origin: %d ACAO %q", a.Status, a.Header.Get("Access-Control-Allow-Origin"))
	}
}

func hasVaryOrigin(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "Origin") {
				return true
			}
		}
	}
	return false
}

// §8 seq/ack: messages sent in an answer are kept until the next poll; ack=n confirms up to
// n and the rest comes again; a poll without ack confirms everything; redeliveries are counted.
func TestPollAckRedelivery(t *testing.T) {
	r := startRelay(t)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	id := onlyConnID(t, r)
	for _, m := range []string{"a", "b", "c"} {
		pc.send(t, s, "t", m)
	}
	seqs := func(msgs []pollMsg) string {
		var out []string
		for _, m := range msgs {
			if m.Type != "heartbeat" {
				out = append(out, strconv.FormatUint(m.Seq, 10)+":"+m.Data)
			}
		}
		return strings.Join(out, " ")
	}
	redeliveries := func() float64 { return metricValue(t, r, "socketdock_poll_redeliveries_total") }

	if got := seqs(pc.poll(t, s, "ttl=0&ack=0")); got != "1:a 2:b 3:c" {
		t.Fatalf("first poll: %q", got)
	}
	// The client "lost" that answer: the next poll still says ack=0.
	if got := seqs(pc.poll(t, s, "ttl=0&ack=0")); got != "1:a 2:b 3:c" {
		t.Fatalf("poll after a lost answer: %q, want all three again", got)
	}
	if n := redeliveries(); n != 3 {
		t.Errorf("socketdock_poll_redeliveries_total %v, want 3", n)
	}
	if got := seqs(pc.poll(t, s, "ttl=0&ack=1")); got != "2:b 3:c" {
		t.Fatalf("ack=1: %q, want 2 and 3 again", got)
	}
	if got := seqs(pc.poll(t, s, "ttl=0&ack=3")); got != "" {
		t.Fatalf("ack=3: %q, want nothing", got)
	}
	if n := redeliveries(); n != 5 {
		t.Errorf("socketdock_poll_redeliveries_total %v, want 5", n)
	}

	// Without ack: polysocket's behaviour, delivered once written.
	pc.send(t, s, "t", "d")
	if got := seqs(pc.poll(t, s, "ttl=0")); got != "4:d" {
		t.Fatalf("poll without ack: %q", got)
	}
	pc.send(t, s, "t", "e")
	if got := seqs(pc.poll(t, s, "ttl=0")); got != "5:e" {
		t.Fatalf("second poll without ack: %q, want only 5 (4 confirmed by the ack-less poll)", got)
	}
	// An old ack cannot bring back what an ack-less poll confirmed; it does bring back 5.
	if got := seqs(pc.poll(t, s, "ttl=0&ack=3")); got != "5:e" {
		t.Fatalf("ack=3 after ack-less polls: %q, want 5 again", got)
	}
	if n := redeliveries(); n != 6 {
		t.Errorf("socketdock_poll_redeliveries_total %v, want 6", n)
	}
	// Messages are counted once, however often they went out.
	_, body := do(t, "GET", r.Control+"/socket/"+id, "", nil)
	if !strings.Contains(body, `"messages_out":5`) || !strings.Contains(body, `"messages_in":5`) {
		t.Errorf("info %s, want 5 in and 5 out", body)
	}
	in, out := metricValue(t, r, `socketdock_poll_messages_total{direction="in"}`), metricValue(t, r, `socketdock_poll_messages_total{direction="out"}`)
	if in != 5 || out != 5 {
		t.Errorf("socketdock_poll_messages_total in %v out %v, want 5 and 5", in, out)
	}
}

// §8 seq/ack on the wire: a held poll whose answer the client never reads (the TCP connection
// is cut after the relay wrote it) loses nothing: the next poll with the old ack gets it.
func TestPollLostAnswerOnTheWire(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	id := b.connID(t, 1)

	c := rawHTTPDial(t, r.Public)
	c.write(t, getReq(r.Public, "/poll/j/"+s+"?ttl=10000&ack=0"))
	eventually(t, 5*time.Second, "the poll is held", func() bool { return metricValue(t, r, "socketdock_poll_held") == 1 })
	if st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("precious")); st != 200 {
		t.Fatalf("/send: %d", st)
	}
	eventually(t, 5*time.Second, "the answer is written", func() bool { return metricValue(t, r, "socketdock_poll_held") == 0 })
	c.Close() // unread

	// A held poll whose connection goes before anything arrives loses nothing either.
	c2 := rawHTTPDial(t, r.Public)
	c2.write(t, getReq(r.Public, "/poll/j/"+s+"?ttl=10000&ack=0"))
	a := c2.read(t, "GET") // the redelivery
	if len(a.JSON.Messages) != 1 || a.JSON.Messages[0].Data != "precious" || a.JSON.Messages[0].Seq != 1 {
		t.Fatalf("poll after the lost answer: %s", a.Body)
	}
	c2.write(t, getReq(r.Public, "/poll/j/"+s+"?ttl=10000&ack=1"))
	eventually(t, 5*time.Second, "the poll is held", func() bool { return metricValue(t, r, "socketdock_poll_held") == 1 })
	c2.Close()
	eventually(t, 5*time.Second, "the held poll is let go", func() bool { return metricValue(t, r, "socketdock_poll_held") == 0 })
	if st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("second")); st != 200 {
		t.Fatalf("/send: %d", st)
	}
	if msgs := pc.poll(t, s, "ttl=5000&ack=1"); len(msgs) != 1 || msgs[0].Data != "second" || msgs[0].Seq != 2 {
		t.Fatalf("after the cut: %+v", msgs)
	}
}

// §8 one held poll per session: a newer poll answers the held one at once with "messages":[]
// and the session lives on; a held poll is answered as soon as a /send arrives.
func TestPollOneHeldPerSession(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	pcA, pcB := newPollClient(t, r), newPollClient(t, r)
	s := pcA.create(t, "")
	id := b.connID(t, 1)

	type result struct {
		a       pollAnswer
		elapsed time.Duration
	}
	pollAsync := func(pc *pollClient) chan result {
		ch := make(chan result, 1)
		start := time.Now()
		go func() {
			a := pc.get(t, "/poll/j/"+s+"?ttl=20000&ack=0")
			ch <- result{a, time.Since(start)}
		}()
		return ch
	}
	first := pollAsync(pcA)
	eventually(t, 5*time.Second, "the first poll is held", func() bool { return metricValue(t, r, "socketdock_poll_held") == 1 })
	second := pollAsync(pcB)
	var got result
	select {
	case got = <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("a second poll did not answer the held one")
	}
	if got.a.Status != 200 || !got.a.JSON.ok() || got.a.JSON.Messages == nil || len(got.a.JSON.Messages) != 0 || !strings.Contains(got.a.Body, `"messages":[]`) {
		t.Fatalf("displaced poll: %d %s, want 200 \"messages\":[]", got.a.Status, got.a.Body)
	}
	eventually(t, 5*time.Second, "the second poll is held", func() bool { return metricValue(t, r, "socketdock_poll_held") == 1 })
	if r.Table.Active() != 1 || len(b.on("/disconnect")) != 0 {
		t.Fatalf("overlapping polls ended the session")
	}

	sent := time.Now()
	if st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("now")); st != 200 {
		t.Fatalf("/send: %d", st)
	}
	select {
	case got = <-second:
	case <-time.After(15 * time.Second):
		t.Fatal("the held poll was not answered by the /send")
	}
	latency := time.Since(sent)
	if len(got.a.JSON.Messages) != 1 || got.a.JSON.Messages[0].Data != "now" {
		t.Fatalf("held poll: %s", got.a.Body)
	}
	// ttl is 20 s: an answer at the ttl would mean the send did not wake it.
	if latency > 5*time.Second {
		t.Errorf("held poll answered %v after the /send (ttl 20s)", latency)
	}
	t.Logf("held poll answered %v after the /send", latency)
}

// §8 GET /poll/j: a heartbeat when ttl runs out; ttl clamped to [0, --poll-max-ttl]; a poll
// without ttl holds for --poll-max-ttl; 400 for bad ttl/ack.
func TestPollHeartbeatAndTTL(t *testing.T) {
	r := startRelay(t, "--poll-max-ttl", "600ms")
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	timed := func(q string) ([]pollMsg, time.Duration) {
		start := time.Now()
		msgs := pc.poll(t, s, q)
		return msgs, time.Since(start)
	}
	heartbeat := func(msgs []pollMsg) bool { return len(msgs) == 1 && msgs[0].Type == "heartbeat" }

	if msgs, d := timed("ttl=300"); !heartbeat(msgs) || d < 200*time.Millisecond {
		t.Errorf("ttl=300: %+v after %v, want a heartbeat after ~300ms", msgs, d)
	}
	if msgs, d := timed("ttl=60000"); !heartbeat(msgs) || d > 10*time.Second {
		t.Errorf("ttl=60000: %+v after %v, want a heartbeat after --poll-max-ttl (600ms)", msgs, d)
	} else {
		t.Logf("ttl=60000 clamped: heartbeat after %v", d)
	}
	if msgs, d := timed(""); !heartbeat(msgs) || d < 400*time.Millisecond || d > 10*time.Second {
		t.Errorf("no ttl: %+v after %v, want a heartbeat after --poll-max-ttl (600ms)", msgs, d)
	}
	for _, q := range []string{"ttl=0", "ttl=-5"} {
		if msgs, d := timed(q); d > 2*time.Second || len(msgs) > 0 && !heartbeat(msgs) {
			t.Errorf("%s: %+v after %v, want an answer at once", q, msgs, d)
		} else if !heartbeat(msgs) {
			t.Errorf("%s: %+v, want [{\"type\":\"heartbeat\"}] (its ttl ran out at once)", q, msgs)
		}
	}
	for _, q := range []string{"ttl=soon", "ttl=1.5", "ack=x", "ack=-1", "ack=99999999999999999999999"} {
		if a := pc.get(t, "/poll/j/"+s+"?"+q); a.Status != 400 || a.JSON.Status != 400 {
			t.Errorf("%s: %d %s, want 400", q, a.Status, a.Body)
		}
	}
	if a := pc.do(t, "POST", "/poll/j/"+s, "", nil, nil); a.Status != 405 {
		t.Errorf("POST /poll/j: %d, want 405", a.Status)
	}
}

// §8: a session with no poll for --poll-session-timeout ends with a disconnect POST code 1006
// "poll session expired", and later requests get 403. Polls, held or not, keep it alive.
func TestPollSessionTimeout(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b, "--poll-session-timeout", "500ms", "--poll-max-ttl", "2s")
	pc := newPollClient(t, r)

	alive := pc.create(t, "")
	aliveID := b.connID(t, 1)
	start := time.Now()
	idle := pc.create(t, "")
	idleID := b.connID(t, 2)

	// alive: short polls, then one held past the timeout.
	for time.Since(start) < 1200*time.Millisecond {
		pc.poll(t, alive, "ttl=100")
	}
	if msgs := pc.poll(t, alive, "ttl=1500"); len(msgs) != 1 || msgs[0].Type != "heartbeat" {
		t.Fatalf("held poll: %+v", msgs)
	}

	eventually(t, 5*time.Second, "the idle session's disconnect", func() bool { return len(b.on("/disconnect")) >= 1 })
	for _, p := range b.on("/disconnect") {
		if p.Body["connection_id"] == aliveID {
			t.Fatalf("the polled session expired: %v", p.Body)
		}
	}
	d := b.on("/disconnect")[0].Body
	if d["connection_id"] != idleID || d["code"] != float64(1006) || d["reason"] != "poll session expired" {
		t.Errorf("disconnect %v, want %s 1006 \"poll session expired\"", d, idleID)
	}
	for _, path := range []string{"/poll/j/" + idle + "?ttl=0", "/poll/s/" + idle + "?d=x", "/poll/c/" + idle} {
		if a := pc.get(t, path); a.Status != 403 {
			t.Errorf("%s after expiry: %d %s, want 403", path, a.Status, a.Body)
		}
	}
	if st, _ := do(t, "GET", r.Control+"/socket/"+idleID, "", nil); st != 404 {
		t.Errorf("GET /socket/<expired>: %d, want 404", st)
	}
	pc.poll(t, alive, "ttl=0")
	if r.Table.Active() != 1 {
		t.Errorf("%d connections, want the polled session only", r.Table.Active())
	}

	// Sends are not polls: a client that only sends, and so never takes what waits for it,
	// expires like one that went away.
	sender := pc.create(t, "")
	senderID := b.connID(t, 3)
	expired := false
	for start := time.Now(); time.Since(start) < 3*time.Second && !expired; time.Sleep(50 * time.Millisecond) {
		expired = pc.get(t, "/poll/s/"+sender+"?d=x").Status == 403
	}
	if !expired {
		t.Errorf("a session that sends every 50ms but never polls lived 3s past --poll-session-timeout 500ms")
	}
	eventually(t, 5*time.Second, "the sender's disconnect", func() bool {
		for _, p := range b.on("/disconnect") {
			if p.Body["connection_id"] == senderID {
				return p.Body["code"] == float64(1006)
			}
		}
		return false
	})
}

// curl as the client: keep-alive across create, send and poll in one invocation, JSONP, and
// a raw binary body.
func TestPollCurl(t *testing.T) {
	curl := lookCurl(t)
	r := startRelay(t)
	base := "http://" + r.Public
	out := runCurl(t, curl, "-sS", "-X", "POST", base+"/poll/create")
	var created pollBody
	if err := json.Unmarshal([]byte(out), &created); err != nil || !created.ok() {
		t.Fatalf("create: %q %v", out, err)
	}
	s := created.Socket
	// Three requests on one connection: curl says it re-used it.
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(bin, []byte{0, 1, 255}, 0o600); err != nil {
		t.Fatal(err)
	}
	out = runCurl(t, curl, "-sS", "-v", base+"/poll/s/"+s+"?d=one", "--next", "-sS", "-v", "--data-binary", "@"+bin,
		"-H", "Content-Type: application/octet-stream", base+"/poll/s/"+s, "--next", "-sS", "-v", base+"/poll/j/"+s+"?ttl=1000&ack=0&cb=cb")
	if !strings.Contains(out, `/**/cb({"ok":true,"messages":[{"seq":1,"type":"text","data":"one"},{"seq":2,"type":"binary","data":"AAH/"}]});`) {
		t.Errorf("curl output:\n%s", out)
	}
	if n := strings.Count(out, "Re-using existing connection") + strings.Count(out, "Reusing existing connection"); n < 2 {
		t.Errorf("curl did not re-use its connection (%d re-uses):\n%s", n, out)
	}
}

// §8 create: --poll-fqdn is the fqdn answered; a target is refused (no upstream allowed); in
// --connect-mode authorize the backend's refusal is a 403 and no session opens.
func TestPollCreateOptions(t *testing.T) {
	t.Run("fqdn", func(t *testing.T) {
		r := startRelay(t, "--poll-fqdn", "relay.example:443")
		a := newPollClient(t, r).get(t, "/poll/create")
		if a.Status != 200 || a.JSON.FQDN != "relay.example:443" {
			t.Errorf("create: %d %s, want fqdn relay.example:443", a.Status, a.Body)
		}
	})
	t.Run("target", func(t *testing.T) {
		r := startRelay(t)
		a := newPollClient(t, r).get(t, "/poll/create?target="+url.QueryEscape("ws://127.0.0.1:9/x"))
		if a.Status != 403 || a.JSON.ok() || a.JSON.Error == "" {
			t.Errorf("create with a target: %d %s, want 403 {\"ok\":false,\"error\":...}", a.Status, a.Body)
		}
		if r.Table.Active() != 0 {
			t.Error("a refused create opened a session")
		}
	})
	t.Run("authorize", func(t *testing.T) {
		b := newBackend(t)
		b.setConnect(func(p backendPost, w http.ResponseWriter) {
			h, _ := p.meta()["headers"].(map[string]any)
			if h["x-token"] != "good" {
				w.WriteHeader(403)
			}
		})
		r := httpRelay(t, b, "--connect-mode", "authorize")
		pc := newPollClient(t, r)
		a := pc.do(t, "POST", "/poll/create", "", nil, http.Header{"X-Token": {"bad"}})
		if a.Status != 403 || a.JSON.ok() || a.JSON.Error == "" {
			t.Errorf("refused create: %d %s, want 403 {\"ok\":false,...}", a.Status, a.Body)
		}
		a = pc.do(t, "POST", "/poll/create?cb=f", "", nil, http.Header{"X-Token": {"bad"}})
		if a.Status != 200 || a.JSON.Status != 403 {
			t.Errorf("refused JSONP create: %d %s, want 200 with status 403 inside", a.Status, a.Body)
		}
		a = pc.do(t, "POST", "/poll/create", "", nil, http.Header{"X-Token": {"good"}})
		if a.Status != 200 || !a.JSON.ok() {
			t.Fatalf("allowed create: %d %s", a.Status, a.Body)
		}
		pc.send(t, a.JSON.Socket, "t", "in")
		eventually(t, 5*time.Second, "message POST", func() bool { return len(b.on("/message")) == 1 })
		if r.Table.Active() != 1 {
			t.Errorf("%d connections, want 1", r.Table.Active())
		}
	})
	t.Run("poll off", func(t *testing.T) {
		r := startRelay(t, "--poll=false")
		if a := newPollClient(t, r).get(t, "/poll/create"); a.Status != 404 {
			t.Errorf("--poll=false: create %d, want 404", a.Status)
		}
	})
}

// §8 routes and methods: unknown paths 404, methods a route does not take 405 with Allow.
func TestPollRoutesAndMethods(t *testing.T) {
	r := startRelay(t)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	for _, path := range []string{"/poll", "/poll/", "/poll/x/" + s, "/poll/j/" + s + "/extra", "/poll/createx"} {
		if a := pc.get(t, path); a.Status != 404 {
			t.Errorf("GET %s: %d, want 404", path, a.Status)
		}
	}
	for _, c := range []struct{ method, path string }{{"PUT", "/poll/create"}, {"DELETE", "/poll/s/" + s}, {"POST", "/poll/j/" + s}} {
		if a := pc.do(t, c.method, c.path, "", nil, nil); a.Status != 405 || a.Header.Get("Allow") == "" {
			t.Errorf("%s %s: %d Allow %q, want 405 with Allow", c.method, c.path, a.Status, a.Header.Get("Allow"))
		}
	}
}

// §8 /poll/c while a poll is held elsewhere: the held poll gets the close record (1000), the
// backend one disconnect with 1000.
func TestPollCloseWakesHeldPoll(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	pc, other := newPollClient(t, r), newPollClient(t, r)
	s := pc.create(t, "")
	answer := make(chan pollAnswer, 1)
	go func() { answer <- pc.get(t, "/poll/j/"+s+"?ttl=20000") }()
	eventually(t, 5*time.Second, "the poll is held", func() bool { return metricValue(t, r, "socketdock_poll_held") == 1 })
	if a := other.do(t, "POST", "/poll/c/"+s, "", nil, nil); a.Status != 200 || !a.JSON.ok() {
		t.Fatalf("close: %d %s", a.Status, a.Body)
	}
	select {
	case a := <-answer:
		if len(a.JSON.Messages) != 1 || a.JSON.Messages[0].Type != "close" || a.JSON.Messages[0].Code != 1000 {
			t.Errorf("held poll: %s, want the close record with 1000", a.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held poll was not answered by the close")
	}
	eventually(t, 5*time.Second, "disconnect POST", func() bool { return len(b.on("/disconnect")) == 1 })
	if d := b.on("/disconnect")[0].Body; d["code"] != float64(1000) {
		t.Errorf("disconnect %v, want 1000", d)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(b.on("/disconnect")); n != 1 {
		t.Errorf("%d disconnect POSTs, want 1", n)
	}
}

// §3 through §8: an empty message is not POSTed to an http backend, but counted, as on a
// WebSocket.
func TestPollEmptyMessage(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	b.connID(t, 1)
	if a := pc.get(t, "/poll/s/"+s+"?d="); a.Status != 201 {
		t.Fatalf("empty send: %d %s", a.Status, a.Body)
	}
	if a := pc.do(t, "POST", "/poll/s/"+s, "text/plain", []byte{}, nil); a.Status != 201 {
		t.Fatalf("empty raw send: %d %s", a.Status, a.Body)
	}
	pc.send(t, s, "t", "after")
	eventually(t, 5*time.Second, "message POST", func() bool { return len(b.on("/message")) >= 1 })
	time.Sleep(100 * time.Millisecond)
	for _, p := range b.on("/message") {
		if p.Body["message"] == "" {
			t.Errorf("an empty message was POSTed: %s", p.Raw)
		}
	}
	if n := metricValue(t, r, "socketdock_empty_messages_total"); n != 2 {
		t.Errorf("socketdock_empty_messages_total %v, want 2", n)
	}
}

// §8 seq/ack with the close record: an answer carrying the last messages and the close
// record is lost; the next poll with the old ack gets both again (a lost poll response loses
// nothing). Once a poll confirms everything, the session is gone: 403.
func TestPollLostCloseRecord(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	id := b.connID(t, 1)
	if st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("first")); st != 200 {
		t.Fatal("send")
	}
	if got := pc.poll(t, s, "ttl=0&ack=0"); len(got) != 1 {
		t.Fatalf("poll: %+v", got)
	}
	if st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("last words")); st != 200 {
		t.Fatal("send")
	}
	if st, _ := post(t, r.Control+"/socket/"+id+"/disconnect", "application/json", []byte(`{"code":4000,"reason":"done"}`)); st != 200 {
		t.Fatal("disconnect")
	}
	want := func(what string, msgs []pollMsg) {
		t.Helper()
		if len(msgs) != 2 || msgs[0].Seq != 2 || msgs[0].Data != "last words" || msgs[1].Type != "close" || msgs[1].Code != 4000 {
			t.Fatalf("%s: %+v, want seq 2 and the close record 4000", what, msgs)
		}
	}
	want("the answer that is lost", pc.poll(t, s, "ttl=0&ack=1"))
	want("the poll after it, with the same ack", pc.poll(t, s, "ttl=0&ack=1"))
	if a := pc.get(t, "/poll/s/"+s+"?d=x"); a.Status != 403 {
		t.Errorf("send to a closed session: %d, want 403", a.Status)
	}
	if a := pc.get(t, "/poll/j/"+s+"?ttl=0&ack=2"); a.Status != 403 {
		t.Errorf("poll confirming everything after the close record: %d %s, want 403", a.Status, a.Body)
	}
	if a := pc.get(t, "/poll/j/"+s+"?ttl=0&ack=1"); a.Status != 403 {
		t.Errorf("poll once the session is gone: %d %s, want 403", a.Status, a.Body)
	}
	if n := metricValue(t, r, "socketdock_poll_sessions"); n != 0 {
		t.Errorf("socketdock_poll_sessions %v, want 0", n)
	}
}

// Large messages: a raw body of megabytes arrives over many reads and comes back whole; a
// form body with base64 too; a body trickling in over many reads.
func TestPollLargeMessages(t *testing.T) {
	r := startRelay(t)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	var ack uint64
	echo := func(what string) pollMsg {
		t.Helper()
		msgs := pc.poll(t, s, "ttl=5000&ack="+strconv.FormatUint(ack, 10))
		if len(msgs) != 1 || msgs[0].Seq != ack+1 {
			t.Fatalf("%s: %d records, want the echo", what, len(msgs))
		}
		ack = msgs[0].Seq
		return msgs[0]
	}
	if a := pc.do(t, "POST", "/poll/s/"+s, "application/octet-stream", big, nil); a.Status != 201 {
		t.Fatalf("3 MiB raw send: %d %s", a.Status, a.Body)
	}
	if got, _ := base64.StdEncoding.DecodeString(echo("3 MiB").Data); string(got) != string(big) {
		t.Errorf("3 MiB echo differs (%d bytes back)", len(got))
	}
	form := "t=b&d=" + url.QueryEscape(base64.StdEncoding.EncodeToString(big[:1<<20]))
	if a := pc.do(t, "POST", "/poll/s/"+s, "application/x-www-form-urlencoded", []byte(form), nil); a.Status != 201 {
		t.Fatalf("1 MiB form send: %d %s", a.Status, a.Body)
	}
	if got, _ := base64.StdEncoding.DecodeString(echo("1 MiB").Data); string(got) != string(big[:1<<20]) {
		t.Errorf("1 MiB echo differs (%d bytes back)", len(got))
	}
	c := rawHTTPDial(t, r.Public)
	body := strings.Repeat("slow ", 2000)
	c.write(t, "POST /poll/s/"+s+" HTTP/1.1\r\nHost: "+r.Public+"\r\nContent-Type: text/plain\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n")
	for i := 0; i < len(body); i += 2500 {
		time.Sleep(50 * time.Millisecond)
		c.write(t, body[i:min(i+2500, len(body))])
	}
	if a := c.read(t, "POST"); a.Status != 201 {
		t.Fatalf("trickled send: %d %s", a.Status, a.Body)
	}
	if m := echo("trickled"); m.Data != body || m.Type != "text" {
		t.Errorf("trickled echo: %d bytes %s", len(m.Data), m.Type)
	}
}

// §8 session timeout after every way a poll can end: displaced, answered, timed out, its
// connection cut while held. None of them may leave the session counted as polled forever.
func TestPollSessionTimeoutAfterPollChurn(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b, "--poll-session-timeout", "700ms", "--poll-max-ttl", "300ms")
	s := newPollClient(t, r).create(t, "")
	id := b.connID(t, 1)

	var wg sync.WaitGroup
	for i := 0; i < 6; i++ { // overlapping polls displace each other
		wg.Add(1)
		go func() {
			defer wg.Done()
			newPollClient(t, r).get(t, "/poll/j/"+s+"?ttl=300")
		}()
	}
	for i := 0; i < 4; i++ { // held, then the connection goes
		c := rawHTTPDial(t, r.Public)
		c.write(t, getReq(r.Public, "/poll/j/"+s+"?ttl=300"))
		time.Sleep(20 * time.Millisecond)
		c.Close()
	}
	if st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte("wake")); st != 200 {
		t.Fatal("send")
	}
	wg.Wait()
	eventually(t, 5*time.Second, "the expiry after the last poll", func() bool { return len(b.on("/disconnect")) == 1 })
	if d := b.on("/disconnect")[0].Body; d["code"] != float64(1006) || d["reason"] != "poll session expired" {
		t.Errorf("disconnect %v", d)
	}
	if n := metricValue(t, r, "socketdock_poll_held"); n != 0 {
		t.Errorf("socketdock_poll_held %v, want 0", n)
	}
}

// §3 reply in response through §8: the backend's 2xx body comes back to the poll client as
// one message, text for text/*, binary otherwise, in order with the client's messages.
func TestPollReplyInResponse(t *testing.T) {
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
		_, _ = w.Write([]byte("re:" + msg))
		return true
	})
	r := httpRelay(t, b, "--reply-in-response")
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	for _, m := range []string{"text-1", "bin-2", "text-3"} {
		pc.send(t, s, "t", m)
	}
	msgs, _ := pc.collect(t, s, 3)
	want := []pollMsg{
		{Seq: 1, Type: "text", Data: "re:text-1"},
		{Seq: 2, Type: "binary", Data: base64.StdEncoding.EncodeToString([]byte("re:bin-2"))},
		{Seq: 3, Type: "text", Data: "re:text-3"},
	}
	for i := range want {
		if msgs[i] != want[i] {
			t.Errorf("reply %d: %+v, want %+v", i, msgs[i], want[i])
		}
	}
}
