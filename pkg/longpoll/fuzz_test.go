package longpoll

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// Fuzz targets (seeds in testdata/fuzz/). Each checks properties against a reference where
// one exists (net/url, encoding/base64, encoding/json, the contract's regular expression),
// and against a plain model for the session's ack state machine.

var fuzzMethods = []string{"GET", "POST", "OPTIONS", "PUT"}

func FuzzParams(f *testing.F) {
	f.Add(uint8(0), "/poll/s/"+sid+"?d=hello&cb=f", "", []byte(nil), uint16(0), false)
	f.Add(uint8(0), "/poll/s/"+sid+"?t=b&d=aGVsbG8%3D&_=1", "", []byte(nil), uint16(4), false)
	f.Add(uint8(1), "/poll/s/"+sid+"?cb=%24.x", form, []byte("t=b&d=-_8+&d=x"), uint16(100), false)
	f.Add(uint8(1), "/poll/s/"+sid, "text/plain; charset=utf-8", []byte("h\xc3\xa9"), uint16(0), true)
	f.Add(uint8(1), "/poll/s/"+sid, "application/octet-stream", []byte{0, 0xff}, uint16(1), false)
	f.Add(uint8(0), "/poll/j/"+sid+"?ttl=-7&ack=18446744073709551615", "", []byte(nil), uint16(0), false)
	f.Add(uint8(0), "/poll/j/"+sid+"?ttl=1e3", "", []byte(nil), uint16(0), false)
	f.Add(uint8(1), "/poll/create?token=a%2", form, []byte("target=ws%3A%2F%2Fx&from=y"), uint16(0), false)
	f.Add(uint8(2), "/poll/c/"+sid+"?cb=a..b", "", []byte(nil), uint16(0), false)
	f.Add(uint8(3), "/poll/x", "", []byte(nil), uint16(0), false)
	f.Fuzz(func(t *testing.T, m uint8, target, contentType string, body []byte, maxMsg uint16, noJSONP bool) {
		method := fuzzMethods[int(m)%len(fuzzMethods)]
		if strings.IndexByte(target, '/') != 0 {
			return
		}
		req := &wsframe.Request{Method: method, Target: target, Headers: []wsframe.Header{{Name: "content-type", Value: contentType}}}
		req.Path, _, _ = strings.Cut(target, "?")
		cfg := &Config{MaxMessageBytes: int(maxMsg), MaxTTL: 3 * time.Second, NoJSONP: noJSONP}
		bodyBefore := string(body)
		var p Params
		err := p.Parse(req, body, cfg)
		if string(body) != bodyBefore || req.Target != target {
			t.Fatal("Parse modified its input")
		}
		if err != nil {
			e := asError(err)
			if e == nil || wsframe.StatusText(e.Status) == "Error" {
				t.Fatalf("error %v is not an *Error with a known status", err)
			}
			if e.Plain && p.Callback != "" {
				t.Fatal("a plain error with a JSONP callback set")
			}
			return
		}
		if p.Callback != "" && (!ValidCallback(p.Callback) || noJSONP) {
			t.Fatalf("callback %q accepted", p.Callback)
		}
		if p.TTL < 0 || p.TTL > cfg.MaxTTL {
			t.Fatalf("ttl %v", p.TTL)
		}
		if p.Route != RouteSend {
			return
		}
		if len(p.Data) > cfg.maxMessage() || (p.Text && !utf8.Valid(p.Data)) {
			t.Fatalf("message %q (text %v) passed", p.Data, p.Text)
		}
		// The reference: net/url on a GET's query (it refuses a query with any bad escape).
		_, query, _ := strings.Cut(target, "?")
		values, uerr := url.ParseQuery(query)
		if method != "GET" || uerr != nil || len(values["d"]) == 0 {
			return
		}
		want := []byte(values["d"][0])
		if !p.Text {
			norm := strings.NewReplacer("-", "+", "_", "/", " ", "+").Replace(values["d"][0])
			enc := base64.RawStdEncoding
			if strings.HasSuffix(norm, "=") {
				enc = base64.StdEncoding
			}
			var derr error
			if want, derr = enc.DecodeString(norm); derr != nil {
				t.Fatalf("%q accepted as base64: %v", norm, derr)
			}
		}
		if !bytes.Equal(p.Data, want) {
			t.Fatalf("d = %q, net/url says %q", p.Data, want)
		}
	})
}

