package longpoll

import (
	"regexp"
	"strings"
	"testing"
)

// The contract's expression, the reference the hand-written matcher is tested against.
var callbackRE = regexp.MustCompile(`^[A-Za-z_$][0-9A-Za-z_$]{0,63}(\.[A-Za-z_$][0-9A-Za-z_$]{0,63}){0,3}$`)

func TestValidCallback(t *testing.T) {
	seg64 := "a" + strings.Repeat("1", 63)
	tests := []struct {
		cb   string
		want bool
	}{
		{"cb", true}, {"_", true}, {"$", true}, {"jQuery1234_5678", true}, {"a.b.c.d", true},
		{"$.x_1.Y$", true}, {seg64, true}, {seg64 + "." + seg64 + "." + seg64 + "." + seg64, true},
		{"", false}, {"1a", false}, {"a.1b", false}, {"a.", false}, {".a", false}, {"a..b", false},
		{"a.b.c.d.e", false}, {seg64 + "1", false}, {"a." + seg64 + "x", false},
		{"alert(1)", false}, {"a;b", false}, {"a b", false}, {"a-b", false}, {"a[0]", false},
		{"a\x00", false}, {"é", false}, {"a\n", false}, {"a/**/", false},
	}
	for _, tt := range tests {
		if got := ValidCallback(tt.cb); got != tt.want {
			t.Errorf("ValidCallback(%q) = %v, want %v", tt.cb, got, tt.want)
		}
		if re := callbackRE.MatchString(tt.cb); re != tt.want {
			t.Errorf("the table disagrees with the contract's expression on %q", tt.cb)
		}
	}
}
