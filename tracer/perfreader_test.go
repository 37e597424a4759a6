package tracer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/tracer/event"
)

// mergeRec is a record stamped ts whose bytes 8..16 hold id.
func mergeRec(ts, id uint64) []byte {
	b := make([]byte, event.RecordSize)
	binary.LittleEndian.PutUint64(b, ts)
	binary.LittleEndian.PutUint64(b[8:], id)
	return b
}

func recTS(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
func recID(b []byte) uint64 { return binary.LittleEndian.Uint64(b[8:]) }

// Per-CPU streams pushed in an arbitrary interleaving come out in time
// order when every pop's cutoff is at most the next time any stream has
// still to push (what the hold-back guarantees the reader).
func TestMergeInterleavedStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const cpus, per = 4, 2000
	streams := make([][]uint64, cpus)
	for c := range streams {
		ts := uint64(1000 + c)
		for range per {
			ts += uint64(rng.IntN(50)) // repeats make ties across and within streams
			streams[c] = append(streams[c], ts)
		}
	}
	var m merger
	next := make([]int, cpus)
	var got []uint64
	pushed := 0
	for pushed < cpus*per {
		// a burst from one CPU
		c := rng.IntN(cpus)
		for k := rng.IntN(20); k >= 0 && next[c] < per; k-- {
			m.push(mergeRec(streams[c][next[c]], uint64(c)))
			next[c]++
			pushed++
		}
		cutoff := int64(math.MaxInt64)
		for c := range streams {
			if next[c] < per {
				cutoff = min(cutoff, int64(streams[c][next[c]]))
			}
		}
		for {
			r, ok := m.pop(cutoff)
			if !ok {
				break
			}
			if len(r) != event.RecordSize {
				t.Fatalf("record of %d bytes", len(r))
			}
			got = append(got, recTS(r))
		}
	}
	for {
		r, ok := m.pop(math.MaxInt64)
		if !ok {
			break
		}
		got = append(got, recTS(r))
	}
	if len(got) != cpus*per {
		t.Fatalf("%d records out, %d in", len(got), cpus*per)
	}
	if !slices.IsSorted(got) {
		t.Fatal("records out of time order")
	}
	if m.count() != 0 {
		t.Fatalf("%d records still held", m.count())
	}
}

// Nothing stamped at or after the cutoff is released, and a later cutoff
// releases it.
func TestMergeCutoff(t *testing.T) {
	var m merger
	for _, ts := range []uint64{30, 10, 20, 40} {
		m.push(mergeRec(ts, ts))
	}
	if ts, ok := m.peek(); !ok || ts != 10 {
		t.Fatalf("peek = %d, %v; want 10", ts, ok)
	}
	var got []uint64
	pop := func(cutoff int64) {
		for {
			r, ok := m.pop(cutoff)
			if !ok {
				return
			}
			if recTS(r) >= uint64(cutoff) {
				t.Fatalf("record at %d released with cutoff %d", recTS(r), cutoff)
			}
			got = append(got, recTS(r))
		}
	}
	pop(0)
	pop(10)
	if len(got) != 0 {
		t.Fatalf("released %v before cutoff 11", got)
	}
	pop(21)
	if !slices.Equal(got, []uint64{10, 20}) {
		t.Fatalf("cutoff 21 released %v, want [10 20]", got)
	}
	m.push(mergeRec(25, 25)) // arrives late, still before the rest
	pop(41)
	if !slices.Equal(got, []uint64{10, 20, 25, 30, 40}) {
		t.Fatalf("released %v", got)
	}
}

// Records of equal time leave in the order they were pushed, and keep
// their bytes; longer input is cut to event.RecordSize.
func TestMergeStableTies(t *testing.T) {
	var m merger
	var want []uint64
	for i := range uint64(300) {
		ts := 100 + i%3*10 // 100, 110, 120, 100, ...
		r := mergeRec(ts, i)
		if i%2 == 1 {
			r = append(r, 1, 2, 3, 4) // perf pads samples
		}
		m.push(r)
	}
	for ts := uint64(100); ts <= 120; ts += 10 {
		for i := range uint64(300) {
			if 100+i%3*10 == ts {
				want = append(want, i)
			}
		}
	}
	var got []uint64
	for {
		r, ok := m.pop(math.MaxInt64)
		if !ok {
			break
		}
		if len(r) != event.RecordSize {
			t.Fatalf("record of %d bytes", len(r))
		}
		if !bytes.Equal(r, mergeRec(recTS(r), recID(r))) {
			t.Fatalf("record %d changed: %x", recID(r), r)
		}
		got = append(got, recID(r))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v\nwant  %v", got, want)
	}
}