func FuzzCallback(f *testing.F) {
	for _, s := range []string{"cb", "a.b.c.d", "a.b.c.d.e", "$_", "1a", "a.", "", "a(1)", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cb string) {
		if got, want := ValidCallback(cb), callbackRE.MatchString(cb); got != want {
			t.Fatalf("ValidCallback(%q) = %v, the contract's expression says %v", cb, got, want)
		}
	})
}

func FuzzBase64(f *testing.F) {
	for _, s := range []string{"", "QQ", "QQ==", "QQ=", "QUI", "QUI=", "QUJD", "Q", "-_8", "+/8", " /8", "QQ==QQ==", "QUJD=", "=", "===="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if bytes.ContainsAny(src, "\r\n") {
			return // encoding/base64 skips these; we refuse them
		}
		norm := strings.NewReplacer("-", "+", "_", "/", " ", "+").Replace(string(src))
		enc := base64.RawStdEncoding
		if strings.HasSuffix(norm, "=") {
			enc = base64.StdEncoding
		}
		want, werr := enc.DecodeString(norm)
		dst := make([]byte, len(src))
		n, ok := decodeBase64(dst, src)
		if ok != (werr == nil) || (ok && !bytes.Equal(dst[:n], want)) {
			t.Fatalf("decodeBase64(%q) = %q, %v; encoding/base64: %q, %v", src, dst[:n], ok, want, werr)
		}
		inPlace := append([]byte(nil), src...)
		if n2, ok2 := decodeBase64(inPlace, inPlace); ok2 != ok || (ok && !bytes.Equal(inPlace[:n2], want)) {
			t.Fatalf("in place: %q, %v", inPlace[:n2], ok2)
		}
	})
}

