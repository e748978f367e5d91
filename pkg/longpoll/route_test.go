package longpoll

import (
	"errors"
	"testing"
)

const sid = "0123456789abcdef0123456789abcdef"

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path    string
		route   Route
		session string
		err     error
	}{
		{"/ws", RouteNone, "", nil},
		{"/healthz", RouteNone, "", nil},
		{"/polling", RouteNone, "", nil},
		{"/poll", RouteNone, "", ErrNotFound},
		{"/poll/", RouteNone, "", ErrNotFound},
		{"/poll/create", RouteCreate, "", nil},
		{"/poll/create/", RouteNone, "", ErrNotFound},
		{"/poll/s/" + sid, RouteSend, sid, nil},
		{"/poll/j/" + sid, RoutePoll, sid, nil},
		{"/poll/c/" + sid, RouteClose, sid, nil},
		{"/poll/x/" + sid, RouteNone, "", ErrNotFound},
		{"/poll/s/", RouteNone, "", ErrNotFound},
		{"/poll/s", RouteNone, "", ErrNotFound},
		{"/poll/s/" + sid + "/", RouteNone, "", ErrNotFound},
		{"/poll/s/" + sid + "/x", RouteNone, "", ErrNotFound},
		{"/poll/j/0123456789ABCDEF0123456789ABCDEF", RoutePoll, "", ErrUnknownSession}, // upper case is not an id
		{"/poll/j/" + sid[:31], RoutePoll, "", ErrUnknownSession},
		{"/poll/j/" + sid + "0", RoutePoll, "", ErrUnknownSession},
		{"/poll/c/..%2f..%2fetc", RouteClose, "", ErrUnknownSession},
	}
	for _, tt := range tests {
		route, session, err := ParseRoute(tt.path)
		if route != tt.route || session != tt.session || !errors.Is(err, tt.err) {
			t.Errorf("ParseRoute(%q) = %v, %q, %v; want %v, %q, %v", tt.path, route, session, err, tt.route, tt.session, tt.err)
		}
		if IsPoll(tt.path) != (tt.route != RouteNone || tt.err != nil) {
			t.Errorf("IsPoll(%q) = %v", tt.path, IsPoll(tt.path))
		}
	}
}

func TestRouteAllows(t *testing.T) {
	tests := []struct {
		route  Route
		method string
		want   bool
	}{
		{RouteCreate, "GET", true}, {RouteCreate, "POST", true}, {RouteCreate, "OPTIONS", true},
		{RouteSend, "GET", true}, {RouteSend, "POST", true},
		{RoutePoll, "GET", true}, {RoutePoll, "POST", false}, {RoutePoll, "OPTIONS", true},
		{RouteClose, "GET", true}, {RouteClose, "POST", true},
		{RouteSend, "PUT", false}, {RouteSend, "DELETE", false}, {RouteSend, "HEAD", false},
		{RouteSend, "get", false}, {RouteNone, "GET", false},
	}
	for _, tt := range tests {
		if got := tt.route.Allows(tt.method); got != tt.want {
			t.Errorf("%v.Allows(%s) = %v", tt.route, tt.method, got)
		}
	}
}

func TestNewSessionID(t *testing.T) {
	a, b := NewSessionID(), NewSessionID()
	if len(a) != SessionLen || a == b {
		t.Fatalf("ids %q %q", a, b)
	}
	if r, s, err := ParseRoute("/poll/j/" + a); err != nil || r != RoutePoll || s != a {
		t.Fatalf("a fresh id does not route: %v %q %v", r, s, err)
	}
}
