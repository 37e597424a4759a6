package record

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// recordWriter is what Writer and AsyncWriter have in common.
type recordWriter interface {
	Add(rec []byte) error
	Flush() error
	State(s State) error
	Close(t Trailer) error
	Written() int64
	Records() uint64
}

// script runs the same calls on w: records, flushes and states at points
// drawn from a fixed seed, then the trailer.
func script(t *testing.T, w recordWriter, recs [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	for i, r := range recs {
		if err := w.Add(r); err != nil {
			t.Fatal(err)
		}
		switch rng.IntN(5000) {
		case 0:
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := w.State(testState(uint64(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(Trailer{TimeNs: 9, Tracer: TracerStats{Records: uint64(len(recs))}}); err != nil {
		t.Fatal(err)
	}
	if w.Records() != uint64(len(recs)) {
		t.Fatalf("Records() = %d after Close, want %d", w.Records(), len(recs))
	}
}

// An AsyncWriter writes, byte for byte, what a Writer given the same calls
// writes: the same blocks in the same order.
func TestAsyncWriterSameBytes(t *testing.T) {
	recs := churn(5*batchRecords + 123)
	var want, got bytes.Buffer
	w, err := NewWriter(&want, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	script(t, w, recs)
	a, err := NewAsyncWriter(&got, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	script(t, a, recs)
	if !bytes.Equal(want.Bytes(), got.Bytes()) {
		t.Fatalf("the asynchronous writer wrote %d bytes that differ from the writer's %d", got.Len(), want.Len())
	}
	if a.Written() != int64(got.Len()) {
		t.Fatalf("Written() = %d, the file holds %d", a.Written(), got.Len())
	}
	rd, back, states, err := readAll(got.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(recs) || len(states) == 0 {
		t.Fatalf("read back %d records and %d states, want %d records", len(back), len(states), len(recs))
	}
	if tr, ok := rd.Trailer(); !ok || tr.Records != uint64(len(recs)) {
		t.Fatalf("trailer %+v, %v", tr, ok)
	}
}

// failAfter accepts n bytes, then fails every write.
type failAfter struct{ n int }

var errDiskFull = errors.New("no space left on device")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errDiskFull
	}
	f.n -= len(p)
	return len(p), nil
}

// A write error on the writing goroutine comes back from a later Add or
// Flush, and from Close; the pipeline never blocks on it.
func TestAsyncWriterError(t *testing.T) {
	a, err := NewAsyncWriter(&failAfter{n: 4096}, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	var addErr error
	for _, r := range churn(20 * batchRecords) {
		if addErr = a.Add(r); addErr != nil {
			break
		}
	}
	if addErr == nil {
		// the error may still be on its way: the next hand-over has it
		a.Stop()
		addErr = a.Flush()
	}
	if !errors.Is(addErr, errDiskFull) {
		t.Fatalf("Add/Flush error %v, want one wrapping %v", addErr, errDiskFull)
	}
	if err := a.Close(Trailer{}); !errors.Is(err, errDiskFull) {
		t.Fatalf("Close error %v, want one wrapping %v", err, errDiskFull)
	}
	if err := a.State(testState(1)); err == nil {
		t.Fatal("State after Close succeeded")
	}
}

// Adding a record copies it and allocates nothing.
func TestAsyncWriterAddAllocs(t *testing.T) {
	a, err := NewAsyncWriter(io.Discard, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	recs := churn(3 * batchRecords)
	i := 0
	allocs := testing.AllocsPerRun(2*batchRecords, func() {
		if err := a.Add(recs[i%len(recs)]); err != nil {
			t.Fatal(err)
		}
		i++
	})
	if allocs != 0 {
		t.Errorf("%.3f allocations per Add, want 0", allocs)
	}
	if err := a.Close(Trailer{}); err != nil {
		t.Fatal(err)
	}
}
