package gateway

import (
	"testing"
	"unsafe"
)

// Every idle WebSocket connection holds one wsConn. The heap rounds a 176-byte one (its size
// before the fields were packed) and anything from 145 to 160 up to the next size class, so
// a field added here costs every connection 16 bytes or more: keep it at 144.
func TestWSConnSize(t *testing.T) {
	if s := unsafe.Sizeof(wsConn{}); s > 144 {
		t.Errorf("wsConn is %d bytes, want at most 144", s)
	}
}
