package backend

import (
	"strings"
	"testing"
)

// A URI NewHTTP refuses is named in its error without its userinfo, query or fragment.
func TestNewHTTPErrorsRedactURI(t *testing.T) {
	for _, uri := range []string{
		"ftp://user:password@h/m?api_key=k3y#frag",
		"http://user:password@/m?api_key=k3y",
		"http://user:pass word@h/m?api_key=k3y",
	} {
		_, err := NewHTTP(HTTPOptions{MessageURI: uri})
		if err == nil {
			t.Fatalf("%s accepted", uri)
		}
		for _, secret := range []string{"user", "password", "k3y", "frag"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows %q", err, secret)
			}
		}
	}
}
