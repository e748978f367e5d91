package main

import (
	"context"
	"fmt"
	"time"

	"github.com/socketdock/socketdock/bench/internal/benchkit"
	"github.com/socketdock/socketdock/bench/internal/pollclient"
)

// connectPoll opens n long-poll sessions, each on its own keep-alive connection with one
// poll held on it, as a browser tab holds one. A goroutine per session re-polls when the
// held poll ends (ttl or a message); a session whose connection fails counts as dead.
func (h *holder) connectPoll(ctx context.Context, c *common, n, offset, conc int) {
	benchkit.Bounded(ctx, n, conc, func(i int) {
		conn, err := pollclient.Dial(ctx, c.addr, pollclient.Options{
			LocalIP:        benchkit.SourceIP(c.srcBase, offset+i, c.perIP),
			ReadBufferSize: 512,
			Timeout:        c.timeout,
			Prefix:         h.pollPrefix,
		})
		if err != nil {
			h.errs.add(err)
			return
		}
		_ = conn.NetConn().SetDeadline(time.Now().Add(c.timeout))
		id, err := conn.Create()
		if err == nil {
			err = conn.WritePoll(id, h.pollTTL)
		}
		if err != nil {
			_ = conn.Abort()
			h.errs.add(fmt.Errorf("poll session: %w", err))
			return
		}
		_ = conn.NetConn().SetDeadline(time.Time{})
		h.established.Add(1)
		h.alive.Add(1)
		h.mu.Lock()
		h.conns = append(h.conns, conn)
		h.mu.Unlock()
		go func() {
			defer h.alive.Add(-1)
			for {
				st, err := conn.ReadAnswer()
				if err != nil || st != 200 {
					return
				}
				h.answers.Add(1)
				if conn.WritePoll(id, h.pollTTL) != nil {
					return
				}
			}
		}()
	})
}