// Slots are reused: a long stream with few records held allocates one
// chunk of slots, and pushing and popping allocate nothing.
func TestMergeReusesSlots(t *testing.T) {
	var m merger
	rec := mergeRec(0, 0)
	ts := uint64(0)
	step := func() {
		for range 8 {
			ts++
			binary.LittleEndian.PutUint64(rec, ts)
			m.push(rec)
		}
		for {
			if _, ok := m.pop(int64(ts)); !ok {
				break
			}
		}
		if m.count() != 1 {
			t.Fatalf("%d records held, want the newest only", m.count())
		}
	}
	for range 10000 {
		step()
	}
	if m.slots != mergeChunk {
		t.Fatalf("%d slots allocated for at most 9 records held", m.slots)
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("%v allocations per 8 records", n)
	}
}

// perfTestMagic marks the records of the test program.
const perfTestMagic = 0x74777470

// perfTestProg returns an XDP program that writes one 112-byte record on
// the current CPU: ts_ns, perfTestMagic (u32), the CPU (u32), zeros. The
// record goes to events, a perf event array, or to the ring buffer of the
// CPU in events, an array of ring buffers. It returns XDP_PASS, or
// XDP_ABORTED when the output failed.
func perfTestProg(t *testing.T, events *ebpf.Map) *ebpf.Program {
	t.Helper()
	const key = -event.RecordSize - 8 // the CPU, the key into an array of rings
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R9, asm.R1),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, -event.RecordSize, asm.R0, asm.DWord),
		asm.StoreImm(asm.RFP, -event.RecordSize+8, perfTestMagic, asm.Word),
		asm.FnGetSmpProcessorId.Call(),
		asm.StoreMem(asm.RFP, -event.RecordSize+12, asm.R0, asm.Word),
		asm.StoreMem(asm.RFP, key, asm.R0, asm.Word),
		asm.Mov.Imm(asm.R1, 0),
	}
	for off := -event.RecordSize + 16; off < 0; off += 8 {
		insns = append(insns, asm.StoreMem(asm.RFP, int16(off), asm.R1, asm.DWord))
	}
	if events.Type() == ebpf.PerfEventArray {
		insns = append(insns,
			asm.Mov.Reg(asm.R1, asm.R9),
			asm.LoadMapPtr(asm.R2, events.FD()),
			asm.LoadImm(asm.R3, 0xffffffff, asm.DWord), // BPF_F_CURRENT_CPU
			asm.Mov.Reg(asm.R4, asm.RFP),
			asm.Add.Imm(asm.R4, -event.RecordSize),
			asm.Mov.Imm(asm.R5, event.RecordSize),
			asm.FnPerfEventOutput.Call(),
		)
	} else {
		insns = append(insns,
			asm.LoadMapPtr(asm.R1, events.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, key),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "fail"),
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -event.RecordSize),
			asm.Mov.Imm(asm.R3, event.RecordSize),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnRingbufOutput.Call(),
		)
	}
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "ok"),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("fail"), // XDP_ABORTED
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("ok"), // XDP_PASS
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatalf("load test program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// runOn runs prog n times on cpu, from a thread pinned there, and fails
// if a run could not write its record.
func runOn(prog *ebpf.Program, cpu, n int) error {
	errc := make(chan error)
	go func() {
		// never unlocked: the thread, its affinity changed, ends with the goroutine
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			errc <- err
			return
		}
		// one run per call: a run repeated n times by the kernel starts
		// over, all n of them, when a signal interrupts it
		for range n {
			ret, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
			if err == nil && ret != 2 {
				err = errors.New("the record's output failed")
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}

// checkPerfRecords checks that recs are the test program's records in
// time order, written on the CPUs cpus.
func checkPerfRecords(t *testing.T, recs [][]byte, cpus []int) {
	t.Helper()
	var got []int
	var last uint64
	for i, r := range recs {
		if len(r) != event.RecordSize {
			t.Fatalf("record %d: %d bytes", i, len(r))
		}
		if m := binary.LittleEndian.Uint32(r[8:]); m != perfTestMagic {
			t.Fatalf("record %d: %x: not the test program's", i, r)
		}
		if recTS(r) < last {
			t.Fatalf("record %d at %d after one at %d", i, recTS(r), last)
		}
		last = recTS(r)
		got = append(got, int(binary.LittleEndian.Uint32(r[12:])))
	}
	if !slices.Equal(got, cpus) {
		t.Fatalf("CPUs of the records in time order:\n%v\nwant\n%v", got, cpus)
	}
}

// The perf buffer reader merges the CPUs' records (checkMergedReader).
func TestPerfReaderKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		netnstest.Unprivileged(t, "test needs root to load a BPF program")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatalf("raise RLIMIT_MEMLOCK: %v", err)
	}
	events, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerfEventArray})
	if err != nil {
		t.Fatalf("create perf event array: %v", err)
	}
	defer events.Close()
	prog := perfTestProg(t, events)

	// 256 KiB per CPU holds 2048 records; the wakeup comes at 64 KiB.
	rd, err := newPerfReader(events, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	checkMergedReader(t, prog, rd)
}

