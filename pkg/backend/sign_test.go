package backend

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSignKnownVector(t *testing.T) {
	got := Sign([]byte("s3cret"), "1700000000", []byte(`{"a":1}`))
	want := opensslHMAC(t, "s3cret", `1700000000.{"a":1}`)
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

func TestVerifySignature(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Unix(1_700_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"meta":{"connection_id":"x"}}`)
	sig := Sign(secret, ts, body)
	cases := []struct {
		name    string
		secret  []byte
		ts, sig string
		body    []byte
		now     time.Time
		want    error
	}{
		{"valid", secret, ts, sig, body, now, nil},
		{"valid within skew", secret, ts, sig, body, now.Add(4 * time.Minute), nil},
		{"body altered", secret, ts, sig, []byte(`{"meta":{"connection_id":"y"}}`), now, ErrSignatureInvalid},
		{"wrong secret", []byte("other"), ts, sig, body, now, ErrSignatureInvalid},
		{"timestamp altered", secret, strconv.FormatInt(now.Unix()+1, 10), sig, body, now, ErrSignatureInvalid},
		{"no prefix", secret, ts, strings.TrimPrefix(sig, "sha256="), body, now, ErrSignatureInvalid},
		{"not hex", secret, ts, "sha256=zz", body, now, ErrSignatureInvalid},
		{"truncated", secret, ts, sig[:len(sig)-2], body, now, ErrSignatureInvalid},
		{"missing signature", secret, ts, "", body, now, ErrSignatureMissing},
		{"missing timestamp", secret, "", sig, body, now, ErrSignatureMissing},
		{"replayed late", secret, ts, sig, body, now.Add(6 * time.Minute), ErrTimestampSkew},
		{"from the future", secret, ts, sig, body, now.Add(-6 * time.Minute), ErrTimestampSkew},
		{"timestamp not a number", secret, "1e9", Sign(secret, "1e9", body), body, now, ErrTimestampInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := verifyAt(tc.secret, tc.ts, tc.body, tc.sig, 5*time.Minute, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if err := VerifySignature(secret, ts, body, sig, 0); err != nil {
		t.Fatalf("maxSkew 0 skips the time check: %v", err)
	}
}

// The Python example in docs/examples/verify_signature.py accepts what Sign produces and
// rejects a tampered body, so the docs' second language stays true too.
func TestPythonVerifyExample(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script, _ := filepath.Abs("../../docs/examples/verify_signature.py")
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	body := `{"meta":{"connection_id":"abc"},"message":"hi ✓"}`
	sig := Sign([]byte("s3cret"), ts, []byte(body))
	run := func(body string) error {
		cmd := exec.Command(py, script, "s3cret", ts, sig)
		cmd.Stdin = strings.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return errors.New(strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run(body); err != nil {
		t.Fatalf("python rejected a valid signature: %v", err)
	}
	if err := run(body + " "); err == nil {
		t.Fatal("python accepted a tampered body")
	}
}
