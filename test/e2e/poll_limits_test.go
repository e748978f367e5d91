package e2e

// CONTRACT §8 limits, backend faults and keep-alive: every limit of §6/§7 that applies to a
// connection applies to a poll session.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// §8 /poll/s 413 over --max-message-size, whichever way the message comes; §4 /send 413 too.
func TestPollMessageSizeLimit(t *testing.T) {
	const limit = 1024
	r := startRelay(t, "--max-message-size", strconv.Itoa(limit))
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	id := onlyConnID(t, r)

	fits, over := strings.Repeat("x", limit), strings.Repeat("x", limit+1)
	overBin := base64.StdEncoding.EncodeToString([]byte(over))
	pc.send(t, s, "t", fits)
	for _, c := range []struct {
		name, method, pathQuery, ct, body string
	}{
		{"query d", "GET", "/poll/s/" + s + "?d=" + over, "", ""},
		{"form d", "POST", "/poll/s/" + s, "application/x-www-form-urlencoded", "d=" + over},
		{"form d base64", "POST", "/poll/s/" + s, "application/x-www-form-urlencoded", "t=b&d=" + url.QueryEscape(overBin)},
		{"raw text", "POST", "/poll/s/" + s, "text/plain", over},
		{"raw binary", "POST", "/poll/s/" + s, "application/octet-stream", over},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		if a := pc.do(t, c.method, c.pathQuery, c.ct, body, nil); a.Status != 413 {
			t.Errorf("%s over the limit: %d %s, want 413", c.name, a.Status, a.Body)
		}
	}
	if st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte(over)); st != 413 {
		t.Errorf("/send over the limit: %d, want 413", st)
	}
	// The session lives on: the message that fitted comes back, nothing else.
	msgs, _ := pc.collect(t, s, 1)
	if len(msgs[0].Data) != limit {
		t.Fatalf("echo %d bytes", len(msgs[0].Data))
	}
	if extra := pc.poll(t, s, "ttl=200&ack=1"); len(extra) != 1 || extra[0].Type != "heartbeat" {
		t.Errorf("after the refusals: %+v", extra)
	}
}

// §8: unconfirmed outbound bytes count against --max-outbound-bytes: /send 503 beyond it,
// until a poll confirms them.
func TestPollOutboundBound(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b, "--max-message-size", "1000", "--max-outbound-bytes", "3000")
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	id := b.connID(t, 1)
	sendURL := r.Control + "/socket/" + id + "/send"
	msg := []byte(strings.Repeat("m", 1000))

	for i := 0; i < 3; i++ {
		if st, body := post(t, sendURL, "text/plain", msg); st != 200 {
			t.Fatalf("/send %d: %d %s", i, st, body)
		}
	}
	if st, _ := post(t, sendURL, "text/plain", msg); st != 503 {
		t.Fatalf("/send over --max-outbound-bytes: %d, want 503", st)
	}
	// Sent in an answer but not confirmed: still counted.
	if got := pc.poll(t, s, "ttl=0&ack=0"); len(got) != 3 {
		t.Fatalf("poll: %d messages", len(got))
	}
	if st, _ := post(t, sendURL, "text/plain", msg); st != 503 {
		t.Fatalf("/send with 3000 unconfirmed bytes: %d, want 503", st)
	}
	if got := pc.poll(t, s, "ttl=0&ack=2"); len(got) != 1 || got[0].Seq != 3 {
		t.Fatalf("ack=2: %+v, want 3 again", got)
	}
	for i := 0; i < 2; i++ {
		if st, _ := post(t, sendURL, "text/plain", msg); st != 200 {
			t.Fatalf("/send after ack=2: %d, want 200", st)
		}
	}
	if st, _ := post(t, sendURL, "text/plain", msg); st != 503 {
		t.Fatalf("/send: %d, want 503 (3, 4 and 5 unconfirmed)", st)
	}
	// An ack-less poll confirms what went out before it.
	pc.poll(t, s, "ttl=0")
	pc.poll(t, s, "ttl=0")
	if st, _ := post(t, sendURL, "text/plain", msg); st != 200 {
		t.Fatalf("/send after ack-less polls: %d, want 200", st)
	}
	if r.Table.Active() != 1 || len(b.on("/disconnect")) != 0 {
		t.Fatal("a full outbound buffer closed the session; §4 says 503")
	}
}

