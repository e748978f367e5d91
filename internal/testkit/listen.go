// Package testkit holds helpers the end-to-end tests and the soak share.
package testkit

import (
	"net"
	"time"
)

// Relisten listens on addr again after a restart, retrying for up to two seconds while the
// previous socket is still being torn down.
func Relisten(addr string) (net.Listener, error) {
	var ln net.Listener
	var err error
	for i := 0; i < 200; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil, err
}
