package backend

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/socketdock/socketdock/pkg/conntable"
)

const testID = "0123456789abcdef0123456789abcdef"

func TestAppendMessageDecodes(t *testing.T) {
	cases := []struct {
		op       conntable.MessageType
		payload  []byte
		typ, enc string
	}{
		{conntable.Text, []byte(`{"a":"json text stays a string"}`), "text", ""},
		{conntable.Text, []byte("ctl \x00\x01\x1f \" \\ \u2028 ✓"), "text", ""},
		{conntable.Binary, []byte("utf-8 binary"), "binary", ""},
		{conntable.Binary, []byte{0xff, 0x00, 0x80}, "binary", "base64"},
	}
	for _, tc := range cases {
		body := AppendMessage(nil, "http://h:1/x", testID, tc.op, tc.payload)
		var got struct {
			Meta    map[string]string
			Message string
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%q: %v: %s", tc.payload, err, body)
		}
		m := got.Meta
		if m["connection_id"] != testID || m["send"] != "http://h:1/x/socket/"+testID+"/send" ||
			m["disconnect"] != "http://h:1/x/socket/"+testID+"/disconnect" || m["type"] != tc.typ || m["encoding"] != tc.enc {
			t.Fatalf("meta %v", m)
		}
		msg := []byte(got.Message)
		if tc.enc == "base64" {
			msg, _ = base64.StdEncoding.DecodeString(got.Message)
		}
		if string(msg) != string(tc.payload) {
			t.Fatalf("round trip %q → %q", tc.payload, msg)
		}
	}
}

func TestAppendConnectJoinsRepeatedHeadersAndFixesBadUTF8(t *testing.T) {
	body := AppendConnect(nil, "http://h", testID, [][2]string{{"x-a", "1"}, {"x-b", "\xff"}, {"x-a", "2"}})
	var got struct {
		Meta struct{ Headers map[string]string }
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Meta.Headers["x-a"] != "1, 2" || got.Meta.Headers["x-b"] != "\ufffd" {
		t.Fatalf("headers %v", got.Meta.Headers)
	}
}

func BenchmarkAppendMessage(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, kind := range []string{"text", "binary-base64"} {
			b.Run(kind+"/"+strconv.Itoa(size), func(b *testing.B) {
				payload := make([]byte, size)
				op := conntable.Text
				for i := range payload {
					payload[i] = 'a' + byte(i%26)
				}
				if kind != "text" {
					op = conntable.Binary
					payload[0] = 0xff
				}
				buf := make([]byte, 0, jsonSize(size))
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					buf = AppendMessage(buf[:0], "http://127.0.0.1:8766", testID, op, payload)
				}
			})
		}
	}
}

func TestConnTrackerTellsPooledFromFresh(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	tr := newConnTracker()
	c, err := tr.dialer(time.Second)(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tr.wasPooled(c.LocalAddr()) {
		t.Fatal("a fresh connection counts as pooled")
	}
	tr.served(c.LocalAddr())
	if !tr.wasPooled(c.LocalAddr()) || tr.wasPooled(nil) {
		t.Fatal("a connection that carried a response is not pooled, or nil is")
	}
}