// FuzzSession drives a session with a byte-coded script of sends, polls (with and without
// ack, acking what the client got or less), lost answers and closes, and checks the
// contract's invariants from the client's side: no message lost, seqs strictly increasing
// and gap-free, no confirmed message ever sent again, batches within the byte limit,
// Buffered equal to the unconfirmed bytes, and the close record last.
func FuzzSession(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 2, 0, 3, 1, 4, 0, 5})
	f.Add([]byte{0, 10, 0, 20, 0, 30, 3, 3, 3, 1, 1, 6, 1})
	f.Add([]byte{0, 200, 0, 200, 0, 1, 2, 2, 5, 1, 1, 1})
	f.Add([]byte{6, 0, 1, 0, 1, 3, 0, 2})
	f.Fuzz(func(t *testing.T, script []byte) {
		const maxBatch, maxOut = 64, 256
		s := NewSession(&Config{MaxMessageBytes: 200, MaxOutboundBytes: maxOut, MaxBatchBytes: maxBatch})
		var (
			pushed    [][]byte // by seq-1
			confirmed uint64   // the model: every seq up to this was acked (or polled past)
			got       uint64   // the client's highest seq received in order
			lastSent  uint64   // highest seq any answer carried
			sentNow   uint64   // highest seq handed out since the last poll (0: none)
			closed    bool
			sawClose  bool
			dst       []Message
		)
		take := func(lost bool) {
			b := s.Take(dst)
			dst = b.Messages[:0]
			total, redelivered := 0, 0
			for i, m := range b.Messages {
				if m.Seq <= confirmed {
					t.Fatalf("confirmed seq %d (<= %d) sent again", m.Seq, confirmed)
				}
				if i > 0 && m.Seq != b.Messages[i-1].Seq+1 {
					t.Fatalf("batch seqs %v not consecutive", seqs(b))
				}
				if i == 0 && m.Seq != max(confirmed, sentNow)+1 {
					t.Fatalf("batch starts at %d; confirmed %d, sent since poll %d", m.Seq, confirmed, sentNow)
				}
				if !bytes.Equal(m.Data, pushed[m.Seq-1]) {
					t.Fatalf("seq %d carries %q, was sent %q", m.Seq, m.Data, pushed[m.Seq-1])
				}
				if m.Seq <= lastSent {
					redelivered++
				}
				total += len(m.Data)
			}
			if len(b.Messages) > 1 && total > maxBatch {
				t.Fatalf("batch of %d bytes over %d", total, maxBatch)
			}
			if redelivered != b.Redelivered {
				t.Fatalf("Redelivered %d, counted %d", b.Redelivered, redelivered)
			}
			if n := len(b.Messages); n > 0 {
				sentNow = b.Messages[n-1].Seq
				lastSent = max(lastSent, sentNow)
			}
			if b.Closed {
				if !closed || sentNow != uint64(len(pushed)) {
					t.Fatalf("close record before the last message (sent %d of %d)", sentNow, len(pushed))
				}
			}
			if lost {
				return
			}
			for _, m := range b.Messages {
				if m.Seq == got+1 {
					got++
				}
			}
			if b.Closed && got == uint64(len(pushed)) {
				sawClose = true
			}
		}
		poll := func(ack uint64, hasAck bool) {
			s.Poll(ack, hasAck, nil)
			switch {
			case !hasAck:
				confirmed = max(confirmed, sentNow)
				// A lost answer is lost for a client that does not ack: the contract's
				// "delivered once written". The rest of the script still must not lose.
				got = max(got, confirmed)
			case ack > confirmed:
				confirmed = min(ack, max(confirmed, sentNow))
			}
			sentNow = confirmed // unconfirmed ones go again
		}
		for i := 0; i < len(script); i++ {
			op := script[i] % 7
			arg := byte(0)
			if i+1 < len(script) {
				arg = script[i+1]
			}
			switch op {
			case 0: // send arg bytes
				i++
				data := bytes.Repeat([]byte{byte(len(pushed))}, int(arg))
				_, err := s.Push(arg%2 == 0, data)
				switch {
				case len(data) > 200:
					if err != conntable.ErrTooBig {
						t.Fatalf("too big: %v", err)
					}
				case closed:
					if err != conntable.ErrClosing {
						t.Fatalf("send after close: %v", err)
					}
				case err == conntable.ErrSlowConsumer:
					if s.Buffered()+len(data) <= maxOut {
						t.Fatalf("slow consumer with %d+%d bytes", s.Buffered(), len(data))
					}
				case err != nil:
					t.Fatal(err)
				default:
					pushed = append(pushed, data)
				}
			case 1: // poll acking what the client has, then take
				poll(got, true)
				take(false)
			case 2: // poll without ack, then take
				poll(0, false)
				take(false)
			case 3: // take, and lose the answer
				take(true)
			case 4: // poll with a stale ack
				i++
				poll(got-min(got, uint64(arg)), true)
			case 5: // close
				closed = true
				s.Close(1000, "")
			case 6: // take without a poll (a woken poll)
				take(false)
			}
			var unconfirmed int
			for _, d := range pushed[confirmed:] {
				unconfirmed += len(d)
			}
			if s.Buffered() != unconfirmed {
				t.Fatalf("Buffered %d, model %d", s.Buffered(), unconfirmed)
			}
		}
		// Drain like a careful client: everything pushed arrives.
		s.Close(1000, "")
		closed = true
		for range len(pushed) + 2 {
			poll(got, true)
			take(false)
			if sawClose {
				break
			}
		}
		if got != uint64(len(pushed)) || !sawClose {
			t.Fatalf("client got %d of %d messages, close %v", got, len(pushed), sawClose)
		}
	})
}
