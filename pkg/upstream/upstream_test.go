package upstream

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/socketdock/socketdock/pkg/conntable"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in, addr, host, uri, display string
		secure, auth                 bool
	}{
		{"ws://h", "h:80", "h", "/", "ws://h/", false, false},
		{"wss://h:8443/a/b?x=1", "h:8443", "h:8443", "/a/b?x=1", "wss://h:8443/a/b", true, false},
		{"ws://u:p@[::1]:9/p", "[::1]:9", "[::1]:9", "/p", "ws://[::1]:9/p", false, true},
	} {
		tg, err := parseTarget(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if tg.addr != c.addr || tg.host != c.host || tg.requestURI() != c.uri || tg.display != c.display || tg.secure != c.secure || (tg.auth != "") != c.auth {
			t.Errorf("%s: %+v", c.in, tg)
		}
	}
	for _, bad := range []string{"http://h/", "ws://", "ws://h/#x", "::"} {
		if _, err := parseTarget(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestWithClientPath(t *testing.T) {
	for _, c := range []struct {
		base, client string
		poll         bool
		want         string
	}{
		{"ws://h/base", "/ws?room=1", false, "/base/ws?room=1"},
		{"ws://h/base/", "/ws", false, "/base/ws"},
		{"ws://h", "/ws?a=b", false, "/ws?a=b"},
		{"ws://h/x?k=v", "/ws?a=b", false, "/x/ws?k=v&a=b"},
		{"ws://h/x", "/poll/create?token=t", true, "/x?token=t"},
	} {
		tg, _ := parseTarget(c.base)
		if got := tg.withClientPath(c.client, c.poll).requestURI(); got != c.want {
			t.Errorf("%s + %s: %s, want %s", c.base, c.client, got, c.want)
		}
	}
}

func TestCloseCodeMapping(t *testing.T) {
	for in, want := range map[int]int{4404: 4404, 1000: 1000, 1005: 1000, 1011: 1011, 1014: 1014} {
		if got := clientCode(in); got != want {
			t.Errorf("upstream %d: client %d, want %d", in, got, want)
		}
	}
	for in, want := range map[int]int{4001: 4001, 1000: 1000, 1005: 0, 1006: 1001, 0: 1001, 1015: 1001, 1013: 1013} {
		if got := upstreamCode(in); got != want {
			t.Errorf("client %d: upstream %d, want %d", in, got, want)
		}
	}
}

func TestRequestHeaders(t *testing.T) {
	b := &Backend{opts: Options{ForwardHeaders: []string{"authorization", "x-a", "sec-websocket-key", "host"}}}
	tg, _ := parseTarget("ws://up:81/p?q=1")
	c := &conntable.Conn{ID: "0123456789abcdef0123456789abcdef", RemoteAddr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 5},
		Request: &conntable.Request{Headers: [][2]string{{"host", "relay"}, {"authorization", "Bearer x"}, {"x-a", "1"}, {"x-b", "2"},
			{"sec-websocket-key", "client-key"}, {"x-forwarded-for", "1.2.3.4"}}}}
	req := string(b.appendRequest(nil, tg, c, "k==", []string{"a", "b"}))
	for _, want := range []string{"GET /p?q=1 HTTP/1.1\r\nHost: up:81\r\n", "Sec-WebSocket-Key: k==\r\n", "Sec-WebSocket-Protocol: a, b\r\n",
		"authorization: Bearer x\r\n", "x-a: 1\r\n", "X-Forwarded-For: 1.2.3.4, 10.0.0.9\r\n", "X-SocketDock-Connection-Id: " + c.ID + "\r\n\r\n"} {
		if !strings.Contains(req, want) {
			t.Errorf("request lacks %q:\n%s", want, req)
		}
	}
	for _, not := range []string{"x-b", "client-key", "relay"} {
		if strings.Contains(req, not) {
			t.Errorf("request carries %q:\n%s", not, req)
		}
	}
	// Credentials in the URL win over a forwarded Authorization.
	tg, _ = parseTarget("ws://user:pw@up/")
	req = string(b.appendRequest(nil, tg, c, "k==", nil))
	if strings.Count(strings.ToLower(req), "authorization:") != 1 || !strings.Contains(req, "Authorization: Basic dXNlcjpwdw==") {
		t.Errorf("credentials:\n%s", req)
	}
}

func TestFailureStatus(t *testing.T) {
	if s := failure(context.DeadlineExceeded).Status; s != 504 {
		t.Errorf("deadline: %d", s)
	}
	if s := failure(os.ErrDeadlineExceeded).Status; s != 504 {
		t.Errorf("i/o timeout: %d", s)
	}
	if s := failure(errors.New("connection refused")).Status; s != 502 {
		t.Errorf("refused: %d", s)
	}
}

func TestErrorMessage(t *testing.T) {
	if got := string(errorMessage(`upstream ws://h/ lost: "EOF"`, "id")); got != `{"error":"upstream ws://h/ lost: \"EOF\"","connection_id":"id"}` {
		t.Errorf("%s", got)
	}
}
