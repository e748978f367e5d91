package conntable

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

func TestTableAddGetRemoveCounts(t *testing.T) {
	tb := New()
	c := &Conn{ID: NewID()}
	tb.Add(c)
	if tb.Get(c.ID) != c || tb.Active() != 1 || tb.Lifetime() != 1 {
		t.Fatal("added connection not found or not counted")
	}
	if tb.Get("zz"+c.ID[2:]) != nil || tb.Get("") != nil {
		t.Fatal("malformed ids must miss")
	}
	if !tb.Remove(c.ID) || tb.Remove(c.ID) || tb.Active() != 0 || tb.Lifetime() != 1 {
		t.Fatal("remove or counts wrong")
	}
	seen := 0
	for i := 0; i < 1000; i++ {
		tb.Add(&Conn{ID: NewID()})
	}
	tb.Range(func(*Conn) bool { seen++; return true })
	if seen != 1000 {
		t.Fatalf("Range saw %d of 1000", seen)
	}
}

// The control API's access pattern: many goroutines looking up random live ids while the
// event loops add and remove. Compared against a sync.Map and one RWMutex-guarded map.
type lookupTable interface {
	add(*Conn)
	get(string) *Conn
}

type sharded struct{ *Table }

func (s sharded) add(c *Conn)         { s.Add(c) }
func (s sharded) get(id string) *Conn { return s.Get(id) }

type syncMap struct{ m sync.Map }

func (s *syncMap) add(c *Conn) { s.m.Store(c.ID, c) }
func (s *syncMap) get(id string) *Conn {
	v, _ := s.m.Load(id)
	c, _ := v.(*Conn)
	return c
}

type mutexMap struct {
	mu sync.RWMutex
	m  map[string]*Conn
}

func (s *mutexMap) add(c *Conn) { s.mu.Lock(); s.m[c.ID] = c; s.mu.Unlock() }
func (s *mutexMap) get(id string) *Conn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[id]
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = NewID()
		}
		for _, impl := range []struct {
			name string
			make func() lookupTable
		}{
			{"sharded", func() lookupTable { return sharded{New()} }},
			{"sync.Map", func() lookupTable { return &syncMap{} }},
			{"mutex-map", func() lookupTable { return &mutexMap{m: map[string]*Conn{}} }},
		} {
			b.Run(impl.name+"/"+strconv.Itoa(n), func(b *testing.B) {
				tb := impl.make()
				for _, id := range ids {
					tb.add(&Conn{ID: id})
				}
				var next atomic.Uint64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := int(next.Add(7919))
					for pb.Next() {
						i++
						if i%16 == 0 { // one write in 16: connections coming and going
							tb.add(&Conn{ID: ids[i%n]})
							continue
						}
						if tb.get(ids[i%n]) == nil {
							b.Fatal("miss")
						}
					}
				})
			})
		}
	}
}
