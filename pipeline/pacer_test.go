package pipeline

import (
	"context"
	"testing"
	"time"
)

// fakeClock is a pacer's clock that moves only when the pacer sleeps.
type fakeClock struct {
	t       time.Duration // since start
	sleeps  int
	onSleep func(now time.Duration) // after each sleep, e.g. to resume
}

var clockStart = time.Unix(1_000_000, 0)

func (c *fakeClock) pacer(speed float64) *pacer {
	return &pacer{speed: speed, now: func() time.Time { return clockStart.Add(c.t) }, sleep: c.sleep}
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	c.t += d
	c.sleeps++
	if c.onSleep != nil {
		c.onSleep(c.t)
	}
	return true
}

// A replay lets each event through exactly when the recorded pace times
// the speed says, runs flat out at speed 0, and stands still while paused.
// The clock is the pacer's own, so the times are exact and never flaky.
func TestPacer(t *testing.T) {
	ctx := context.Background()
	ms := time.Millisecond
	// released returns the clock's time when each event was let through.
	released := func(c *fakeClock, p *pacer, times ...time.Duration) []time.Duration {
		t.Helper()
		var out []time.Duration
		for _, ts := range times {
			if !p.wait(ctx, uint64(ts)) {
				t.Fatal("wait gave up without a cancelled context")
			}
			out = append(out, c.t)
		}
		return out
	}
	same := func(what string, got, want []time.Duration) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: released at %v, want %v", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: released at %v, want %v", what, got, want)
				return
			}
		}
	}

	c := &fakeClock{}
	same("speed 2", released(c, c.pacer(2), 0, 100*ms, 200*ms, 400*ms), []time.Duration{0, 50 * ms, 100 * ms, 200 * ms})
	c = &fakeClock{}
	same("speed 1", released(c, c.pacer(1), 0, time.Second, 1500*ms), []time.Duration{0, time.Second, 1500 * ms})
	c = &fakeClock{}
	same("speed 0.5", released(c, c.pacer(0.5), 0, 100*ms), []time.Duration{0, 200 * ms})
	c = &fakeClock{}
	same("speed 0", released(c, c.pacer(0), 0, time.Hour, 2*time.Hour), []time.Duration{0, 0, 0})
	if c.sleeps != 0 {
		t.Errorf("speed 0 slept %d times", c.sleeps)
	}

	// a new speed applies from the last event let through
	c = &fakeClock{}
	p := c.pacer(1)
	released(c, p, 0, 100*ms)
	p.setSpeed(4)
	same("speed 1 then 4", released(c, p, 500*ms), []time.Duration{200 * ms})

	// paused for 300 ms after the first event: the next one, 1 ms later in
	// the recording, comes 1 ms after the resume
	c = &fakeClock{}
	p = c.pacer(1)
	released(c, p, 0)
	p.setPaused(true)
	c.onSleep = func(now time.Duration) {
		if now == 300*ms {
			p.setPaused(false)
		}
	}
	same("paused 300 ms", released(c, p, ms), []time.Duration{301 * ms})

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c = &fakeClock{}
	p = c.pacer(1)
	released(c, p, 0)
	if p.wait(cctx, uint64(time.Hour)) {
		t.Error("wait went on after its context was cancelled")
	}
	// the real clock
	if (&pacer{speed: 1, baseWall: time.Now()}).wait(cctx, 3600e9) {
		t.Error("wait on the real clock went on after its context was cancelled")
	}
	start, flat := time.Now(), &pacer{}
	if !flat.wait(ctx, 0) || !flat.wait(ctx, 3600e9) || time.Since(start) > 5*time.Second {
		t.Error("speed 0 on the real clock waited")
	}
}
