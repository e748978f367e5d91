package gateway

import (
	"testing"
	"unsafe"
)

// Every idle WebSocket connection holds one wsConn. It was 176 bytes; the heap rounds
// anything from 97 to 112 up to the next size class, so a field added here costs every
// connection 16 bytes: keep it at 96 (state few connections need goes in wsRare).
func TestWSConnSize(t *testing.T) {
	if s := unsafe.Sizeof(wsConn{}); s > 96 {
		t.Errorf("wsConn is %d bytes, want at most 96", s)
	}
}
