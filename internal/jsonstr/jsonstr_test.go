package jsonstr

import (
	"encoding/json"
	"strings"
	"testing"
)

func check(t *testing.T, s string) {
	t.Helper()
	got := Append(nil, s)
	if len(got) != Len(s) || len(got) != Len([]byte(s)) {
		t.Fatalf("%q: Len %d, written %d", s, Len(s), len(got))
	}
	if string(Append(nil, []byte(s))) != string(got) {
		t.Fatalf("%q: string and []byte forms differ", s)
	}
	var back string
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("%q: invalid JSON %q: %v", s, got, err)
	}
	if want := string([]rune(s)); back != want { // each invalid byte becomes U+FFFD, as in encoding/json
		t.Fatalf("%q: decodes to %q, want %q", s, back, want)
	}
	if strings.ContainsRune(string(got), '\u2028') || strings.ContainsRune(string(got), '\u2029') {
		t.Fatalf("%q: raw line separator in %q", s, got)
	}
}

func TestAppend(t *testing.T) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "\x00\x01\x1f\x7f\n\r\t", "é✓😀",
		"\u2028\u2029", "bad \xff utf8 \xe2\x82", strings.Repeat("a\x00", 100)} {
		check(t, s)
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028", "é\x00"} {
		f.Add(s)
	}
	f.Fuzz(check)
}
