package cluster

import (
	"time"

	"github.com/nats-io/nats.go"
	"github.com/valyala/fasthttp"

	"github.com/socketdock/socketdock/pkg/control"
	"github.com/socketdock/socketdock/pkg/gateway"
	"github.com/socketdock/socketdock/pkg/longpoll"
)

// The owner's side: calls other instances forwarded for connections and sessions held here.

// dispatch hands a call to the worker of its id (NATS runs this on the subscription's
// goroutine, one message at a time, in arrival order).
func (n *Node) dispatch(m *nats.Msg) {
	if len(m.Data) >= 2 && opcode(m.Data[1]) == opPing {
		_ = m.Respond(nil) // the tag is held: by us
		return
	}
	w := 0
	if id := requestID(m.Data); len(id) >= 2 {
		w = int(id[0]^id[1]) % len(n.workers) // ids are random at the front
	}
	select {
	case n.workers[w] <- m:
	case <-n.done:
	}
}

// worker serves the calls of its share of ids, in order.
func (n *Node) work(ch chan *nats.Msg) {
	defer n.wg.Done()
	var ctx fasthttp.RequestCtx
	var buf []byte
	for {
		select {
		case m := <-ch:
			buf = n.serve(m, &ctx, buf[:0])
			if cap(buf) > 64<<10 {
				buf = nil
			}
		case <-n.done:
			return
		}
	}
}

// serve answers one call. A call whose caller has already given up (its act-by time passed)
// is dropped unserved: a /send answered 504 must not reach its client later.
func (n *Node) serve(m *nats.Msg, ctx *fasthttp.RequestCtx, buf []byte) []byte {
	r, err := decodeRequest(m.Data)
	if err != nil || m.Reply == "" {
		n.log.Debug().Err(err).Msg("dropped a malformed call")
		return buf
	}
	if r.actBy != 0 && time.Now().UnixNano() > r.actBy {
		n.expired.Inc()
		return buf
	}
	n.served.WithLabelValues(r.op.String()).Inc()
	switch r.op {
	case opSend, opDisconnect, opInfo:
		return n.serveControl(m, &r, ctx, buf)
	case opPollSend, opPollGet, opPollClose:
		n.servePoll(m.Reply, &r)
	}
	return buf
}

func (n *Node) serveControl(m *nats.Msg, r *request, ctx *fasthttp.RequestCtx, buf []byte) []byte {
	ctx.Request.Reset()
	ctx.Response.Reset()
	op := control.OpInfo
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	switch r.op {
	case opSend:
		op = control.OpSend
	case opDisconnect:
		op = control.OpDisconnect
	}
	if r.op != opInfo {
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		if len(r.contentType) > 0 {
			ctx.Request.Header.SetContentTypeBytes(r.contentType)
		}
		ctx.Request.SetBodyRaw(r.body) // the control API copies what it keeps
	}
	n.control.ServeLocal(ctx, op, r.id)
	a := answer{
		status:      ctx.Response.StatusCode(),
		contentType: ctx.Response.Header.ContentType(),
		header:      ctx.Response.Header.Peek("Retry-After"),
		body:        ctx.Response.Body(),
	}
	buf = a.append(buf)
	_ = n.nc.Publish(m.Reply, buf)
	return buf
}

// servePoll serves a poll route; a held poll answers later, from whichever goroutine
// releases it.
func (n *Node) servePoll(reply string, r *request) {
	call := gateway.PollCall{Session: r.id, Data: r.body, Text: r.flags&flagText != 0,
		Ack: r.ack, HasAck: r.flags&flagHasAck != 0, TTL: time.Duration(r.ttl)}
	switch r.op {
	case opPollSend:
		call.Route = longpoll.RouteSend
	case opPollGet:
		call.Route = longpoll.RoutePoll
	default:
		call.Route = longpoll.RouteClose
	}
	budget := int(n.nc.MaxPayload()) - FramingOverhead
	n.polls.ServeRemotePoll(&call, budget, perMessage, func(res gateway.PollResult) {
		_ = n.nc.Publish(reply, encodePollResult(call.Route, &res))
	})
}

// encodePollResult turns the owner's outcome into an answer envelope.
func encodePollResult(route longpoll.Route, res *gateway.PollResult) []byte {
	a := answer{status: 200}
	if route == longpoll.RouteSend {
		a.status = 201
	}
	switch {
	case res.Err != nil:
		status, reason, header := longpoll.StatusOf(res.Err)
		a.status, a.header, a.body = status, []byte(header), []byte(reason)
		return a.append(nil)
	case res.Heartbeat:
		a.heartbeat = true
	case route == longpoll.RoutePoll:
		b := &res.Batch
		wb := wireBatch{closed: b.Closed, code: b.Code, reason: b.Reason, redelivered: b.Redelivered,
			messages: make([]wireMessage, len(b.Messages))}
		size := 0
		for i, m := range b.Messages {
			wb.messages[i] = wireMessage{seq: m.Seq, text: m.Text, data: m.Data}
			size += len(m.Data) + perMessage
		}
		return appendBatch(a.append(make([]byte, 0, answerFixed+len(b.Reason)+size+64)), &wb)
	}
	return a.append(nil)
}

// pollResult turns an answer envelope back into the owner's outcome.
func pollResult(route longpoll.Route, a *answer) gateway.PollResult {
	if a.status >= 300 {
		return gateway.PollResult{Err: &longpoll.Error{Status: a.status, Reason: string(a.body), Header: safeHeader(a.header)}}
	}
	if route != longpoll.RoutePoll {
		return gateway.PollResult{}
	}
	if a.heartbeat {
		return gateway.PollResult{Heartbeat: true}
	}
	wb, err := decodeBatch(a.body)
	if err != nil {
		return gateway.PollResult{Err: errBadAnswer}
	}
	b := longpoll.Batch{Closed: wb.closed, Code: wb.code, Reason: wb.reason, Redelivered: wb.redelivered,
		Messages: make([]longpoll.Message, len(wb.messages))}
	for i, m := range wb.messages {
		b.Messages[i] = longpoll.Message{Seq: m.seq, Text: m.text, Data: m.data}
	}
	return gateway.PollResult{Batch: b}
}

// safeHeader keeps only a Retry-After line from an owner's extra header lines.
func safeHeader(h []byte) string {
	if string(h) == "Retry-After: 1\r\n" {
		return "Retry-After: 1\r\n"
	}
	return ""
}

var errBadAnswer = &longpoll.Error{Status: 502, Reason: "owner instance sent a malformed answer"}
