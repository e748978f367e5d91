package backend

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"strings"
	"time"
)

// Headers every backend POST carries (CONTRACT §3): what the event is and its id, the same
// on every attempt of one POST, so a backend can drop one it already acted on.
const (
	HeaderEvent   = "X-SocketDock-Event"    // connect, message or disconnect
	HeaderEventID = "X-SocketDock-Event-Id" // <connection_id>-<n>, n counting the connection's events from 1
)

// Headers that sign a backend POST when HTTPOptions.Secret is set (docs/SECURITY.md).
const (
	HeaderTimestamp = "X-SocketDock-Timestamp" // unix seconds, decimal
	// HeaderSignature is "sha256=" + hex(HMAC-SHA256(secret, timestamp "." event "." event id "." body)).
	HeaderSignature = "X-SocketDock-Signature"
)

// Errors VerifySignature returns.
var (
	ErrSignatureMissing = errors.New("signature, timestamp, event or event id missing")
	ErrSignatureInvalid = errors.New("signature does not match")
	ErrEventMismatch    = errors.New("signed for another kind of event")
	ErrTimestampInvalid = errors.New("timestamp is not unix seconds")
	ErrTimestampSkew    = errors.New("timestamp outside the allowed skew")
)

// Signed is what a signature covers: the signed headers' values and the raw body. The event
// kind and id are signed so that a captured POST can be replayed neither as another kind of
// event (a message body at the connect URI) nor under a fresh id that a backend's duplicate
// check would not catch.
type Signed struct {
	Timestamp string // HeaderTimestamp
	Event     string // HeaderEvent
	EventID   string // HeaderEventID
	Body      []byte
}

// Sign returns the HeaderSignature value for s.
func Sign(secret []byte, s Signed) string {
	return "sha256=" + hex.EncodeToString(mac(secret, s))
}

func mac(secret []byte, s Signed) []byte {
	m := newMAC(secret, s.Timestamp, s.Event, s.EventID)
	m.Write(s.Body)
	return m.Sum(nil)
}

// newMAC returns the HMAC of a signature with everything but the body written.
func newMAC(secret []byte, timestamp, event, eventID string) hash.Hash {
	m := hmac.New(sha256.New, secret)
	prefix := make([]byte, 0, len(timestamp)+len(event)+len(eventID)+3)
	for _, part := range [...]string{timestamp, event, eventID} {
		prefix = append(append(prefix, part...), '.')
	}
	m.Write(prefix)
	return m
}

// VerifySignature checks a signed POST as a Go backend would. header reads the request's
// headers (net/http: r.Header.Get); body is the raw body, before any JSON parsing. It checks
// that the signature matches the HMAC of timestamp, event, event id and body (constant
// time), that the event is the one expected where the POST arrived ("connect", "message" or
// "disconnect"; "" accepts any, for a backend that serves all three at one URI and
// dispatches on HeaderEvent), and that the timestamp is within maxSkew of now (maxSkew <= 0
// skips this). Within the skew a captured POST can still be replayed as it was: drop
// duplicates by HeaderEventID.
func VerifySignature(secret []byte, event string, header func(name string) string, body []byte, maxSkew time.Duration) error {
	return verifyAt(secret, event, header, body, maxSkew, time.Now())
}

func verifyAt(secret []byte, event string, header func(string) string, body []byte, maxSkew time.Duration, now time.Time) error {
	s := Signed{Timestamp: header(HeaderTimestamp), Event: header(HeaderEvent), EventID: header(HeaderEventID), Body: body}
	signature := header(HeaderSignature)
	if s.Timestamp == "" || s.Event == "" || s.EventID == "" || signature == "" {
		return ErrSignatureMissing
	}
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return ErrSignatureInvalid
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || !hmac.Equal(got, mac(secret, s)) {
		return ErrSignatureInvalid
	}
	if event != "" && s.Event != event {
		return ErrEventMismatch
	}
	ts, err := strconv.ParseInt(s.Timestamp, 10, 64)
	if err != nil {
		return ErrTimestampInvalid
	}
	if maxSkew > 0 {
		d := now.Sub(time.Unix(ts, 0))
		if d > maxSkew || d < -maxSkew {
			return ErrTimestampSkew
		}
	}
	return nil
}
