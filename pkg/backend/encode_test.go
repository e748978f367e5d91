package backend

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

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
		body := AppendMessage(nil, Subject{"http://h:1/x", testID, "ws"}, tc.op, tc.payload)
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
	body := AppendConnect(nil, Subject{"http://h", testID, "ws"}, "/ws", [][2]string{{"x-a", "1"}, {"x-b", "\xff"}, {"x-a", "2"}})
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
					buf = AppendMessage(buf[:0], Subject{"http://127.0.0.1:8766", testID, "ws"}, op, payload)
				}
			})
		}
	}
}

// upgradeHeaders returns n short headers as the gateway hands them over (names lower-cased):
// distinct names, with every tenth name repeated a little later, as a real head can.
func upgradeHeaders(n int) [][2]string {
	h := make([][2]string, 0, n)
	for i := 0; len(h) < n; i++ {
		h = append(h, [2]string{"x-" + strconv.Itoa(i), "v" + strconv.Itoa(i)})
		if i%10 == 0 && len(h) < n {
			h = append(h, [2]string{"x-" + strconv.Itoa(i/2), "again"})
		}
	}
	return h
}

func BenchmarkAppendConnect(b *testing.B) {
	for _, n := range []int{10, 100, 1500} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			headers := upgradeHeaders(n)
			buf := AppendConnect(nil, Subject{"http://127.0.0.1:8766", testID, "ws"}, "/ws", headers)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendConnect(buf[:0], Subject{"http://127.0.0.1:8766", testID, "ws"}, "/ws", headers)
			}
		})
	}
}

// referenceHeaders is the connect body's headers object as the contract defines it, built
// the obvious way with encoding/json: keys in order of first appearance, repeated names'
// values joined with ", " in order.
func referenceHeaders(t *testing.T, headers [][2]string) []byte {
	t.Helper()
	var order []string
	joined := map[string]string{}
	for _, h := range headers {
		if v, ok := joined[h[0]]; ok {
			joined[h[0]] = v + ", " + h[1]
			continue
		}
		order = append(order, h[0])
		joined[h[0]] = h[1]
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	out.WriteByte('{')
	for i, name := range order {
		if i > 0 {
			out.WriteByte(',')
		}
		for _, s := range []string{name, joined[name]} {
			if err := enc.Encode(s); err != nil {
				t.Fatal(err)
			}
			out.Truncate(out.Len() - 1) // Encode's newline
			out.WriteByte(':')
		}
		out.Truncate(out.Len() - 1)
	}
	out.WriteByte('}')
	return out.Bytes()
}

// The connect body equals the reference byte for byte for heads with many repeated and
// distinct names, odd bytes included (encoding/json writes \b and \f and escapes U+2028
// differently, so the generator leaves those out; the fuzz test covers them).
func TestAppendConnectMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", "-", "\"", "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "✓", "\xff", "<", "&", " "}
	word := func(n int) string {
		var s strings.Builder
		for range n {
			s.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		return s.String()
	}
	empty := AppendConnect(nil, Subject{"http://h:1", testID, "ws"}, "/ws", nil)
	prefix := empty[:len(empty)-len("{}}}")]
	for _, n := range []int{0, 1, 2, 7, 64, 1500} {
		for _, names := range []int{1, 3, n/2 + 1, n + 1} { // from all-repeated to all-distinct
			headers := make([][2]string, n)
			pool := make([]string, names)
			for i := range pool {
				pool[i] = "x-" + strconv.Itoa(i) + word(rng.IntN(4))
			}
			for i := range headers {
				headers[i] = [2]string{pool[rng.IntN(names)], word(rng.IntN(12))}
			}
			want := append(append([]byte(nil), prefix...), referenceHeaders(t, headers)...)
			want = append(want, "}}"...)
			if got := AppendConnect(nil, Subject{"http://h:1", testID, "ws"}, "/ws", headers); !bytes.Equal(got, want) {
				t.Fatalf("%d headers, %d names:\n got %s\nwant %s", n, names, got, want)
			}
		}
	}
}

// The encoder runs on the event loop, so a head of many short headers must cost linear work.
// Counted, not timed: the number of header-name comparisons stays within a small multiple
// of the header count (the quadratic encoder made about n² of them: 2.1 million for 1,500).
func TestAppendConnectComparesLinear(t *testing.T) {
	for _, n := range []int{1500, 15000} {
		for _, h := range [][][2]string{upgradeHeaders(n), sameName(n)} {
			_, compares := appendConnect(nil, Subject{"http://h:1", testID, "ws"}, "/ws", h)
			t.Logf("%d headers (%d distinct names): %d name comparisons", n, distinct(h), compares)
			if compares > 3*n {
				t.Errorf("%d headers: %d name comparisons, want at most %d", n, compares, 3*n)
			}
		}
	}
}

func sameName(n int) [][2]string {
	h := make([][2]string, n)
	for i := range h {
		h[i] = [2]string{"x-same", strconv.Itoa(i)}
	}
	return h
}

func distinct(h [][2]string) int {
	m := map[string]bool{}
	for _, x := range h {
		m[x[0]] = true
	}
	return len(m)
}

// A streamed message body is byte for byte the one AppendMessage builds, read with WriteTo
// (as fasthttp does) or with Read through odd buffer sizes, again after a rewind.
func TestMessageStreamEqualsAppendMessage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	mixed := func(n int) []byte { // valid UTF-8 with characters of every width, escapes among them
		var b []byte
		for len(b) < n {
			b = append(b, []string{"a", "\x00", "\"", "é", "✓", "😀", "\n"}[rng.IntN(7)]...)
		}
		return b
	}
	for _, n := range []int{0, 1, streamPiece - 1, streamPiece, streamPiece + 1, 3*streamPiece + 2, 200_000} {
		binary := make([]byte, n)
		for i := range binary {
			binary[i] = byte(rng.IntN(256))
		}
		for _, tc := range []struct {
			op      conntable.MessageType
			payload []byte
		}{{conntable.Text, mixed(n)}, {conntable.Text, make([]byte, n)}, {conntable.Binary, mixed(n)}, {conntable.Binary, binary}} {
			want := AppendMessage(nil, Subject{"http://h:1", testID, "ws"}, tc.op, tc.payload)
			s := newMessageStream(Subject{"http://h:1", testID, "ws"}, tc.op, tc.payload)
			if got := s.size(); got != len(want) {
				t.Fatalf("%d bytes op %v: size %d, want %d", n, tc.op, got, len(want))
			}
			var out bytes.Buffer
			if _, err := s.WriteTo(&out); err != nil || !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("%d bytes op %v: WriteTo differs from AppendMessage (err %v)", n, tc.op, err)
			}
			s.rewind()
			got, err := io.ReadAll(io.LimitReader(s, 1<<30)) // LimitReader hides WriteTo: Read it is
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%d bytes op %v: Read differs from AppendMessage (err %v)", n, tc.op, err)
			}
		}
	}
}
