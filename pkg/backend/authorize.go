package backend

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// Authorizer is a Backend that decides on a connection before its upgrade completes
// (--connect-mode authorize). The gateway calls Authorize off the event loop while the client
// waits for its 101; c is not yet in the connection table.
type Authorizer interface {
	// Authorize returns the backend's HTTP status for the connection: 2xx accepts. err is
	// set when no status was had (transport failure, ctx ended).
	Authorize(ctx context.Context, c *conntable.Conn) (status int, err error)
}

// Authorize POSTs the connect body once, within ctx's deadline and the per-attempt timeout.
// It is not retried: the client is waiting, and --handshake-timeout bounds the whole wait.
func (b *HTTP) Authorize(ctx context.Context, c *conntable.Conn) (int, error) {
	body := AppendConnect(nil, SubjectOf(b.opts.Endpoint, c), c.Path(), forwardable(c.Headers(), b.opts.ForwardHeaders))
	hc := b.targets[evConnect].client
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(b.opts.ConnectURI)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(body)
	eventID := c.ID + "-1" // the connection's first event: nothing is queued before its upgrade
	b.setEvent(req, evConnect, eventID)
	b.sign(req, evConnect, eventID, body, nil)

	deadline := time.Now().Add(b.opts.Timeout)
	ctxDeadline := false
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline, ctxDeadline = d, true
	}
	start := time.Now()
	err := hc.DoDeadline(req, resp, deadline)
	b.targets[evConnect].latency.Observe(time.Since(start).Seconds())
	if err != nil {
		if errors.Is(err, fasthttp.ErrTimeout) {
			b.m.BackendErrors.WithLabelValues("timeout").Inc()
			if ctxDeadline { // the caller's time ran out, not the backend's per-attempt limit
				return 0, fmt.Errorf("authorize POST %s: %w", b.targets[evConnect].logURI, context.DeadlineExceeded)
			}
		} else {
			b.m.BackendErrors.WithLabelValues("transport").Inc()
		}
		return 0, fmt.Errorf("authorize POST %s: %w", b.targets[evConnect].logURI, err)
	}
	if s := resp.StatusCode(); s < 200 || s >= 300 {
		b.m.BackendErrors.WithLabelValues(statusClass(s)).Inc()
	}
	return resp.StatusCode(), nil
}

// setEvent adds the event kind and id headers, the same on every attempt of one POST.
func (b *HTTP) setEvent(req *fasthttp.Request, kind eventKind, eventID string) {
	req.Header.Set(HeaderEvent, kindNames[kind])
	req.Header.Set(HeaderEventID, eventID)
}

// sign adds the timestamp and HMAC headers when a secret is set, for a body given whole or
// as a stream (rewound after). Each attempt is signed afresh, so a retry after a backoff
// carries a current timestamp (and the same event id).
func (b *HTTP) sign(req *fasthttp.Request, kind eventKind, eventID string, body []byte, stream *messageStream) {
	if len(b.opts.Secret) == 0 {
		return
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := newMAC(b.opts.Secret, ts, kindNames[kind], eventID)
	if stream != nil {
		stream.rewind()
		_, _ = stream.WriteTo(m) // a hash never fails to write
		stream.rewind()
	} else {
		m.Write(body)
	}
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, "sha256="+hex.EncodeToString(m.Sum(nil)))
}

// forwardable returns the headers the connect POST may carry: all of them when allow is nil
// (compat), else only the names listed (lower-case), so cookie and authorization travel only
// when an operator names them.
func forwardable(headers [][2]string, allow []string) [][2]string {
	if allow == nil {
		return headers
	}
	out := make([][2]string, 0, len(headers))
	for _, h := range headers {
		for _, name := range allow {
			if h[0] == name {
				out = append(out, h)
				break
			}
		}
	}
	return out
}
