package longpoll

import (
	"encoding/base64"
	"strconv"

	"github.com/socketdock/socketdock/internal/jsonstr"

	"github.com/socketdock/socketdock/pkg/wsframe"
)

// Reply says how to answer one request. Build it from Params.Callback, the request's
// Origin once the gateway has checked it against --allowed-origins, and whether the
// connection stays open.
type Reply struct {
	Callback string // JSONP: wrap the body, answer 200, status inside; "" for JSON
	Origin   string // CORS: the allowed Origin to echo; "" for no CORS headers
	Close    bool   // Connection: close (the gateway closes after the write); else keep-alive

	// Credentials adds Access-Control-Allow-Credentials: true, so a page may send cookies
	// with create (its headers reach the backend, as a WebSocket upgrade's do). Set it only
	// when Origin matched an entry of --allowed-origins by name, never for "*" or an empty
	// list: a page from any origin must not make credentialed requests and read the answer.
	Credentials bool
}

// What every answer carries: no caching by anyone, and no content sniffing, so neither a
// JSON body nor a text/plain error can be run as a script by a page that includes it.
const commonHeaders = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"

// X-Accel-Buffering: no keeps nginx from holding a poll answer back.
const pollHeader = "X-Accel-Buffering: no\r\n"

const (
	jsonpPrefix = "/**/" // a comment first: a body read as another type cannot start a tag
	jsonpOpen   = "("
	jsonpClose  = ");"
)

// bodyLen adds the JSONP wrapping to a JSON body's length.
func (r *Reply) bodyLen(jsonLen int) int {
	if r.Callback == "" {
		return jsonLen
	}
	return len(jsonpPrefix) + len(r.Callback) + len(jsonpOpen) + jsonLen + len(jsonpClose)
}

// begin appends the head and, for JSONP, the callback's opening. status is the real one:
// JSONP turns it into 200 (and drops extra, which only a real status can use).
func (r *Reply) begin(dst []byte, status int, poll bool, extra string, jsonLen int) []byte {
	if r.Callback != "" {
		status, extra = 200, ""
	}
	dst = wsframe.AppendStatusLine(dst, status)
	if r.Callback != "" {
		dst = append(dst, "Content-Type: application/javascript; charset=utf-8\r\n"...)
	} else {
		dst = append(dst, "Content-Type: application/json\r\n"...)
	}
	dst = append(dst, commonHeaders...)
	if poll {
		dst = append(dst, pollHeader...)
	}
	dst = r.appendCommon(dst, extra, r.bodyLen(jsonLen))
	if r.Callback != "" {
		dst = append(dst, jsonpPrefix...)
		dst = append(dst, r.Callback...)
		dst = append(dst, jsonpOpen...)
	}
	return dst
}

// end closes the JSONP call.
func (r *Reply) end(dst []byte) []byte {
	if r.Callback != "" {
		dst = append(dst, jsonpClose...)
	}
	return dst
}

// appendCommon appends CORS, Connection, extra, Content-Length and the blank line.
func (r *Reply) appendCommon(dst []byte, extra string, contentLength int) []byte {
	dst = r.appendCORS(dst)
	if r.Close {
		dst = append(dst, "Connection: close\r\n"...)
	} else {
		dst = append(dst, "Connection: keep-alive\r\n"...)
	}
	dst = append(dst, extra...)
	dst = append(dst, "Content-Length: "...)
	dst = strconv.AppendInt(dst, int64(contentLength), 10)
	return append(dst, "\r\n\r\n"...)
}

// appendCORS echoes an allowed Origin. Vary: Origin goes on every answer, since whether the
// Origin is echoed depends on it. An Origin that could split the header is not echoed.
func (r *Reply) appendCORS(dst []byte) []byte {
	dst = append(dst, "Vary: Origin\r\n"...)
	if r.Origin == "" || !headerSafe(r.Origin) {
		return dst
	}
	dst = append(dst, "Access-Control-Allow-Origin: "...)
	dst = append(dst, r.Origin...)
	dst = append(dst, "\r\n"...)
	// Retry-After is not a CORS-safelisted response header: without this a page's fetch
	// sees a 503 but not when to retry.
	dst = append(dst, "Access-Control-Expose-Headers: Retry-After\r\n"...)
	if r.Credentials {
		dst = append(dst, "Access-Control-Allow-Credentials: true\r\n"...)
	}
	return dst
}

// headerSafe reports whether s can be written as a header value as it is: no control
// characters (wsframe splits header lines on CRLF only, so a lone LF can reach us).
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

const okBody = `{"ok":true}`

// AppendOK appends {"ok":true} with status: 201 for an accepted /poll/s, 200 for /poll/c.
func AppendOK(dst []byte, r Reply, status int) []byte {
	dst = r.begin(dst, status, false, "", len(okBody))
	dst = append(dst, okBody...)
	return r.end(dst)
}

// AppendCreated appends the 200 answer to /poll/create.
func AppendCreated(dst []byte, r Reply, session, fqdn string) []byte {
	const head, mid = `{"ok":true,"socket":`, `,"fqdn":`
	n := len(head) + jsonstr.Len(session) + len(mid) + jsonstr.Len(fqdn) + 1
	dst = r.begin(dst, 200, false, "", n)
	dst = append(dst, head...)
	dst = jsonstr.Append(dst, session)
	dst = append(dst, mid...)
	dst = jsonstr.Append(dst, fqdn)
	dst = append(dst, '}')
	return r.end(dst)
}

