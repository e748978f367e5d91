package pollclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRelay is the §8 subset the clients use, on net/http: one session, sends echoed into
// the poll queue with seq, ack drops what it confirms.
type fakeRelay struct {
	mu    sync.Mutex
	seq   int64
	queue []Message
	ttls  []string
	conns map[string]bool
}

const fakeSession = "0123456789abcdef0123456789abcdef"

func (f *fakeRelay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns[r.RemoteAddr] = true
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/poll/create":
		fmt.Fprintf(w, `{"ok":true,"socket":%q,"fqdn":"x"}`, fakeSession)
	case r.URL.Path == "/poll/s/"+fakeSession:
		f.seq++
		f.queue = append(f.queue, Message{Seq: f.seq, Type: "text", Data: r.URL.Query().Get("d")})
		w.WriteHeader(201)
		fmt.Fprint(w, `{"ok":true}`)
	case r.URL.Path == "/poll/j/"+fakeSession:
		f.ttls = append(f.ttls, r.URL.Query().Get("ttl"))
		var ack int64
		fmt.Sscan(r.URL.Query().Get("ack"), &ack)
		for len(f.queue) > 0 && f.queue[0].Seq <= ack {
			f.queue = f.queue[1:]
		}
		msgs := f.queue
		if len(msgs) == 0 {
			msgs = []Message{{Type: "heartbeat"}}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs})
	default:
		w.WriteHeader(403)
		fmt.Fprint(w, `{"ok":false,"error":"unknown session"}`)
	}
}

func TestConnKeepAliveRoundTrips(t *testing.T) {
	f := &fakeRelay{conns: map[string]bool{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	c, err := Dial(context.Background(), addr, Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	_ = c.NetConn().SetDeadline(time.Now().Add(10 * time.Second))
	id, err := c.Create()
	if err != nil || len(id) != 32 {
		t.Fatalf("create: %q %v", id, err)
	}
	payload := []byte(`0:1:a b&c=d%e+"\u2028` + "\u00e9")
	var ack int64
	for i := 0; i < 3; i++ {
		if err := c.SendText(id, payload); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Poll(id, 1500*time.Millisecond, ack, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || msgs[0].Seq != ack+1 || msgs[0].Data != string(payload) {
			t.Fatalf("round %d: %+v", i, msgs)
		}
		ack = msgs[0].Seq
	}
	msgs, err := c.Poll(id, time.Second, ack, nil)
	if err != nil || len(msgs) != 1 || msgs[0].Type != "heartbeat" {
		t.Fatalf("after ack: %+v %v", msgs, err)
	}
	var se *StatusError
	if err := c.SendText("nope", payload); err == nil || !asStatus(err, &se) || se.Status != 403 {
		t.Fatalf("unknown session: %v", err)
	}
	if len(f.conns) != 1 {
		t.Fatalf("%d TCP connections, want 1 (keep-alive)", len(f.conns))
	}
	if f.ttls[0] != "1500" {
		t.Fatalf("ttl sent as %q", f.ttls[0])
	}
}

func TestHTTPClientRoundTrip(t *testing.T) {
	srv := httptest.NewServer(&fakeRelay{conns: map[string]bool{}})
	defer srv.Close()
	h := NewHTTPClient(strings.TrimPrefix(srv.URL, "http://"), "", 4, 5*time.Second)
	defer h.Close()
	ctx := context.Background()
	id, err := h.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.SendText(ctx, id, []byte("héllo&x")); err != nil {
		t.Fatal(err)
	}
	msgs, err := h.Poll(ctx, id, time.Second, 0, nil)
	if err != nil || len(msgs) != 1 || msgs[0].Data != "héllo&x" {
		t.Fatalf("%+v %v", msgs, err)
	}
}

func asStatus(err error, se **StatusError) bool {
	s, ok := err.(*StatusError)
	*se = s
	return ok
}
