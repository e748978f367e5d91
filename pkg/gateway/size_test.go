package gateway

import (
	"testing"
	"unsafe"
)

// Every idle WebSocket connection holds one wsConn. It was 176 bytes; the heap rounds
// anything from 113 to 128 up to the next size class, so a field added here costs every
// connection 16 bytes or more: keep it at 112 (state few connections need goes in wsRare).
func TestWSConnSize(t *testing.T) {
	if s := unsafe.Sizeof(wsConn{}); s > 112 {
		t.Errorf("wsConn is %d bytes, want at most 112", s)
	}
}
