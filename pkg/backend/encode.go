package backend

import (
	"encoding/base64"
	"hash/maphash"
	"strconv"
	"unicode/utf8"

	"github.com/gobwas/ws"
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
func AppendMessage(dst []byte, endpoint, id string, op ws.OpCode, payload []byte) []byte {
	dst = append(dst, `{"meta":{`...)
	dst = appendMeta(dst, endpoint, id)
	if op == ws.OpText {
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
// with ", ", as HTTP allows, keys in order of first appearance).
func AppendConnect(dst []byte, endpoint, id string, headers [][2]string) []byte {
	dst, _ = appendConnect(dst, endpoint, id, headers)
	return dst
}

// stackHeaders is the largest head linked in arrays on the stack; a bigger one costs one
// allocation.
const stackHeaders = 32

// appendConnect is AppendConnect that also reports how many header names it compared (the
// test's proof that the work is linear in the header count).
func appendConnect(dst []byte, endpoint, id string, headers [][2]string) ([]byte, int) {
	var linkBuf [2 * stackHeaders]int32
	var slotBuf [2 * stackHeaders]int32
	n := len(headers)
	links, slots := linkBuf[:], slotBuf[:]
	if n > stackHeaders {
		size := 2 * stackHeaders
		for size < 2*n {
			size *= 2
		}
		all := make([]int32, 2*n+size)
		links, slots = all[:2*n], all[2*n:]
	}
	next, tail := links[:n], links[n:2*n]
	compares := linkRepeats(headers, next, tail, slots)

	dst = append(dst, `{"meta":{`...)
	dst = appendMeta(dst, endpoint, id)
	dst = append(dst, `,"headers":{`...)
	first := true
	for i, h := range headers {
		if tail[i] < 0 {
			continue // a repeat: written with its name's first appearance
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, h[0])
		dst = append(dst, ':', '"')
		dst = appendEscaped(dst, h[1])
		for j := next[i]; j != 0; j = next[j-1] {
			dst = append(dst, ", "...)
			dst = appendEscaped(dst, headers[j-1][1])
		}
		dst = append(dst, '"')
	}
	return append(dst, "}}}"...), compares
}

// headerSeed keys the header-name hash, so a client cannot choose names that collide.
var headerSeed = maphash.MakeSeed()

// linkRepeats groups headers by name in one pass, with a hash table of each name's first
// appearance (slots: index+1, 0 empty; a power of two at least twice the header count, so
// probes stay short). A first appearance i gets tail[i], the last header of its name so far;
// a repeat gets tail -1 and is chained from the one before it by next (index+1, 0 ends).
// It returns the number of names compared.
func linkRepeats(headers [][2]string, next, tail, slots []int32) (compares int) {
	mask := uint64(len(slots) - 1)
	clear(slots)
	for i, h := range headers {
		next[i] = 0
		for s := maphash.String(headerSeed, h[0]) & mask; ; s = (s + 1) & mask {
			f := slots[s]
			if f == 0 {
				slots[s] = int32(i + 1)
				tail[i] = int32(i)
				break
			}
			compares++
			if first := f - 1; headers[first][0] == h[0] {
				next[tail[first]] = int32(i + 1)
				tail[first] = int32(i)
				tail[i] = -1
				break
			}
		}
	}
	return compares
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
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// appendEscaped appends s escaped for the inside of a JSON string.
func appendEscaped[T string | []byte](dst []byte, s T) []byte {
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
	return append(dst, s[start:]...)
}
