package longpoll

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/socketdock/socketdock/pkg/conntable"
	"github.com/socketdock/socketdock/pkg/wsframe"
)

// request parses a real request head, as the gateway does.
func request(t testing.TB, method, target, contentType string, body []byte) *wsframe.Request {
	t.Helper()
	head := method + " " + target + " HTTP/1.1\r\nHost: relay.example\r\n"
	if contentType != "" {
		head += "Content-Type: " + contentType + "\r\n"
	}
	if body != nil {
		head += "Content-Length: " + itoa(len(body)) + "\r\n"
	}
	req, n, err := wsframe.ParseRequestInPlace([]byte(head+"\r\n"), 0, 0, nil)
	if err != nil || n == 0 {
		t.Fatalf("head %q: %v", head, err)
	}
	return &req
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(dst []byte, n int) []byte {
	if n >= 10 {
		dst = appendInt(dst, n/10)
	}
	return append(dst, byte('0'+n%10))
}

const (
	send   = "/poll/s/" + sid
	poll   = "/poll/j/" + sid
	closeP = "/poll/c/" + sid
	form   = "application/x-www-form-urlencoded"
)

func TestParseSend(t *testing.T) {
	small := &Config{MaxMessageBytes: 5}
	tests := []struct {
		name, method, target, ctype string
		body                        string
		cfg                         *Config
		data                        string
		text                        bool
		err                         error
	}{
		{"text in query", "GET", send + "?d=hello", "", "", nil, "hello", true, nil},
		{"t=t", "GET", send + "?t=t&d=hello", "", "", nil, "hello", true, nil},
		{"empty t is text", "GET", send + "?t=&d=hi", "", "", nil, "hi", true, nil},
		{"escapes and plus", "GET", send + "?d=a+b%20c%2B%26%3d%E2%9C%93", "", "", nil, "a b c+&=✓", true, nil},
		{"empty message", "GET", send + "?d=", "", "", nil, "", true, nil},
		{"d without =", "GET", send + "?d", "", "", nil, "", true, nil},
		{"first d wins", "GET", send + "?d=one&d=two", "", "", nil, "one", true, nil},
		{"encoded key", "GET", send + "?%64=key", "", "", nil, "key", true, nil},
		{"unknown params ignored", "GET", send + "?_=123&x=%zz&d=ok", "", "", nil, "ok", true, nil},
		{"base64 padded", "GET", send + "?t=b&d=aGVsbG8%3D", "", "", nil, "hello", false, nil},
		{"base64 raw = in query", "GET", send + "?t=b&d=aGVsbG8=", "", "", nil, "hello", false, nil},
		{"base64 unpadded", "GET", send + "?t=b&d=aGVsbG8", "", "", nil, "hello", false, nil},
		{"base64 two pad", "GET", send + "?t=b&d=aGk=", "", "", nil, "hi", false, nil},
		{"base64 plus as space", "GET", send + "?t=b&d=+/8=", "", "", nil, "\xfb\xff", false, nil},
		{"base64 plus encoded", "GET", send + "?t=b&d=%2B%2F8%3D", "", "", nil, "\xfb\xff", false, nil},
		{"base64 url-safe", "GET", send + "?t=b&d=-_8", "", "", nil, "\xfb\xff", false, nil},
		{"base64 empty", "GET", send + "?t=b&d=", "", "", nil, "", false, nil},
		{"base64 binary not utf-8", "GET", send + "?t=b&d=%2F%2F8%3D", "", "", nil, "\xff\xff", false, nil},
		{"bad base64 char", "GET", send + "?t=b&d=aGV*bG8", "", "", nil, "", false, ErrBadBase64},
		{"bad base64 length", "GET", send + "?t=b&d=aGVsb", "", "", nil, "", false, ErrBadBase64},
		{"short padding", "GET", send + "?t=b&d=aG%3D", "", "", nil, "", false, ErrBadBase64},
		{"excess padding", "GET", send + "?t=b&d=aGk%3D%3D", "", "", nil, "", false, ErrBadBase64},
		{"pad inside", "GET", send + "?t=b&d=aG%3D%3DaGk%3D", "", "", nil, "", false, ErrBadBase64},
		{"missing d", "GET", send + "?t=t", "", "", nil, "", false, ErrMissingData},
		{"no query", "GET", send, "", "", nil, "", false, ErrMissingData},
		{"bad t", "GET", send + "?t=x&d=1", "", "", nil, "", false, ErrBadType},
		{"t=text is not t", "GET", send + "?t=text&d=1", "", "", nil, "", false, ErrBadType},
		{"bad escape in d", "GET", send + "?d=%zz", "", "", nil, "", false, ErrBadQuery},
		{"truncated escape", "GET", send + "?d=ab%4", "", "", nil, "", false, ErrBadQuery},
		{"text not utf-8", "GET", send + "?d=%ff", "", "", nil, "", false, ErrNotUTF8},
		{"surrogate not utf-8", "GET", send + "?d=%ed%a0%80", "", "", nil, "", false, ErrNotUTF8},
		{"at the limit", "GET", send + "?d=hello", "", "", small, "hello", true, nil},
		{"over the limit", "GET", send + "?d=hello!", "", "", small, "", false, ErrTooBig},
		{"base64 over the limit", "GET", send + "?t=b&d=aGVsbG8h", "", "", small, "", false, ErrTooBig},

		{"form body", "POST", send, form, "d=hello+world&t=t", nil, "hello world", true, nil},
		{"form body with charset", "POST", send, "Application/X-WWW-Form-Urlencoded; charset=UTF-8", "d=x", nil, "x", true, nil},
		{"form body base64", "POST", send, form, "t=b&d=AAEC%2F%2F8%3D", nil, "\x00\x01\x02\xff\xff", false, nil},
		{"form body wins over query", "POST", send + "?d=query", form, "d=body", nil, "body", true, nil},
		{"t from query, d from body", "POST", send + "?t=b", form, "d=aGk", nil, "hi", false, nil},
		{"empty form body, query d", "POST", send + "?d=q", form, "", nil, "q", true, nil},
		{"form body missing d", "POST", send, form, "t=t", nil, "", false, ErrMissingData},
		{"raw text body", "POST", send + "?d=ignored", "text/plain; charset=utf-8", "héllo {}", nil, "héllo {}", true, nil},
		{"raw TEXT/ body", "POST", send, "TEXT/x-anything", "t", nil, "t", true, nil},
		{"raw text not utf-8", "POST", send, "text/plain", "\xc3", nil, "", false, ErrNotUTF8},
		{"raw binary body", "POST", send, "application/didcomm-encrypted+json", "\x00\xff{}", nil, "\x00\xff{}", false, nil},
		{"raw body without type", "POST", send, "", "\x01\x02", nil, "\x01\x02", false, nil},
		{"no body no type: query", "POST", send + "?d=q", "", "", nil, "q", true, nil},
		{"empty raw body is a message", "POST", send + "?d=q", "application/octet-stream", "", nil, "", false, nil},
		{"raw body over the limit", "POST", send, "application/octet-stream", "123456", small, "", false, ErrTooBig},
		{"raw text at the limit", "POST", send, "text/plain", "12345", small, "12345", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			if tt.method == "POST" {
				body = []byte(tt.body)
			}
			var p Params
			err := p.Parse(request(t, tt.method, tt.target, tt.ctype, body), body, tt.cfg)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if p.Route != RouteSend || p.Session != sid || string(p.Data) != tt.data || p.Text != tt.text {
				t.Fatalf("got %v %q data %q text %v; want data %q text %v", p.Route, p.Session, p.Data, p.Text, tt.data, tt.text)
			}
		})
	}
}

