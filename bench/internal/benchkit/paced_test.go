package benchkit

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"
)

// fakeClock only moves when told to: SleepUntil jumps to its target (never back), and a
// test's send callback advances it to play a stalled sender.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) SleepUntil(_ context.Context, t time.Time) {
	if t.After(c.now) {
		c.now = t
	}
}

func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func TestPacerScheduleStaggersSenders(t *testing.T) {
	p := NewPacer(1000, 4, t0, 0, time.Second, nil)
	if got := p.Interval(); got != 4*time.Millisecond {
		t.Fatalf("interval %s, want 4ms (4 senders sharing 1000/s)", got)
	}
	for _, c := range []struct {
		i    int
		k    int64
		want time.Duration
	}{
		{0, 0, 0},
		{1, 0, time.Millisecond}, // sender i starts i/rate after sender 0
		{3, 0, 3 * time.Millisecond},
		{0, 1, 4 * time.Millisecond}, // every senders/rate
		{2, 5, 22 * time.Millisecond},
	} {
		if got := p.At(c.i, c.k).Sub(t0); got != c.want {
			t.Errorf("At(%d,%d) = +%s, want +%s", c.i, c.k, got, c.want)
		}
	}
	// Over all senders, the load is evenly spaced: one message every 1/rate.
	var all []time.Duration
	for i := 0; i < 4; i++ {
		for k := int64(0); k < 25; k++ {
			all = append(all, p.At(i, k).Sub(t0))
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	for n, d := range all {
		if d != time.Duration(n)*time.Millisecond {
			t.Fatalf("message %d of the load due at +%s, want +%dms", n, d, n)
		}
	}
	// A fractional rate keeps its long-run spacing (no drift from rounding one interval).
	q := NewPacer(3, 1, t0, 0, time.Hour, nil)
	if got := q.At(0, 3000).Sub(t0); got != 1000*time.Second {
		t.Fatalf("message 3000 at 3/s due at +%s, want +1000s", got)
	}
}

func TestPacerLatencyFromDueTimeAndLateSends(t *testing.T) {
	clk := &fakeClock{now: t0}
	// One sender at 1000/s: message k due at +k ms, ten of them in the window.
	p := NewPacer(1000, 1, t0, 0, 10*time.Millisecond, clk)
	var sentAt []time.Time
	var msgs []PacedMsg
	err := p.Run(context.Background(), 0, func(m PacedMsg) error {
		if m.K == 2 {
			// The window is full: this send waits 3.5 ms for a slot.
			clk.advance(3500 * time.Microsecond)
		}
		sentAt = append(sentAt, clk.Now())
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 10 {
		t.Fatalf("%d messages sent, want 10 (due +0 … +9 ms)", len(msgs))
	}
	// Messages 2, 3, 4 go out at +5.5 ms, 3.5, 2.5 and 1.5 ms after their due times; 5 is
	// 0.5 ms late, within the 1 ms slack; the others are on time.
	wantSent := []float64{0, 1, 5.5, 5.5, 5.5, 5.5, 6, 7, 8, 9}
	for k, ms := range wantSent {
		if got := sentAt[k].Sub(t0); got != time.Duration(ms*float64(time.Millisecond)) {
			t.Errorf("message %d sent at +%s, want +%.1fms", k, got, ms)
		}
		if msgs[k].At != t0.Add(time.Duration(k)*time.Millisecond) {
			t.Errorf("message %d due at +%s", k, msgs[k].At.Sub(t0))
		}
	}
	// Each reply comes 100 µs after its send; latency counts from the due time.
	for k, m := range msgs {
		p.Done(0, m, sentAt[k].Add(100*time.Microsecond))
	}
	st := p.Stats(1)
	if st.Sent != 10 || st.Answered != 10 || st.LateSends != 3 {
		t.Fatalf("sent %d answered %d late %d, want 10 10 3", st.Sent, st.Answered, st.LateSends)
	}
	lat := p.Latency()
	// HdrHistogram at 3 digits reports 3,600 µs as its bucket's top, 3,601.
	if lat.Count != 10 || lat.Max < 3600 || lat.Max > 3603 {
		t.Fatalf("latency count %d max %dµs, want 10 and 3600µs (message 2: 3.5 ms late + 100 µs)", lat.Count, lat.Max)
	}
	if lat.P50 != 100 {
		t.Fatalf("p50 %dµs, want 100µs (six messages on time)", lat.P50)
	}
	// All ten replies arrived inside the 10 ms window: 1000/s achieved.
	if st.AchievedRate != 1000 || st.TargetRate != 1000 {
		t.Fatalf("achieved %.0f target %.0f, want 1000 1000", st.AchievedRate, st.TargetRate)
	}
	// A reply trailing 10 ms past the window's end stretches it: 11 answers in 20 ms.
	p.Done(0, msgs[9], t0.Add(20*time.Millisecond))
	if st := p.Stats(1); st.AchievedRate != 550 {
		t.Fatalf("achieved %.1f/s with a reply 10 ms after the window, want 550", st.AchievedRate)
	}
}

func TestPacerWarmupIsNotMeasured(t *testing.T) {
	clk := &fakeClock{now: t0}
	// 1000/s, one sender, 2 ms warm-up, 3 ms window: messages due +0 … +4 ms are sent,
	// +2 … +4 ms are measured, none is due at +5 ms or later.
	p := NewPacer(1000, 1, t0, 2*time.Millisecond, 3*time.Millisecond, clk)
	var msgs []PacedMsg
	if err := p.Run(context.Background(), 0, func(m PacedMsg) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 5 {
		t.Fatalf("%d messages, want 5", len(msgs))
	}
	// Replies come 2 ms after the due time: the warm-up ones are not measured.
	for _, m := range msgs {
		p.Done(0, m, m.At.Add(2*time.Millisecond))
	}
	st := p.Stats(1)
	if st.Sent != 3 || st.Answered != 3 || st.LateSends != 0 {
		t.Fatalf("sent %d answered %d late %d, want 3 3 0", st.Sent, st.Answered, st.LateSends)
	}
	// Messages 2, 3, 4 answered by +6 ms: 3 in the 4 ms from the window's start.
	if st.AchievedRate != 750 {
		t.Fatalf("achieved %.1f/s, want 750", st.AchievedRate)
	}
	if lat := p.Latency(); lat.Count != 3 || lat.Max != 2000 {
		t.Fatalf("latency count %d max %d, want 3 and 2000µs", lat.Count, lat.Max)
	}
}

func TestPacerStopsOnContextAndSendError(t *testing.T) {
	clk := &fakeClock{now: t0}
	p := NewPacer(1000, 1, t0, 0, time.Second, clk)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := p.Run(ctx, 0, func(PacedMsg) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	})
	if err != context.Canceled || n != 3 {
		t.Fatalf("err %v after %d sends, want context.Canceled after 3", err, n)
	}
	boom := errors.New("boom")
	n = 0
	err = p.Run(context.Background(), 0, func(PacedMsg) error {
		n++
		if n == 2 {
			return boom
		}
		return nil
	})
	if err != boom || n != 2 {
		t.Fatalf("err %v after %d sends, want boom after 2", err, n)
	}
}
