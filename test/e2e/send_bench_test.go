package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// BenchmarkSend is the /send hot path through a real relay: a control API POST per message to
// gorilla clients that read everything. ns/op is the time until the 200 (one sender), or
// the inverse of throughput (parallel senders spread over 16 clients).
//
//	go test -run '^$' -bench BenchmarkSend -benchtime 3s ./test/e2e/
func BenchmarkSend(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, parallel := range []bool{false, true} {
			name := fmt.Sprintf("%dB", size)
			if parallel {
				name += "-parallel"
			}
			b.Run(name, func(b *testing.B) { benchmarkSend(b, size, parallel) })
		}
	}
}

func benchmarkSend(b *testing.B, size int, parallel bool) {
	r := startRelay(b)
	clients := 1
	if parallel {
		clients = 16
	}
	urls := make([]string, clients)
	for i := range urls {
		c := dial(b, r.WSURL, nil)
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
		// The new connection is the one without an id in urls yet.
		eventually(b, 5*time.Second, "the connection", func() bool { return r.Table.Active() == int64(i+1) })
		r.Table.Range(func(cc *conntable.Conn) bool {
			u := r.Control + "/socket/" + cc.ID + "/send"
			for _, known := range urls[:i] {
				if known == u {
					return true
				}
			}
			urls[i] = u
			return false
		})
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := bytes.Repeat([]byte{'x'}, size)
	send := func(url string) {
		resp, err := client.Post(url, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			b.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Errorf("send: %d", resp.StatusCode)
		}
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	if !parallel {
		for i := 0; i < b.N; i++ {
			send(urls[0])
		}
		return
	}
	var next atomic.Int64
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		url := urls[next.Add(1)%int64(len(urls))]
		for pb.Next() {
			send(url)
		}
	})
	b.StopTimer()
	client.CloseIdleConnections()
}
