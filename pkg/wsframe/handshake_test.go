package wsframe

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseRequestAndUpgrade(t *testing.T) {
	req := "GET /ws?token=1 HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Mixed-Case: v \r\n\r\n"
	pipelined := req + "\x81\x85frame"
	for i := 0; i < len(req); i++ {
		if _, n, err := parseOwned([]byte(req[:i]), 0, 0); n != 0 || err != nil {
			t.Fatalf("incomplete head of %d bytes: n %d err %v", i, n, err)
		}
	}
	r, n, err := parseOwned([]byte(pipelined), 0, 0)
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
		_, _, err := parseOwned([]byte(tc.req), 0, 0)
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
		r, _, err := parseOwned([]byte(tc.req+"\r\n"), 0, 0)
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
	owned, n, err := parseOwned(head, 0, 0)
	if err != nil || string(head) != orig {
		t.Fatalf("ParseRequest changed its input or failed: %v", err)
	}
	scratch := make([]Header, 0, 8)
	r, n2, err := ParseRequestInPlace(head, 0, 0, scratch)
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

const upgradeHead = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

// headWithHeaders is an upgrade head of total header lines.
func headWithHeaders(total int) string {
	var b strings.Builder
	b.WriteString(upgradeHead)
	for i := 5; i < total; i++ {
		b.WriteString("X-" + strconv.Itoa(i) + ": v\r\n")
	}
	return b.String() + "\r\n"
}

// An 8 KiB head holds ~1,500 short header lines; the parser takes maxHeaders of them.
func TestParseRequestHeaderCount(t *testing.T) {
	cases := []struct {
		max, lines int
		status     int // 0: parses
	}{
		{0, DefaultMaxHeaders, 0},
		{0, DefaultMaxHeaders + 1, 431},
		{0, 1000, 431},
		{10, 10, 0},
		{10, 11, 431},
		{500, 500, 0},
	}
	for _, tc := range cases {
		head := headWithHeaders(tc.lines)
		r, n, err := parseOwned([]byte(head), 1<<20, tc.max)
		var he *HTTPError
		switch {
		case tc.status == 0 && (err != nil || n != len(head) || len(r.Headers) != tc.lines):
			t.Errorf("max %d, %d lines: n %d, %d headers, err %v", tc.max, tc.lines, n, len(r.Headers), err)
		case tc.status != 0 && (!errors.As(err, &he) || he.Status != tc.status || n != 0):
			t.Errorf("max %d, %d lines: n %d err %v, want %d", tc.max, tc.lines, n, err, tc.status)
		}
	}
}

// RFC 9110 §5.5 / RFC 9112 §2.2, §5: what a head may hold, byte by byte.
func TestParseRequestRejectsBadBytes(t *testing.T) {
	cases := []struct {
		name, head string
		status     int // 0: parses
	}{
		{"NUL in a value", upgradeHead + "X-A: a\x00b\r\n\r\n", 400},
		{"bare CR in a value", upgradeHead + "X-A: a\rb\r\n\r\n", 400},
		{"bare CR before the line's CRLF", upgradeHead + "X-A: a\r\r\n\r\n", 400},
		{"bare CR at the end of the last line", upgradeHead + "X-A: a\r\r\n\r\n", 400},
		{"bare LF in a value", upgradeHead + "X-A: a\nX-Smuggled: b\r\n\r\n", 400},
		{"bare LF ending a header line", upgradeHead + "X-A: a\n\r\n", 400},
		{"bare LF ending the request line", strings.Replace(upgradeHead, "HTTP/1.1\r\n", "HTTP/1.1\n", 1) + "\r\n", 400},
		{"bare LF in the request target", "GET /w\ns HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"bare CR in the request line", "GET /ws HTTP/1.1\r\rHost: x\r\n\r\n", 400},
		{"obs-fold with a space", upgradeHead + "X-A: a\r\n b\r\n\r\n", 400},
		{"obs-fold with a tab", upgradeHead + "X-A: a\r\n\tb\r\n\r\n", 400},
		{"obs-fold as the first header", "GET /ws HTTP/1.1\r\n Host: x\r\n\r\n", 400},
		{"0x01 in a value", upgradeHead + "X-A: a\x01b\r\n\r\n", 400},
		{"ESC in a value", upgradeHead + "X-A: \x1b[31m\r\n\r\n", 400},
		{"0x1f in a value", upgradeHead + "X-A: \x1f\r\n\r\n", 400},
		{"DEL in a value", upgradeHead + "X-A: a\x7f\r\n\r\n", 400},
		{"control character in the target", "GET /w\x01s HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"DEL in the target", "GET /w\x7fs HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"tab in the target", "GET /w\ts HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"two spaces in the request line", "GET  /ws HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"lower-case version", "GET /ws http/1.1\r\nHost: x\r\n\r\n", 400},
		{"version with a letter", "GET /ws HTTP/1.x\r\nHost: x\r\n\r\n", 400},
		{"version too long", "GET /ws HTTP/1.10\r\nHost: x\r\n\r\n", 400},
		{"HTTP/2.0", "GET /ws HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"parenthesis in a name", upgradeHead + "X(A): a\r\n\r\n", 400},
		{"slash in a name", upgradeHead + "X/A: a\r\n\r\n", 400},
		{"non-ASCII name", upgradeHead + "X-\xc3\xa9: a\r\n\r\n", 400},
		{"space before the colon", upgradeHead + "X-A : a\r\n\r\n", 400},
		{"tab before the colon", upgradeHead + "X-A\t: a\r\n\r\n", 400},
		{"empty name", upgradeHead + ": a\r\n\r\n", 400},
		{"no colon", upgradeHead + "X-A a\r\n\r\n", 400},
		{"NUL in a name", upgradeHead + "X\x00A: a\r\n\r\n", 400},
		{"HTAB in a value", upgradeHead + "X-A: a\tb\r\n\r\n", 0},
		{"HTAB around a value", upgradeHead + "X-A:\t a \t\r\n\r\n", 0},
		{"obs-text in a value", upgradeHead + "X-A: caf\xc3\xa9 \x80\xff\r\n\r\n", 0},
		{"empty value", upgradeHead + "X-A:\r\n\r\n", 0},
		{"colon in a value", upgradeHead + "X-A: a:b\r\n\r\n", 0},
		{"bytes after the head are not checked", upgradeHead + "\r\n\x81\x00\n\r\x00", 0},
	}
	for _, tc := range cases {
		r, n, err := parseOwned([]byte(tc.head), 0, 0)
		var he *HTTPError
		switch {
		case tc.status == 0 && (err != nil || n == 0):
			t.Errorf("%s: n %d err %v, want a parse", tc.name, n, err)
		case tc.status == 0 && !strings.HasPrefix(r.Get("x-a"), strings.Trim(strings.TrimPrefix(strings.SplitN(tc.head[len(upgradeHead):], "\r\n", 2)[0], "X-A:"), " \t")):
			t.Errorf("%s: value %q", tc.name, r.Get("x-a"))
		case tc.status != 0 && (!errors.As(err, &he) || he.Status != tc.status || n != 0):
			t.Errorf("%s: n %d err %v, want %d", tc.name, n, err, tc.status)
		}
	}
}

// NUL, bare CR and bare LF are refused as soon as they arrive, not when the head ends (it may
// never end); a CR last in the buffer waits for its LF.
func TestParseRequestRefusesBadBytesEarly(t *testing.T) {
	cases := []struct {
		name, partial string
		status        int // 0: waits for more
	}{
		{"NUL", "GET /ws HTTP/1.1\r\nX-A: a\x00", 400},
		{"bare LF", "GET /ws HTTP/1.1\nHost: x", 400},
		{"bare LF line endings", "GET /ws HTTP/1.1\nHost: x\n\n", 400},
		{"bare CR", "GET /ws HTTP/1.1\r\nX-A: a\rb", 400},
		{"CR last, LF to come", "GET /ws HTTP/1.1\r\nX-A: a\r", 0},
		{"clean so far", "GET /ws HTTP/1.1\r\nX-A: a", 0},
		{"CTL other than NUL waits for the whole head", "GET /ws HTTP/1.1\r\nX-A: \x01", 0},
	}
	for _, tc := range cases {
		_, n, err := parseOwned([]byte(tc.partial), 0, 0)
		var he *HTTPError
		switch {
		case tc.status == 0 && (err != nil || n != 0):
			t.Errorf("%s: n %d err %v, want to wait", tc.name, n, err)
		case tc.status != 0 && (!errors.As(err, &he) || he.Status != tc.status):
			t.Errorf("%s: n %d err %v, want %d", tc.name, n, err, tc.status)
		}
	}
}

// parseOwned parses a copy of b, so the test's request owns its strings.
func parseOwned(b []byte, maxSize, maxHeaders int) (Request, int, error) {
	return ParseRequestInPlace(append([]byte(nil), b...), maxSize, maxHeaders, nil)
}

// An upgrade's checks and accept value allocate nothing: every connection's handshake left
// two small objects behind (the decoded key, the accept string) for the collector.
func TestCheckUpgradeAcceptAllocatesNothing(t *testing.T) {
	req := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	r, _, err := parseOwned([]byte(req), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var accept [28]byte
	allocs := testing.AllocsPerRun(100, func() { accept, err = CheckUpgradeAccept(&r) })
	if err != nil || string(accept[:]) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept %q err %v", accept, err)
	}
	if allocs != 0 {
		t.Errorf("CheckUpgradeAccept made %.0f allocations, want 0", allocs)
	}
	for _, key := range []string{"dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25j*Q==", "dGhlIHNhbXBsZSBub25jZQ==x", "dGhlIHNhbXBsZSBub25jZWVl", ""} {
		r.Headers[3].Value = key // sec-websocket-key
		if _, err := CheckUpgradeAccept(&r); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
}
