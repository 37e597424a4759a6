package model

import "math/bits"

// Histogram counts durations in log-linear buckets: each power of two is
// split into 128 equal sub-buckets, so any recorded value is known to
// better than 0.8% and a quantile read back from the bucket's midpoint is
// within 0.4% of a true sample. Memory is fixed (about 48 KiB).
type Histogram struct {
	counts [histBuckets]uint64
	total  uint64
	sum    uint64 // of the values recorded, exact
	max    uint64
	min    uint64
}

const (
	subBits     = 7 // 128 sub-buckets per power of two
	subCount    = 1 << subBits
	histExps    = 48 // values up to 2^48 ns (78 hours)
	histBuckets = histExps * subCount
)

// bucketOf maps a value to its bucket: values below 2^subBits get a
// bucket each; above, the exponent picks the row and the next subBits
// bits below the leading one the column.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // >= subBits
	row := exp - subBits + 1
	if row >= histExps {
		return histBuckets - 1
	}
	sub := (v >> (exp - subBits)) & (subCount - 1)
	return row*subCount + int(sub)
}

// bucketRange is the [lo, hi] of values a bucket holds.
func bucketRange(b int) (uint64, uint64) {
	row, sub := b/subCount, uint64(b%subCount)
	if row == 0 {
		return sub, sub
	}
	exp := row + subBits - 1
	lo := (uint64(1) << exp) | sub<<(exp-subBits)
	return lo, lo + (uint64(1) << (exp - subBits)) - 1
}

// Record adds one value.
func (h *Histogram) Record(v uint64) {
	h.counts[bucketOf(v)]++
	if h.total == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.total++
	h.sum += v
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest value recorded (exact).
func (h *Histogram) Max() uint64 { return h.max }

// Quantile returns the q-quantile (0 <= q <= 1): the midpoint of the
// bucket holding it, clamped to the exact minimum and maximum. 0 when
// empty.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(q*float64(h.total-1)) + 1 // 1-based rank of the sample
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(b)
			mid := lo + (hi-lo)/2
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for b, c := range o.counts {
		h.counts[b] += c
	}
	if h.total == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.total += o.total
	h.sum += o.sum
}
