package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// CONTRACT §10 with a NATS server embedded in the test process: several relays joined over
// it, clients on one, the control API and the poll routes used through another.

// startNATS runs a NATS server on 127.0.0.1 (port -1: any free one) with room for the
// relays' default 4 MiB messages. It is shut down when the test ends.
func startNATS(t testing.TB, port int) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, MaxPayload: 8 << 20, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// clusterRelay starts a relay joined to the NATS server at natsURL.
func clusterRelay(t testing.TB, natsURL string, args ...string) *testRelay {
	t.Helper()
	return startRelay(t, append([]string{"--cluster", "nats", "--nats-url", natsURL}, args...)...)
}

// sendVia POSTs a text message for id to a relay's control API.
func sendVia(t testing.TB, r *testRelay, id, msg string) (int, string) {
	t.Helper()
	return post(t, r.Control+"/socket/"+id+"/send", "text/plain", []byte(msg))
}

func TestClusterSendThroughAnotherInstance(t *testing.T) {
	ns := startNATS(t, -1)
	backend := newBackend(t)
	a := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	b := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	if a.Cluster().Tag() == b.Cluster().Tag() {
		t.Fatalf("both instances took tag %s", a.Cluster().Tag())
	}

	c := dial(t, a.WSURL, nil)
	id := backend.connID(t, 1)
	if tag, _ := conntable.TagOf(id); conntable.FormatTag(tag) != a.Cluster().Tag() {
		t.Fatalf("id %s does not carry A's tag %s", id, a.Cluster().Tag())
	}
	// The backend's callback URLs name A; B answers for A's connection all the same.
	if status, body := sendVia(t, b, id, "through B"); status != 200 || body != "OK" {
		t.Fatalf("send through B: %d %q", status, body)
	}
	if typ, p := readMessage(t, c); typ != websocket.TextMessage || string(p) != "through B" {
		t.Fatalf("client got %d %q", typ, p)
	}
	if status, _ := post(t, b.Control+"/socket/"+id+"/send", "application/didcomm-encrypted+json", []byte{0xff, 0, 1}); status != 200 {
		t.Fatalf("binary send through B: %d", status)
	}
	if typ, p := readMessage(t, c); typ != websocket.BinaryMessage || string(p) != "\xff\x00\x01" {
		t.Fatalf("client got %d %q", typ, p)
	}
	// The owner's refusals come back as they are.
	if status, _ := post(t, b.Control+"/socket/"+id+"/send", "text/plain", []byte{0xff}); status != 400 {
		t.Fatalf("invalid UTF-8 through B: %d, want the owner's 400", status)
	}
	status, body := do(t, "GET", b.Control+"/socket/"+id, "", nil)
	var info map[string]any
	if status != 200 || json.Unmarshal([]byte(body), &info) != nil || info["connection_id"] != id || info["messages_out"] != 2.0 {
		t.Fatalf("info through B: %d %s", status, body)
	}
	// An id with A's tag that A does not hold: A's own 404.
	unknown := conntable.NewTaggedID(mustTag(t, id))
	if status, _ := sendVia(t, b, unknown, "x"); status != 404 {
		t.Fatalf("unknown id on A through B: %d, want 404", status)
	}
	// A tag no instance holds: nobody answers, 404 at once.
	if status, _ := sendVia(t, b, conntable.NewTaggedID(mustTag(t, id)^0xffffffff), "x"); status != 404 {
		t.Fatalf("id of no instance: %d, want 404", status)
	}
	if status, _ := post(t, b.Control+"/socket/"+id+"/disconnect", "application/json", []byte(`{"code":4001,"reason":"bye from B"}`)); status != 200 {
		t.Fatalf("disconnect through B: %d", status)
	}
	if code, reason := expectClose(t, c); code != 4001 || reason != "bye from B" {
		t.Fatalf("close %d %q", code, reason)
	}
	eventually(t, 5*time.Second, "disconnect POST", func() bool { return len(backend.on("/disconnect")) == 1 })
	if status, _ := sendVia(t, b, id, "late"); status != 404 {
		t.Fatalf("send after the close: %d, want 404", status)
	}
	// Without --cluster a relay keeps 128 random bits and never asks anyone.
	plain := startRelay(t)
	if plain.Cluster() != nil {
		t.Fatal("a relay without --cluster joined a cluster")
	}
	if status, _ := sendVia(t, plain, id, "x"); status != 404 {
		t.Fatalf("relay without --cluster: %d, want 404", status)
	}
}

