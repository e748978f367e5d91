// Package redact takes secrets out of strings before they are logged or put into errors.
package redact

import (
	"net/url"
	"strings"
)

// URI returns s with its userinfo, query and fragment replaced by "redacted", so it can be
// logged or put into an error: http://user:pw@host/p?key=k becomes
// http://redacted@host/p?redacted. The scheme, host, port and path stay, to say which
// backend is meant. A string url.Parse rejects keeps only its scheme: where its userinfo
// ends cannot be told.
func URI(s string) string {
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	if _, err := url.Parse(s); err != nil {
		return scheme + "redacted"
	}
	tail := ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		if i+1 < len(rest) {
			tail = rest[i:i+1] + "redacted"
		} else {
			tail = rest[i:]
		}
		rest = rest[:i]
	}
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority = rest[:i]
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		rest = "redacted" + rest[at:]
	}
	return scheme + rest + tail
}