func TestParseTooBigIsConntableError(t *testing.T) {
	var p Params
	err := p.Parse(request(t, "GET", send+"?d=123456", "", nil), nil, &Config{MaxMessageBytes: 5})
	if !errors.Is(err, conntable.ErrTooBig) {
		t.Fatalf("err = %v, want one that is conntable.ErrTooBig", err)
	}
	if status, _, _ := StatusOf(err); status != 413 {
		t.Fatalf("status %d, want 413", status)
	}
}

func TestParsePoll(t *testing.T) {
	cfg := &Config{MaxTTL: 20 * time.Second}
	tests := []struct {
		target string
		ttl    time.Duration
		ack    uint64
		hasAck bool
		err    error
	}{
		{poll, 20 * time.Second, 0, false, nil},
		{poll + "?ttl=5000", 5 * time.Second, 0, false, nil},
		{poll + "?ttl=0", 0, 0, false, nil},
		{poll + "?ttl=1", time.Millisecond, 0, false, nil},
		{poll + "?ttl=20000", 20 * time.Second, 0, false, nil},
		{poll + "?ttl=20001", 20 * time.Second, 0, false, nil},
		{poll + "?ttl=99999999999999999999999999999", 20 * time.Second, 0, false, nil},
		{poll + "?ttl=-5", 0, 0, false, nil},
		{poll + "?ttl=", 20 * time.Second, 0, false, nil},
		{poll + "?ttl=5s", 0, 0, false, ErrBadTTL},
		{poll + "?ttl=1.5", 0, 0, false, ErrBadTTL},
		{poll + "?ttl=-", 0, 0, false, ErrBadTTL},
		{poll + "?ttl=+5", 0, 0, false, ErrBadTTL},
		{poll + "?ack=0", 20 * time.Second, 0, true, nil},
		{poll + "?ack=42&ttl=100", 100 * time.Millisecond, 42, true, nil},
		{poll + "?ack=18446744073709551615", 20 * time.Second, 1<<64 - 1, true, nil},
		{poll + "?ack=18446744073709551616", 0, 0, false, ErrBadAck},
		{poll + "?ack=-1", 0, 0, false, ErrBadAck},
		{poll + "?ack=1e3", 0, 0, false, ErrBadAck},
		{poll + "?ack=", 20 * time.Second, 0, false, nil},
		{poll + "?ttl=%31%30&ack=%34", 10 * time.Millisecond, 4, true, nil},
		{poll + "?ttl=%3", 0, 0, false, ErrBadTTL},
		{poll + "?ack=%", 0, 0, false, ErrBadAck},
		{poll + "?d=%zz&t=nonsense", 20 * time.Second, 0, false, nil}, // send's params are not read
	}
	for _, tt := range tests {
		var p Params
		err := p.Parse(request(t, "GET", tt.target, "", nil), nil, cfg)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: err = %v, want %v", tt.target, err, tt.err)
			continue
		}
		if err == nil && (p.Route != RoutePoll || p.TTL != tt.ttl || p.Ack != tt.ack || p.HasAck != tt.hasAck) {
			t.Errorf("%s: got %v ttl %v ack %d/%v", tt.target, p.Route, p.TTL, p.Ack, p.HasAck)
		}
	}
	var p Params
	if err := p.Parse(request(t, "GET", poll, "", nil), nil, nil); err != nil || p.TTL != DefaultMaxTTL {
		t.Errorf("default ttl %v, %v", p.TTL, err)
	}
}

