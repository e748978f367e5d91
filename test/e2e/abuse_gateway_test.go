//go:build linux

// Linux only: it shares readFrameErr with the dead-peer test.

package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// Adversarial cases of the WebSocket gateway (issue 8): what a client, or a /send racing a
// close, can make the relay queue or write.

// theConn waits until the relay holds exactly one connection and returns its id.
func theConn(t testing.TB, r *testRelay) string {
	t.Helper()
	var id string
	eventually(t, 5*time.Second, "one connection in the table", func() bool {
		n := 0
		r.Table.Range(func(c *conntable.Conn) bool { id = c.ID; n++; return true })
		return n == 1
	})
	return id
}

// controlPost is post for goroutines other than the test's: it reports instead of failing.
func controlPost(client *http.Client, url, contentType string, body []byte) (int, error) {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func echoOnce(t testing.TB, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, got := readMessage(t, c); string(got) != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
}

// Clients that send pings and never read: every pong counts against --max-outbound-bytes, and
// pongs past it are not queued (RFC 6455 §5.5.3 lets a server answer only the latest ping),
// so the relay's memory stays flat however long they go on. A normal client on the same relay
// keeps its echoes. The old code queued every pong: the heap grew by hundreds of MiB.
func TestAbusePingFloodBounded(t *testing.T) {
	const (
		flooders  = 8
		perClient = 48 << 20 // bytes of pings each flooder sends at most
		floodFor  = 3 * time.Second
		bound     = 1 << 20
	)
	r := startRelay(t, "--max-message-size", "524288", "--max-outbound-bytes", fmt.Sprint(bound))
	normal := dial(t, r.WSURL, nil)
	echoOnce(t, normal, "before")

	ping := frame(true, 0x9, bytes.Repeat([]byte{'p'}, 125), true)
	batch := bytes.Repeat(ping, 512)
	conns := make([]*rawConn, flooders)
	for i := range conns {
		conns[i] = dialTinyRcvbuf(t, r.Public)
	}
	before := heapInUse()
	var wg sync.WaitGroup
	sent := make([]int, flooders)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := time.Now().Add(floodFor)
			for sent[i] < perClient && time.Now().Before(stop) {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				n, err := c.Write(batch)
				sent[i] += n
				if err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(floodFor / 3)
	echoOnce(t, normal, "during")
	wg.Wait()
	grown := int64(heapInUse()) - int64(before)
	total := 0
	for _, n := range sent {
		total += n
	}
	t.Logf("%d clients sent %d MiB of pings; relay heap grew %.1f MiB (bound %d KiB each)",
		flooders, total>>20, float64(grown)/(1<<20), bound>>10)
	if grown > 48<<20 {
		t.Fatalf("heap grew %.1f MiB under a ping flood; want it flat (< 48 MiB)", float64(grown)/(1<<20))
	}
	echoOnce(t, normal, "after")

	for _, c := range conns {
		c.Close()
	}
	normal.Close()
	eventually(t, 5*time.Second, "no connection left", func() bool { return r.Table.Active() == 0 })
}

// A /send racing a /disconnect: no data frame ever follows the close frame, every /send
// answered 200 was written before the close frame, and none answered otherwise was written.
func TestAbuseSendRacingDisconnect(t *testing.T) {
	const rounds = 40
	r := startRelay(t)
	client := &http.Client{Timeout: 10 * time.Second}
	big := make([]byte, 4<<20)
	late, status200 := 0, 0

	// play runs one connection: three sends (4 MiB, 1 KiB, 1 KiB) from one goroutine and a
	// disconnect from another after delay (after the sends when delay < 0), with a client
	// that reads every frame. It returns how long the sends took.
	play := func(round int, delay time.Duration) time.Duration {
		c := rawDial(t, r.Public)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		base := r.Control + "/socket/" + theConn(t, r)

		// Each send carries its index in its first bytes.
		type answer struct {
			index  int
			status int
			err    error
		}
		answers := make(chan answer, 4)
		sent := make(chan time.Duration, 1)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			start := time.Now()
			for i := 0; i < 3; i++ {
				body := big
				if i > 0 {
					body = make([]byte, 1024)
				}
				body = append([]byte(nil), body...)
				binary.BigEndian.PutUint32(body, uint32(i+1))
				status, err := controlPost(client, base+"/send", "application/octet-stream", body)
				answers <- answer{i + 1, status, err}
			}
			sent <- time.Since(start)
		}()
		var took time.Duration
		go func() {
			defer wg.Done()
			if delay < 0 {
				took = <-sent
			} else {
				time.Sleep(delay)
			}
			status, err := controlPost(client, base+"/disconnect", "", nil)
			if err != nil || status != 200 {
				t.Errorf("round %d: disconnect: %d %v", round, status, err)
			}
		}()

		// Read every frame: data until the close frame, and nothing after it.
		var received []int
		closed := false
		for {
			fin, op, p, err := readFrameErr(c)
			if err != nil {
				if !closed {
					t.Fatalf("round %d: connection ended without a close frame: %v", round, err)
				}
				break
			}
			switch {
			case op == 0x8 && !closed:
				closed = true
				c.send(t, frame(true, 0x8, p[:min(len(p), 2)], true))
			case op == 0x8:
				t.Fatalf("round %d: a second close frame", round)
			case closed:
				late++
				t.Errorf("round %d: data frame (op %d, %d bytes, send %d) after the close frame", round, op, len(p), binary.BigEndian.Uint32(p))
			case !fin || op != 0x2 || len(p) < 4:
				t.Fatalf("round %d: unexpected frame op %d fin %v len %d", round, op, fin, len(p))
			default:
				received = append(received, int(binary.BigEndian.Uint32(p)))
			}
		}
		wg.Wait()
		close(answers)
		got := map[int]bool{}
		for _, i := range received {
			got[i] = true
		}
		for a := range answers {
			if a.err != nil {
				t.Fatalf("round %d: send %d: %v", round, a.index, a.err)
			}
			switch a.status {
			case 200:
				status200++
				if !got[a.index] {
					t.Errorf("round %d: send %d answered 200 but was not written before the close frame", round, a.index)
				}
			case 410, 404, 503:
				if got[a.index] {
					t.Errorf("round %d: send %d answered %d but was delivered", round, a.index, a.status)
				}
			default:
				t.Errorf("round %d: send %d answered %d", round, a.index, a.status)
			}
		}
		eventually(t, 5*time.Second, "the connection gone", func() bool { return r.Table.Active() == 0 })
		return took
	}

	// Sweep the disconnect across the sends' lifetime, measured undisturbed first (it varies
	// tenfold with -race and the machine's load).
	span := play(-1, -1)
	status200 = 0
	for round := 0; round < rounds; round++ {
		play(round, span*time.Duration(round%20)/20)
	}
	t.Logf("%d rounds (sends take %v): %d sends answered 200, %d data frames after the close frame",
		rounds, span.Round(time.Millisecond), status200, late)
}

// Concurrent sends to a client that reads nothing: the outbound bound holds however they
// interleave, so sends just under the bound are accepted one at a time (the rest 503). The
// sends call the connection's Send, as the control API does, released together so they
// reach the bound check within microseconds of each other; the old check-then-add let two
// through when they met inside it.
func TestAbuseConcurrentSendsBounded(t *testing.T) {
	const (
		rounds  = 50
		senders = 32
		bound   = 8 << 20 // above what the socket buffers take on loopback (~2 MiB, 4 MiB at most)
		size    = bound - 1024
	)
	r := startRelay(t, "--max-message-size", fmt.Sprint(size), "--max-outbound-bytes", fmt.Sprint(bound), "--write-timeout", "30s")
	body := make([]byte, size)
	hist := map[int]int{}
	for round := 0; round < rounds; round++ {
		c := dialTinyRcvbuf(t, r.Public)
		tr := r.Table.Get(theConn(t, r)).Transport
		var ready sync.WaitGroup
		ready.Add(senders)
		start := make(chan struct{})
		results := make(chan error, senders)
		for i := 0; i < senders; i++ {
			go func() {
				ready.Done()
				<-start
				results <- tr.Send(conntable.Binary, body)
			}()
		}
		ready.Wait()
		close(start)
		accepted := 0
		for i := 0; i < senders; i++ {
			switch err := <-results; {
			case err == nil:
				accepted++
			case errors.Is(err, conntable.ErrSlowConsumer):
			default:
				t.Errorf("round %d: send: %v, want nil or ErrSlowConsumer", round, err)
			}
		}
		hist[accepted]++
		c.Close()
		eventually(t, 5*time.Second, "the connection gone", func() bool { return r.Table.Active() == 0 })
	}
	t.Logf("%d rounds of %d concurrent sends of %d MiB against a %d MiB bound: rounds by sends accepted %v",
		rounds, senders, size>>20, bound>>20, hist)
	if len(hist) != 1 || hist[1] != rounds {
		t.Fatalf("more than one send just under the bound accepted at once: %v", hist)
	}
}

// Sends racing the loopback echo of the client's own message, to a client that reads nothing,
// each just under the outbound bound: at most one of them is queued. The old code checked the
// bound in /send against a snapshot of gnet's buffer and reserved afterwards, and the echo
// ignored reserved sends, so a send whose copy was under way and an echo both got through.
func TestAbuseSendsAndEchoBounded(t *testing.T) {
	const (
		rounds  = 30
		senders = 3
		bound   = 8 << 20
		size    = bound - 1024
	)
	r := startRelay(t, "--max-message-size", fmt.Sprint(size), "--max-outbound-bytes", fmt.Sprint(bound), "--write-timeout", "30s", "--loops", "1")
	neighbour := dial(t, r.WSURL, nil)
	echoOnce(t, neighbour, "hello")
	client := &http.Client{Timeout: 10 * time.Second}
	const echoMark = 0xec
	payload := make([]byte, size)
	payload[0] = echoMark
	message := frame(true, 0x2, payload, true)
	over := 0
	for round := 0; round < rounds; round++ {
		c := dialTinyRcvbuf(t, r.Public)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		var id string
		eventually(t, 5*time.Second, "the connection in the table", func() bool {
			r.Table.Range(func(c *conntable.Conn) bool {
				if c.MessagesIn() == 0 && c.MessagesOut() == 0 {
					id = c.ID // the neighbour has exchanged messages by now
				}
				return true
			})
			return id != ""
		})
		url := r.Control + "/socket/" + id + "/send"
		statuses := make([]int, senders)
		var wg sync.WaitGroup
		for i := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := make([]byte, size)
				body[0] = byte(i + 1)
				status, err := controlPost(client, url, "application/octet-stream", body)
				if err != nil {
					t.Errorf("send: %v", err)
				}
				statuses[i] = status
			}()
		}
		time.Sleep(time.Duration(round%20) * 500 * time.Microsecond) // sweep the echo across the sends
		c.send(t, message)
		wg.Wait()
		// The echo is decided in the loop call that counts the message; once a neighbour on
		// the same (only) loop has its own echo, that call is over, and reading cannot make
		// room for the echo any more. A ping behind the message: its pong (or, when the echo
		// did not fit, the close frame before it) ends what was queued.
		conn := r.Table.Get(id)
		eventually(t, 5*time.Second, "the message read", func() bool { return conn.MessagesIn() == 1 })
		echoOnce(t, neighbour, "barrier")
		c.send(t, frame(true, 0x9, []byte("end"), true))
		_ = c.Conn.(*net.TCPConn).SetReadBuffer(1 << 20) // everything is decided: read faster

		var queued []byte // first bytes of the data frames, in order
		for {
			_, op, p, err := readFrameErr(c)
			if err != nil {
				t.Fatalf("round %d: reading: %v", round, err)
			}
			if op == 0x8 || op == 0xa {
				break
			}
			queued = append(queued, p[0])
		}
		accepted := 0
		for i, status := range statuses {
			switch status {
			case 200:
				accepted++
				if !bytes.Contains(queued, []byte{byte(i + 1)}) {
					t.Errorf("round %d: send %d answered 200 but never arrived", round, i+1)
				}
			case 503, 410, 404:
			default:
				t.Errorf("round %d: send answered %d", round, status)
			}
		}
		if len(queued) > 1 {
			over++
			t.Errorf("round %d: %d frames of %d bytes queued against a %d-byte bound (first bytes %x; sends %v)",
				round, len(queued), size, bound, queued, statuses)
		}
		if accepted+bytes.Count(queued, []byte{echoMark}) != len(queued) {
			t.Errorf("round %d: frames %x do not match the sends answered 200 (%v) and the echo", round, queued, statuses)
		}
		c.Close()
		eventually(t, 5*time.Second, "the connection gone", func() bool { return r.Table.Active() == 1 })
	}
	neighbour.Close()
	eventually(t, 5*time.Second, "no connection left", func() bool { return r.Table.Active() == 0 })
	t.Logf("%d rounds of %d sends racing an echo, each %d MiB against a %d MiB bound: %d rounds queued more than one",
		rounds, senders, size>>20, bound>>20, over)
}

// CONTRACT §5: loopback echoes the empty message too, text and binary, with its type.
func TestLoopbackEchoesEmptyMessages(t *testing.T) {
	r := startRelay(t)
	c := dial(t, r.WSURL, nil)
	for _, typ := range []int{websocket.TextMessage, websocket.BinaryMessage} {
		if err := c.WriteMessage(typ, nil); err != nil {
			t.Fatal(err)
		}
		got, p := readMessage(t, c)
		if got != typ || len(p) != 0 {
			t.Fatalf("echo of an empty message of type %d: type %d, %d bytes", typ, got, len(p))
		}
	}
	echoOnce(t, c, "still open")
	c.Close()
	eventually(t, 5*time.Second, "no connection left", func() bool { return r.Table.Active() == 0 })
}
