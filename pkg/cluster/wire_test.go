package cluster

import (
	"bytes"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range []request{
		{op: opPing},
		{op: opSend, actBy: 1 << 62, id: "0123456789abcdef0123456789abcdef", contentType: []byte("text/plain; charset=utf-8"), body: []byte("hello")},
		{op: opPollGet, actBy: -1, flags: flagHasAck, ack: 1<<64 - 1, ttl: 25e9, id: "ffffffffffffffffffffffffffffffff"},
		{op: opPollSend, flags: flagText, id: "x", body: bytes.Repeat([]byte{0}, 70000)},
	} {
		got, err := decodeRequest(r.append(nil))
		if err != nil {
			t.Fatalf("%v: %v", r.op, err)
		}
		if id := requestID(r.append(nil)); string(id) != r.id {
			t.Fatalf("requestID = %q, want %q", id, r.id)
		}
		if got.op != r.op || got.actBy != r.actBy || got.flags != r.flags || got.ack != r.ack || got.ttl != r.ttl ||
			got.id != r.id || !bytes.Equal(got.contentType, r.contentType) || !bytes.Equal(got.body, r.body) {
			t.Fatalf("round trip of %+v gave %+v", r, got)
		}
	}
	long := request{op: opSend, contentType: bytes.Repeat([]byte("t"), 300)}
	if got, _ := decodeRequest(long.append(nil)); len(got.contentType) != 255 {
		t.Fatalf("content type kept %d bytes", len(got.contentType))
	}
}

func TestAnswerAndBatchRoundTrip(t *testing.T) {
	wb := wireBatch{closed: true, code: 4000, reason: "bye", redelivered: 1, messages: []wireMessage{
		{seq: 7, text: true, data: []byte("héllo")}, {seq: 8, data: []byte{0, 0xff}}, {seq: 9, data: []byte{}}}}
	a := answer{status: 200, contentType: []byte("application/json"), header: []byte("1"), body: appendBatch(nil, &wb)}
	got, err := decodeAnswer(a.append(nil))
	if err != nil || got.status != 200 || string(got.contentType) != "application/json" || string(got.header) != "1" {
		t.Fatalf("answer: %+v %v", got, err)
	}
	b, err := decodeBatch(got.body)
	if err != nil || !b.closed || b.code != 4000 || b.reason != "bye" || b.redelivered != 1 || len(b.messages) != 3 {
		t.Fatalf("batch: %+v %v", b, err)
	}
	for i, m := range b.messages {
		if m.seq != wb.messages[i].seq || m.text != wb.messages[i].text || !bytes.Equal(m.data, wb.messages[i].data) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	if size := len(appendBatch(nil, &wireBatch{messages: []wireMessage{{data: make([]byte, 100)}}})); size != 13+100+perMessage {
		t.Fatalf("one 100-byte message costs %d bytes, want data+perMessage plus the batch's 13", size)
	}
}

// Whatever arrives, decoding neither panics nor returns slices beyond the input.
func FuzzDecode(f *testing.F) {
	f.Add((&request{op: opSend, id: "0123456789abcdef0123456789abcdef", body: []byte("x")}).append(nil))
	f.Add((&answer{status: 200, body: appendBatch(nil, &wireBatch{messages: []wireMessage{{seq: 1, data: []byte("a")}}})}).append(nil))
	f.Add([]byte{wireVersion, byte(opPollGet)})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRequest(b); err == nil {
			if again, err := decodeRequest(r.append(nil)); err != nil || again.id != r.id || !bytes.Equal(again.body, r.body) {
				t.Fatalf("re-encoding %+v: %+v %v", r, again, err)
			}
		}
		if a, err := decodeAnswer(b); err == nil {
			_, _ = decodeBatch(a.body)
		}
		if wb, err := decodeBatch(b); err == nil {
			again, err := decodeBatch(appendBatch(nil, &wb))
			if err != nil || again.closed != wb.closed || again.code != wb.code || again.reason != wb.reason || len(again.messages) != len(wb.messages) {
				t.Fatalf("batch %+v re-encodes to %+v %v", wb, again, err)
			}
			for i := range wb.messages {
				if !bytes.Equal(again.messages[i].data, wb.messages[i].data) || again.messages[i].seq != wb.messages[i].seq {
					t.Fatalf("message %d changed", i)
				}
			}
		}
	})
}
