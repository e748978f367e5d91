package conntable

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
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

// The open-addressing shards against a map: adds, replacements, removals in random order,
// with every live id found and every removed one missed after each step.
func TestTableMatchesMap(t *testing.T) {
	tb := New()
	want := map[string]*Conn{}
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []string
	check := func(step int) {
		for id, c := range want {
			if tb.Get(id) != c {
				t.Fatalf("step %d: %s not found", step, id)
			}
		}
		n := 0
		tb.Range(func(c *Conn) bool {
			if want[c.ID] != c {
				t.Fatalf("step %d: Range saw %s, not registered", step, c.ID)
			}
			n++
			return true
		})
		if n != len(want) {
			t.Fatalf("step %d: Range saw %d of %d", step, n, len(want))
		}
	}
	for step := 0; step < 20000; step++ {
		switch r := rng.IntN(10); {
		case r < 5 || len(ids) == 0:
			// Ids sharing their first two digits land in one shard and collide there.
			id := "ab" + NewID()[2:]
			c := &Conn{ID: id}
			tb.Add(c)
			want[id] = c
			ids = append(ids, id)
		case r < 9:
			k := rng.IntN(len(ids))
			id := ids[k]
			ids[k] = ids[len(ids)-1]
			ids = ids[:len(ids)-1]
			_, had := want[id]
			delete(want, id)
			if got := tb.Remove(id); got != had {
				t.Fatalf("step %d: Remove(%s) = %v, want %v", step, id, got, had)
			}
			if tb.Get(id) != nil {
				t.Fatalf("step %d: %s still found after Remove", step, id)
			}
		default:
			id := ids[rng.IntN(len(ids))]
			c := &Conn{ID: id}
			tb.Add(c) // a second Add under the same id replaces the first
			want[id] = c
		}
		if step%997 == 0 {
			check(step)
		}
	}
	check(-1)
	for id := range want {
		tb.Remove(id)
	}
	if s := tb.shardFor("ab"); s.n != 0 || s.slots != nil {
		t.Fatalf("emptied shard keeps %d entries, %d slots", s.n, len(s.slots))
	}
}

// An idle connection's share of the table is its slot: at 100,000 connections the table
// holds under 32 bytes each (8-byte slots at most 3/4 full: 11 to 21). A map[string]*Conn
// held 35 here (48 at 15,000).
func TestTableBytesPerConnection(t *testing.T) {
	const n = 100000
	conns := make([]Conn, n)
	for i := range conns {
		conns[i].ID = NewID()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tb := New()
	for i := range conns {
		tb.Add(&conns[i])
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.1f bytes per connection", per)
	if per >= 32 {
		t.Errorf("the table holds %.1f bytes per connection, want under 32", per)
	}
	runtime.KeepAlive(tb)
}

func TestShardSize(t *testing.T) {
	if s := unsafe.Sizeof(shard{}); s != 64 {
		t.Errorf("a shard is %d bytes, want 64 (one cache line)", s)
	}
}
