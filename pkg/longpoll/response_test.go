package longpoll

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// readResponse parses raw with net/http, a real client's parser, and checks that it holds
// exactly one response whose Content-Length is right.
func readResponse(t *testing.T, raw []byte) (*http.Response, []byte) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(raw))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%v in %q", err, raw)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Fatalf("%d bytes after the body (Content-Length wrong): %q", len(rest), raw)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Fatalf("Content-Length %d, body %d", resp.ContentLength, len(body))
	}
	return resp, body
}

// unwrapJSONP checks the JSONP form and returns the JSON inside.
func unwrapJSONP(t *testing.T, cb string, body []byte) []byte {
	t.Helper()
	prefix, suffix := "/**/"+cb+"(", ");"
	if !bytes.HasPrefix(body, []byte(prefix)) || !bytes.HasSuffix(body, []byte(suffix)) {
		t.Fatalf("not JSONP for %s: %q", cb, body)
	}
	return body[len(prefix) : len(body)-len(suffix)]
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	if bytes.Contains(b, []byte("\u2028")) || bytes.Contains(b, []byte("\u2029")) {
		t.Fatalf("raw U+2028/U+2029 in %q", b)
	}
	return v
}

func TestResponseHeaders(t *testing.T) {
	tests := []struct {
		name       string
		r          Reply
		jsonp      bool
		connection string
		origin     string
		creds      bool
	}{
		{"json keep-alive", Reply{}, false, "keep-alive", "", false},
		{"json close", Reply{Close: true}, false, "close", "", false},
		{"jsonp", Reply{Callback: "jQuery_1"}, true, "keep-alive", "", false},
		{"cors", Reply{Origin: "https://app.example"}, false, "keep-alive", "https://app.example", false},
		{"cors credentials", Reply{Origin: "https://app.example", Credentials: true}, false, "keep-alive", "https://app.example", true},
		{"unsafe origin not echoed", Reply{Origin: "https://a\nSet-Cookie: x=1"}, false, "keep-alive", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := readResponse(t, AppendOK(nil, tt.r, 201))
			h := resp.Header
			if tt.jsonp {
				if resp.StatusCode != 200 || h.Get("Content-Type") != "application/javascript; charset=utf-8" {
					t.Fatalf("jsonp: %d %q", resp.StatusCode, h.Get("Content-Type"))
				}
				body = unwrapJSONP(t, tt.r.Callback, body)
			} else if resp.StatusCode != 201 || h.Get("Content-Type") != "application/json" {
				t.Fatalf("json: %d %q", resp.StatusCode, h.Get("Content-Type"))
			}
			if string(body) != `{"ok":true}` {
				t.Fatalf("body %q", body)
			}
			if h.Get("Cache-Control") != "no-store" || h.Get("X-Content-Type-Options") != "nosniff" ||
				h.Get("Vary") != "Origin" || resp.Close != (tt.connection == "close") ||
				(tt.connection == "keep-alive" && h.Get("Connection") != "keep-alive") ||
				h.Get("Access-Control-Allow-Origin") != tt.origin ||
				(h.Get("Access-Control-Allow-Credentials") == "true") != tt.creds ||
				(h.Get("Access-Control-Expose-Headers") == "Retry-After") != (tt.origin != "") ||
				h.Get("X-Accel-Buffering") != "" || h.Get("Set-Cookie") != "" {
				t.Fatalf("headers %v", h)
			}
		})
	}
}

func TestAppendFailure(t *testing.T) {
	raw := AppendFailure(nil, Reply{}, 503, "inbound queue full", "Retry-After: 1\r\n")
	resp, body := readResponse(t, raw)
	v := decodeJSON(t, body)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || v["ok"] != false ||
		v["error"] != "inbound queue full" || v["status"] != 503.0 {
		t.Fatalf("%d %v %v", resp.StatusCode, resp.Header, v)
	}
	// JSONP: 200, the status inside, no header that only a real status can use.
	raw = AppendFailure(nil, Reply{Callback: "a.b"}, 403, "unknown session", "Allow: GET\r\n")
	resp, body = readResponse(t, raw)
	v = decodeJSON(t, unwrapJSONP(t, "a.b", body))
	if resp.StatusCode != 200 || resp.Header.Get("Allow") != "" || v["ok"] != false || v["status"] != 403.0 || v["error"] != "unknown session" {
		t.Fatalf("%d %v %v", resp.StatusCode, resp.Header, v)
	}
}

