// Package longpoll is the protocol core of the long-poll transport (CONTRACT §8, polysocket's
// create / send / poll API with JSON or JSONP answers). It does no I/O: the gateway's event
// loop parses the request head with wsframe.ParseRequestInPlace, reads the body, and calls in:
//
//	if longpoll.IsPoll(req.Path) {
//		n, err := longpoll.BodyLength(&req, cfg.BodyLimit(...))  // before reading a POST body
//		err = params.Parse(&req, body, &cfg)                      // route, session, cb, d/t, ttl, ack, ...
//		// *Error with Plain set (bad or disabled cb): AppendPlain; other errors: AppendError.
//	}
//
// Answers are appended to a []byte as complete HTTP/1.1 responses (AppendOK, AppendCreated,
// AppendError, AppendBatch, AppendHeartbeat, AppendPreflight, AppendPlain); a Reply carries
// the JSONP callback, the CORS origin to echo and the keep-alive choice.
//
// A Session is the outbound side of one poll session, safe for concurrent use: the control
// API's /send (any goroutine) calls Send; a poll calls Poll with its ack and a Waiter, which
// either reports that an answer is ready now or holds the Waiter until Send or Close wakes
// it (Waiter.Wake, called once, outside the lock: hop onto the loop from there). The loop
// then calls Take for the batch and AppendBatch to encode it. Cancel takes a held Waiter back
// when its ttl runs out (answer AppendHeartbeat) unless a Wake is already on its way.
//
// After Close, the close record follows the last message in an answer; the session is
// Finished once a later poll confirms every message (the gateway then answers 403 and
// forgets it): until then a lost answer is sent again, close record included.
//
// Ownership: every Waiter handed to Poll is answered exactly once, by whoever got it back:
// Poll's displaced result (answer with an empty batch), Wake, or a Cancel that returned true.
package longpoll
