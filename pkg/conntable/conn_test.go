package conntable

import (
	"testing"
	"unsafe"
)

// Every idle connection holds one Conn: at 136 bytes it took the heap's 144-byte class; the
// request that opened it, needed only until the connect notification, now hangs off one
// pointer, and the record fits the 112-byte class.
func TestConnSize(t *testing.T) {
	if s := unsafe.Sizeof(Conn{}); s > 112 {
		t.Errorf("Conn is %d bytes, want at most 112", s)
	}
	var c Conn
	if c.Headers() != nil || c.Path() != "" {
		t.Error("a Conn without a request has headers or a path")
	}
	c.Request = &Request{Headers: [][2]string{{"a", "b"}}, Path: "/ws?x=1"}
	if len(c.Headers()) != 1 || c.Path() != "/ws?x=1" {
		t.Error("the request's headers or path are lost")
	}
}