// §8: one poll answer carries at most --poll-max-batch-bytes of messages (a larger message
// goes alone); the rest waits for the next poll, in order.
func TestPollBatchBytes(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b, "--poll-max-batch-bytes", "1000")
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	id := b.connID(t, 1)
	sizes := []int{400, 400, 400, 1500, 100, 400, 400}
	for i, n := range sizes {
		if st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte(strings.Repeat(strconv.Itoa(i), n))); st != 200 {
			t.Fatalf("/send %d: %d", i, st)
		}
	}
	var answers []string
	var ack uint64
	got := 0
	for got < len(sizes) {
		msgs := pc.poll(t, s, "ttl=1000&ack="+strconv.FormatUint(ack, 10))
		total := 0
		var shape []string
		for _, m := range msgs {
			if m.Seq != ack+1 || len(m.Data) != sizes[got] || m.Data[0] != byte('0'+got) {
				t.Fatalf("message %d: seq %d, %d bytes, want seq %d, %d bytes", got, m.Seq, len(m.Data), ack+1, sizes[got])
			}
			ack = m.Seq
			got++
			total += len(m.Data)
			shape = append(shape, strconv.Itoa(len(m.Data)))
		}
		if len(msgs) > 1 && total > 1000 {
			t.Errorf("an answer carried %d bytes in %d messages, over --poll-max-batch-bytes 1000", total, len(msgs))
		}
		answers = append(answers, strings.Join(shape, "+"))
	}
	if want := "400+400 400 1500 100+400+400"; strings.Join(answers, " ") != want {
		t.Errorf("answers %q, want %q", strings.Join(answers, " "), want)
	}
}

// §8 /poll/s: a flood against a stalled backend is refused with 503 + Retry-After while the
// inbound queue is full, never closed; what was accepted (201) reaches the backend in order.
func TestPollFloodStalledBackend(t *testing.T) {
	b := newBackend(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path == "/message" {
			select {
			case <-release:
			case <-time.After(20 * time.Second):
			}
		}
		return false
	})
	r := httpRelay(t, b, "--max-inbound-queue", "4")
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	b.connID(t, 1)

	var accepted []string
	refused := 0
	for i := 0; i < 40; i++ {
		d := "flood-" + strconv.Itoa(i)
		a := pc.get(t, "/poll/s/"+s+"?d="+d)
		switch a.Status {
		case 201:
			if refused > 0 {
				t.Fatalf("%s accepted after a refusal while the backend is still stalled", d)
			}
			accepted = append(accepted, d)
		case 503:
			refused++
			if a.Header.Get("Retry-After") == "" || a.JSON.Status != 503 {
				t.Errorf("503 without Retry-After or status: %v %s", a.Header, a.Body)
			}
		default:
			t.Fatalf("send %d: %d %s", i, a.Status, a.Body)
		}
	}
	if refused == 0 {
		t.Fatalf("40 sends against a stalled backend, --max-inbound-queue 4: none refused")
	}
	if msgs := pc.poll(t, s, "ttl=0"); len(msgs) > 0 && msgs[0].Type == "close" {
		t.Fatalf("the flood closed the session: %+v", msgs)
	}
	if r.Table.Active() != 1 {
		t.Fatal("the flood closed the session")
	}
	releaseOnce.Do(func() { close(release) })
	eventually(t, 10*time.Second, "accepted messages at the backend", func() bool { return len(b.on("/message")) == len(accepted) })
	pc.send(t, s, "t", "after")
	eventually(t, 10*time.Second, "the next message", func() bool { return len(b.on("/message")) == len(accepted)+1 })
	for i, p := range b.on("/message") {
		want := "after"
		if i < len(accepted) {
			want = accepted[i]
		}
		if p.Body["message"] != want {
			t.Errorf("backend message %d: %v, want %s", i, p.Body["message"], want)
		}
	}
	if n := len(b.on("/disconnect")); n != 0 {
		t.Errorf("%d disconnect POSTs: backpressure must not close the session", n)
	}
	t.Logf("%d accepted, %d refused with 503", len(accepted), refused)
}

