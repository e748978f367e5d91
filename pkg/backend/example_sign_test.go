package backend_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/socketdock/socketdock/pkg/backend"
)

// A backend handler that accepts only POSTs signed with --backend-secret. This is the Go
// example of docs/SECURITY.md; keep the two in step.
func ExampleVerifySignature() {
	secret := []byte("the --backend-secret value")

	handler := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		err = backend.VerifySignature(secret,
			r.Header.Get("X-SocketDock-Timestamp"), body,
			r.Header.Get("X-SocketDock-Signature"), 5*time.Minute)
		if err != nil {
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
		// ... parse the JSON body and act on it ...
		w.WriteHeader(http.StatusNoContent)
	}

	// What SocketDock sends, and a forgery.
	body := `{"meta":{"connection_id":"0123456789abcdef0123456789abcdef","type":"text"},"message":"hi"}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	for _, sig := range []string{backend.Sign(secret, ts, []byte(body)), backend.Sign([]byte("guess"), ts, []byte(body))} {
		req := httptest.NewRequest("POST", "/message", strings.NewReader(body))
		req.Header.Set("X-SocketDock-Timestamp", ts)
		req.Header.Set("X-SocketDock-Signature", sig)
		rec := httptest.NewRecorder()
		handler(rec, req)
		fmt.Println(strings.TrimSpace(strconv.Itoa(rec.Code) + " " + rec.Body.String()))
	}
	// Output:
	// 204
	// 401 bad signature: signature does not match
}
