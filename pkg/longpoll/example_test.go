package longpoll_test

import (
	"bytes"
	"fmt"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/longpoll"
)

// heldPoll stands for the gateway's held poll: Wake would hop onto its event loop.
type heldPoll struct{ woken chan struct{} }

func (h *heldPoll) Wake() { close(h.woken) }

func body(resp []byte) string { return string(resp[bytes.Index(resp, []byte("\r\n\r\n"))+4:]) }

// A poll is held until a message arrives, answered, and acknowledged by the next poll.
func Example() {
	sess := longpoll.NewSession(nil)
	reply := longpoll.Reply{Callback: "cb"}

	held := &heldPoll{woken: make(chan struct{})}
	ready, _ := sess.Poll(0, false, held) // GET /poll/j/<session>?cb=cb
	fmt.Println("ready:", ready)

	_ = sess.Send(conntable.Text, []byte("hello")) // the control API's /send, on another goroutine
	<-held.woken
	batch := sess.Take(nil)
	fmt.Println(body(longpoll.AppendBatch(nil, reply, &batch)))

	sess.Poll(1, true, nil) // the next poll, ack=1: seq 1 is confirmed
	fmt.Println("buffered:", sess.Buffered())

	sess.Close(1000, "bye")
	ready, _ = sess.Poll(1, true, nil)
	batch = sess.Take(nil)
	fmt.Println(ready, body(longpoll.AppendBatch(nil, longpoll.Reply{}, &batch)))
	// Output:
	// ready: false
	// /**/cb({"ok":true,"messages":[{"seq":1,"type":"text","data":"hello"}]});
	// buffered: 0
	// true {"ok":true,"messages":[{"type":"close","code":1000,"reason":"bye"}]}
}