// §8 last rule: --max-connections and --max-connections-per-ip count sessions; create gets 503.
func TestPollAdmissionLimits(t *testing.T) {
	t.Run("max-connections", func(t *testing.T) {
		r := startRelay(t, "--max-connections", "2")
		pc := newPollClient(t, r)
		s1 := pc.create(t, "")
		ws := dial(t, r.WSURL, nil)
		a := pc.get(t, "/poll/create")
		if a.Status != 503 || a.JSON.ok() || a.Header.Get("Retry-After") == "" {
			t.Fatalf("create over --max-connections: %d %v %s, want 503 with Retry-After", a.Status, a.Header, a.Body)
		}
		if _, resp, err := websocket.DefaultDialer.Dial(r.WSURL, nil); err == nil || resp == nil || resp.StatusCode != 503 {
			t.Fatalf("upgrade with a session and a ws open: %v, want 503", err)
		}
		if a := pc.get(t, "/poll/c/"+s1); a.Status != 200 {
			t.Fatalf("close: %d", a.Status)
		}
		eventually(t, 5*time.Second, "a free slot", func() bool { return r.Table.Active() == 1 })
		pc.create(t, "")
		ws.Close()
	})
	t.Run("max-connections-per-ip", func(t *testing.T) {
		r := startRelay(t, "--max-connections-per-ip", "1")
		pc := newPollClient(t, r)
		pc.create(t, "")
		if a := pc.get(t, "/poll/create"); a.Status != 503 {
			t.Fatalf("second create from one address: %d %s, want 503", a.Status, a.Body)
		}
		if _, resp, err := websocket.DefaultDialer.Dial(r.WSURL, nil); err == nil || resp == nil || resp.StatusCode != 503 {
			t.Fatalf("upgrade from an address holding a session: %v, want 503", err)
		}
	})
}

