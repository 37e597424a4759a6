package lifecycle

import (
	"cmp"
	"slices"

	"github.com/twtop/twtop/tracer/event"
)

// The Tracker keeps maps but must emit in an order that depends only on
// its input, so that a recording always replays to the same events.

func sortedByPtr(m map[uint64]*event.Event) []*event.Event {
	out := make([]*event.Event, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *event.Event) int { return cmp.Compare(a.Ptr, b.Ptr) })
	return out
}

func sortU64(s []uint64) { slices.Sort(s) }

func sortedCPUs(m map[uint16]*event.Event) []uint16 {
	out := make([]uint16, 0, len(m))
	for cpu := range m {
		out = append(out, cpu)
	}
	slices.Sort(out)
	return out
}
