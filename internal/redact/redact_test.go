package redact

import "testing"

func TestURI(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:1/m": "http://h:1/m",
		"http://user:password@h:1/m?api_key=k&x=1#f": "http://redacted@h:1/m?redacted",
		"https://user@h/m":                           "https://redacted@h/m",
		"http://h/m#token":                           "http://h/m#redacted",
		"http://h/m?":                                "http://h/m?",
		"http://u%40x:p@ss@h/m":                      "http://redacted@h/m",
		"ftp://user:password@h":                      "ftp://redacted@h",
		"http://h/users/@me":                         "http://h/users/@me", // an @ in the path is not userinfo
		"http://[::1]:8080/m?k=v":                    "http://[::1]:8080/m?redacted",
		"":                                           "",
		"http://user:password@/m?api_key=k":          "http://redacted@/m?redacted",
		"http://h?k=http://user:password@other/x":    "http://h?redacted",
		"user:password@h/m?k":                        "redacted@h/m?redacted",
		// url.Parse rejects these: only the scheme is left.
		"http://user:pass word@h/m?k=v": "http://redacted",
		"http://user:p/w@h/m":           "http://redacted",
	} {
		if got := URI(in); got != want {
			t.Errorf("URI(%q) = %q, want %q", in, got, want)
		}
	}
}
