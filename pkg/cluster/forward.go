package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/valyala/fasthttp"

	"github.com/socketdock/socketdock/pkg/control"
	"github.com/socketdock/socketdock/pkg/gateway"
	"github.com/socketdock/socketdock/pkg/longpoll"
)

// The caller's side: a control call or poll route for an id another instance holds.

// Why a forwarded call got no answer from its owner.
var (
	errUnavailable = errors.New("cluster unavailable: NATS is not connected") // 503: never sent
	errOwnerGone   = errors.New("no instance holds this id")                  // 404 (403 for a poll session)
	errTimeout     = errors.New("the owner instance did not answer in time")  // 504: outcome unknown
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// call sends one request to the instance with tag and waits for its answer. It decides from
// the connection's state before sending: while NATS is away nothing is published (nor
// buffered for later), so a 503 means the call never left.
func (n *Node) call(tag string, op opcode, data []byte, timeout time.Duration) (*nats.Msg, error) {
	if n.nc.Status() != nats.CONNECTED {
		return nil, errUnavailable
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := n.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: n.subject(tag, op), Data: data})
	switch {
	case err == nil:
		return m, nil
	case errors.Is(err, nats.ErrNoResponders):
		return nil, errOwnerGone
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, errTimeout
	}
	n.log.Debug().Err(err).Str("op", op.String()).Msg("call not sent")
	return nil, errUnavailable // reconnecting (no buffer), closed, or the like: not sent
}

// record counts a finished call.
func (n *Node) record(op opcode, start time.Time, err error, status int) {
	result := ""
	switch {
	case errors.Is(err, errOwnerGone):
		result = "no_responders"
	case errors.Is(err, errTimeout):
		result = "timeout"
	case err != nil:
		result = "unavailable"
	default:
		result = strconv.Itoa(status)
	}
	n.results.WithLabelValues(op.String(), result).Inc()
	if err == nil || errors.Is(err, errOwnerGone) {
		n.latency.WithLabelValues(op.String()).Observe(time.Since(start).Seconds())
	}
}

// actBy is the time after which an owner drops the call: a fifth of the timeout before the
// caller gives up, so an answer sent in time has that long to travel back. It reads the
// owner's clock, so instances' clocks must agree to well within that (NTP does).
func (n *Node) actBy(start time.Time) int64 {
	return start.Add(n.opts.Timeout - n.opts.Timeout/5).UnixNano()
}

// Forward implements control.Forwarder.
func (n *Node) Forward(ctx *fasthttp.RequestCtx, op string, id string) {
	r := request{op: opInfo, id: id}
	switch op {
	case control.OpSend:
		r.op = opSend
		r.contentType = ctx.Request.Header.ContentType()
		r.body = ctx.PostBody()
	case control.OpDisconnect:
		r.op = opDisconnect
		r.body = ctx.PostBody()
	}
	start := time.Now()
	r.actBy = n.actBy(start)
	bp := bufPool.Get().(*[]byte)
	data := r.append((*bp)[:0])
	m, err := n.call(id[len(id)-8:], r.op, data, n.opts.Timeout)
	if cap(data) <= 64<<10 {
		*bp = data[:0]
		bufPool.Put(bp)
	}
	var a answer
	if err == nil {
		if a, err = decodeAnswer(m.Data); err != nil {
			n.record(r.op, start, nil, 502)
			plain(ctx, fasthttp.StatusBadGateway, "owner instance sent a malformed answer")
			return
		}
	}
	n.record(r.op, start, err, a.status)
	switch {
	case errors.Is(err, errOwnerGone):
		plain(ctx, fasthttp.StatusNotFound, "unknown connection")
	case errors.Is(err, errTimeout):
		plain(ctx, fasthttp.StatusGatewayTimeout, err.Error())
	case err != nil:
		ctx.Response.Header.Set("Retry-After", "1")
		plain(ctx, fasthttp.StatusServiceUnavailable, err.Error())
	default:
		ctx.SetStatusCode(a.status)
		if len(a.contentType) > 0 {
			ctx.Response.Header.SetContentTypeBytes(a.contentType)
		}
		if len(a.header) > 0 {
			ctx.Response.Header.SetBytesV("Retry-After", a.header)
		}
		ctx.SetBody(a.body)
	}
}

func plain(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(msg)
}