func TestParseCreate(t *testing.T) {
	var p Params
	target := "/poll/create?target=ws%3A%2F%2Fup.example%2Fx%3Fa%3D1&token=ab+cd&from=polysocketjs-v0.0.1&cb=f"
	if err := p.Parse(request(t, "GET", target, "", nil), nil, nil); err != nil {
		t.Fatal(err)
	}
	if p.Route != RouteCreate || p.Target != "ws://up.example/x?a=1" || p.Token != "ab cd" || p.From != "polysocketjs-v0.0.1" || p.Callback != "f" {
		t.Fatalf("got %+v", p)
	}
	body := []byte("token=t%C3%A9&target=ws://a")
	if err := p.Parse(request(t, "POST", "/poll/create?token=query", form, body), body, nil); err != nil {
		t.Fatal(err)
	}
	if p.Token != "té" || p.Target != "ws://a" {
		t.Fatalf("got %+v", p)
	}
	if err := p.Parse(request(t, "GET", "/poll/create?token=%", "", nil), nil, nil); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("bad escape in token: %v", err)
	}
	// A non-form body on create is not a message: ignored.
	body = []byte("{}")
	if err := p.Parse(request(t, "POST", "/poll/create?token=q", "application/json", body), body, nil); err != nil || p.Token != "q" {
		t.Fatalf("json body on create: %v %+v", err, p)
	}
}

