package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// -mode grip: the long-poll API of CONTRACT §8 that sdbench's poll client uses (create,
// send, poll with ttl and ack; JSON only), served behind Pushpin with GRIP. A message sent
// is echoed into its session's queue; a poll answers at once when something waits, else it
// answers Grip-Hold: response on the session's channel (Pushpin holds the client's request,
// the body is the heartbeat answered at Grip-Timeout), and a later send publishes the batch
// to Pushpin's HTTP publish endpoint, which answers the held request with it.
//
// Limit: a publish that reaches Pushpin before it has subscribed the held request to the
// channel is lost, and the poll ends with its timeout heartbeat; the next poll then gets the
// queued message. The closed-loop client (send, then poll) never polls an empty queue, so it
// never meets this; an idle hold never publishes.

type gripMessage struct {
	Seq  int64  `json:"seq"`
	Type string `json:"type"`
	Data string `json:"data"`
}

type gripSession struct {
	mu    sync.Mutex
	seq   int64
	queue []gripMessage
	held  bool
}

type gripServer struct {
	publish string // Pushpin's publish URL
	mu      sync.Mutex
	byID    map[string]*gripSession
	client  *fasthttp.Client
}

func newGripServer(publish string, timeout time.Duration) *gripServer {
	return &gripServer{publish: publish, byID: map[string]*gripSession{},
		client: &fasthttp.Client{ReadTimeout: timeout, WriteTimeout: timeout, MaxConnsPerHost: 256}}
}

func (g *gripServer) session(id string) *gripSession {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.byID[id]
}

func (g *gripServer) handle(rc *fasthttp.RequestCtx) {
	rc.SetContentType("application/json")
	path := string(rc.Path())
	route, id, _ := strings.Cut(strings.TrimPrefix(path, "/poll/"), "/")
	if route == "create" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		g.mu.Lock()
		g.byID[id] = &gripSession{}
		g.mu.Unlock()
		rc.SetBodyString(`{"ok":true,"socket":"` + id + `"}`)
		return
	}
	s := g.session(id)
	if s == nil || (route != "s" && route != "j") {
		rc.SetStatusCode(fasthttp.StatusForbidden)
		rc.SetBodyString(`{"ok":false,"error":"unknown session"}`)
		return
	}
	args := rc.QueryArgs()
	if route == "s" {
		s.mu.Lock()
		s.seq++
		s.queue = append(s.queue, gripMessage{Seq: s.seq, Type: "text", Data: string(args.Peek("d"))})
		var batch []byte
		if s.held {
			s.held = false
			batch = batchJSON(s.queue)
		}
		s.mu.Unlock()
		if batch != nil {
			if err := g.publishBatch(id, batch); err != nil {
				rc.SetStatusCode(fasthttp.StatusBadGateway)
				rc.SetBodyString(`{"ok":false,"error":"publish failed"}`)
				return
			}
		}
		rc.SetStatusCode(fasthttp.StatusCreated)
		rc.SetBodyString(`{"ok":true}`)
		return
	}
	ack, _ := strconv.ParseInt(string(args.Peek("ack")), 10, 64)
	ttl, _ := strconv.Atoi(string(args.Peek("ttl")))
	s.mu.Lock()
	i := 0
	for i < len(s.queue) && s.queue[i].Seq <= ack {
		i++
	}
	s.queue = s.queue[i:]
	if len(s.queue) > 0 {
		s.held = false
		rc.SetBody(batchJSON(s.queue))
		s.mu.Unlock()
		return
	}
	s.held = true
	s.mu.Unlock()
	rc.Response.Header.Set("Grip-Hold", "response")
	rc.Response.Header.Set("Grip-Channel", id)
	rc.Response.Header.Set("Grip-Timeout", strconv.Itoa(max(1, ttl/1000)))
	rc.SetBodyString(`{"ok":true,"messages":[{"type":"heartbeat"}]}`)
}

func batchJSON(q []gripMessage) []byte {
	b, _ := json.Marshal(struct {
		OK       bool          `json:"ok"`
		Messages []gripMessage `json:"messages"`
	}{true, q})
	return b
}

// publishBatch answers the request held on channel id with body, through Pushpin.
func (g *gripServer) publishBatch(id string, body []byte) error {
	type httpResponse struct {
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	item := map[string]any{"items": []map[string]any{{
		"channel": id,
		"formats": map[string]any{"http-response": httpResponse{
			Headers: map[string]string{"Content-Type": "application/json"}, Body: string(body)}},
	}}}
	payload, _ := json.Marshal(item)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(g.publish)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBody(payload)
	if err := g.client.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return &publishError{resp.StatusCode(), bytes.Clone(resp.Body())}
	}
	return nil
}

type publishError struct {
	status int
	body   []byte
}

func (e *publishError) Error() string {
	return "publish: HTTP " + strconv.Itoa(e.status) + ": " + string(e.body)
}
