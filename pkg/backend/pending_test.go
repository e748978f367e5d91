package backend

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPendingWaitsForZero(t *testing.T) {
	var p Pending
	if err := p.Wait(context.Background()); err != nil {
		t.Fatalf("nothing pending: %v", err)
	}
	p.Add()
	p.Add()
	done := make(chan error, 1)
	go func() { done <- p.Wait(context.Background()) }()
	p.Done()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v with one piece left", err)
	case <-time.After(20 * time.Millisecond):
	}
	p.Done()
	if err := <-done; err != nil || p.Count() != 0 {
		t.Fatalf("Wait %v, count %d", err, p.Count())
	}
	p.Add()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past its context: %v", err)
	}
}