func TestParseCallback(t *testing.T) {
	tests := []struct {
		target string
		cfg    *Config
		cb     string
		err    error
	}{
		{send + "?cb=jQuery123_456&d=x", nil, "jQuery123_456", nil},
		{send + "?cb=%24.cb&d=x", nil, "$.cb", nil},
		{send + "?cb=a.b&cb=evil()&d=x", nil, "a.b", nil},
		{send + "?cb=alert(1)&d=x", nil, "", ErrBadCallback},
		{send + "?cb=alert%281%29&d=x", nil, "", ErrBadCallback},
		{send + "?cb=&d=x", nil, "", ErrBadCallback},
		{send + "?cb=%zz&d=x", nil, "", ErrBadCallback},
		{send + "?cb=bad!", nil, "", ErrBadCallback}, // the cb error comes first: it decides the answer's form
		{send + "?cb=f", nil, "f", ErrMissingData},   // later errors are answered in JSONP
		{send + "?cb=f&d=x", &Config{NoJSONP: true}, "", ErrJSONPDisabled},
		{send + "?d=x", &Config{NoJSONP: true}, "", nil},
		{poll + "?cb=f&ttl=x", nil, "f", ErrBadTTL},
		{closeP + "?cb=f", nil, "f", nil},
		{"/poll/j/NOTANID?cb=f", nil, "f", ErrUnknownSession}, // a session of the wrong shape: JSONP too
		{"/poll/s/NOTANID?cb=bad!", nil, "", ErrBadCallback},
	}
	for _, tt := range tests {
		var p Params
		err := p.Parse(request(t, "GET", tt.target, "", nil), nil, tt.cfg)
		if !errors.Is(err, tt.err) || p.Callback != tt.cb {
			t.Errorf("%s: err %v cb %q; want %v %q", tt.target, err, p.Callback, tt.err, tt.cb)
		}
		var e *Error
		if errors.As(err, &e) && e.Plain != (tt.err == ErrBadCallback || tt.err == ErrJSONPDisabled) {
			t.Errorf("%s: Plain = %v", tt.target, e.Plain)
		}
	}
}

func TestParseMethodsAndRoutes(t *testing.T) {
	tests := []struct {
		method, target string
		status         int
		allow          string
		preflight      bool
	}{
		{"OPTIONS", send, 0, "", true},
		{"OPTIONS", "/poll/create", 0, "", true},
		{"OPTIONS", "/poll/nope", 404, "", false},
		{"POST", poll, 405, "GET, OPTIONS", false},
		{"DELETE", send, 405, "GET, POST, OPTIONS", false},
		{"PUT", "/poll/create", 405, "GET, POST, OPTIONS", false},
		{"GET", "/poll/nope?cb=f", 404, "", false},
		{"GET", "/poll/j/NOTANID?ttl=1", 403, "", false},
		{"GET", "/poll", 404, "", false},
		{"GET", "/ws", 404, "", false}, // the gateway asks IsPoll first; Parse still refuses
	}
	for _, tt := range tests {
		var p Params
		err := p.Parse(request(t, tt.method, tt.target, "", nil), nil, nil)
		status, _, header := 0, "", ""
		if err != nil {
			status, _, header = StatusOf(err)
		}
		if status != tt.status || p.Preflight != tt.preflight || (tt.allow != "" && header != "Allow: "+tt.allow+"\r\n") {
			t.Errorf("%s %s: status %d header %q preflight %v", tt.method, tt.target, status, header, p.Preflight)
		}
	}
}

