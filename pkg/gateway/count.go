package gateway

import (
	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/metrics"
)

// countIn records a complete message from a client, on the loop that owns t.
func countIn(t *metrics.Traffic, typ conntable.MessageType, n int, poll bool) {
	if typ == conntable.Text {
		t.MessagesInText.Add(1)
	} else {
		t.MessagesInBinary.Add(1)
	}
	t.BytesIn.Add(uint64(n))
	if poll {
		t.PollMessagesIn.Add(1)
	}
}

// countOut records a complete message delivered to a client, on the loop that owns t.
func countOut(t *metrics.Traffic, typ conntable.MessageType, n int, poll bool) {
	if typ == conntable.Text {
		t.MessagesOutText.Add(1)
	} else {
		t.MessagesOutBinary.Add(1)
	}
	t.BytesOut.Add(uint64(n))
	if poll {
		t.PollMessagesOut.Add(1)
	}
}
