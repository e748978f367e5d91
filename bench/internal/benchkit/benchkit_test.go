package benchkit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
)

func TestAppendMessageJSON(t *testing.T) {
	var m struct {
		Meta struct {
			Type, Encoding string
		}
		Message string
	}
	raw := []byte{0xff, 0x00, 0xfe}
	b := AppendMessageJSON(nil, "id", "http://x/send", "http://x/disc", true, raw)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	dec, _ := base64.StdEncoding.DecodeString(m.Message)
	if m.Meta.Type != "binary" || m.Meta.Encoding != "base64" || !bytes.Equal(dec, raw) {
		t.Fatalf("got %s", b)
	}
	b = AppendMessageJSON(nil, "id", "s", "d", false, []byte(`{"a":1}`))
	if err := json.Unmarshal(b, &m); err != nil || m.Message != `{"a":1}` || m.Meta.Type != "text" {
		t.Fatalf("got %s (%v)", b, err)
	}
}

func TestSourceIPSpread(t *testing.T) {
	cases := []struct {
		first, i, per int
		want          string
	}{
		{0, 0, 100, "127.0.0.2"},
		{0, 99, 100, "127.0.0.2"},
		{0, 100, 100, "127.0.0.3"},
		{0, 252 * 100, 100, "127.0.0.254"},
		{0, 253 * 100, 100, "127.0.1.1"},
		{3, 0, 1, "127.0.0.5"},
	}
	for _, c := range cases {
		if got := SourceIP(c.first, c.i, c.per).String(); got != c.want {
			t.Errorf("SourceIP(%d,%d,%d) = %s, want %s", c.first, c.i, c.per, got, c.want)
		}
	}
}

func TestProcReadings(t *testing.T) {
	if r, err := RSSBytes(os.Getpid()); err != nil || r <= 0 {
		t.Fatalf("RSS %d %v", r, err)
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestParseResult(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("noise\nRESULT {\"a\":1}\nRESULT {\"a\":2}\n")
	var v struct{ A int }
	if err := ParseResult(b.Bytes(), &v); err != nil || v.A != 2 {
		t.Fatalf("got %+v %v", v, err)
	}
}

func TestKernelReadings(t *testing.T) {
	m, err := MemInfo()
	if err != nil || m["MemAvailable"] <= 0 || m["Slab"] <= 0 {
		t.Fatalf("meminfo %v %v", m["MemAvailable"], err)
	}
	ss, err := TCPSockstat()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ss["inuse"]; !ok {
		t.Fatalf("sockstat %v", ss)
	}
	if os.Geteuid() != 0 {
		t.Skip("slabinfo is root only")
	}
	objs, err := SlabObjects()
	if err != nil || len(objs) == 0 {
		t.Fatalf("slabinfo: %d caches, %v", len(objs), err)
	}
}
