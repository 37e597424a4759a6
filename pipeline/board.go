package pipeline

import (
	"sync/atomic"

	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
)

// Published is one publication of the pipeline. It is a plain value:
// read it freely, never modify it.
type Published struct {
	// Snapshot is the model at the publication: what --metrics and
	// --report read.
	Snapshot *model.Snapshot
	// View is what the UI shows: Snapshot, or the snapshot a paused live
	// view stays on (nil before the UI's first).
	View *model.Snapshot
	// Stats are the tracer's counters at the publication.
	Stats record.TracerStats
}

// Board holds the one published snapshot. The pipeline's goroutine
// stores; any goroutine loads, without waiting. The zero Board holds
// nothing.
type Board struct{ p atomic.Pointer[Published] }

// Load returns the latest publication (nil before the first).
func (b *Board) Load() *Published { return b.p.Load() }

// Publish makes s, with the tracer's counters ts, what every reader sees
// (the UI too).
func (b *Board) Publish(s *model.Snapshot, ts record.TracerStats) {
	b.p.Store(&Published{Snapshot: s, View: s, Stats: ts})
}

// PublishHeld makes s what the readers other than the UI see, the UI
// keeping the view it has.
func (b *Board) PublishHeld(s *model.Snapshot, ts record.TracerStats) {
	var view *model.Snapshot
	if p := b.p.Load(); p != nil {
		view = p.View
	}
	b.p.Store(&Published{Snapshot: s, View: view, Stats: ts})
}
