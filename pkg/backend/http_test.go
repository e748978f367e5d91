package backend

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// A URI NewHTTP refuses is named in its error without its userinfo, query or fragment.
func TestNewHTTPErrorsRedactURI(t *testing.T) {
	for _, uri := range []string{
		"ftp://user:password@h/m?api_key=k3y#frag",
		"http://user:password@/m?api_key=k3y",
		"http://user:pass word@h/m?api_key=k3y",
	} {
		_, err := NewHTTP(HTTPOptions{MessageURI: uri})
		if err == nil {
			t.Fatalf("%s accepted", uri)
		}
		for _, secret := range []string{"user", "password", "k3y", "frag"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows %q", err, secret)
			}
		}
	}
}

type nopTransport struct{}

func (nopTransport) Send(conntable.MessageType, []byte) error { return nil }
func (nopTransport) Close(int, string)                        {}
func (nopTransport) Name() string                             { return "nop" }

// The inbound bound counts what is held, as it is held: the message being POSTed too, a
// small message at its JSON size (six times its payload for NUL bytes), a large one at its
// payload size (it is streamed). With 1 MiB and a backend that answers nothing:
func TestInboundBoundCountsWhatIsHeld(t *testing.T) {
	release := make(chan struct{})
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
		<-release
	}))
	defer srv.Close()
	var started []*HTTP
	defer func() {
		close(release)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, b := range started {
			if err := b.Drain(ctx); err != nil {
				t.Error(err)
			}
		}
	}()
	for _, tc := range []struct {
		name     string
		size     int
		accepted int // before the first ErrInboundFull
	}{
		{"60 KiB of NUL: 360 KiB bodies", 60 << 10, 2},        // 720 KiB held; a third would make 1080
		{"100 KiB of NUL: streamed, held raw", 100 << 10, 10}, // 1000 KiB held
		{"2 MiB: one fits when nothing is held", 2 << 20, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewHTTP(HTTPOptions{MessageURI: srv.URL + "/m", MaxQueueBytes: 1 << 20,
				Metrics: metrics.New(func() float64 { return 0 }, func() float64 { return 0 })})
			if err != nil {
				t.Fatal(err)
			}
			started = append(started, b)
			c := &conntable.Conn{ID: testID, Transport: nopTransport{}}
			payload := make([]byte, tc.size)
			n := 0
			for ; n < 100; n++ {
				if _, _, err := b.Message(c, conntable.Text, payload); err != nil {
					if !errors.Is(err, ErrInboundFull) {
						t.Fatal(err)
					}
					break
				}
				if n == 0 { // the first is being POSTed, and still counts
					for got.Load() == 0 {
						time.Sleep(time.Millisecond)
					}
					got.Store(0)
				}
			}
			if n != tc.accepted {
				t.Fatalf("%d accepted before ErrInboundFull, want %d", n, tc.accepted)
			}
		})
	}
}