// AppendFailure appends {"ok":false,"error":reason,"status":status}: with that status, or
// 200 for JSONP. header (extra lines such as Retry-After or Allow, each ending in \r\n) is
// sent only with a real status.
func AppendFailure(dst []byte, r Reply, status int, reason, header string) []byte {
	const head, mid = `{"ok":false,"error":`, `,"status":`
	n := len(head) + jsonstr.Len(reason) + len(mid) + intLen(status) + 1
	dst = r.begin(dst, status, false, header, n)
	dst = append(dst, head...)
	dst = jsonstr.Append(dst, reason)
	dst = append(dst, mid...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, '}')
	return r.end(dst)
}

// AppendError appends the answer for err (see StatusOf): a Plain error as text/plain, with
// its real status and never as JSONP; anything else through AppendFailure.
func AppendError(dst []byte, r Reply, err error) []byte {
	status, reason, header := StatusOf(err)
	if e := asError(err); e != nil && e.Plain {
		return AppendPlain(dst, r, status, header, reason+"\n")
	}
	return AppendFailure(dst, r, status, reason, header)
}

// AppendPlain appends a text/plain answer with a real status: what a bad cb gets, since the
// page that sent it must not run anything we return.
func AppendPlain(dst []byte, r Reply, status int, header, body string) []byte {
	dst = wsframe.AppendStatusLine(dst, status)
	dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\n"...)
	dst = append(dst, commonHeaders...)
	dst = r.appendCommon(dst, header, len(body))
	return append(dst, body...)
}

// AppendPreflight appends the 204 answer to an OPTIONS preflight. requestHeaders is the
// request's Access-Control-Request-Headers, allowed as asked (the Origin is already
// allowed, and create's headers reach the backend, which may want one of them).
func AppendPreflight(dst []byte, r Reply, requestHeaders string) []byte {
	dst = wsframe.AppendStatusLine(dst, 204)
	if r.Origin != "" && headerSafe(r.Origin) {
		dst = append(dst, "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"...)
		if requestHeaders != "" && headerSafe(requestHeaders) {
			dst = append(dst, "Access-Control-Allow-Headers: "...)
			dst = append(dst, requestHeaders...)
			dst = append(dst, "\r\n"...)
		}
		dst = append(dst, "Access-Control-Max-Age: 600\r\n"...)
	}
	return r.appendCommon(dst, "", 0)
}

const heartbeatBody = `{"ok":true,"messages":[{"type":"heartbeat"}]}`

// AppendHeartbeat appends the answer to a poll whose ttl ran out with nothing to send.
func AppendHeartbeat(dst []byte, r Reply) []byte {
	dst = r.begin(dst, 200, true, "", len(heartbeatBody))
	dst = append(dst, heartbeatBody...)
	return r.end(dst)
}

const (
	batchHead   = `{"ok":true,"messages":[`
	batchTail   = `]}`
	seqHead     = `{"seq":`
	textMid     = `,"type":"text","data":`
	binaryMid   = `,"type":"binary","data":"`
	binaryTail  = `"}`
	closeHead   = `{"type":"close","code":`
	closeReason = `,"reason":`
)

// AppendBatch appends the answer to a poll: the batch's messages in order, then its close
// record if it has one. An empty batch is "messages":[] (a poll displaced by a newer one).
func AppendBatch(dst []byte, r Reply, b *Batch) []byte {
	dst = r.begin(dst, 200, true, "", batchLen(b))
	dst = append(dst, batchHead...)
	for i, m := range b.Messages {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, seqHead...)
		dst = strconv.AppendUint(dst, m.Seq, 10)
		if m.Text {
			dst = append(dst, textMid...)
			dst = jsonstr.Append(dst, bytesToString(m.Data))
			dst = append(dst, '}')
		} else {
			dst = append(dst, binaryMid...)
			dst = base64.StdEncoding.AppendEncode(dst, m.Data)
			dst = append(dst, binaryTail...)
		}
	}
	if b.Closed {
		if len(b.Messages) > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, closeHead...)
		dst = strconv.AppendInt(dst, int64(b.Code), 10)
		dst = append(dst, closeReason...)
		dst = jsonstr.Append(dst, b.Reason)
		dst = append(dst, '}')
	}
	dst = append(dst, batchTail...)
	return r.end(dst)
}

// batchLen is the length of the JSON AppendBatch writes for b.
func batchLen(b *Batch) int {
	n := len(batchHead) + len(batchTail)
	for i, m := range b.Messages {
		if i > 0 {
			n++
		}
		n += len(seqHead) + uintLen(m.Seq)
		if m.Text {
			n += len(textMid) + jsonstr.Len(bytesToString(m.Data)) + 1
		} else {
			n += len(binaryMid) + base64Len(len(m.Data)) + len(binaryTail)
		}
	}
	if b.Closed {
		if len(b.Messages) > 0 {
			n++
		}
		n += len(closeHead) + intLen(b.Code) + len(closeReason) + jsonstr.Len(b.Reason) + 1
	}
	return n
}
