package conntable

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
)

// In a cluster (CONTRACT §10) an id names the instance that holds it, so any instance finds
// the owner without asking the others: the last TagLen hex digits are the owner's tag, the
// first IDLen-TagLen (96 bits) stay random. The table shards on the first digits, which stay
// uniform. What it costs: anyone who sees ids learns which of them share an instance, and an
// id has 96 bits of chance instead of 128 (still far beyond guessing: 2^96 tries per id).
const TagLen = 8

// RandomBits is the chance left in a tagged id.
const RandomBits = 4 * (IDLen - TagLen)

// NewTaggedID returns an id whose first 96 bits are from crypto/rand and whose last 32 bits
// are tag.
func NewTaggedID(tag uint32) string {
	var b [IDLen / 2]byte
	_, _ = rand.Read(b[:IDLen/2-TagLen/2])
	binary.BigEndian.PutUint32(b[IDLen/2-TagLen/2:], tag)
	var h [IDLen]byte
	hex.Encode(h[:], b[:])
	return string(h[:])
}

// TagOf returns the instance tag in id, and false when id has not the shape of an id.
func TagOf(id string) (uint32, bool) {
	if !ValidID(id) {
		return 0, false
	}
	var tag uint32
	for i := IDLen - TagLen; i < IDLen; i++ {
		tag = tag<<4 | uint32(hexVal(id[i]))
	}
	return tag, true
}

// FormatTag is a tag as it appears in ids and subjects: 8 lower-case hex digits.
func FormatTag(tag uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], tag)
	return hex.EncodeToString(b[:])
}
