package model

import (
	"github.com/twtop/twtop/tracer/event"
)

// recentMaxEvents is how many of the latest events the model keeps for
// the UI's event tail.
const recentMaxEvents = 1024

// recentRing holds the latest events worth showing a person: state
// transitions and TIME_WAIT creations, ends, reuses, takeovers, overflows
// and syscall errors; not timer bookkeeping or scan records. Events are
// stored by value, so keeping one allocates nothing.
type recentRing struct {
	buf  [recentMaxEvents]event.Event
	next int
	n    int
}

func (r *recentRing) add(e *event.Event) {
	switch e.Kind {
	case event.KindState, event.KindTWCreate, event.KindTWExpire, event.KindTWKill, event.KindTWReuse,
		event.KindTWOverflow, event.KindConnectErr, event.KindBindErr:
	case event.KindTWRx:
		if e.RxOutcome() != event.RxSYN && e.RxOutcome() != event.RxRST {
			return
		}
	default:
		return
	}
	r.buf[r.next] = *e
	r.next = (r.next + 1) % recentMaxEvents
	if r.n < recentMaxEvents {
		r.n++
	}
}

// events returns the kept events, oldest first.
func (r *recentRing) events() []event.Event {
	out := make([]event.Event, 0, r.n)
	start := (r.next - r.n + recentMaxEvents) % recentMaxEvents
	for i := range r.n {
		out = append(out, r.buf[(start+i)%recentMaxEvents])
	}
	return out
}