func TestAppendError(t *testing.T) {
	tests := []struct {
		err    error
		r      Reply
		status int
		plain  bool
		header string
	}{
		{ErrBadCallback, Reply{}, 400, true, ""},
		{ErrJSONPDisabled, Reply{Callback: "f"}, 400, true, ""}, // never JavaScript, even if asked
		{ErrMissingData, Reply{}, 400, false, ""},
		{ErrMissingData, Reply{Callback: "f"}, 200, false, ""},
		{ErrUnknownSession, Reply{}, 403, false, ""},
		{errMethodPoll, Reply{}, 405, false, "GET, OPTIONS"},
		{ErrTooBig, Reply{}, 413, false, ""},
		{conntable.ErrTooBig, Reply{}, 413, false, ""},
		{conntable.ErrClosing, Reply{}, 403, false, ""},
		{conntable.ErrSlowConsumer, Reply{}, 503, false, ""},
		{&wsframe.HTTPError{Status: 503, Reason: "too many connections", Header: "Retry-After: 1\r\n"}, Reply{}, 503, false, ""},
		{errors.New("boom"), Reply{}, 500, false, ""},
	}
	for _, tt := range tests {
		resp, body := readResponse(t, AppendError(nil, tt.r, tt.err))
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode != tt.status || (ct == "text/plain; charset=utf-8") != tt.plain || resp.Header.Get("Allow") != tt.header {
			t.Errorf("%v: %d %q %v", tt.err, resp.StatusCode, ct, resp.Header)
			continue
		}
		if tt.plain {
			if bytes.ContainsAny(body, "();") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%v: plain body %q", tt.err, body)
			}
			continue
		}
		if tt.r.Callback != "" {
			body = unwrapJSONP(t, tt.r.Callback, body)
		}
		if v := decodeJSON(t, body); v["ok"] != false || v["error"] == "" {
			t.Errorf("%v: %v", tt.err, v)
		}
	}
}

func TestAppendCreated(t *testing.T) {
	resp, body := readResponse(t, AppendCreated(nil, Reply{}, sid, "relay.example:8765"))
	v := decodeJSON(t, body)
	if resp.StatusCode != 200 || v["ok"] != true || v["socket"] != sid || v["fqdn"] != "relay.example:8765" {
		t.Fatalf("%d %v", resp.StatusCode, v)
	}
}

func TestAppendPreflight(t *testing.T) {
	r := Reply{Origin: "https://app.example", Credentials: true}
	resp, body := readResponse(t, AppendPreflight(nil, r, "content-type, authorization"))
	h := resp.Header
	if resp.StatusCode != 204 || len(body) != 0 || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		h.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" ||
		h.Get("Access-Control-Allow-Headers") != "content-type, authorization" ||
		h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Max-Age") == "" || h.Get("Vary") != "Origin" {
		t.Fatalf("%d %v", resp.StatusCode, h)
	}
	// Without an allowed origin: no CORS grant at all; a header value that could split is dropped.
	resp, _ = readResponse(t, AppendPreflight(nil, Reply{}, "x"))
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
		t.Fatalf("%v", resp.Header)
	}
	resp, _ = readResponse(t, AppendPreflight(nil, r, "a\nb: c"))
	if resp.Header.Get("Access-Control-Allow-Headers") != "" || resp.Header.Get("B") != "" {
		t.Fatalf("%v", resp.Header)
	}
}

