package longpoll

import (
	"errors"
	"strconv"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// Error is a request the gateway refuses with a status. Plain errors (a bad or disabled cb)
// are answered text/plain, never JSON or JavaScript (AppendPlain); the others with
// {"ok":false,...} in JSON or JSONP (AppendError).
type Error struct {
	Status int
	Reason string
	Header string // extra response header lines, each ending in \r\n
	Plain  bool
	cause  error
}

func (e *Error) Error() string { return strconv.Itoa(e.Status) + " " + e.Reason }

// Unwrap lets errors.Is(err, conntable.ErrTooBig) see a 413.
func (e *Error) Unwrap() error { return e.cause }

// The refusals Parse and BodyLength return; compare with errors.Is (they are pointers).
var (
	ErrNotFound       = &Error{Status: 404, Reason: "not found"}
	ErrUnknownSession = &Error{Status: 403, Reason: "unknown session"}
	ErrBadCallback    = &Error{Status: 400, Reason: "invalid cb", Plain: true}
	ErrJSONPDisabled  = &Error{Status: 400, Reason: "jsonp is disabled", Plain: true}
	ErrBadQuery       = &Error{Status: 400, Reason: "malformed query or form body"}
	ErrMissingData    = &Error{Status: 400, Reason: "missing d"}
	ErrBadType        = &Error{Status: 400, Reason: "malformed t: want t or b"}
	ErrBadBase64      = &Error{Status: 400, Reason: "d is not base64"}
	ErrNotUTF8        = &Error{Status: 400, Reason: "text is not UTF-8"}
	ErrBadTTL         = &Error{Status: 400, Reason: "malformed ttl"}
	ErrBadAck         = &Error{Status: 400, Reason: "malformed ack"}
	ErrBadLength      = &Error{Status: 400, Reason: "malformed Content-Length"}
	ErrLengthRequired = &Error{Status: 411, Reason: "Content-Length required (no chunked bodies)"}
	ErrTooBig         = &Error{Status: 413, Reason: "message over the size limit", cause: conntable.ErrTooBig}
)

var (
	errMethodCreate = &Error{Status: 405, Reason: "method not allowed", Header: "Allow: GET, POST, OPTIONS\r\n"}
	errMethodPoll   = &Error{Status: 405, Reason: "method not allowed", Header: "Allow: GET, OPTIONS\r\n"}
)

// StatusOf maps an error met while serving a poll route to its answer: this package's
// errors, a wsframe.HTTPError (admission, draining), and conntable's Transport errors.
// Anything else is a 500.
func StatusOf(err error) (status int, reason, header string) {
	for e := err; e != nil; e = errors.Unwrap(e) { // errors.As would allocate
		switch e := e.(type) {
		case *Error:
			return e.Status, e.Reason, e.Header
		case *wsframe.HTTPError:
			return e.Status, e.Reason, e.Header
		}
	}
	switch {
	case errors.Is(err, conntable.ErrTooBig):
		return 413, ErrTooBig.Reason, ""
	case errors.Is(err, conntable.ErrSlowConsumer):
		return 503, err.Error(), "Retry-After: 1\r\n"
	case errors.Is(err, conntable.ErrClosing):
		return 403, "session closed", ""
	}
	return 500, "internal error", ""
}

// asError finds an *Error in err's chain.
func asError(err error) *Error {
	for ; err != nil; err = errors.Unwrap(err) {
		if e, ok := err.(*Error); ok {
			return e
		}
	}
	return nil
}
