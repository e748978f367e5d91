// Package longpoll is the protocol core of the long-poll transport (CONTRACT §8: polysocket's
// create / send / poll / close with JSON or JSONP answers). It does no I/O; the gateway's
// event loop feeds it parsed requests and writes the bytes it appends.
//
// A request, on the loop (req from wsframe.ParseRequestInPlace):
//
//	if longpoll.IsPoll(req.Path) {
//		route, _, _ := longpoll.ParseRoute(req.Path)
//		n, err := longpoll.BodyLength(&req, cfg.BodyLimit(route, req.Get("content-type")))
//		// ... wait for n body bytes, then:
//		err = params.Parse(&req, body, &cfg) // one Params per loop, reused
//		reply := longpoll.Reply{Callback: params.Callback, Origin: allowedOrigin}
//		if err != nil { out = longpoll.AppendError(out, reply, err) } // JSON, JSONP or text/plain
//	}
//
// then by params.Route: create → AppendCreated; s → the backend, AppendOK(201); c →
// Session.Close and AppendOK(200); OPTIONS (params.Preflight) → AppendPreflight.
//
// A poll (/poll/j) uses the Session of its session id, which is safe for concurrent use:
//
//	ready, displaced := sess.Poll(params.Ack, params.HasAck, waiter)
//	// displaced != nil: answer it now with AppendBatch(&longpoll.Batch{}) ("messages":[]),
//	// not with Take: its client has moved on to this poll
//	// ready: batch := sess.Take(dst); out = longpoll.AppendBatch(out, reply, &batch)
//	// else: hold; waiter.Wake() comes from Send/Close (any goroutine: hop onto the loop,
//	// then Take and answer); when params.TTL runs out, sess.Cancel(waiter) == true means
//	// answer AppendHeartbeat, false means a Wake is already on its way.
//
// The control API's /send and the backend call sess.Send (conntable.Transport's signature
// and errors); a relay-side close calls sess.Close(code, reason).
//
// After Close, the close record follows the last message in an answer; the session is
// Finished once a later poll confirms every message (the gateway then answers 403 and
// forgets it): until then a lost answer is sent again, close record included.
//
// Ownership: every Waiter handed to Poll is answered exactly once, by whoever got it back:
// Poll's displaced result (answer with an empty batch), Wake, or a Cancel that returned true.
package longpoll
