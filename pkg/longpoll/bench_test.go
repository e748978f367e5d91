package longpoll

import (
	"strconv"
	"strings"
	"testing"

	"github.com/socketdock/socketdock/pkg/wsframe"
)

// The poll transport's hot paths: a message through a session into an answer, the answer's
// encoding alone, and request parsing.

// One message per poll: Push (from /send), Poll (ack), Take and the whole HTTP answer.
func BenchmarkPushTake(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, text := range []bool{true, false} {
			name := "binary"
			if text {
				name = "text"
			}
			b.Run(name+"/"+strconv.Itoa(size), func(b *testing.B) {
				payload := []byte(strings.Repeat("a", size))
				s := NewSession(nil)
				var dst []Message
				buf := make([]byte, 0, 2*size+1024)
				r := Reply{Callback: "jQuery_1"}
				var seq uint64
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Push(text, payload); err != nil {
						b.Fatal(err)
					}
					s.Poll(seq, true, nil)
					batch := s.Take(dst)
					seq = batch.Messages[0].Seq
					buf = AppendBatch(buf[:0], r, &batch)
					dst = batch.Messages[:0]
				}
			})
		}
	}
}

// Sixteen 64-byte messages queued between two polls.
func BenchmarkPushTakeBurst(b *testing.B) {
	payload := []byte(strings.Repeat("a", 64))
	s := NewSession(nil)
	var dst []Message
	buf := make([]byte, 0, 4096)
	b.SetBytes(16 * 64)
	b.ReportAllocs()
	for b.Loop() {
		for range 16 {
			if _, err := s.Push(false, payload); err != nil {
				b.Fatal(err)
			}
		}
		s.Poll(0, false, nil)
		batch := s.Take(dst)
		buf = AppendBatch(buf[:0], Reply{}, &batch)
		dst = batch.Messages[:0]
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	cases := []struct {
		name  string
		n     int
		size  int
		text  bool
		reply Reply
	}{
		{"text/1x64", 1, 64, true, Reply{}},
		{"text/1x64/jsonp+cors", 1, 64, true, Reply{Callback: "jQuery_1", Origin: "https://app.example"}},
		{"binary/1x64", 1, 64, false, Reply{}},
		{"text/16x64", 16, 64, true, Reply{}},
		{"text/1x65536", 1, 65536, true, Reply{}},
		{"binary/1x65536", 1, 65536, false, Reply{}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			batch := &Batch{}
			for i := range c.n {
				batch.Messages = append(batch.Messages, Message{Seq: uint64(i + 1), Text: c.text, Data: []byte(strings.Repeat("é", c.size/2))})
			}
			buf := AppendBatch(nil, c.reply, batch)
			b.SetBytes(int64(c.n * c.size))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendBatch(buf[:0], c.reply, batch)
			}
		})
	}
}

func BenchmarkAppendSmall(b *testing.B) {
	buf := make([]byte, 0, 1024)
	r := Reply{Origin: "https://app.example"}
	b.Run("heartbeat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendHeartbeat(buf[:0], r)
		}
	})
	b.Run("ok", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendOK(buf[:0], r, 201)
		}
	})
	b.Run("error", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendError(buf[:0], r, ErrUnknownSession)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	mk := func(method, target, ctype string, body []byte) *wsframe.Request {
		return request(b, method, target, ctype, body)
	}
	formBody := []byte("t=b&d=" + strings.Repeat("QUJD", 22) + "&cb=jQuery_1")
	cases := []struct {
		name string
		req  *wsframe.Request
		body []byte
	}{
		{"poll", mk("GET", poll+"?ttl=25000&ack=17&cb=jQuery_1&_=1700000000000", "", nil), nil},
		{"send/text", mk("GET", send+"?d=hello%20world%2C%20this%20is%2064%20bytes%20of%20text.....&cb=jQuery_1", "", nil), nil},
		{"send/base64", mk("GET", send+"?t=b&d="+strings.Repeat("QUJD", 22)+"&cb=jQuery_1", "", nil), nil},
		{"send/form", mk("POST", send, form, formBody), formBody},
		{"send/raw", mk("POST", send, "application/octet-stream", make([]byte, 64)), make([]byte, 64)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var p Params
			if err := p.Parse(c.req, c.body, nil); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Parse(c.req, c.body, nil)
			}
		})
	}
}

func BenchmarkValidCallback(b *testing.B) {
	cb := "jQuery3710123456789_1700000000000"
	b.ReportAllocs()
	for b.Loop() {
		if !ValidCallback(cb) {
			b.Fatal(cb)
		}
	}
}
