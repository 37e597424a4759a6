// Package ui is twtop's terminal UI (tview/tcell). It reads model snapshots
// and the pipeline's status through a Source and never touches the tracer:
// a slow terminal cannot slow the event pipeline, which publishes snapshots
// on its own schedule while the UI redraws a few times a second, and only
// when the Source's version moved.
package ui

import (
	"time"

	"github.com/twtop/twtop/tracer/model"
)

// Source is what the UI shows and controls: the live tracer or a replay,
// seen through the model.
type Source interface {
	// Snapshot is the latest published model snapshot (nil before the
	// first). It is a plain value: read it freely, never modify it.
	Snapshot() *model.Snapshot
	// Status is the pipeline's state for the header.
	Status() Status
	// SetPaused freezes (true) or resumes the view. Live, the tracer keeps
	// tracing and the model keeps counting; only the published snapshot
	// stays put. On a replay it stops the replay clock.
	SetPaused(bool)
	// SetSpeed sets a replay's speed (1 = as recorded; 0 = as fast as
	// possible). Live sources ignore it.
	SetSpeed(float64)
}

// Status describes the pipeline behind a Source.
type Status struct {
	Host, Kernel, Tier string
	// Inferred is set when the tier infers how TIME_WAIT sockets end: not
	// Tier.Exact of the model's snapshots (the pipeline fills both in).
	Inferred bool
	// Live is set when tracing now; otherwise it is a replay of File.
	Live bool
	File string
	// Position is how far into the recording the replay is (event time
	// since its first event) and Length the recording's span, when known.
	Position, Length time.Duration
	Speed            float64
	Paused           bool
	// Done is set when a replay has reached the end of its recording.
	Done         bool
	EventsPerSec float64
	Lost         uint64
	// Version moves whenever anything the UI shows may have changed.
	Version uint64
}
