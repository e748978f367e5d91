package backend

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers that sign a backend POST when HTTPOptions.Secret is set (docs/SECURITY.md).
const (
	HeaderTimestamp = "X-SocketDock-Timestamp" // unix seconds, decimal
	HeaderSignature = "X-SocketDock-Signature" // "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body))
)

// Errors VerifySignature returns.
var (
	ErrSignatureMissing = errors.New("signature or timestamp missing")
	ErrSignatureInvalid = errors.New("signature does not match")
	ErrTimestampInvalid = errors.New("timestamp is not unix seconds")
	ErrTimestampSkew    = errors.New("timestamp outside the allowed skew")
)

// Sign returns the X-SocketDock-Signature value for a body sent at timestamp.
func Sign(secret []byte, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a signed POST as a Go backend would: the signature header matches
// the HMAC of timestamp + "." + body (constant-time), and the timestamp is within maxSkew of
// now, which bounds how long a captured request can be replayed. maxSkew <= 0 skips the
// time check.
func VerifySignature(secret []byte, timestamp string, body []byte, signature string, maxSkew time.Duration) error {
	return verifyAt(secret, timestamp, body, signature, maxSkew, time.Now())
}

func verifyAt(secret []byte, timestamp string, body []byte, signature string, maxSkew time.Duration, now time.Time) error {
	if timestamp == "" || signature == "" {
		return ErrSignatureMissing
	}
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	if !ok {
		return ErrSignatureInvalid
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || !hmac.Equal(got, mac(secret, timestamp, body)) {
		return ErrSignatureInvalid
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
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
