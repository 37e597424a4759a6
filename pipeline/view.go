package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
	"github.com/twtop/twtop/ui"
)

// publishEvery is how often the pipeline hands the UI a fresh snapshot.
const publishEvery = 250 * time.Millisecond

// View runs the pipeline (raw records → lifecycle → model) on its own
// goroutine and publishes snapshots on its Board for the UI, which reads
// them without ever waiting for the pipeline. It implements ui.Source.
type View struct {
	m       *model.Model
	live    bool // fixed at construction
	board   *Board
	stats   func() record.TracerStats // the tracer's counters so far
	metrics bool                      // --metrics: publish even while the view is paused

	mu      sync.Mutex
	st      ui.Status
	first   uint64 // event time of the first event
	pace    pacer  // replay only
	version atomic.Uint64
}

// NewView feeds m and publishes on b; st is the header's fixed part (its
// Tier and Inferred come from m's tier), stats reads the tracer's counters
// so far, and metrics asks for a publication every publishEvery even while
// the view is paused (for --metrics).
func NewView(b *Board, m *model.Model, st ui.Status, stats func() record.TracerStats, metrics bool) *View {
	tier := m.Tier()
	st.Tier, st.Inferred = tier.Name, !tier.Exact
	v := &View{m: m, board: b, st: st, live: st.Live, stats: stats, metrics: metrics}
	v.pace.speed = st.Speed
	return v
}

// Snapshot is the snapshot the UI shows.
func (v *View) Snapshot() *model.Snapshot {
	if p := v.board.Load(); p != nil {
		return p.View
	}
	return nil
}

// Status is the pipeline's state.
func (v *View) Status() ui.Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.st
	st.Version = v.version.Load()
	return st
}

// SetPaused pauses the view: live, the model keeps counting and only the
// published snapshot stays put; a replay stops its clock.
func (v *View) SetPaused(p bool) {
	v.mu.Lock()
	v.st.Paused = p
	v.mu.Unlock()
	if !v.live {
		v.pace.setPaused(p)
	}
	v.version.Add(1)
}

// SetSpeed sets a replay's speed (0: as fast as possible).
func (v *View) SetSpeed(s float64) {
	if !v.live {
		v.mu.Lock()
		v.st.Speed = s
		v.mu.Unlock()
		v.pace.setSpeed(s)
		v.version.Add(1)
	}
}

// Run feeds the model until the source ends or ctx is done, publishing a
// snapshot every publishEvery and once at the end.
func (v *View) Run(ctx context.Context, src event.RawSource, hz uint32) error {
	var n, lastN, last, checkT uint64
	lastPub := time.Now()
	err := Each(src, hz, func(e *event.Event) error {
		if ctx.Err() != nil {
			return ErrStop
		}
		if v.first == 0 {
			v.first = e.Time
		}
		if !v.live && !v.pace.wait(ctx, e.Time) {
			return ErrStop
		}
		v.m.Apply(e)
		n, last = n+1, max(last, e.Time)
		// the clock is read once per sixteenth of publishEvery of event
		// time, not on every event: live, the records' time runs with
		// the clock (faster while catching up), so a snapshot comes at
		// most a sixteenth late; a replay's runs at its speed, so below
		// 1/16 the snapshots come less often
		if e.Time < checkT {
			return nil
		}
		checkT = e.Time + uint64(publishEvery/16)
		if since := time.Since(lastPub); since >= publishEvery {
			v.publish(e.Time, float64(n-lastN)/since.Seconds(), false)
			lastN, lastPub = n, time.Now()
		}
		return nil
	})
	if err != nil {
		return err
	}
	v.publish(last, 0, true)
	return nil
}

// publish hands the UI (and the metrics) the model's state at event time
// now.
func (v *View) publish(now uint64, rate float64, done bool) {
	v.mu.Lock()
	paused := v.st.Paused && v.live
	v.mu.Unlock()
	var ts record.TracerStats
	if v.stats != nil {
		ts = v.stats()
	}
	switch {
	case !paused || done:
		v.board.Publish(v.m.Snapshot(), ts)
	case v.metrics:
		v.board.PublishHeld(v.m.Snapshot(), ts) // a paused view does not pause the metrics
	}
	v.mu.Lock()
	v.st.EventsPerSec = rate
	v.st.Lost = max(v.st.Lost, ts.Lost)
	if now > v.first {
		v.st.Position = time.Duration(now - v.first)
	}
	v.st.Done = done && !v.live
	v.mu.Unlock()
	v.version.Add(1)
}
