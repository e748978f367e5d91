package backend_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/socketdock/socketdock/pkg/backend"
)

// A backend that accepts only POSTs signed with --backend-secret, each only at the URI of
// its own kind of event, and acts on each event once. This is the Go example of
// docs/SECURITY.md; keep the two in step.
func ExampleVerifySignature() {
	secret := []byte("the --backend-secret value")
	var mu sync.Mutex
	acted := map[string]bool{} // event ids; a real backend forgets one after twice the skew

	handler := func(event string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
			if err != nil {
				http.Error(w, "unreadable body", http.StatusBadRequest)
				return
			}
			if err := backend.VerifySignature(secret, event, r.Header.Get, body, 5*time.Minute); err != nil {
				http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
				return
			}
			id := r.Header.Get(backend.HeaderEventID)
			mu.Lock()
			defer mu.Unlock()
			if acted[id] { // a replay, or a POST already acted on: accept, do nothing
				fmt.Fprint(w, "duplicate")
				return
			}
			// ... parse the JSON body and act on it ...
			acted[id] = true // only once acted on: a POST answered 503 comes again, same id
			w.WriteHeader(http.StatusNoContent)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("POST /connect", handler("connect"))
	mux.Handle("POST /message", handler("message"))
	mux.Handle("POST /disconnect", handler("disconnect"))

	// What SocketDock sends, sent again, sent to another URI, and a forgery.
	msg := backend.Signed{
		Timestamp: strconv.FormatInt(time.Now().Unix(), 10),
		Event:     "message",
		EventID:   "0123456789abcdef0123456789abcdef-2",
		Body:      []byte(`{"meta":{"connection_id":"0123456789abcdef0123456789abcdef","type":"text"},"message":"hi"}`),
	}
	send := func(path string, key []byte) {
		req := httptest.NewRequest("POST", path, bytes.NewReader(msg.Body))
		req.Header.Set(backend.HeaderTimestamp, msg.Timestamp)
		req.Header.Set(backend.HeaderEvent, msg.Event)
		req.Header.Set(backend.HeaderEventID, msg.EventID)
		req.Header.Set(backend.HeaderSignature, backend.Sign(key, msg))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(strings.TrimSpace(path + " " + strconv.Itoa(rec.Code) + " " + rec.Body.String()))
	}
	send("/message", secret)
	send("/message", secret)
	send("/connect", secret)
	send("/message", []byte("guess"))
	// Output:
	// /message 204
	// /message 200 duplicate
	// /connect 401 bad signature: signed for another kind of event
	// /message 401 bad signature: signature does not match
}
