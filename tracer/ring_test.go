package tracer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/tracer/event"
)

func TestParseCPUList(t *testing.T) {
	for _, c := range []struct {
		list string
		want []bool
	}{
		{"0", []bool{true, false, false, false}},
		{"0-3", []bool{true, true, true, true}},
		{"0,2-3", []bool{true, false, true, true}},
		{"1-7", []bool{false, true, true, true}}, // beyond the possible CPUs
	} {
		got := make([]bool, 4)
		if err := parseCPUList(c.list, got); err != nil {
			t.Fatalf("%q: %v", c.list, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%q: %v, want %v", c.list, got, c.want)
		}
	}
	if err := parseCPUList("0-x", make([]bool, 4)); err == nil {
		t.Error("0-x parsed")
	}
}

// The total is shared among the online CPUs in powers of two, never below
// minCPURing; an offline CPU gets minCPURing.
func TestRingSizes(t *testing.T) {
	on, off := true, false
	for _, c := range []struct {
		total  uint32
		online []bool
		want   []uint32
	}{
		{32 << 20, []bool{on, on}, []uint32{16 << 20, 16 << 20}},
		{32 << 20, []bool{on, on, on}, []uint32{8 << 20, 8 << 20, 8 << 20}},
		{32 << 20, []bool{on, off, on, off}, []uint32{16 << 20, 1 << 20, 16 << 20, 1 << 20}},
		{4 << 20, []bool{on, on, on, on, on, on, on, on}, slices.Repeat([]uint32{1 << 20}, 8)},
		{1 << 31, []bool{on}, []uint32{1 << 31}},
		{4096, []bool{on}, []uint32{1 << 20}},
	} {
		if got := ringSizes(c.total, c.online); !slices.Equal(got, c.want) {
			t.Errorf("ringSizes(%d, %v) = %v, want %v", c.total, c.online, got, c.want)
		}
	}
}

// The per-CPU ring reader merges the CPUs' records (checkMergedReader).
func TestCPURingReaderKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		netnstest.Unprivileged(t, "test needs root to load a BPF program")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("raise RLIMIT_MEMLOCK: %v", err)
	}
	if err := haveRingInMap(); err != nil {
		t.Skipf("no ring buffer per CPU on this kernel: %v", err)
	}
	sizes, err := cpuRingSizes(uint32(os.Getpagesize()))
	if err != nil {
		t.Fatal(err)
	}
	outer, err := ebpf.NewMap(&ebpf.MapSpec{
		Type: ebpf.ArrayOfMaps, KeySize: 4, MaxEntries: uint32(len(sizes)),
		InnerMap: &ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: slices.Max(sizes)},
	})
	if err != nil {
		t.Fatalf("create the array of rings: %v", err)
	}
	defer outer.Close()
	tr := &Tracer{}
	defer func() {
		for _, m := range tr.cpuRings {
			m.Close()
		}
	}()
	if err := tr.makeCPURings(outer, sizes); err != nil {
		t.Fatal(err)
	}
	prog := perfTestProg(t, outer)
	rd, err := newRingReader(tr.cpuRings)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	checkMergedReader(t, prog, rd)
}

// A ring of one page wraps every 34 records: records that run over its
// end are read whole, in order, and the space given back is reused.
func TestRingReaderWraps(t *testing.T) {
	if os.Geteuid() != 0 {
		netnstest.Unprivileged(t, "test needs root to load a BPF program")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("raise RLIMIT_MEMLOCK: %v", err)
	}
	if err := haveRingInMap(); err != nil {
		t.Skipf("no ring buffer in an array of maps on this kernel: %v", err)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	page := uint32(os.Getpagesize())
	outer, err := ebpf.NewMap(&ebpf.MapSpec{
		Type: ebpf.ArrayOfMaps, KeySize: 4, MaxEntries: uint32(ncpu),
		InnerMap: &ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: page},
	})
	if err != nil {
		t.Fatalf("create the array of rings: %v", err)
	}
	defer outer.Close()
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Name: "wrap_ring", Type: ebpf.RingBuf, MaxEntries: page})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	for cpu := range ncpu {
		if err := outer.Put(uint32(cpu), ring); err != nil {
			t.Fatal(err)
		}
	}
	prog := perfTestProg(t, outer)
	rd, err := newRingReader([]*ebpf.Map{ring})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	cpu := 0
	for !allowed.IsSet(cpu) {
		cpu++
	}
	perRound := int(page) / (event.RecordSize + ringHeaderSize) // fits, but not at the same place twice
	var last uint64
	for round := range 20 {
		if err := runOn(prog, cpu, perRound); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		rd.SetDeadline(time.Now().Add(5 * time.Second))
		for i := range perRound {
			r, err := rd.Read()
			if err != nil {
				t.Fatalf("round %d, record %d: %v", round, i, err)
			}
			if m := binary.LittleEndian.Uint32(r[8:]); m != perfTestMagic || int(binary.LittleEndian.Uint32(r[12:])) != cpu {
				t.Fatalf("round %d, record %d: %x: not the test program's", round, i, r)
			}
			if rest := r[16:]; !bytes.Equal(rest, make([]byte, len(rest))) {
				t.Fatalf("round %d, record %d: %x: bytes after the first 16 are not zero", round, i, r)
			}
			if recTS(r) < last {
				t.Fatalf("round %d, record %d at %d after one at %d", round, i, recTS(r), last)
			}
			last = recTS(r)
		}
	}
	rd.SetDeadline(time.Now().Add(50 * time.Millisecond))
	if r, err := rd.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a record more than written: %x, %v", r, err)
	}
}

// monotonicNow reads CLOCK_MONOTONIC, the clock of the records' times,
// within a few microseconds.
func TestMonotonicNow(t *testing.T) {
	clock := func() int64 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		return ts.Nano()
	}
	const slack = 50 * time.Microsecond
	ok := 0
	for range 20 {
		a := clock()
		m := int64(monotonicNow())
		b := clock()
		if m >= a-int64(slack) && m <= b+int64(slack) {
			ok++
		}
	}
	// a reading may be preempted between the clocks; most are not
	if ok < 10 {
		t.Fatalf("monotonicNow within %v of CLOCK_MONOTONIC in %d of 20 readings", slack, ok)
	}
}
