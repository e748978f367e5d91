package backend

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// FuzzEncodeMessage: the hand-written JSON encoder round-trips through encoding/json. A
// message decodes to the same bytes (base64-decoded when meta.encoding says so), the meta
// fields to what went in; connect and disconnect bodies are valid JSON with their values.
func FuzzEncodeMessage(f *testing.F) {
	f.Add("http://127.0.0.1:8766", []byte{0x01}, true, []byte(`{"json":"inside a string"}`), "user-agent", "Mozilla/5.0", "bye")
	f.Add("http://h/", []byte{0xab}, false, []byte{0xff, 0xfe, 0x00, 0x01}, "x-\x00", "\xff\"\\\n", "\xed\xa0\x80")
	f.Add("", []byte{}, false, []byte("plain utf-8 ✓ \u2028\u2029 </script>"), "", "", "")
	f.Add("https://ex.example/base", []byte{0, 1, 2}, true, []byte("\x00\x1f\x7f\"\\\t"), "cookie", "a=b; c=d", strings.Repeat("r", 123))
	f.Fuzz(func(t *testing.T, endpoint string, idSeed []byte, text bool, payload []byte, hname, hvalue, reason string) {
		id := hex.EncodeToString(append(idSeed, make([]byte, 16)...)[:16]) // ids are always 32 hex
		op := conntable.Binary
		if text && utf8.Valid(payload) { // the decoder never hands over invalid text
			op = conntable.Text
		}
		body := AppendMessage(nil, Subject{endpoint, id, "ws"}, op, payload)
		var streamed bytes.Buffer // what a large message is sent as: the same bytes
		if s := newMessageStream(Subject{endpoint, id, "ws"}, op, payload); s.size() != len(body) {
			t.Fatalf("stream size %d, body %d", s.size(), len(body))
		} else if _, _ = s.WriteTo(&streamed); !bytes.Equal(streamed.Bytes(), body) {
			t.Fatalf("streamed body differs:\n%q\n%q", streamed.Bytes(), body)
		}
		var msg struct {
			Meta struct {
				ConnectionID string `json:"connection_id"`
				Send         string `json:"send"`
				Disconnect   string `json:"disconnect"`
				Type         string `json:"type"`
				Encoding     string `json:"encoding"`
			} `json:"meta"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("message body is not JSON: %v: %q", err, body)
		}
		got := []byte(msg.Message)
		if msg.Meta.Encoding == "base64" {
			var err error
			if got, err = base64.StdEncoding.DecodeString(msg.Message); err != nil {
				t.Fatal(err)
			}
			if op == conntable.Text || utf8.Valid(payload) {
				t.Fatal("base64 used for a payload that is valid UTF-8")
			}
		} else if msg.Meta.Encoding != "" {
			t.Fatalf("meta.encoding %q", msg.Meta.Encoding)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("round trip: sent % x, decoded % x", payload, got)
		}
		wantType := map[conntable.MessageType]string{conntable.Text: "text", conntable.Binary: "binary"}[op]
		if msg.Meta.Type != wantType || msg.Meta.ConnectionID != id {
			t.Fatalf("meta %+v", msg.Meta)
		}
		if utf8.ValidString(endpoint) && (msg.Meta.Send != endpoint+"/socket/"+id+"/send" || msg.Meta.Disconnect != endpoint+"/socket/"+id+"/disconnect") {
			t.Fatalf("callbacks %q %q for endpoint %q", msg.Meta.Send, msg.Meta.Disconnect, endpoint)
		}

		headers := [][2]string{{hname, hvalue}, {"host", "x"}, {hname, "second"}}
		var connect struct {
			Meta struct {
				Headers map[string]string `json:"headers"`
			} `json:"meta"`
		}
		cb := AppendConnect(nil, Subject{endpoint, id, "poll"}, "/poll/create?token=x", headers)
		if err := json.Unmarshal(cb, &connect); err != nil {
			t.Fatalf("connect body is not JSON: %v: %q", err, cb)
		}
		if utf8.ValidString(hname) && utf8.ValidString(hvalue) && hname != "host" {
			if want := hvalue + ", second"; connect.Meta.Headers[hname] != want {
				t.Fatalf("header %q = %q, want %q", hname, connect.Meta.Headers[hname], want)
			}
		}

		var disc struct {
			ConnectionID string `json:"connection_id"`
			Code         int    `json:"code"`
			Reason       string `json:"reason"`
		}
		db := AppendDisconnect(nil, Subject{endpoint, id, "ws"}, 1006, reason)
		if err := json.Unmarshal(db, &disc); err != nil {
			t.Fatalf("disconnect body is not JSON: %v: %q", err, db)
		}
		if disc.ConnectionID != id || disc.Code != 1006 || (utf8.ValidString(reason) && disc.Reason != reason) {
			t.Fatalf("disconnect %+v", disc)
		}
	})
}
