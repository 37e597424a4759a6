package model

// Sum is the sum of the values recorded (exact).
func (h *Histogram) Sum() uint64 { return h.sum }

// CumulativeCounts returns, for each upper bound (ascending, in the units
// of the values recorded), the number of values in the buckets that end at
// or below it. No value above a bound is counted under it; a value less
// than a bucket's width (0.8%) below a bound may be counted only under the
// next one. The counts never decrease along the result.
func (h *Histogram) CumulativeCounts(bounds []uint64) []uint64 {
	out := make([]uint64, len(bounds))
	var seen uint64
	b := 0
	for i, le := range bounds {
		for b < histBuckets {
			if _, hi := bucketRange(b); hi > le {
				break
			}
			seen += h.counts[b]
			b++
		}
		out[i] = seen
	}
	return out
}
