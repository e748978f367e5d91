package conntable

import (
	"testing"
	"unsafe"
)

// Every idle connection holds one Conn and its id: 136 bytes (the heap's 144-byte class) and
// a 32-byte string. The request that opened it, needed only until the connect notification,
// now hangs off one pointer, the ended flag is a bit of a counter, and the id's bytes are
// in the record: 128 bytes in one allocation.
func TestConnSize(t *testing.T) {
	if s := unsafe.Sizeof(Conn{}); s > 128 {
		t.Errorf("Conn is %d bytes, want at most 128", s)
	}
	c := NewConn(nil)
	if !ValidID(c.ID) || unsafe.StringData(c.ID) != &c.id[0] {
		t.Errorf("NewConn's id %q is not a valid id held in the record", c.ID)
	}
	tagged := NewConn(func() string { return NewTaggedID(7) })
	if tag, ok := TagOf(tagged.ID); !ok || tag != 7 {
		t.Errorf("NewConn with a tagging newID: id %q", tagged.ID)
	}
	if odd := NewConn(func() string { return "short" }); odd.ID != "short" {
		t.Errorf("an id of another length is kept as it is, got %q", odd.ID)
	}
	var r Conn
	if r.Headers() != nil || c.Path() != "" {
		t.Error("a Conn without a request has headers or a path")
	}
	c = &Conn{Request: &Request{Headers: [][2]string{{"a", "b"}}, Path: "/ws?x=1"}}
	if len(c.Headers()) != 1 || c.Path() != "/ws?x=1" {
		t.Error("the request's headers or path are lost")
	}
}

// The ended flag shares a word with the inbound count: neither disturbs the other.
func TestMarkEndedAndCounts(t *testing.T) {
	c := NewConn(nil)
	c.CountIn()
	c.CountIn()
	c.CountOut()
	if !c.MarkEnded() || c.MarkEnded() {
		t.Fatal("MarkEnded must report true once")
	}
	c.CountIn()
	if c.MessagesIn() != 3 || c.MessagesOut() != 1 {
		t.Fatalf("in %d out %d, want 3 1", c.MessagesIn(), c.MessagesOut())
	}
}
