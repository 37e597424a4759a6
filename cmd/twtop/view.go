package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twtop/twtop/internal/ingest"
	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
	"github.com/twtop/twtop/ui"
)

// publishEvery is how often the pipeline hands the UI a fresh snapshot.
const publishEvery = 250 * time.Millisecond

// viewSource runs the pipeline (raw records → event stream → model) on its
// own goroutine and publishes snapshots for the UI, which reads them
// without ever waiting for the pipeline. It implements ui.Source.
type viewSource struct {
	m     *model.Model
	live  bool // fixed at construction
	snap  atomic.Pointer[model.Snapshot]
	stats func() record.TracerStats // the tracer's counters so far
	feed  *metricsFeed              // --metrics: also handed every snapshot (nil: none)

	mu      sync.Mutex
	st      ui.Status
	first   uint64 // event time of the first event
	pace    pacer  // replay only
	version atomic.Uint64
}

// newViewSource feeds m; stats reads the tracer's counters so far, and
// feed, when not nil, also gets every snapshot.
func newViewSource(st ui.Status, m *model.Model, stats func() record.TracerStats, feed *metricsFeed) *viewSource {
	v := &viewSource{m: m, st: st, live: st.Live, stats: stats, feed: feed}
	v.pace.speed = st.Speed
	return v
}

// Snapshot is the latest published snapshot.
func (v *viewSource) Snapshot() *model.Snapshot { return v.snap.Load() }

// Status is the pipeline's state.
func (v *viewSource) Status() ui.Status {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.st
	st.Version = v.version.Load()
	return st
}

// SetPaused pauses the view: live, the model keeps counting and only the
// published snapshot stays put; a replay stops its clock.
func (v *viewSource) SetPaused(p bool) {
	v.mu.Lock()
	v.st.Paused = p
	v.mu.Unlock()
	if !v.live {
		v.pace.setPaused(p)
	}
	v.version.Add(1)
}

// SetSpeed sets a replay's speed (0: as fast as possible).
func (v *viewSource) SetSpeed(s float64) {
	if !v.live {
		v.mu.Lock()
		v.st.Speed = s
		v.mu.Unlock()
		v.pace.setSpeed(s)
		v.version.Add(1)
	}
}

// run feeds the model until the source ends or ctx is done, publishing a
// snapshot every publishEvery and once at the end.
func (v *viewSource) run(ctx context.Context, src event.RawSource, hz uint32) error {
	var n, lastN, last uint64
	lastPub := time.Now()
	err := eachEvent(src, hz, func(e *event.Event) error {
		if ctx.Err() != nil {
			return errStop
		}
		if v.first == 0 {
			v.first = e.Time
		}
		if !v.live && !v.pace.wait(ctx, e.Time) {
			return errStop
		}
		v.m.Apply(e)
		n, last = n+1, max(last, e.Time)
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
func (v *viewSource) publish(now uint64, rate float64, done bool) {
	v.mu.Lock()
	paused := v.st.Paused && v.live
	v.mu.Unlock()
	var ts record.TracerStats
	if v.stats != nil {
		ts = v.stats()
	}
	var snap *model.Snapshot
	switch {
	case !paused || done:
		snap = v.m.Publish()
		v.snap.Store(snap)
	case v.feed != nil:
		snap = v.m.Snapshot() // a paused view does not pause the metrics
	}
	if snap != nil {
		v.feed.publish(snap, ts)
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

// liveUI shows the UI on the live tracer until the user quits or a signal
// arrives.
func liveUI(tr *tracer.Tracer, src *liveSource, m *model.Model, feed *metricsFeed) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	host, _ := os.Hostname()
	v := newViewSource(ui.Status{Host: host, Kernel: tr.KernelRelease(), Tier: tr.Tier().String(),
		Inferred: !tr.Tier().Exact(), Live: true, Speed: 1}, m, liveStats(tr), feed)
	err := v.show(ctx, src, tr.HZ(), func() { tr.Close() })
	printTracerStats(tr)
	return err
}

// replayUI shows the UI on a recording, as fast as it was recorded.
func replayUI(name string, rd *record.Reader, feed *metricsFeed) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	h := rd.Header()
	m := model.New(model.Config{})
	rd.OnState = func(s record.State) { ingest.State(m, s) }
	tier, _ := tracer.ParseTier(h.Tier)
	v := newViewSource(ui.Status{Host: h.Host, Kernel: h.Kernel, Tier: h.Tier, Inferred: tier == tracer.Tracepoint,
		File: filepath.Base(name), Speed: 1}, m, rd.TracerStats, feed)
	ctx, cancel := context.WithCancel(ctx)
	return v.show(ctx, rd, h.HZ, cancel)
}

// show runs the pipeline from src beside the UI until the UI ends (the
// user quits, or ctx is done); end then stops the pipeline. The UI's error
// comes first, then the pipeline's.
func (v *viewSource) show(ctx context.Context, src event.RawSource, hz uint32, end func()) error {
	errc := make(chan error, 1)
	go func() { errc <- v.run(ctx, src, hz) }()
	uerr := ui.Run(ctx, v, nil, uiOptions())
	end()
	if err := <-errc; err != nil && uerr == nil {
		uerr = err
	}
	return uerr
}

// liveStats reads the tracer's counters (zero when they cannot be read).
func liveStats(tr *tracer.Tracer) func() record.TracerStats {
	return func() record.TracerStats {
		ts, _ := tracerStats(tr)
		return ts
	}
}

func uiOptions() ui.Options {
	_, noColor := os.LookupEnv("NO_COLOR")
	return ui.Options{NoColor: noColor}
}