func mustTag(t testing.TB, id string) uint32 {
	t.Helper()
	tag, ok := conntable.TagOf(id)
	if !ok {
		t.Fatalf("%q is not an id", id)
	}
	return tag
}

// clusterStatus reads GET /status?scope=cluster.
type clusterStatusDoc struct {
	Scope       string `json:"scope"`
	Connections struct {
		Active   int64  `json:"active"`
		Lifetime uint64 `json:"lifetime"`
	} `json:"connections"`
	Instances struct {
		Answered int      `json:"answered"`
		Missing  []string `json:"missing"`
	} `json:"instances"`
	Members []struct {
		Instance string `json:"instance"`
	} `json:"members"`
}

func clusterStatus(t testing.TB, r *testRelay) clusterStatusDoc {
	t.Helper()
	status, body := do(t, "GET", r.Control+"/status?scope=cluster", "", nil)
	var doc clusterStatusDoc
	if status != 200 || json.Unmarshal([]byte(body), &doc) != nil {
		t.Fatalf("status?scope=cluster: %d %s", status, body)
	}
	return doc
}

func TestClusterStatusSumsThreeInstances(t *testing.T) {
	ns := startNATS(t, -1)
	relays := []*testRelay{clusterRelay(t, ns.ClientURL()), clusterRelay(t, ns.ClientURL()), clusterRelay(t, ns.ClientURL())}
	for i, r := range relays {
		for range i + 1 {
			dial(t, r.WSURL, nil)
		}
	}
	for _, r := range relays {
		eventually(t, 5*time.Second, "every instance in the sums", func() bool {
			doc := clusterStatus(t, r)
			return doc.Scope == "cluster" && doc.Connections.Active == 6 && doc.Instances.Answered == 3 && len(doc.Members) == 3
		})
	}
	// The local figures stay local.
	status, body := do(t, "GET", relays[0].Control+"/status", "", nil)
	if status != 200 || !strings.Contains(body, `"active":1`) {
		t.Fatalf("local status: %d %s", status, body)
	}
}

// clusterPollClient speaks CONTRACT §8 over net/http.
type clusterPollClient struct {
	t   testing.TB
	hc  *http.Client
	ack uint64
}

func newClusterPollClient(t testing.TB) *clusterPollClient {
	return &clusterPollClient{t: t, hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}}
}

type clusterPollAnswer struct {
	OK       bool   `json:"ok"`
	Socket   string `json:"socket"`
	Error    string `json:"error"`
	Messages []struct {
		Seq  uint64 `json:"seq"`
		Type string `json:"type"`
		Data string `json:"data"`
		Code int    `json:"code"`
	} `json:"messages"`
}

func (p *clusterPollClient) get(rawURL string) (int, clusterPollAnswer) {
	p.t.Helper()
	resp, err := p.hc.Get(rawURL)
	if err != nil {
		p.t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var a clusterPollAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		p.t.Fatalf("GET %s: %d %q", rawURL, resp.StatusCode, body)
	}
	return resp.StatusCode, a
}

func (p *clusterPollClient) create(r *testRelay) string {
	p.t.Helper()
	status, a := p.get("http://" + r.Public + "/poll/create")
	if status != 200 || a.Socket == "" {
		p.t.Fatalf("create: %d %+v", status, a)
	}
	return a.Socket
}

func (p *clusterPollClient) send(r *testRelay, session, msg string) int {
	p.t.Helper()
	status, _ := p.get("http://" + r.Public + "/poll/s/" + session + "?d=" + url.QueryEscape(msg))
	return status
}

func (p *clusterPollClient) poll(r *testRelay, session string, ttl time.Duration) (int, clusterPollAnswer) {
	p.t.Helper()
	return p.get("http://" + r.Public + "/poll/j/" + session + "?ttl=" + strconv.Itoa(int(ttl/time.Millisecond)) + "&ack=" + strconv.FormatUint(p.ack, 10))
}

