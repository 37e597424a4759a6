package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	prevHi := uint64(0)
	for b := 0; b < histBuckets-1; b++ {
		lo, hi := bucketRange(b)
		if b > 0 && lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", b, lo, prevHi)
		}
		if bucketOf(lo) != b || bucketOf(hi) != b {
			t.Fatalf("bucket %d [%d,%d] maps back to %d/%d", b, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo > 0 && float64(hi-lo) > float64(lo)/subCount {
			t.Fatalf("bucket %d [%d,%d] wider than 1/%d of its start", b, lo, hi, subCount)
		}
		prevHi = hi
	}
}

// Quantiles against the exact order statistics of the same samples: within
// 1% for lifetimes spanning microseconds to minutes.
func TestHistogramQuantilesWithinOnePercent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var vals []uint64
	for i := 0; i < 100_000; i++ {
		// log-uniform from 1 µs to 120 s
		v := uint64(1e3 * math.Pow(1.2e8, r.Float64()))
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)-1))]
		got := h.Quantile(q)
		if diff := absDiff(got, exact); float64(diff) > 0.01*float64(exact) {
			t.Errorf("q%.3f = %d, exact %d (off by %.2f%%)", q, got, exact, 100*float64(diff)/float64(exact))
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Quantile(1) != h.Max() {
		t.Errorf("max %d, want %d", h.Max(), vals[len(vals)-1])
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("count %d", h.Count())
	}
}

func TestHistogramMergeEqualsRecordingAll(t *testing.T) {
	var a, b, all Histogram
	for i := uint64(1); i < 5000; i++ {
		v := i * i * 977
		all.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatal("merged histogram differs from one that recorded everything")
	}
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

func TestSeriesCarriesValuesAcrossQuietSeconds(t *testing.T) {
	var s series
	s.set(10e9, 1)
	s.set(10.5e9, 3) // the value at the end of second 10 counts
	s.set(13e9, 5)   // seconds 11 and 12 keep 3
	got := s.last(15e9, 6)
	want := []int64{3, 3, 3, 5, 5, 5} // seconds 10..15
	if !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	// a gap longer than the window
	s.set(2000e9, 7)
	if got := s.last(2000e9, 3); !slices.Equal(got, []int64{5, 5, 7}) {
		t.Fatalf("after a long gap: %v", got)
	}
}
