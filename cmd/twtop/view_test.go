package main

import (
	"context"
	"testing"
	"time"
)

// A replay keeps the recorded pace times the speed (only lower bounds are
// asserted: a busy machine may be slower, never faster), runs flat out at
// speed 0, and stands still while paused.
func TestPacer(t *testing.T) {
	ctx := context.Background()
	run := func(p *pacer, times ...uint64) time.Duration {
		start := time.Now()
		for _, ts := range times {
			if !p.wait(ctx, ts) {
				t.Fatal("wait gave up without a cancelled context")
			}
		}
		return time.Since(start)
	}
	ms := uint64(time.Millisecond)
	if d := run(&pacer{speed: 2}, 0, 100*ms, 200*ms, 400*ms); d < 200*time.Millisecond {
		t.Errorf("400 ms of events at speed 2 took %v, want at least 200 ms", d)
	}
	if d := run(&pacer{speed: 0}, 0, 3600e9, 7200e9); d > 5*time.Second {
		t.Errorf("two hours of events at speed 0 took %v", d)
	}

	p := &pacer{speed: 1}
	run(p, 0)
	p.setPaused(true)
	done := make(chan time.Time)
	go func() { p.wait(ctx, ms); done <- time.Now() }()
	time.Sleep(300 * time.Millisecond)
	resumed := time.Now()
	p.setPaused(false)
	if got := <-done; got.Before(resumed) {
		t.Errorf("an event was let through while paused")
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if (&pacer{speed: 1, baseWall: time.Now()}).wait(cctx, 3600e9) {
		t.Error("wait went on after its context was cancelled")
	}
}