// A Params reused across requests forgets everything from the one before.
func TestParseReuse(t *testing.T) {
	var p Params
	_ = p.Parse(request(t, "GET", "/poll/create?token=a%20b&cb=f", "", nil), nil, nil)
	if err := p.Parse(request(t, "GET", poll+"?ack=3", "", nil), nil, nil); err != nil {
		t.Fatal(err)
	}
	if p.Token != "" || p.Callback != "" || p.Route != RoutePoll || p.Ack != 3 {
		t.Fatalf("left over: %+v", p)
	}
	// A large decoded message does not stay pinned in the scratch buffer.
	big := []byte("d=" + strings.Repeat("%41", 100<<10))
	if err := p.Parse(request(t, "POST", send, form, big), big, nil); err != nil || len(p.Data) != 100<<10 {
		t.Fatalf("big: %v %d", err, len(p.Data))
	}
	_ = p.Parse(request(t, "GET", send+"?d=%41", "", nil), nil, nil)
	if cap(p.scratch) > keepScratch {
		t.Fatalf("scratch of %d bytes kept", cap(p.scratch))
	}
}

// Values decoded into scratch do not overwrite one another (scratch is sized once).
func TestParseDecodedValuesIntact(t *testing.T) {
	var p Params
	target := "/poll/create?cb=%24f&target=w%73%3A%2F%2Fa&token=" + strings.Repeat("%41", 300) + "&from=%42%43"
	if err := p.Parse(request(t, "GET", target, "", nil), nil, nil); err != nil {
		t.Fatal(err)
	}
	if p.Callback != "$f" || p.Target != "ws://a" || p.Token != strings.Repeat("A", 300) || p.From != "BC" {
		t.Fatalf("got %+v", p)
	}
	b2 := []byte("cb=%24g&t=%62&d=" + strings.Repeat("QUJD", 200))
	if err := p.Parse(request(t, "POST", send, form, b2), b2, nil); err != nil {
		t.Fatal(err)
	}
	if p.Callback != "$g" || string(p.Data) != strings.Repeat("ABC", 200) || p.Text {
		t.Fatalf("got cb %q data %q", p.Callback, p.Data)
	}
}

// The request and body are not modified by Parse (they alias gnet's buffer).
func TestParseLeavesInputAlone(t *testing.T) {
	body := []byte("t=b&d=QUJD&cb=%24f")
	orig := string(body)
	target := send + "?x=%41"
	req := request(t, "POST", target, form, body)
	var p Params
	if err := p.Parse(req, body, nil); err != nil {
		t.Fatal(err)
	}
	if string(body) != orig || req.Target != target || string(p.Data) != "ABC" {
		t.Fatalf("input changed: %q %q", body, req.Target)
	}
}

func TestParseAllocs(t *testing.T) {
	reqs := []*wsframe.Request{
		request(t, "GET", poll+"?ttl=25000&ack=17&cb=jQuery_1&_=1700000000000", "", nil),
		request(t, "GET", send+"?d=hello%20world&cb=%24cb", "", nil),
		request(t, "GET", send+"?t=b&d=aGVsbG8%3D", "", nil),
	}
	var p Params
	for _, req := range reqs {
		_ = p.Parse(req, nil, nil)
		if n := testing.AllocsPerRun(100, func() { _ = p.Parse(req, nil, nil) }); n != 0 {
			t.Errorf("%s: %.0f allocs per Parse", req.Target, n)
		}
	}
}

