package pipeline

import (
	"context"
	"sync"
	"time"
)

// pacer replays events at the speed they were recorded at, times speed.
type pacer struct {
	mu       sync.Mutex
	speed    float64 // 0: as fast as possible
	paused   bool
	last     uint64    // event time of the last event let through
	baseEv   uint64    // event time at baseWall
	baseWall time.Time // zero: not started

	// the clock, for tests (nil: time.Now and sleepCtx)
	now   func() time.Time
	sleep func(context.Context, time.Duration) bool
}

func (p *pacer) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

func (p *pacer) pause(ctx context.Context, d time.Duration) bool {
	if p.sleep != nil {
		return p.sleep(ctx, d)
	}
	return sleepCtx(ctx, d)
}

// wait blocks until the event at time t is due, or ctx is done (false).
func (p *pacer) wait(ctx context.Context, t uint64) bool {
	for {
		p.mu.Lock()
		if !p.paused {
			now := p.clock()
			if p.baseWall.IsZero() || t < p.baseEv {
				p.baseEv, p.baseWall = t, now
			}
			var d time.Duration
			if p.speed > 0 {
				due := p.baseWall.Add(time.Duration(float64(t-p.baseEv) / p.speed))
				d = due.Sub(now)
			}
			if d <= 0 {
				p.last = t
				p.mu.Unlock()
				return true
			}
			p.mu.Unlock()
			if !p.pause(ctx, min(d, 50*time.Millisecond)) {
				return false
			}
			continue
		}
		p.mu.Unlock()
		if !p.pause(ctx, 50*time.Millisecond) {
			return false
		}
	}
}

// rebase restarts the clock at the last event (caller holds mu).
func (p *pacer) rebase() {
	if !p.baseWall.IsZero() {
		p.baseEv, p.baseWall = p.last, p.clock()
	}
}

func (p *pacer) setSpeed(s float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rebase()
	p.speed = s
}

func (p *pacer) setPaused(b bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused && !b {
		p.rebase()
	}
	p.paused = b
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