// §8 last rule + §7: a drain ends sessions with code 1001: a held poll gets the close record,
// the backend a disconnect POST with 1001 for each.
func TestPollDrain(t *testing.T) {
	b := newBackend(t)
	r := httpRelay(t, b)
	pc := newPollClient(t, r)
	held := pc.create(t, "")
	idle := pc.create(t, "") // and one without a held poll, whose client polls during the drain
	b.connID(t, 2)

	answer := make(chan pollAnswer, 1)
	go func() { answer <- pc.get(t, "/poll/j/"+held+"?ttl=20000") }()
	eventually(t, 5*time.Second, "the poll is held", func() bool { return metricValue(t, r, "socketdock_poll_held") == 1 })

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- r.Shutdown(ctx)
	}()
	select {
	case a := <-answer:
		msgs := a.JSON.Messages
		if a.Status != 200 || len(msgs) != 1 || msgs[0].Type != "close" || msgs[0].Code != 1001 {
			t.Errorf("held poll during the drain: %d %s, want the close record with 1001", a.Status, a.Body)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the held poll was not answered by the drain")
	}
	// A client between polls still finds its close record: the drain waits a moment for it.
	time.Sleep(100 * time.Millisecond)
	if a := pc.get(t, "/poll/j/"+idle+"?ttl=1000"); a.Status != 200 || len(a.JSON.Messages) != 1 ||
		a.JSON.Messages[0].Type != "close" || a.JSON.Messages[0].Code != 1001 {
		t.Errorf("poll between polls during the drain: %d %s, want the close record with 1001", a.Status, a.Body)
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	ds := b.on("/disconnect")
	if len(ds) != 2 {
		t.Fatalf("%d disconnect POSTs, want 2", len(ds))
	}
	for _, d := range ds {
		if d.Body["code"] != float64(1001) {
			t.Errorf("disconnect %v, want 1001", d.Body)
		}
	}
}

// §8 /poll/s with a chunked body: 411 (the relay reads bodies by Content-Length only).
func TestPollChunkedBody411(t *testing.T) {
	r := startRelay(t)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	for _, path := range []string{"/poll/s/" + s, "/poll/create"} {
		c := rawHTTPDial(t, r.Public)
		c.write(t, "POST "+path+" HTTP/1.1\r\nHost: "+r.Public+"\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
		if a := c.read(t, "POST"); a.Status != 411 {
			t.Errorf("chunked POST %s: %d %s, want 411", path, a.Status, a.Body)
		}
	}
	if msgs := pc.poll(t, s, "ttl=0"); len(msgs) > 0 && msgs[0].Type != "heartbeat" {
		t.Errorf("a chunked body was taken as a message: %+v", msgs)
	}
}

// §8 + §3 failures: a backend nobody listens on ends the session; the next poll gets the close
// record with 1011, later requests 403.
func TestPollBackendDown1011(t *testing.T) {
	dead := "http://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/message"
	r := startRelay(t, "--backend", "http", "--message-uri", dead, "--backend-retries", "1")
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	pc.send(t, s, "t", "nobody home")
	rec := pc.awaitClose(t, s)
	if rec.Code != 1011 || rec.Reason == "" {
		t.Errorf("close record %+v, want 1011 with a reason", rec)
	}
	if a := pc.get(t, "/poll/j/"+s+"?ttl=0"); a.Status != 403 {
		t.Errorf("poll after the close record: %d, want 403", a.Status)
	}
	// A held poll is woken by the close.
	s2 := pc.create(t, "")
	answer := make(chan pollAnswer, 1)
	go func() { answer <- pc.get(t, "/poll/j/"+s2+"?ttl=20000") }()
	eventually(t, 5*time.Second, "the poll is held", func() bool { return metricValue(t, r, "socketdock_poll_held") == 1 })
	pc.send(t, s2, "t", "nobody home")
	select {
	case a := <-answer:
		if len(a.JSON.Messages) != 1 || a.JSON.Messages[0].Type != "close" || a.JSON.Messages[0].Code != 1011 {
			t.Errorf("held poll: %s, want the close record with 1011", a.Body)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the held poll was not woken by the close")
	}
}

// §8 + §3 failures: a backend answering 4xx ends the session with 1008, reason naming the status.
func TestPollBackend4xx1008(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(p backendPost, w http.ResponseWriter) bool {
		if p.Path == "/message" {
			w.WriteHeader(403)
			return true
		}
		return false
	})
	r := httpRelay(t, b)
	pc := newPollClient(t, r)
	s := pc.create(t, "")
	pc.send(t, s, "t", "forbidden")
	rec := pc.awaitClose(t, s)
	if rec.Code != 1008 || !strings.Contains(rec.Reason, "403") {
		t.Errorf("close record %+v, want 1008 naming 403", rec)
	}
	eventually(t, 5*time.Second, "disconnect POST", func() bool { return len(b.on("/disconnect")) == 1 })
	if d := b.on("/disconnect")[0].Body; d["code"] != float64(1008) {
		t.Errorf("disconnect %v, want 1008", d)
	}
	if a := pc.get(t, "/poll/s/"+s+"?d=late"); a.Status != 403 {
		t.Errorf("send after the close: %d, want 403", a.Status)
	}
}

// Keep-alive: a whole session over one TCP connection (pipelined too), and net/http re-uses
// its connection; Connection: close is honoured.
func TestPollKeepAlive(t *testing.T) {
	r := startRelay(t)
	c := rawHTTPDial(t, r.Public)
	c.write(t, postReq(r.Public, "/poll/create", "application/x-www-form-urlencoded", ""))
	a := c.read(t, "POST")
	if a.Status != 200 || a.Header.Get("Connection") == "close" {
		t.Fatalf("create: %d %v", a.Status, a.Header)
	}
	s := a.JSON.Socket
	// Pipelined: three sends and a poll in one write, answered in order.
	c.write(t, getReq(r.Public, "/poll/s/"+s+"?d=1")+postReq(r.Public, "/poll/s/"+s, "text/plain", "2")+
		postReq(r.Public, "/poll/s/"+s, "application/x-www-form-urlencoded", "d=3")+getReq(r.Public, "/poll/j/"+s+"?ttl=1000&ack=0"))
	for i := 0; i < 3; i++ {
		if a := c.read(t, "POST"); a.Status != 201 {
			t.Fatalf("pipelined send %d: %d %s", i, a.Status, a.Body)
		}
	}
	a = c.read(t, "GET")
	if len(a.JSON.Messages) != 3 || a.JSON.Messages[2].Data != "3" {
		t.Fatalf("pipelined poll: %s", a.Body)
	}
	c.write(t, getReq(r.Public, "/poll/c/"+s))
	if a := c.read(t, "GET"); a.Status != 200 {
		t.Fatalf("close: %d", a.Status)
	}
	c.write(t, "GET /poll/create HTTP/1.1\r\nHost: "+r.Public+"\r\nConnection: close\r\n\r\n")
	if a := c.read(t, "GET"); a.Status != 200 || !a.Close {
		t.Fatalf("create with Connection: close: %d %v", a.Status, a.Header)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.br.ReadByte(); err == nil {
		t.Fatalf("the connection stayed open after Connection: close (read %q)", n)
	}

	// net/http: after the first request, every one re-uses the connection.
	pc := newPollClient(t, r)
	var conns, reused int
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		conns++
		if i.Reused {
			reused++
		}
	}}
	doTraced := func(method, path string) int {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, pc.base+path, nil)
		resp, err := pc.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/poll/create" {
			var created pollBody
			_ = json.Unmarshal(body, &created)
			s = created.Socket
		}
		return resp.StatusCode
	}
	doTraced("POST", "/poll/create")
	for i := 0; i < 10; i++ {
		if st := doTraced("GET", "/poll/s/"+s+"?d=x"+strconv.Itoa(i)); st != 201 {
			t.Fatalf("send: %d", st)
		}
		if st := doTraced("GET", "/poll/j/"+s+"?ttl=1000"); st != 200 {
			t.Fatalf("poll: %d", st)
		}
	}
	if conns != 21 || reused != 20 {
		t.Errorf("%d requests, %d on a re-used connection; want 21 and 20", conns, reused)
	}
}