func TestClusterPollSessionThroughAnotherInstance(t *testing.T) {
	ns := startNATS(t, -1)
	backend := newBackend(t)
	a := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	b := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	c := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	pc := newClusterPollClient(t)
	session := pc.create(a)
	if tag, _ := conntable.TagOf(session); conntable.FormatTag(tag) != a.Cluster().Tag() {
		t.Fatalf("session %s does not carry A's tag", session)
	}
	id := backend.connID(t, 1)
	if id == session {
		t.Fatal("the session id is the connection id")
	}

	// The client's messages reach the backend through B, in order.
	for i := range 3 {
		if status := pc.send(b, session, "m"+strconv.Itoa(i)); status != 201 {
			t.Fatalf("send through B: %d", status)
		}
	}
	eventually(t, 5*time.Second, "three message POSTs", func() bool { return len(backend.on("/message")) == 3 })
	for i, p := range backend.on("/message") {
		if p.Body["message"] != "m"+strconv.Itoa(i) || p.meta()["connection_id"] != id {
			t.Fatalf("message %d: %v", i, p.Body)
		}
	}

	// A poll held through B is answered when the backend sends through C.
	type result struct {
		status int
		a      clusterPollAnswer
		took   time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		status, ans := pc.poll(b, session, 10*time.Second)
		done <- result{status, ans, time.Since(start)}
	}()
	time.Sleep(200 * time.Millisecond) // the poll is held at A by now
	if status, _ := sendVia(t, c, id, "to the poller"); status != 200 {
		t.Fatalf("send through C: %d", status)
	}
	r := <-done
	if r.status != 200 || len(r.a.Messages) != 1 || r.a.Messages[0].Data != "to the poller" || r.a.Messages[0].Seq != 1 {
		t.Fatalf("held poll through B: %d %+v", r.status, r.a)
	}
	if r.took > 5*time.Second {
		t.Fatalf("the held poll was answered after %v, not when the message came", r.took)
	}
	pc.ack = 1

	// A poll that nothing answers comes back with a heartbeat after its ttl.
	status, hb := pc.poll(c, session, 300*time.Millisecond)
	if status != 200 || len(hb.Messages) != 1 || hb.Messages[0].Type != "heartbeat" {
		t.Fatalf("heartbeat through C: %d %+v", status, hb)
	}

	// Close through C: the backend hears of it once; the session is gone everywhere.
	if status, _ := pc.get("http://" + c.Public + "/poll/c/" + session); status != 200 {
		t.Fatalf("close through C: %d", status)
	}
	eventually(t, 5*time.Second, "disconnect POST", func() bool { return len(backend.on("/disconnect")) == 1 })
	for _, r := range []*testRelay{a, b} {
		if status := pc.send(r, session, "late"); status != 403 {
			t.Fatalf("send after close: %d, want 403", status)
		}
	}
	// A session id of no instance: 403 like any unknown session.
	if status := pc.send(b, conntable.NewTaggedID(mustTag(t, session)^1), "x"); status != 403 {
		t.Fatalf("session of no instance: %d, want 403", status)
	}
}

