package lifecycle

import "slices"

// The Tracker keeps maps but must emit in an order that depends only on
// its input, so that a recording always replays to the same events.

func sortU64(s []uint64) { slices.Sort(s) }