// ForwardPoll implements gateway.PollForwarder. The call is encoded before it returns (Data
// aliases the client's request); the wait runs on a goroutine of its own. A poll is held at
// the owner for its ttl: the owner must start it within the act-by time and answer by its
// ttl, and the caller waits ttl plus --cluster-timeout.
func (n *Node) ForwardPoll(call *gateway.PollCall, done func(gateway.PollResult)) {
	r := request{id: call.Session}
	switch call.Route {
	case longpoll.RouteSend:
		r.op, r.body = opPollSend, call.Data
		if call.Text {
			r.flags |= flagText
		}
	case longpoll.RoutePoll:
		r.op, r.ack, r.ttl = opPollGet, call.Ack, int64(call.TTL)
		if call.HasAck {
			r.flags |= flagHasAck
		}
	default:
		r.op = opPollClose
	}
	start := time.Now()
	r.actBy = n.actBy(start)
	if n.nc.Status() != nats.CONNECTED {
		n.record(r.op, start, errUnavailable, 0)
		done(gateway.PollResult{Err: errPollUnavailable})
		return
	}
	data := r.append(make([]byte, 0, requestFixed+len(r.id)+len(r.body)))
	tag := strings.Clone(r.id[len(r.id)-8:]) // the session id aliases the client's request
	op, route := r.op, call.Route
	timeout := n.opts.Timeout + call.TTL
	go func() {
		m, err := n.call(tag, op, data, timeout)
		var a answer
		if err == nil {
			if a, err = decodeAnswer(m.Data); err != nil {
				n.record(op, start, nil, 502)
				done(gateway.PollResult{Err: errBadAnswer})
				return
			}
		}
		n.record(op, start, err, a.status)
		switch {
		case errors.Is(err, errOwnerGone):
			done(gateway.PollResult{Err: longpoll.ErrUnknownSession})
		case errors.Is(err, errTimeout):
			done(gateway.PollResult{Err: errPollTimeout})
		case err != nil:
			done(gateway.PollResult{Err: errPollUnavailable})
		default:
			done(pollResult(route, &a))
		}
	}()
}

var (
	errPollUnavailable = &longpoll.Error{Status: 503, Reason: errUnavailable.Error(), Header: "Retry-After: 1\r\n"}
	errPollTimeout     = &longpoll.Error{Status: 504, Reason: errTimeout.Error()}
)

// instanceStatus is one instance's share of /status?scope=cluster.
type instanceStatus struct {
	Instance    string            `json:"instance"`
	Uptime      map[string]int64  `json:"uptime"`
	Connections connectionsStatus `json:"connections"`
}

type connectionsStatus struct {
	Active   int64  `json:"active"`
	Lifetime uint64 `json:"lifetime"`
}

func (n *Node) localStatus() instanceStatus {
	up := time.Since(n.opts.Started)
	return instanceStatus{
		Instance:    n.tagText,
		Uptime:      map[string]int64{"ns": up.Nanoseconds(), "seconds": int64(up / time.Second)},
		Connections: connectionsStatus{Active: n.opts.Table.Active(), Lifetime: n.opts.Table.Lifetime()},
	}
}

// answerStatus answers another instance's /status?scope=cluster with this one's figures.
func (n *Node) answerStatus(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	b, _ := json.Marshal(n.localStatus())
	_ = n.nc.Publish(m.Reply, b)
}

// ClusterStatus implements control.Forwarder: the local /status shape with the sums of
// every instance that answered within --cluster-timeout, each instance's own figures, and
// the members heard from that did not answer.
func (n *Node) ClusterStatus(ctx *fasthttp.RequestCtx) {
	self := n.localStatus()
	members := []instanceStatus{self}
	expected := n.liveMembers()
	if n.nc.Status() == nats.CONNECTED {
		members = append(members, n.gather(len(expected))...)
	}
	sum := connectionsStatus{}
	for _, m := range members {
		sum.Active += m.Connections.Active
		sum.Lifetime += m.Connections.Lifetime
		delete(expected, m.Instance)
	}
	missing := make([]string, 0, len(expected))
	for tag := range expected {
		missing = append(missing, tag)
	}
	sort.Strings(missing)
	sort.Slice(members[1:], func(i, j int) bool { return members[1+i].Instance < members[1+j].Instance })
	b, err := json.Marshal(map[string]any{
		"scope":       "cluster",
		"instance":    self.Instance,
		"uptime":      self.Uptime,
		"connections": sum,
		"instances":   map[string]any{"answered": len(members), "missing": missing, "nats_connected": n.Connected()},
		"members":     members,
	})
	if err != nil {
		plain(ctx, fasthttp.StatusInternalServerError, err.Error())
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// gather asks every instance for its figures and collects answers until want arrived or
// --cluster-timeout passed.
func (n *Node) gather(want int) []instanceStatus {
	inbox := n.nc.NewInbox()
	sub, err := n.nc.SubscribeSync(inbox)
	if err != nil {
		return nil
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := n.nc.PublishRequest(n.statusSubject(), inbox, nil); err != nil {
		return nil
	}
	var out []instanceStatus
	seen := map[string]bool{}
	deadline := time.Now().Add(n.opts.Timeout)
	for len(out) < want {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			break
		}
		var st instanceStatus
		if json.Unmarshal(m.Data, &st) == nil && st.Instance != "" && !seen[st.Instance] {
			seen[st.Instance] = true
			out = append(out, st)
		}
	}
	return out
}
