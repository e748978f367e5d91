package longpoll

import (
	"strings"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// Route is one of the four poll routes.
type Route uint8

// The routes of CONTRACT §8.
const (
	RouteNone   Route = iota // not a poll route
	RouteCreate              // /poll/create
	RouteSend                // /poll/s/<session>
	RoutePoll                // /poll/j/<session>
	RouteClose               // /poll/c/<session>
)

func (r Route) String() string {
	switch r {
	case RouteCreate:
		return "create"
	case RouteSend:
		return "send"
	case RoutePoll:
		return "poll"
	case RouteClose:
		return "close"
	}
	return "none"
}

const prefix = "/poll/"

// SessionLen is the length of a session id: 32 lower-case hex, like a connection id (but
// never the same value: the backend must not learn it).
const SessionLen = conntable.IDLen

// NewSessionID returns a fresh session id from crypto/rand.
func NewSessionID() string { return conntable.NewID() }

// IsPoll reports whether the gateway should hand the request path to this package.
func IsPoll(path string) bool { return path == "/poll" || strings.HasPrefix(path, prefix) }

// ParseRoute splits a request path (without its query) into route and session. A path
// outside /poll/ is RouteNone with no error. Under /poll/, an unknown path is ErrNotFound and
// a session that has not the shape of an id is ErrUnknownSession: it cannot exist, so the
// gateway need not look it up.
func ParseRoute(path string) (Route, string, error) {
	if !strings.HasPrefix(path, prefix) {
		if path == "/poll" {
			return RouteNone, "", ErrNotFound
		}
		return RouteNone, "", nil
	}
	rest := path[len(prefix):]
	if rest == "create" {
		return RouteCreate, "", nil
	}
	if len(rest) < 2 || rest[1] != '/' {
		return RouteNone, "", ErrNotFound
	}
	var r Route
	switch rest[0] {
	case 's':
		r = RouteSend
	case 'j':
		r = RoutePoll
	case 'c':
		r = RouteClose
	default:
		return RouteNone, "", ErrNotFound
	}
	session := rest[2:]
	if strings.IndexByte(session, '/') >= 0 || session == "" {
		return RouteNone, "", ErrNotFound
	}
	if !conntable.ValidID(session) {
		return r, "", ErrUnknownSession
	}
	return r, session, nil
}

// Allows reports whether method may be used on r. OPTIONS (a CORS preflight) is allowed
// everywhere; the poll itself is GET only (a held POST would tie up its body for nothing).
func (r Route) Allows(method string) bool {
	switch method {
	case "GET", "OPTIONS":
		return r != RouteNone
	case "POST":
		return r == RouteCreate || r == RouteSend || r == RouteClose
	}
	return false
}

// methodError is the 405 for r, with its Allow header.
func (r Route) methodError() *Error {
	if r == RoutePoll {
		return errMethodPoll
	}
	return errMethodCreate
}