// CONTRACT §10: owner gone → 404. The other instances go on.
func TestClusterOwnerGone(t *testing.T) {
	ns := startNATS(t, -1)
	backend := newBackend(t)
	a := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	b := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	dial(t, a.WSURL, nil)
	idA := backend.connID(t, 1)
	cb := dial(t, b.WSURL, nil)
	idB := backend.connID(t, 2)
	if status, _ := sendVia(t, b, idA, "x"); status != 200 {
		t.Fatalf("before: %d", status)
	}
	pc := newClusterPollClient(t)
	session := pc.create(a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if status, _ := sendVia(t, b, idA, "x"); status != 404 {
		t.Fatalf("owner gone: %d, want 404", status)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("owner gone took %v: no responders should answer at once", took)
	}
	if status := pc.send(b, session, "x"); status != 403 {
		t.Fatalf("poll session of a gone owner: %d, want 403", status)
	}
	if status, _ := sendVia(t, b, idB, "still here"); status != 200 {
		t.Fatalf("local send on B: %d", status)
	}
	if _, p := readMessage(t, cb); string(p) != "still here" {
		t.Fatalf("got %q", p)
	}
}

// CONTRACT §10: NATS unreachable → local connections work as before, remote ones 503 with
// Retry-After; they recover by themselves once NATS is back (same port).
func TestClusterNATSOutage(t *testing.T) {
	ns := startNATS(t, -1)
	natsPort := ns.Addr().(*net.TCPAddr).Port
	backend := newBackend(t)
	a := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	b := clusterRelay(t, ns.ClientURL(), backend.relayArgs()...)
	ca := dial(t, a.WSURL, nil)
	idA := backend.connID(t, 1)
	cb := dial(t, b.WSURL, nil)
	idB := backend.connID(t, 2)

	pc := newClusterPollClient(t)
	session := pc.create(a)

	ns.Shutdown()
	ns.WaitForShutdown()
	eventually(t, 5*time.Second, "B to notice NATS is gone", func() bool { return !b.Cluster().Connected() })
	status, body, header := doHeader(t, "GET", "http://"+b.Public+"/poll/s/"+session+"?d=x", "", nil)
	if status != 503 || header.Get("Retry-After") == "" {
		t.Fatalf("remote poll send during the outage: %d %s Retry-After %q", status, body, header.Get("Retry-After"))
	}
	status, _, header = doHeader(t, "POST", b.Control+"/socket/"+idA+"/send", "text/plain", []byte("during the outage"))
	if status != 503 || header.Get("Retry-After") == "" {
		t.Fatalf("remote send during the outage: %d Retry-After %q", status, header.Get("Retry-After"))
	}
	if status, _ := sendVia(t, b, idB, "local"); status != 200 {
		t.Fatalf("local send during the outage: %d", status)
	}
	if _, p := readMessage(t, cb); string(p) != "local" {
		t.Fatalf("got %q", p)
	}
	if status, _ := do(t, "GET", b.Control+"/readyz", "", nil); status != 200 {
		t.Fatalf("/readyz during the outage: %d (must not depend on NATS)", status)
	}

	startNATS(t, natsPort)
	eventually(t, 15*time.Second, "both to reconnect", func() bool { return a.Cluster().Connected() && b.Cluster().Connected() })
	eventually(t, 5*time.Second, "a remote send to work again", func() bool {
		status, _ := sendVia(t, b, idA, "after")
		return status == 200
	})
	// The send answered 503 never arrives; the one after the outage does.
	if _, p := readMessage(t, ca); string(p) != "after" {
		t.Fatalf("A's client got %q first, want the message sent after the outage", p)
	}
	if status := pc.send(b, session, "after"); status != 201 {
		t.Fatalf("remote poll send after the outage: %d", status)
	}
	eventually(t, 5*time.Second, "the poll message after the outage", func() bool {
		for _, p := range backend.on("/message") {
			if p.Body["message"] == "x" {
				t.Fatal("the poll message refused with 503 reached the backend")
			}
			if p.Body["message"] == "after" {
				return true
			}
		}
		return false
	})
}

// Churn: clients come and go on every instance, the backend sends through random instances
// and clients poll through random instances. Every message answered 200 (201) arrives once,
// in order; nothing else arrives.
func TestClusterChurnLosesAndDuplicatesNothing(t *testing.T) {
	ns := startNATS(t, -1)
	backend := newBackend(t)
	relays := []*testRelay{
		clusterRelay(t, ns.ClientURL(), backend.relayArgs()...),
		clusterRelay(t, ns.ClientURL(), backend.relayArgs()...),
		clusterRelay(t, ns.ClientURL(), backend.relayArgs()...),
	}
	const workers, rounds, perConn = 12, 4, 15
	// idOf finds the connection that sent name as its first message.
	idOf := func(t testing.TB, name string) string {
		var id string
		eventually(t, 5*time.Second, "the message POST of "+name, func() bool {
			for _, p := range backend.on("/message") {
				if p.Body["message"] == name {
					id, _ = p.meta()["connection_id"].(string)
					return true
				}
			}
			return false
		})
		return id
	}
	pick := func(i, j, k int) *testRelay { return relays[(i*7+j*3+k)%len(relays)] }
	var wg sync.WaitGroup
	errs := make(chan string, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				name := "w" + strconv.Itoa(w) + "-r" + strconv.Itoa(round)
				if w%3 == 2 {
					if msg := churnPoll(t, relays, pick, w, round, name, idOf); msg != "" {
						errs <- msg
					}
					continue
				}
				c, _, err := websocket.DefaultDialer.Dial(pick(w, round, 0).WSURL, nil)
				if err != nil {
					errs <- name + ": dial: " + err.Error()
					return
				}
				_ = c.WriteMessage(websocket.TextMessage, []byte(name))
				id := idOf(t, name)
				for k := range perConn {
					if status, _ := sendVia(t, pick(w, round, k+1), id, name+"/"+strconv.Itoa(k)); status != 200 {
						errs <- name + ": send " + strconv.Itoa(k) + ": " + strconv.Itoa(status)
					}
				}
				if status, _ := post(t, pick(w, round, perConn+1).Control+"/socket/"+id+"/disconnect", "", nil); status != 200 {
					errs <- name + ": disconnect: " + strconv.Itoa(status)
				}
				var got []string
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				for {
					_, p, err := c.ReadMessage()
					if err != nil {
						if !websocket.IsCloseError(err, 1000) {
							errs <- name + ": read: " + err.Error()
						}
						break
					}
					got = append(got, string(p))
				}
				c.Close()
				if msg := sameSequence(name, got, perConn); msg != "" {
					errs <- msg
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// Each client message reached the backend exactly once.
	seen := map[string]int{}
	for _, p := range backend.on("/message") {
		s, _ := p.Body["message"].(string)
		seen[s]++
	}
	for s, n := range seen {
		if n != 1 {
			t.Errorf("backend got %q %d times", s, n)
		}
	}
	if want := workers * rounds; len(seen) < want {
		t.Errorf("backend saw %d distinct messages, want at least %d", len(seen), want)
	}
}

// sameSequence checks got is name/0 ... name/n-1, in order.
func sameSequence(name string, got []string, n int) string {
	if len(got) != n {
		return name + ": got " + strconv.Itoa(len(got)) + " messages, want " + strconv.Itoa(n) + ": " + strings.Join(got, ",")
	}
	for k, m := range got {
		if m != name+"/"+strconv.Itoa(k) {
			return name + ": message " + strconv.Itoa(k) + " is " + m
		}
	}
	return ""
}

// churnPoll is one poll client's life: create, a few messages in (through other instances),
// the backend's messages out (polled through other instances, with ack), close.
func churnPoll(t testing.TB, relays []*testRelay, pick func(i, j, k int) *testRelay, w, round int, name string,
	idOf func(testing.TB, string) string) string {
	const in, out = 3, 15
	pc := newClusterPollClient(t)
	session := pc.create(pick(w, round, 0))
	if status := pc.send(pick(w, round, 1), session, name); status != 201 {
		return name + ": poll send: " + strconv.Itoa(status)
	}
	for k := range in {
		if status := pc.send(pick(w, round, k+2), session, name+"/in"+strconv.Itoa(k)); status != 201 {
			return name + ": poll send: " + strconv.Itoa(status)
		}
	}
	id := idOf(t, name)
	for k := range out {
		if status, _ := sendVia(t, pick(w, round, k+3), id, name+"/"+strconv.Itoa(k)); status != 200 {
			return name + ": send " + strconv.Itoa(k) + ": " + strconv.Itoa(status)
		}
	}
	var got []string
	for i := 0; len(got) < out && i < 50; i++ {
		status, a := pc.poll(pick(w, round, i+5), session, time.Second)
		if status != 200 {
			return name + ": poll: " + strconv.Itoa(status) + " " + a.Error
		}
		for _, m := range a.Messages {
			if m.Type == "heartbeat" {
				continue
			}
			if m.Seq != pc.ack+1 {
				return name + ": seq " + strconv.FormatUint(m.Seq, 10) + " after " + strconv.FormatUint(pc.ack, 10)
			}
			pc.ack = m.Seq
			got = append(got, m.Data)
		}
	}
	if status, _ := pc.get("http://" + pick(w, round, 99).Public + "/poll/c/" + session); status != 200 {
		return name + ": close: " + strconv.Itoa(status)
	}
	return sameSequence(name, got, out)
}
