package wsclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A gorilla/websocket server pings each held connection around a data message larger than the
// Idler's read buffer (so the payload is skipped across reads), then closes: every ping gets
// its pong with the same payload, the close is answered, and the Idler counts the connection gone.
func TestIdlerAnswersPingsAndClose(t *testing.T) {
	const conns = 3
	type outcome struct {
		pongs []string
		close int
		err   error
	}
	results := make(chan outcome, conns)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		var o outcome
		pong := make(chan string, 4)
		c.SetPongHandler(func(s string) error { pong <- s; return nil })
		readErr := make(chan error, 1)
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					readErr <- err
					return
				}
			}
		}()
		wait := func() {
			select {
			case s := <-pong:
				o.pongs = append(o.pongs, s)
			case <-time.After(5 * time.Second):
				o.err = errors.New("no pong")
			}
		}
		dl := time.Now().Add(5 * time.Second)
		_ = c.WriteControl(websocket.PingMessage, []byte("first"), dl)
		wait()
		_ = c.WriteMessage(websocket.BinaryMessage, []byte(strings.Repeat("x", 70000)))
		_ = c.WriteMessage(websocket.TextMessage, []byte("short"))
		_ = c.WriteControl(websocket.PingMessage, []byte("second"), dl)
		wait()
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"), dl)
		select {
		case err := <-readErr:
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				o.close = ce.Code
			}
		case <-time.After(5 * time.Second):
		}
		results <- o
	}))
	defer srv.Close()

	d, err := NewIdler()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { d.Run(stop); close(done) }()
	defer func() { close(stop); <-done; d.CloseAll() }()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for i := 0; i < conns; i++ {
		c, err := Dial(context.Background(), addr, Options{ReadBufferSize: 256})
		if err != nil {
			t.Fatal(err)
		}
		fd, pending, err := c.Detach()
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Add(fd, pending); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < conns; i++ {
		o := <-results
		if o.err != nil || strings.Join(o.pongs, ",") != "first,second" || o.close != 4001 {
			t.Errorf("connection %d: pongs %q, close %d, err %v", i, o.pongs, o.close, o.err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.Alive() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if d.Alive() != 0 || d.Pongs() != 2*conns {
		t.Fatalf("alive %d (want 0), pongs %d (want %d)", d.Alive(), d.Pongs(), 2*conns)
	}
}
