package upstream

import (
	"encoding/json"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// Close codes across the two hops (CONTRACT §9). 1005, 1006 and 1015 are reports, never sent.

// clientCode is the code the client gets when the upstream closes with code. The decoder has
// already refused every code a server may not send (a protocol error, so 1014).
func clientCode(code int) int {
	if code == conntable.CloseNoStatus { // an empty close frame: nothing went wrong
		return conntable.CloseNormal
	}
	return code
}

// upstreamCode is the code the upstream gets when its client's connection ended with code:
// the same code, 1001 when the client vanished, and an empty close frame (0) when the
// client's close frame had no code either.
func upstreamCode(code int) int {
	switch code {
	case conntable.CloseNoStatus:
		return 0
	case 0, conntable.CloseAbnormal, 1015:
		return conntable.CloseGoingAway
	}
	return code
}

// errorMessage is tremor's error message (--upstream-errors message), sent to the client
// before its 1014.
func errorMessage(why, connectionID string) []byte {
	b, _ := json.Marshal(struct {
		Error        string `json:"error"`
		ConnectionID string `json:"connection_id"`
	}{why, connectionID})
	return b
}