func TestAppendHeartbeat(t *testing.T) {
	for _, r := range []Reply{{}, {Callback: "cb"}} {
		resp, body := readResponse(t, AppendHeartbeat(nil, r))
		if r.Callback != "" {
			body = unwrapJSONP(t, r.Callback, body)
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-Accel-Buffering") != "no" ||
			string(body) != `{"ok":true,"messages":[{"type":"heartbeat"}]}` {
			t.Fatalf("%d %v %q", resp.StatusCode, resp.Header, body)
		}
	}
}

type wireMessage struct {
	Seq    *uint64 `json:"seq"`
	Type   string  `json:"type"`
	Data   string  `json:"data"`
	Code   int     `json:"code"`
	Reason string  `json:"reason"`
}

func decodeBatch(t *testing.T, body []byte) []wireMessage {
	t.Helper()
	decodeJSON(t, body)
	var v struct {
		OK       bool          `json:"ok"`
		Messages []wireMessage `json:"messages"`
	}
	if err := json.Unmarshal(body, &v); err != nil || !v.OK || v.Messages == nil {
		t.Fatalf("batch %q: %v", body, err)
	}
	return v.Messages
}

func TestAppendBatch(t *testing.T) {
	text := "plain \"quoted\" \\ \n\t\x01 ✓ \u2028\u2029 </script>"
	bin := []byte{0, 1, 2, 0xff, 0xfe}
	b := &Batch{
		Messages: []Message{{Seq: 7, Text: true, Data: []byte(text)}, {Seq: 8, Data: bin}, {Seq: 9, Text: true, Data: nil}},
		Closed:   true, Code: 4000, Reason: "bye \u2028",
	}
	for _, r := range []Reply{{}, {Callback: "x.y"}} {
		resp, body := readResponse(t, AppendBatch(nil, r, b))
		if r.Callback != "" {
			body = unwrapJSONP(t, r.Callback, body)
		}
		if resp.StatusCode != 200 || resp.Header.Get("X-Accel-Buffering") != "no" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
		got := decodeBatch(t, body)
		if len(got) != 4 || *got[0].Seq != 7 || got[0].Type != "text" || got[0].Data != text ||
			*got[1].Seq != 8 || got[1].Type != "binary" || got[1].Data != base64.StdEncoding.EncodeToString(bin) ||
			*got[2].Seq != 9 || got[2].Data != "" ||
			got[3].Seq != nil || got[3].Type != "close" || got[3].Code != 4000 || got[3].Reason != "bye \u2028" {
			t.Fatalf("%q", body)
		}
		if !bytes.Contains(body, []byte(`\u2028\u2029`)) {
			t.Fatalf("U+2028 not escaped: %q", body)
		}
	}
	// The empty batch answers a displaced poll; a close record alone ends a session.
	_, body := readResponse(t, AppendBatch(nil, Reply{}, &Batch{}))
	if string(body) != `{"ok":true,"messages":[]}` {
		t.Fatalf("%q", body)
	}
	_, body = readResponse(t, AppendBatch(nil, Reply{}, &Batch{Closed: true, Code: 1000}))
	if string(body) != `{"ok":true,"messages":[{"type":"close","code":1000,"reason":""}]}` {
		t.Fatalf("%q", body)
	}
}

// Invalid UTF-8 cannot reach a text message through this package, but the body stays valid
// JSON if it does.
func TestAppendBatchInvalidUTF8(t *testing.T) {
	b := &Batch{Messages: []Message{{Seq: 1, Text: true, Data: []byte("a\xffb\xed\xa0\x80")}}}
	_, body := readResponse(t, AppendBatch(nil, Reply{}, b))
	if got := decodeBatch(t, body); got[0].Data != "a\ufffdb\ufffd\ufffd\ufffd" {
		t.Fatalf("%q", got[0].Data)
	}
}

func TestAppendAllocs(t *testing.T) {
	b := &Batch{Messages: []Message{{Seq: 1, Text: true, Data: []byte(strings.Repeat("x", 64))}, {Seq: 2, Data: make([]byte, 64)}}}
	r := Reply{Callback: "cb", Origin: "https://a.example"}
	buf := make([]byte, 0, 4096)
	for name, f := range map[string]func(){
		"batch":     func() { buf = AppendBatch(buf[:0], r, b) },
		"heartbeat": func() { buf = AppendHeartbeat(buf[:0], r) },
		"ok":        func() { buf = AppendOK(buf[:0], r, 201) },
		"failure":   func() { buf = AppendFailure(buf[:0], r, 403, "unknown session", "") },
		"error":     func() { buf = AppendError(buf[:0], r, ErrUnknownSession) },
		"created":   func() { buf = AppendCreated(buf[:0], r, sid, "relay.example") },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %.0f allocs", name, n)
		}
	}
}
