package longpoll

import (
	"time"

	"github.com/socketdock/socketdock/pkg/limits"
)

// Defaults of CONTRACT §8 and §6.
const (
	DefaultMaxMessageBytes = limits.MaxMessageSize
	DefaultMaxBatchBytes   = limits.MaxBatchBytes
	DefaultMaxTTL          = 25 * time.Second
)

// Config holds the limits of the poll transport. The zero value of each field means its
// default, so callers set only what they change.
type Config struct {
	MaxMessageBytes  int           // one message, in or out (--max-message-size); 413 beyond
	MaxOutboundBytes int           // queued+unconfirmed message bytes per session (--max-outbound-bytes); default MaxMessageBytes+1024
	MaxBatchBytes    int           // message bytes in one poll answer (--poll-max-batch-bytes)
	MaxTTL           time.Duration // ttl clamp, and the hold of a poll without ttl (--poll-max-ttl)
	NoJSONP          bool          // --poll-jsonp=false: a cb is refused with 400 text/plain
}

func (c *Config) maxMessage() int {
	if c == nil || c.MaxMessageBytes <= 0 {
		return DefaultMaxMessageBytes
	}
	return c.MaxMessageBytes
}

func (c *Config) maxOutbound() int {
	if c == nil || c.MaxOutboundBytes <= 0 {
		return limits.MaxOutboundBytes(c.maxMessage())
	}
	return c.MaxOutboundBytes
}

func (c *Config) maxBatch() int {
	if c == nil || c.MaxBatchBytes <= 0 {
		return DefaultMaxBatchBytes
	}
	return c.MaxBatchBytes
}

func (c *Config) maxTTL() time.Duration {
	if c == nil || c.MaxTTL <= 0 {
		return DefaultMaxTTL
	}
	return c.MaxTTL
}

// smallBodyLimit bounds the form body of create and close (a token or a target URL).
const smallBodyLimit = 64 << 10

// formOverhead is room in a form body for the parameters beside d (cb, t, cache busters).
const formOverhead = 4 << 10

// BodyLimit is the largest request body the gateway should read for route with this
// Content-Type before answering 413 (see BodyLength). A raw /poll/s body is the message
// itself; a form-encoded d may take 4 bytes per message byte (base64, then every character
// percent-encoded), and the message's own limit is applied once it is decoded.
func (c *Config) BodyLimit(route Route, contentType string) int {
	if route != RouteSend {
		return smallBodyLimit
	}
	if bodyKindOf(contentType, 1) == bodyForm {
		return 4*c.maxMessage() + formOverhead
	}
	return c.maxMessage()
}
