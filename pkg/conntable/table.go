package conntable

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// shardCount is a power of two; ids are uniformly random, so their first two hex digits
// spread connections evenly without hashing.
const shardCount = 256

// Table maps connection ids to connections. Lookups take one shard's read lock, so the
// control API's concurrent sends rarely contend with each other or with the event loops.
//
// A shard is an open-addressing set of *Conn keyed by Conn.ID rather than a
// map[string]*Conn: a slot is one pointer (8 bytes) where a map entry repeats the id's
// string header (24 bytes with the value, before the map's own load-factor slack), and an
// idle connection pays for its slot.
type Table struct {
	shards   [shardCount]shard
	seed     maphash.Seed
	active   atomic.Int64
	lifetime atomic.Uint64
}

type shard struct {
	mu    sync.RWMutex
	slots []*Conn // linear probing; len is 0 or a power of two, at most 3/4 full
	n     int
	_     [8]byte // 64 bytes a shard: neighbouring shards' locks stay off one cache line
}

// minSlots is a shard's size once it holds anything.
const minSlots = 8

// New returns an empty table.
func New() *Table { return &Table{seed: maphash.MakeSeed()} }

func (t *Table) shardFor(id string) *shard {
	if len(id) < 2 {
		return &t.shards[0]
	}
	hi, lo := hexVal(id[0]), hexVal(id[1])
	if hi < 0 || lo < 0 {
		return &t.shards[0]
	}
	return &t.shards[(hi<<4|lo)&(shardCount-1)]
}

// find returns the slot index holding id, or the empty slot where it would go; slots must
// not be empty.
func (s *shard) find(h uint64, id string) (int, bool) {
	mask := len(s.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		c := s.slots[i]
		if c == nil {
			return i, false
		}
		if c.ID == id {
			return i, true
		}
	}
}

// resize rehashes the shard into size slots.
func (s *shard) resize(t *Table, size int) {
	old := s.slots
	s.slots = make([]*Conn, size)
	for _, c := range old {
		if c != nil {
			i, _ := s.find(maphash.String(t.seed, c.ID), c.ID)
			s.slots[i] = c
		}
	}
}

// Add registers c under c.ID, replacing a connection registered under the same id.
func (t *Table) Add(c *Conn) {
	s := t.shardFor(c.ID)
	h := maphash.String(t.seed, c.ID)
	s.mu.Lock()
	if (s.n+1)*4 > len(s.slots)*3 {
		s.resize(t, max(2*len(s.slots), minSlots))
	}
	i, found := s.find(h, c.ID)
	s.slots[i] = c
	if !found {
		s.n++
	}
	s.mu.Unlock()
	t.active.Add(1)
	t.lifetime.Add(1)
}

// Remove unregisters the connection with id; it reports whether it was there.
func (t *Table) Remove(id string) bool {
	s := t.shardFor(id)
	h := maphash.String(t.seed, id)
	s.mu.Lock()
	ok := s.remove(t, h, id)
	s.mu.Unlock()
	if ok {
		t.active.Add(-1)
	}
	return ok
}

// remove empties id's slot and moves later entries of its probe run back into the hole, so
// every entry stays reachable from its home slot without tombstones. A shard at an eighth of
// its size is halved: the slots of a burst of connections go back with them.
func (s *shard) remove(t *Table, h uint64, id string) bool {
	if s.n == 0 {
		return false
	}
	i, found := s.find(h, id)
	if !found {
		return false
	}
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j] != nil; j = (j + 1) & mask {
		home := int(maphash.String(t.seed, s.slots[j].ID)) & mask
		// The entry at j may move to the hole at i unless its home lies cyclically in (i, j].
		if (j-home)&mask >= (j-i)&mask {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = nil
	s.n--
	switch {
	case s.n == 0:
		s.slots = nil
	case len(s.slots) > minSlots && s.n*8 < len(s.slots):
		s.resize(t, len(s.slots)/2)
	}
	return true
}

// Get returns the connection with id, or nil.
func (t *Table) Get(id string) *Conn {
	s := t.shardFor(id)
	h := maphash.String(t.seed, id)
	var c *Conn
	s.mu.RLock()
	if s.n > 0 {
		if i, ok := s.find(h, id); ok {
			c = s.slots[i]
		}
	}
	s.mu.RUnlock()
	return c
}

// Active is the number of registered connections.
func (t *Table) Active() int64 { return t.active.Load() }

// Lifetime is the number of connections ever registered.
func (t *Table) Lifetime() uint64 { return t.lifetime.Load() }

// Range calls f for every connection until f returns false. Connections added or removed
// meanwhile may or may not be seen.
func (t *Table) Range(f func(*Conn) bool) {
	var batch []*Conn
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		batch = batch[:0]
		for _, c := range s.slots {
			if c != nil {
				batch = append(batch, c)
			}
		}
		s.mu.RUnlock()
		for _, c := range batch {
			if !f(c) {
				return
			}
		}
	}
}