// Keep-alive: a held poll does not block other sessions, on the same event loops; a request
// pipelined behind a held poll is answered after it, in order.
func TestPollHeldDoesNotBlock(t *testing.T) {
	r := startRelay(t, "--poll-max-ttl", "30s")
	pc := newPollClient(t, r)
	const heldSessions = 8
	var held []*rawHTTPConn
	var heldIDs []string
	for i := 0; i < heldSessions; i++ {
		s := pc.create(t, "")
		c := rawHTTPDial(t, r.Public)
		// A poll and, behind it on the same connection, a send: the send waits its turn.
		c.write(t, getReq(r.Public, "/poll/j/"+s+"?ttl=20000")+getReq(r.Public, "/poll/s/"+s+"?d=behind"))
		held = append(held, c)
		heldIDs = append(heldIDs, s)
	}
	eventually(t, 5*time.Second, "every poll held", func() bool { return metricValue(t, r, "socketdock_poll_held") == heldSessions })

	// Meanwhile other sessions do full round trips, concurrently.
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			other := newPollClient(t, r)
			s := other.create(t, "")
			for i := 0; i < 20; i++ {
				d := "g" + strconv.Itoa(g) + "-" + strconv.Itoa(i)
				if a := other.get(t, "/poll/s/"+s+"?d="+d); a.Status != 201 {
					errs <- "send " + a.Body
					return
				}
				if msgs := other.poll(t, s, "ttl=5000"); len(msgs) != 1 || msgs[0].Data != d {
					errs <- "poll got " + strconv.Itoa(len(msgs))
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := metricValue(t, r, "socketdock_poll_held"); n != heldSessions {
		t.Errorf("%v polls held after the others' round trips, want %d", n, heldSessions)
	}
	// Now answer one held poll: the pipelined send follows its answer on the connection.
	pc.send(t, heldIDs[0], "t", "wake")
	a := held[0].read(t, "GET")
	if len(a.JSON.Messages) != 1 || a.JSON.Messages[0].Data != "wake" {
		t.Fatalf("held poll: %s", a.Body)
	}
	if a := held[0].read(t, "GET"); a.Status != 201 {
		t.Fatalf("the send pipelined behind the held poll: %d %s", a.Status, a.Body)
	}
}

// Keep-alive: a refused request's body is skipped, whatever the refusal (unknown route,
// malformed session, wrong method): the bytes after it are the next request, never part of it.
func TestPollKeepAliveRefusedBodySkipped(t *testing.T) {
	r := startRelay(t)
	next := "GET /poll/create HTTP/1.1\r\nHost: " + r.Public + "\r\n\r\n"
	for _, c := range []struct {
		name, method, path string
		status             int
	}{
		{"malformed session", "POST", "/poll/s/not-a-session", 403},
		{"unknown route", "POST", "/poll/nowhere", 404},
		{"wrong method", "PUT", "/poll/create", 405},
		{"poll by POST", "POST", "/poll/j/" + strings.Repeat("a", 32), 405},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := rawHTTPDial(t, r.Public)
			// The body looks like a request of its own: read as one, it would open a session.
			body := next
			conn.write(t, c.method+" "+c.path+" HTTP/1.1\r\nHost: "+r.Public+"\r\nContent-Type: text/plain\r\nContent-Length: "+
				strconv.Itoa(len(body))+"\r\n\r\n"+body+"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			if a := conn.read(t, c.method); a.Status != c.status {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, a.Status, a.Body, c.status)
			}
			before := r.Table.Active()
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			a := conn.read(t, "GET")
			if a.Status != 200 || a.IsJSON {
				t.Errorf("the request after the refused one: %d %q, want the /healthz answer (the body was read as a request)", a.Status, a.Body)
			}
			if r.Table.Active() != before {
				t.Errorf("the refused request's body opened a session")
			}
		})
	}
}