func TestBodyLength(t *testing.T) {
	mk := func(lines ...string) *wsframe.Request {
		head := "POST " + send + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(lines, "") + "\r\n"
		req, _, err := wsframe.ParseRequestInPlace([]byte(head), 0, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &req
	}
	tests := []struct {
		req  *wsframe.Request
		n    int
		err  error
		name string
	}{
		{mk(), 0, nil, "none"},
		{mk("Content-Length: 0\r\n"), 0, nil, "zero"},
		{mk("Content-Length: 100\r\n"), 100, nil, "at limit"},
		{mk("Content-Length: 101\r\n"), 0, ErrTooBig, "over"},
		{mk("Content-Length: 99999999999999999999999\r\n"), 0, ErrBadLength, "huge"},
		{mk("Content-Length: -1\r\n"), 0, ErrBadLength, "negative"},
		{mk("Content-Length: 1 0\r\n"), 0, ErrBadLength, "space"},
		{mk("Content-Length: \r\n"), 0, ErrBadLength, "empty"},
		{mk("Content-Length: 5\r\n", "Content-Length: 5\r\n"), 5, nil, "same twice"},
		{mk("Content-Length: 5\r\n", "Content-Length: 6\r\n"), 0, ErrBadLength, "conflict"},
		{mk("Transfer-Encoding: chunked\r\n"), 0, ErrLengthRequired, "chunked"},
		{mk("Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n"), 0, ErrLengthRequired, "both"},
	}
	for _, tt := range tests {
		n, err := BodyLength(tt.req, 100)
		if n != tt.n || !errors.Is(err, tt.err) {
			t.Errorf("%s: %d, %v; want %d, %v", tt.name, n, err, tt.n, tt.err)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	cfg := &Config{MaxMessageBytes: 1000}
	tests := []struct {
		route Route
		ctype string
		want  int
	}{
		{RouteSend, "application/octet-stream", 1000},
		{RouteSend, "", 1000},
		{RouteSend, "text/plain", 1000},
		{RouteSend, form + "; charset=utf-8", 4000 + formOverhead},
		{RouteCreate, form, smallBodyLimit},
		{RouteClose, "", smallBodyLimit},
	}
	for _, tt := range tests {
		if got := cfg.BodyLimit(tt.route, tt.ctype); got != tt.want {
			t.Errorf("BodyLimit(%v, %q) = %d, want %d", tt.route, tt.ctype, got, tt.want)
		}
	}
	// The form limit holds the largest message base64-encoded and fully percent-encoded.
	d := strings.Repeat("%2F", (1000+2)/3*4)
	if len("d="+d+"&t=b&cb=f") > cfg.BodyLimit(RouteSend, form) {
		t.Fatal("the form limit refuses a legal message")
	}
}

func TestAppendMetaPath(t *testing.T) {
	tests := []struct{ target, want string }{
		{"/poll/create", "/poll/create"},
		{"/poll/create?", "/poll/create"},
		{"/poll/create?cb=f", "/poll/create"},
		{"/poll/create?token=abc&cb=f&from=x", "/poll/create?token=abc&from=x"},
		{"/poll/create?cb=f&token=a%20b", "/poll/create?token=a%20b"},
		{"/poll/create?cb=f&cb=g&%63b=h&c%62&cbx=1&xcb=2", "/poll/create?cbx=1&xcb=2"},
		{"/poll/create?a=1&&b=2", "/poll/create?a=1&b=2"},
		{"/ws?token=t", "/ws?token=t"},
	}
	for _, tt := range tests {
		if got := string(AppendMetaPath(nil, tt.target)); got != tt.want {
			t.Errorf("AppendMetaPath(%q) = %q, want %q", tt.target, got, tt.want)
		}
	}
}
