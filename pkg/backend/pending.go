package backend

import (
	"context"
	"sync"
	"sync/atomic"
)

// Pending counts work in progress (connections with queued events, open upstream links) and
// lets a drain wait until none is left. The zero value is ready to use.
type Pending struct {
	n    atomic.Int64
	mu   sync.Mutex    // guards zero
	zero chan struct{} // closed when the count next reaches zero; made by a waiter
}

// Add counts one more piece of work.
func (p *Pending) Add() { p.n.Add(1) }

// Done counts one piece finished, waking the waiters when none is left.
func (p *Pending) Done() {
	if p.n.Add(-1) != 0 {
		return
	}
	p.mu.Lock()
	if p.zero != nil {
		close(p.zero)
		p.zero = nil
	}
	p.mu.Unlock()
}

// Count is the work in progress now.
func (p *Pending) Count() int64 { return p.n.Load() }

// Wait returns once no work is in progress, or ctx's error when it ends first.
func (p *Pending) Wait(ctx context.Context) error {
	for {
		p.mu.Lock()
		if p.n.Load() == 0 {
			p.mu.Unlock()
			return nil
		}
		if p.zero == nil {
			p.zero = make(chan struct{})
		}
		ch := p.zero
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
