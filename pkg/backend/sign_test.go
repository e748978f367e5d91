package backend

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testEventID = testID + "-2"

func TestSignKnownVector(t *testing.T) {
	got := Sign([]byte("s3cret"), Signed{Timestamp: "1700000000", Event: "message", EventID: testEventID, Body: []byte(`{"a":1}`)})
	want := opensslHMAC(t, "s3cret", `1700000000.message.`+testEventID+`.{"a":1}`)
	if got != "sha256="+want {
		t.Fatalf("Sign = %s, want sha256=%s", got, want)
	}
}

func opensslHMAC(t *testing.T, key, msg string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	cmd := exec.Command("openssl", "dgst", "-sha256", "-hmac", key)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	return f[len(f)-1]
}

// signedHeaders are the headers the relay sends with s, signed with secret.
func signedHeaders(secret []byte, s Signed) http.Header {
	h := http.Header{}
	h.Set(HeaderTimestamp, s.Timestamp)
	h.Set(HeaderEvent, s.Event)
	h.Set(HeaderEventID, s.EventID)
	h.Set(HeaderSignature, Sign(secret, s))
	return h
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"meta":{"connection_id":"x"}}`)
	signed := Signed{Timestamp: ts, Event: "message", EventID: testEventID, Body: body}
	valid := signedHeaders(secret, signed)
	with := func(name, value string) http.Header {
		h := valid.Clone()
		if value == "" {
			h.Del(name)
		} else {
			h.Set(name, value)
		}
		return h
	}
	sig := valid.Get(HeaderSignature)
	cases := []struct {
		name   string
		secret []byte
		event  string // expected where the POST arrived
		header http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", secret, "message", valid, body, now, nil},
		{"any event accepted", secret, "", valid, body, now, nil},
		{"valid within skew", secret, "message", valid, body, now.Add(4 * time.Minute), nil},
		{"message replayed as connect", secret, "connect", valid, body, now, ErrEventMismatch},
		{"message replayed as disconnect", secret, "disconnect", valid, body, now, ErrEventMismatch},
		{"event header altered", secret, "connect", with(HeaderEvent, "connect"), body, now, ErrSignatureInvalid},
		{"event id altered", secret, "message", with(HeaderEventID, testID+"-3"), body, now, ErrSignatureInvalid},
		{"body altered", secret, "message", valid, []byte(`{"meta":{"connection_id":"y"}}`), now, ErrSignatureInvalid},
		{"wrong secret", []byte("other"), "message", valid, body, now, ErrSignatureInvalid},
		{"timestamp altered", secret, "message", with(HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10)), body, now, ErrSignatureInvalid},
		{"no prefix", secret, "message", with(HeaderSignature, strings.TrimPrefix(sig, "sha256=")), body, now, ErrSignatureInvalid},
		{"not hex", secret, "message", with(HeaderSignature, "sha256=zz"), body, now, ErrSignatureInvalid},
		{"truncated", secret, "message", with(HeaderSignature, sig[:len(sig)-2]), body, now, ErrSignatureInvalid},
		{"missing signature", secret, "message", with(HeaderSignature, ""), body, now, ErrSignatureMissing},
		{"missing timestamp", secret, "message", with(HeaderTimestamp, ""), body, now, ErrSignatureMissing},
		{"missing event", secret, "message", with(HeaderEvent, ""), body, now, ErrSignatureMissing},
		{"missing event id", secret, "message", with(HeaderEventID, ""), body, now, ErrSignatureMissing},
		{"replayed late", secret, "message", valid, body, now.Add(6 * time.Minute), ErrTimestampSkew},
		{"from the future", secret, "message", valid, body, now.Add(-6 * time.Minute), ErrTimestampSkew},
		{"timestamp not a number", secret, "message", signedHeaders(secret, Signed{"1e9", "message", testEventID, body}), body, now, ErrTimestampInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyAt(tc.secret, tc.event, tc.header.Get, tc.body, 5*time.Minute, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := VerifySignature(secret, "message", valid.Get, body, 0); err != nil {
		t.Fatalf("maxSkew 0 skips the time check: %v", err)
	}
}

// The Python example in docs/examples/verify_signature.py accepts what Sign produces, only
// as the event it was signed as, rejects a tampered body, and drops a replay by its event id,
// so the docs' second language stays true too.
func TestPythonVerifyExample(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script, _ := filepath.Abs("../../docs/examples/verify_signature.py")
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
	secret := []byte("s3cret")
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body := `{"meta":{"connection_id":"abc"},"message":"hi ✓"}`
	message := Signed{Timestamp: ts, Event: "message", EventID: testID + "-2", Body: []byte(body)}
	next := message
	next.EventID = testID + "-3"
	type request struct {
		Event   string            `json:"event"` // where it arrived
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	}
	req := func(at string, s Signed, body string) request {
		h := map[string]string{}
		for k, v := range signedHeaders(secret, s) {
			h[k] = v[0]
		}
		return request{at, h, body}
	}
	requests := []request{
		req("message", message, body),    // accepted
		req("message", message, body),    // the same POST again: a replay, or a retry of one acted on
		req("connect", next, body),       // a message signed as such, sent to the connect URI
		req("message", next, body+" "),   // body tampered with
		req("message", next, body),       // the connection's next event: accepted
		req("disconnect", message, body), // the first again, at the disconnect URI
	}
	var in bytes.Buffer
	for _, r := range requests {
		line, _ := json.Marshal(r)
		in.Write(append(line, '\n'))
	}
	cmd := exec.Command(py, script, string(secret))
	cmd.Stdin = &in
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	want := "accepted\nduplicate\nrejected\nrejected\naccepted\nrejected\n"
	if string(out) != want {
		t.Fatalf("python verdicts:\n%s\nwant:\n%s", out, want)
	}
}
