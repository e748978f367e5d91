package backend

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"

	"github.com/socketdock/socketdock/pkg/conntable"
)

// The JSON bodies of CONTRACT §3, appended by hand: one allocation-free pass per message.

// appendMeta appends `"connection_id":..,"send":..,"disconnect":..` (no braces).
func appendMeta(dst []byte, endpoint, id string) []byte {
	dst = append(dst, `"connection_id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","send":`...)
	dst = appendCallback(dst, endpoint, id, "send")
	dst = append(dst, `,"disconnect":`...)
	return appendCallback(dst, endpoint, id, "disconnect")
}

func appendCallback(dst []byte, endpoint, id, verb string) []byte {
	dst = appendString(dst, endpoint)
	dst = dst[:len(dst)-1] // reopen the string to add the path
	dst = append(dst, "/socket/"...)
	dst = append(dst, id...)
	dst = append(dst, '/')
	dst = append(dst, verb...)
	return append(dst, '"')
}

// AppendMessage appends the message POST body. Text, and binary that is valid UTF-8, travel
// as a JSON string; other binary travels base64-encoded with meta.encoding "base64".
func AppendMessage(dst []byte, endpoint, id string, op conntable.MessageType, payload []byte) []byte {
	dst = append(dst, `{"meta":{`...)
	dst = appendMeta(dst, endpoint, id)
	if op == conntable.Text {
		dst = append(dst, `,"type":"text"},"message":`...)
		return append(appendString(dst, payload), '}')
	}
	if utf8.Valid(payload) {
		dst = append(dst, `,"type":"binary"},"message":`...)
		return append(appendString(dst, payload), '}')
	}
	dst = append(dst, `,"type":"binary","encoding":"base64"},"message":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, payload)
	return append(dst, `"}`...)
}

// AppendConnect appends the connect POST body, headers included (repeated names joined
// with ", ", as HTTP allows).
func AppendConnect(dst []byte, endpoint, id string, headers [][2]string) []byte {
	dst = append(dst, `{"meta":{`...)
	dst = appendMeta(dst, endpoint, id)
	dst = append(dst, `,"headers":{`...)
	first := true
	for i, h := range headers {
		if seenBefore(headers[:i], h[0]) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, h[0])
		dst = append(dst, ':')
		value := h[1]
		for _, later := range headers[i+1:] {
			if later[0] == h[0] {
				value += ", " + later[1]
			}
		}
		dst = appendString(dst, value)
	}
	return append(dst, "}}}"...)
}

func seenBefore(headers [][2]string, name string) bool {
	for _, h := range headers {
		if h[0] == name {
			return true
		}
	}
	return false
}

// AppendDisconnect appends the disconnect POST body.
func AppendDisconnect(dst []byte, id string, code int, reason string) []byte {
	dst = append(dst, `{"connection_id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","code":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"reason":`...)
	return append(appendString(dst, reason), '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 (possible only in header values)
// becomes U+FFFD, as encoding/json does.
func appendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
