package longpoll

// JSON strings are measured before they are written: a response's Content-Length precedes
// its body, and measuring (exact for base64, one scan for text) is cheaper than moving a
// batch of up to a MiB to make room for the head.

// uintLen is the number of decimal digits of n.
func uintLen(n uint64) int {
	l := 1
	for n >= 10 {
		n /= 10
		l++
	}
	return l
}

func intLen(n int) int {
	if n < 0 {
		return 1 + uintLen(uint64(-n))
	}
	return uintLen(uint64(n))
}

// base64Len is the length of n bytes in padded standard base64.
func base64Len(n int) int { return (n + 2) / 3 * 4 }

// b64Value maps a base64 character to its 6 bits, 0xff for anything else. Both alphabets
// are read (standard and URL-safe), and a space counts as "+": an unencoded "+" in a query
// string arrives as a space, and base64 has no spaces of its own.
var b64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = byte(i)
	}
	t['-'], t['_'], t[' '] = 62, 63, 62
	return t
}()

// decodeBase64 decodes src into dst (len(dst) >= len(src)*3/4) and returns the decoded
// length. Padding is optional, but if present it must be complete ("QQ==", not "QQ=").
// dst may start at src (it decodes in place): each group is read before it is written over.
func decodeBase64(dst, src []byte) (int, bool) {
	n := len(src)
	if n > 0 && src[n-1] == '=' {
		if n%4 != 0 {
			return 0, false
		}
		n--
		if src[n-1] == '=' {
			n--
		}
	}
	if n%4 == 1 {
		return 0, false
	}
	j := 0
	i := 0
	for ; i+4 <= n; i += 4 {
		a, b, c, d := b64Value[src[i]], b64Value[src[i+1]], b64Value[src[i+2]], b64Value[src[i+3]]
		if (a|b|c|d)&0xc0 != 0 { // 0xff, invalid, has the top bits set
			return 0, false
		}
		v := uint(a)<<18 | uint(b)<<12 | uint(c)<<6 | uint(d)
		dst[j], dst[j+1], dst[j+2] = byte(v>>16), byte(v>>8), byte(v)
		j += 3
	}
	switch n - i {
	case 2:
		a, b := b64Value[src[i]], b64Value[src[i+1]]
		if (a|b)&0xc0 != 0 {
			return 0, false
		}
		dst[j] = a<<2 | b>>4
		j++
	case 3:
		a, b, c := b64Value[src[i]], b64Value[src[i+1]], b64Value[src[i+2]]
		if (a|b|c)&0xc0 != 0 {
			return 0, false
		}
		v := uint(a)<<18 | uint(b)<<12 | uint(c)<<6
		dst[j], dst[j+1] = byte(v>>16), byte(v>>8)
		j += 2
	}
	return j, true
}
