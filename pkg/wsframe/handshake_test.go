package wsframe

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRequestAndUpgrade(t *testing.T) {
	req := "GET /ws?token=1 HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Mixed-Case: v \r\n\r\n"
	pipelined := req + "\x81\x85frame"
	for i := 0; i < len(req); i++ {
		if _, n, err := ParseRequest([]byte(req[:i]), 0); n != 0 || err != nil {
			t.Fatalf("incomplete head of %d bytes: n %d err %v", i, n, err)
		}
	}
	r, n, err := ParseRequest([]byte(pipelined), 0)
	if err != nil || n != len(req) {
		t.Fatalf("n %d (want %d) err %v", n, len(req), err)
	}
	if r.Method != "GET" || r.Path != "/ws" || r.Target != "/ws?token=1" || r.Get("x-mixed-case") != "v" {
		t.Fatalf("parsed %+v", r)
	}
	accept, err := CheckUpgrade(&r)
	if err != nil || accept != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept %q err %v", accept, err)
	}
}

func TestParseRequestErrors(t *testing.T) {
	ok := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	cases := []struct {
		name, req string
		status    int
	}{
		{"garbage", "hello\r\n\r\n", 400},
		{"no target", "GET HTTP/1.1\r\n\r\n", 400},
		{"bad header", "GET / HTTP/1.1\r\nno colon\r\n\r\n", 400},
		{"header name with space", "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", 400},
		{"http/2", "GET / HTTP/2.0\r\n\r\n", 505},
		{"http/1.0", "GET / HTTP/1.0\r\n\r\n", 505},
		{"too large", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", 431},
		{"too large, unfinished", "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 9000), 431},
	}
	for _, tc := range cases {
		_, _, err := ParseRequest([]byte(tc.req), 0)
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != tc.status {
			t.Errorf("%s: %v, want %d", tc.name, err, tc.status)
		}
	}
	upgrades := []struct {
		name, req string
		status    int
	}{
		{"post", strings.Replace(ok, "GET", "POST", 1), 405},
		{"no upgrade header", strings.Replace(ok, "Upgrade: websocket\r\n", "", 1), 426},
		{"no connection upgrade", strings.Replace(ok, "Connection: Upgrade", "Connection: keep-alive", 1), 426},
		{"version 8", strings.Replace(ok, "Version: 13", "Version: 8", 1), 426},
		{"short key", strings.Replace(ok, "dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 1), 400},
		{"no host", strings.Replace(ok, "Host: x\r\n", "", 1), 400},
	}
	for _, tc := range upgrades {
		r, _, err := ParseRequest([]byte(tc.req+"\r\n"), 0)
		if err != nil {
			t.Fatalf("%s: parse: %v", tc.name, err)
		}
		_, err = CheckUpgrade(&r)
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != tc.status {
			t.Errorf("%s: %v, want %d", tc.name, err, tc.status)
		}
	}
}

func TestParseRequestInPlaceAliasesAndLowercases(t *testing.T) {
	head := []byte("GET /Ws HTTP/1.1\r\nHost: X\r\nX-Mixed-CASE: KeepMe\r\n\r\nframe")
	orig := string(head)
	owned, n, err := ParseRequest(head, 0)
	if err != nil || string(head) != orig {
		t.Fatalf("ParseRequest changed its input or failed: %v", err)
	}
	scratch := make([]Header, 0, 8)
	r, n2, err := ParseRequestInPlace(head, 0, scratch)
	if err != nil || n2 != n || r.Method != "GET" || r.Path != "/Ws" || r.Get("x-mixed-case") != "KeepMe" || r.Get("host") != "X" {
		t.Fatalf("in place: %+v n %d err %v", r, n2, err)
	}
	if &r.Headers[0] != &scratch[:1][0] {
		t.Fatal("headers storage not reused")
	}
	if string(head[len(head)-5:]) != "frame" || owned.Get("x-mixed-case") != "KeepMe" {
		t.Fatal("bytes after the head were touched, or the owned request changed")
	}
}
