package benchkit

import (
	"context"
	"math"
	"sync/atomic"
	"time"
)

// An open-loop paced load: Senders senders (connections or workers) share a total rate of
// messages per second, each on its own evenly spaced schedule, and every reply's latency
// counts from the moment its message was due, not from when it went out. A sender that
// falls behind (the server is slow, its window of messages in flight is full, or its
// goroutine was not scheduled) sends late, and that delay is in the latency: no
// coordinated omission.

// Clock is the time source of a Pacer (the real one, or a fake in tests).
type Clock interface {
	Now() time.Time
	// SleepUntil returns at t, or earlier when ctx ends.
	SleepUntil(ctx context.Context, t time.Time)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) SleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}

// PacedMsg is message K of one sender, due at At.
type PacedMsg struct {
	K  int64
	At time.Time
}

// Pacer holds one paced load's schedule and tallies.
type Pacer struct {
	rate        float64
	senders     int
	start       time.Time
	from, until time.Time // the measured window: messages due in it are measured
	lateBy      time.Duration
	clock       Clock
	lat         *Latency

	sent, late, answered atomic.Int64
	lastAnswer           atomic.Int64 // unix ns of the last measured message's reply
}

// DefaultLateBy is how far past its due time a send counts as late.
const DefaultLateBy = time.Millisecond

// NewPacer schedules rate messages per second over senders senders from start: messages
// due in [start+warmup, start+warmup+duration) are measured, and none is due after that.
// A nil clock is the real one.
func NewPacer(rate float64, senders int, start time.Time, warmup, duration time.Duration, clock Clock) *Pacer {
	if clock == nil {
		clock = realClock{}
	}
	if senders < 1 {
		senders = 1
	}
	from := start.Add(warmup)
	return &Pacer{
		rate: rate, senders: senders, start: start,
		from: from, until: from.Add(duration),
		lateBy: DefaultLateBy, clock: clock, lat: NewLatency(64),
	}
}

// Interval is the time between two messages of one sender: senders/rate.
func (p *Pacer) Interval() time.Duration {
	return time.Duration(float64(p.senders) * 1e9 / p.rate)
}

// At is when message k of sender i is due. The senders interleave: message k of sender i
// is message n = k·senders + i of the whole load, due at start + n/rate, so each sender
// sends every senders/rate and sender i starts i/rate after sender 0.
func (p *Pacer) At(i int, k int64) time.Time {
	n := float64(k)*float64(p.senders) + float64(i)
	return p.start.Add(time.Duration(math.Round(n * 1e9 / p.rate)))
}

// Window is the measured window [from, until).
func (p *Pacer) Window() (from, until time.Time) { return p.from, p.until }

// Measured reports whether a message due at at is in the measured window.
func (p *Pacer) Measured(at time.Time) bool { return !at.Before(p.from) && at.Before(p.until) }

// Run is sender i's schedule: for k = 0, 1, … it waits until message k is due (not at all
// when already behind) and calls send, which may block (a full window of messages in
// flight); a send returning more than DefaultLateBy after the due time counts as late.
// It returns nil after the last message due before the window's end, send's error, or
// ctx's.
func (p *Pacer) Run(ctx context.Context, i int, send func(PacedMsg) error) error {
	for k := int64(0); ; k++ {
		at := p.At(i, k)
		if !at.Before(p.until) {
			return nil
		}
		p.clock.SleepUntil(ctx, at)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := send(PacedMsg{K: k, At: at}); err != nil {
			return err
		}
		if p.Measured(at) {
			p.sent.Add(1)
			if p.clock.Now().Sub(at) > p.lateBy {
				p.late.Add(1)
			}
		}
	}
}

// Done records the reply to m, received at now, in latency shard shard: its latency is
// now − m.At.
func (p *Pacer) Done(shard int, m PacedMsg, now time.Time) {
	if !p.Measured(m.At) {
		return
	}
	p.answered.Add(1)
	p.lat.Record(shard, now.Sub(m.At))
	ns := now.UnixNano()
	for {
		last := p.lastAnswer.Load()
		if ns <= last || p.lastAnswer.CompareAndSwap(last, ns) {
			return
		}
	}
}

// PacedStats is what a paced run adds to its RESULT line.
type PacedStats struct {
	TargetRate float64 `json:"target_rate"`
	// AchievedRate is the measured messages answered per second, from the window's start
	// to the window's end or the last of their replies if later: below the target when
	// the server fell behind and the replies trail past the window.
	AchievedRate float64 `json:"achieved_rate"`
	// Window is the most messages one sender may have in flight.
	Window int `json:"window"`
	// Sent and Answered count the messages due inside the measured window.
	Sent     int64 `json:"paced_sent"`
	Answered int64 `json:"paced_answered"`
	// LateSends were sent more than LateThresholdMS after they were due.
	LateSends       int64   `json:"late_sends"`
	LateThresholdMS float64 `json:"late_threshold_ms"`
}

// Stats summarizes the run so far; window is the caller's in-flight bound per sender.
func (p *Pacer) Stats(window int) PacedStats {
	span := p.until.Sub(p.from)
	if last := time.Unix(0, p.lastAnswer.Load()); last.Sub(p.from) > span {
		span = last.Sub(p.from)
	}
	return PacedStats{
		TargetRate:      p.rate,
		AchievedRate:    float64(p.answered.Load()) / span.Seconds(),
		Window:          window,
		Sent:            p.sent.Load(),
		Answered:        p.answered.Load(),
		LateSends:       p.late.Load(),
		LateThresholdMS: float64(p.lateBy) / float64(time.Millisecond),
	}
}

// Latency summarizes the latencies of the measured messages, from their due times.
func (p *Pacer) Latency() Summary { return p.lat.Summarize() }