// §8 seq/ack under load: sessions receive /send messages from the backend side while their
// clients poll on several connections and ignore some answers (as if lost); every client
// ends with every message once, in order.
func TestPollConcurrentNoLossNoDuplicate(t *testing.T) {
	const sessions, perSession = 12, 150
	b := newBackend(t)
	r := httpRelay(t, b, "--poll-max-batch-bytes", "200")
	var wg sync.WaitGroup
	errs := make(chan string, sessions*2)
	for i := 0; i < sessions; i++ {
		pc := newPollClient(t, r)
		s := pc.create(t, "")
		id := b.connID(t, i+1)
		wg.Add(2)
		go func() { // the backend's side
			defer wg.Done()
			for n := 0; n < perSession; n++ {
				body := []byte("m-" + strconv.Itoa(n))
				for {
					st, _ := post(t, r.Control+"/socket/"+id+"/send", "text/plain", body)
					if st == 200 {
						break
					}
					if st != 503 {
						errs <- "send " + strconv.Itoa(st)
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
		go func(seed int) { // the client: every fifth answer is dropped
			defer wg.Done()
			var ack uint64
			var got []string
			deadline := time.Now().Add(60 * time.Second)
			for k := 0; len(got) < perSession; k++ {
				if time.Now().After(deadline) {
					errs <- s + ": " + strconv.Itoa(len(got)) + " messages after 60s"
					return
				}
				a := pc.get(t, "/poll/j/"+s+"?ttl=2000&ack="+strconv.FormatUint(ack, 10))
				if a.Status != 200 {
					errs <- "poll " + a.Body
					return
				}
				if (k+seed)%5 == 4 {
					continue // lost
				}
				for _, m := range a.JSON.Messages {
					if m.Type == "heartbeat" {
						continue
					}
					if m.Seq <= ack {
						continue // a redelivery: the client drops it
					}
					if m.Seq != ack+1 {
						errs <- s + ": seq " + strconv.FormatUint(m.Seq, 10) + " after " + strconv.FormatUint(ack, 10)
						return
					}
					ack = m.Seq
					got = append(got, m.Data)
				}
			}
			for n, d := range got {
				if d != "m-"+strconv.Itoa(n) {
					errs <- s + ": message " + strconv.Itoa(n) + " is " + d
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	t.Logf("%d sessions × %d messages; redeliveries %v", sessions, perSession, metricValue(t, r, "socketdock_poll_redeliveries_total"))
}

// An idle keep-alive connection between poll requests is closed quietly after
// --handshake-timeout: no unsolicited 408, no rejected-upgrade count.
func TestPollKeepAliveIdleClosesQuietly(t *testing.T) {
	r := startRelay(t, "--handshake-timeout", "300ms")
	c := rawHTTPDial(t, r.Public)
	c.write(t, postReq(r.Public, "/poll/create", "application/x-www-form-urlencoded", ""))
	if a := c.read(t, "POST"); a.Status != 200 {
		t.Fatalf("create: %d", a.Status)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	rest, err := io.ReadAll(c.br)
	if err != nil || len(rest) != 0 {
		t.Fatalf("idle keep-alive connection got %q (%v), want a quiet close", rest, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v, want about the handshake timeout", d)
	}
	if n := metricValue(t, r, `socketdock_upgrades_rejected_total{reason="handshake_timeout"}`); n != 0 {
		t.Fatalf("%v idle closes counted as rejected upgrades", n)
	}
}