// checkMergedReader checks that rd returns the records prog writes on two
// CPUs, exactly once and in time order, a lone record promptly, and
// ErrClosed after Close.
func checkMergedReader(t *testing.T, prog *ebpf.Program, rd recordReader) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < 2; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) < 2 {
		t.Logf("only CPU %d available: records come from one CPU", cpus[0])
	}

	// a lone record, far below the wakeup watermark
	start := time.Now()
	if err := runOn(prog, cpus[0], 1); err != nil {
		t.Fatalf("run on CPU %d: %v", cpus[0], err)
	}
	rd.SetDeadline(time.Now().Add(5 * time.Second))
	r, err := rd.Read()
	if err != nil {
		t.Fatalf("read a lone record: %v", err)
	}
	checkPerfRecords(t, [][]byte{r}, cpus[:1])
	t.Logf("a lone record took %v", time.Since(start))

	// Batches alternating between the CPUs: the CPU of each record, in
	// time order.
	const batches, batch = 40, 25
	var want []int
	for i := range batches {
		for range batch {
			want = append(want, cpus[i%len(cpus)])
		}
	}
	produce := func() {
		for i := range batches {
			if err := runOn(prog, cpus[i%len(cpus)], batch); err != nil {
				t.Errorf("run on CPU %d: %v", cpus[i%len(cpus)], err)
				return
			}
		}
	}
	collect := func() ([][]byte, error) {
		var recs [][]byte
		rd.SetDeadline(time.Now().Add(10 * time.Second))
		for len(recs) < len(want) {
			r, err := rd.Read()
			if err != nil {
				return recs, fmt.Errorf("read record %d of %d: %w", len(recs)+1, len(want), err)
			}
			recs = append(recs, bytes.Clone(r))
		}
		return recs, nil
	}

	// all written before any is read: every CPU's buffer holds records
	produce()
	recs, err := collect()
	if err != nil {
		t.Fatal(err)
	}
	checkPerfRecords(t, recs, want)

	// read while they are written
	done := make(chan struct{})
	go func() {
		defer close(done)
		recs, err = collect()
	}()
	produce()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	checkPerfRecords(t, recs, want)

	// no more records
	rd.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if r, err := rd.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the last record: %x, %v; want a deadline error", r, err)
	}
	rd.SetDeadline(time.Now())
	if r, err := rd.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with a passed deadline: %x, %v; want a deadline error", r, err)
	}
	if n := rd.Lost(); n != 0 {
		t.Fatalf("%d records lost", n)
	}

	// Close ends a blocked Read
	rd.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := rd.Read()
		errc <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := rd.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("read during close: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still blocked 5 s after close")
	}
	if err := rd.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := rd.Read(); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}
}
