package benchkit

import (
	"encoding/base64"
	"unicode/utf8"

	"github.com/socketdock/socketdock/internal/jsonstr"
)

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
		dst = jsonstr.Append(dst, msg)
		return append(dst, '}')
	}
	if utf8.Valid(msg) {
		dst = append(dst, `binary"},"message":`...)
		dst = jsonstr.Append(dst, msg)
		return append(dst, '}')
	}
	dst = append(dst, `binary","encoding":"base64"},"message":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, msg)
	return append(dst, `"}`...)
}
