package record

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twtop/twtop/internal/workload"
)

// recordWriter is what Writer and AsyncWriter have in common.
type recordWriter interface {
	Add(rec []byte) error
	Flush() error
	State(s State) error
	Workloads(ws Workloads) error
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
		case 2:
			if err := w.Workloads(testWorkloads(uint64(i))); err != nil {
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

// testWorkloads names cgroup id n a pod's container.
func testWorkloads(n uint64) Workloads {
	return Workloads{Cgroups: map[string]workload.Workload{strconv.FormatUint(n, 10): {
		Kind: workload.KindPod, PodUID: "uid-" + strconv.FormatUint(n, 10), ContainerID: strings.Repeat("a", 64),
		Namespace: "shop", Pod: "web", Container: "nginx"}}}
}

// Workloads blocks come back in order among the records: each is handed
// to OnWorkloads after the records written before it and before those
// written after it, as the writer got them.
func TestWorkloadsBlocks(t *testing.T) {
	recs := churn(3*batchRecords + 7)
	for _, async := range []bool{false, true} {
		var buf bytes.Buffer
		var w recordWriter
		var err error
		if async {
			w, err = NewAsyncWriter(&buf, testHeader())
		} else {
			w, err = NewWriter(&buf, testHeader())
		}
		if err != nil {
			t.Fatal(err)
		}
		at := []int{0, 5, batchRecords + 1, len(recs)}
		for i, r := range recs {
			if slices.Contains(at, i) {
				if err := w.Workloads(testWorkloads(uint64(i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Workloads(testWorkloads(uint64(len(recs)))); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(Trailer{}); err != nil {
			t.Fatal(err)
		}
		rd, err := NewReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		read := 0
		rd.OnWorkloads = func(ws Workloads) {
			for k, w := range ws.Cgroups {
				if w.Pod != "web" || w.Container != "nginx" || w.PodUID != "uid-"+k {
					t.Errorf("async %v: workloads block %s: %+v", async, k, w)
				}
				if k != strconv.Itoa(read) {
					t.Errorf("async %v: workloads of %s read after %d records", async, k, read)
				}
				got = append(got, read)
			}
		}
		for {
			if _, err := rd.Next(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				break
			}
			read++
		}
		if !slices.Equal(got, at) || read != len(recs) {
			t.Errorf("async %v: workloads blocks after %v records (of %d), want %v", async, got, read, at)
		}
	}
}
