package conntable

import (
	"sync"
	"sync/atomic"
)

// shardCount is a power of two; ids are uniformly random, so their first two hex digits
// spread connections evenly without hashing.
const shardCount = 256

// Table maps connection ids to connections. Lookups take one shard's read lock, so the
// control API's concurrent sends rarely contend with each other or with the event loops.
type Table struct {
	shards   [shardCount]shard
	active   atomic.Int64
	lifetime atomic.Uint64
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*Conn
	_  [40]byte // keep neighbouring shards' locks off one cache line
}

// New returns an empty table.
func New() *Table {
	t := &Table{}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*Conn)
	}
	return t
}

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

// Add registers c under c.ID.
func (t *Table) Add(c *Conn) {
	s := t.shardFor(c.ID)
	s.mu.Lock()
	s.m[c.ID] = c
	s.mu.Unlock()
	t.active.Add(1)
	t.lifetime.Add(1)
}

// Remove unregisters the connection with id; it reports whether it was there.
func (t *Table) Remove(id string) bool {
	s := t.shardFor(id)
	s.mu.Lock()
	_, ok := s.m[id]
	delete(s.m, id)
	s.mu.Unlock()
	if ok {
		t.active.Add(-1)
	}
	return ok
}

// Get returns the connection with id, or nil.
func (t *Table) Get(id string) *Conn {
	s := t.shardFor(id)
	s.mu.RLock()
	c := s.m[id]
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
		for _, c := range s.m {
			batch = append(batch, c)
		}
		s.mu.RUnlock()
		for _, c := range batch {
			if !f(c) {
				return
			}
		}
	}
}
