package benchkit

import (
	"encoding/base64"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string literal (RFC 8259), valid
// UTF-8 assumed. It escapes what JSON requires and nothing else.
func AppendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendMessageJSON appends the body of a backend message POST exactly as
// CONTRACT §3 describes it: a binary message that is not valid UTF-8 is sent
// base64-encoded with meta.encoding "base64".
func AppendMessageJSON(dst []byte, id, send, disconnect string, binary bool, msg []byte) []byte {
	dst = append(dst, `{"meta":{"connection_id":"`...)
	dst = append(dst, id...)
	dst = append(dst, `","send":"`...)
	dst = append(dst, send...)
	dst = append(dst, `","disconnect":"`...)
	dst = append(dst, disconnect...)
	dst = append(dst, `","type":"`...)
	if !binary {
		dst = append(dst, `text"},"message":`...)
		dst = AppendJSONString(dst, msg)
		return append(dst, '}')
	}
	if utf8.Valid(msg) {
		dst = append(dst, `binary"},"message":`...)
		dst = AppendJSONString(dst, msg)
		return append(dst, '}')
	}
	dst = append(dst, `binary","encoding":"base64"},"message":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, msg)
	return append(dst, `"}`...)
}
