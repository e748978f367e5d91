package wsframe

import "unicode/utf8"

// UTF8 validates a byte stream that arrives in pieces, such as the fragments of a text message.
// A rune split across two pieces is held (at most 3 bytes) until the rest arrives.
// The zero value is ready to use.
type UTF8 struct {
	pending [utf8.UTFMax]byte
	n       uint8
}

// Write reports whether p keeps the stream valid so far.
func (u *UTF8) Write(p []byte) bool {
	if u.n > 0 {
		need := seqLen(u.pending[0]) - int(u.n)
		take := min(need, len(p))
		copy(u.pending[u.n:], p[:take])
		u.n += uint8(take)
		p = p[take:]
		if int(u.n) < seqLen(u.pending[0]) {
			return validPrefix(u.pending[:u.n])
		}
		if !utf8.Valid(u.pending[:u.n]) {
			return false
		}
		u.n = 0
	}
	tail := incompleteTail(p)
	if !utf8.Valid(p[:len(p)-tail]) {
		return false
	}
	if tail > 0 {
		u.n = uint8(copy(u.pending[:], p[len(p)-tail:]))
		return validPrefix(u.pending[:u.n])
	}
	return true
}

// Complete reports whether the stream ended on a rune boundary.
func (u *UTF8) Complete() bool { return u.n == 0 }

// Reset readies u for a new stream.
func (u *UTF8) Reset() { u.n = 0 }

// incompleteTail returns how many bytes at the end of p start a rune that p does not finish.
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if p[i]&0xC0 != 0x80 { // a leading byte
			if l := seqLen(p[i]); l > 1 && len(p)-i < l {
				return len(p) - i
			}
			return 0
		}
	}
	return 0
}

// seqLen is the length of the sequence a leading byte announces (1 for an invalid one,
// which utf8.Valid then rejects).
func seqLen(b byte) int {
	switch {
	case b >= 0xC2 && b <= 0xDF:
		return 2
	case b >= 0xE0 && b <= 0xEF:
		return 3
	case b >= 0xF0 && b <= 0xF4:
		return 4
	}
	return 1
}

// validPrefix reports whether p (shorter than its announced sequence) can still become a valid rune.
func validPrefix(p []byte) bool {
	if seqLen(p[0]) == 1 {
		return false
	}
	if len(p) < 2 {
		return true
	}
	lo, hi := byte(0x80), byte(0xBF)
	switch p[0] {
	case 0xE0:
		lo = 0xA0
	case 0xED:
		hi = 0x9F
	case 0xF0:
		lo = 0x90
	case 0xF4:
		hi = 0x8F
	}
	if p[1] < lo || p[1] > hi {
		return false
	}
	for _, b := range p[2:] {
		if b&0xC0 != 0x80 {
			return false
		}
	}
	return true
}
