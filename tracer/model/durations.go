package model

import "math/bits"

// durations is a small log-linear histogram of durations in nanoseconds:
// four buckets per power of two, so a quantile read back is within 12% of
// a recorded value. It is 1 KiB, small enough for one per service port.
type durations struct {
	counts [durBuckets]uint32
	total  uint64
}

const (
	durSubBits  = 2
	durSub      = 1 << durSubBits
	durBuckets  = (64 - durSubBits + 1) * durSub
	durMaxPorts = 4096 // service ports measured at most
)

func durBucket(v uint64) int {
	if v < durSub {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // >= durSubBits
	row := exp - durSubBits + 1
	sub := (v >> (exp - durSubBits)) & (durSub - 1)
	return row*durSub + int(sub)
}

// durMid is the middle of the values bucket b holds.
func durMid(b int) uint64 {
	row, sub := b/durSub, uint64(b%durSub)
	if row == 0 {
		return sub
	}
	exp := row + durSubBits - 1
	lo := uint64(1)<<exp | sub<<(exp-durSubBits)
	return lo + (uint64(1)<<(exp-durSubBits))/2
}

func (d *durations) record(v uint64) {
	d.counts[durBucket(v)]++
	d.total++
}

// quantile is the q-quantile (0 < q <= 1) of the recorded durations, 0
// when none was.
func (d *durations) quantile(q float64) uint64 {
	if d.total == 0 {
		return 0
	}
	rank := uint64(q*float64(d.total) + 0.5)
	rank = min(max(rank, 1), d.total)
	var seen uint64
	for b, c := range d.counts {
		seen += uint64(c)
		if seen >= rank {
			return durMid(b)
		}
	}
	return 0
}

// servedBy is the durations of the connections a service port closed
// first (from ESTABLISHED to its FIN); past durMaxPorts ports the rest
// share one that no finding reads.
func (m *Model) servedBy(k portKey) *durations {
	d := m.served[k]
	if d == nil {
		if len(m.served) >= durMaxPorts {
			k = portKey{} // no service port is 0
			if d = m.served[k]; d != nil {
				return d
			}
		}
		d = new(durations)
		m.served[k] = d
	}
	return d
}
