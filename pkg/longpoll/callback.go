package longpoll

// ValidCallback reports whether cb may name a JSONP callback: it matches
// ^[A-Za-z_$][0-9A-Za-z_$]{0,63}(\.[A-Za-z_$][0-9A-Za-z_$]{0,63}){0,3}$, checked by hand
// because it runs on every JSONP request. Nothing in that alphabet can end the function
// call or start another statement.
func ValidCallback(cb string) bool {
	const maxSegment, maxDots = 64, 3
	segment, dots := 0, 0 // length of the current dotted segment, dots seen
	for i := 0; i < len(cb); i++ {
		switch c := cb[i]; {
		case c == '.':
			if segment == 0 || dots == maxDots {
				return false
			}
			dots++
			segment = 0
			continue
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_', c == '$':
		case '0' <= c && c <= '9':
			if segment == 0 {
				return false
			}
		default:
			return false
		}
		if segment++; segment > maxSegment {
			return false
		}
	}
	return segment > 0
}
