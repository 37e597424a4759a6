package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/tracer/event"
)

// The "record floor" variant is the empty hooks, except that the program
// on the state change tracepoint (floorProg) writes a record of twtop's
// smallest size (event.MinRecordSize: an IPv4 transition without its
// owner) into its CPU's ring buffer for every change, and a reader in the
// bench consumes every record as it comes (it reads the record's header,
// as any reader must, and nothing else). Its ratio is the least that
// keeping every state change in a stream costs on these hooks: before
// reading a field of the socket, decoding, or writing anything out. It is
// the floor under twtop --record as the empty hooks are under any tracer.

// floorProg is the name of the record floor's program.
const floorProg = "record_state"

// floorRingSize is each CPU's ring buffer: twtop's default per CPU.
const floorRingSize = 8 << 20

// floorPoll is how often the reader looks at the rings. The program
// submits without waking it, so the reader's cost is its records alone.
const floorPoll = time.Millisecond

// recordFloor holds the empty hooks, the rings and their reader.
type recordFloor struct {
	hooks *emptyHooks
	outer *ebpf.Map
	rings []*floorRing
	stop  chan struct{}
	done  sync.WaitGroup
	read  atomic.Uint64 // records consumed
}

// floorRing is one CPU's ring buffer, mapped as a reader maps it: the
// consumer position (read-write), then the producer position and the data
// pages twice (read-only).
type floorRing struct {
	m          *ebpf.Map
	cons, prod []byte
}

// floorInsns reserves a record in the ring of the CPU it runs on (outer:
// an array of ring buffers by CPU), writes the time and the tracepoint's
// two states into it, zeroes the rest and submits it without a wakeup.
func floorInsns(outer *ebpf.Map) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSmpProcessorId.Call(),
		asm.StoreMem(asm.RFP, -4, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, outer.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.Mov.Imm(asm.R2, event.MinRecordSize),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R7, 0, asm.R0, asm.DWord),
		asm.LoadMem(asm.R1, asm.R6, 8, asm.DWord), // oldstate
		asm.StoreMem(asm.R7, 8, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R6, 16, asm.DWord), // newstate
		asm.StoreMem(asm.R7, 16, asm.R1, asm.DWord),
	}
	insns = append(insns, asm.Mov.Imm(asm.R1, 0))
	for off := int16(24); off < event.MinRecordSize; off += 8 {
		insns = append(insns, asm.StoreMem(asm.R7, off, asm.R1, asm.DWord))
	}
	return append(insns,
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Mov.Imm(asm.R2, 1), // BPF_RB_NO_WAKEUP
		asm.FnRingbufSubmit.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	)
}

func attachRecordFloor() (f *recordFloor, err error) {
	f = &recordFloor{stop: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Close())
			f = nil
		}
	}()
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return f, fmt.Errorf("possible CPUs: %w", err)
	}
	f.outer, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: uint32(ncpu),
		InnerMap: &ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: floorRingSize}})
	if err != nil {
		return f, fmt.Errorf("record floor: rings by CPU: %w", err)
	}
	for cpu := range ncpu {
		r, err := newFloorRing()
		if err != nil {
			return f, err
		}
		f.rings = append(f.rings, r)
		if err := f.outer.Put(uint32(cpu), r.m); err != nil {
			return f, fmt.Errorf("record floor: ring of CPU %d: %w", cpu, err)
		}
	}
	f.done.Add(1)
	go f.consume()
	f.hooks, err = attachHooks(floorProg, floorInsns(f.outer))
	return f, err
}

func newFloorRing() (*floorRing, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: floorRingSize})
	if err != nil {
		return nil, fmt.Errorf("record floor: ring: %w", err)
	}
	r := &floorRing{m: m}
	page := os.Getpagesize()
	if r.cons, err = unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		m.Close()
		return nil, fmt.Errorf("record floor: map the consumer page: %w", err)
	}
	if r.prod, err = unix.Mmap(m.FD(), int64(page), page+2*floorRingSize, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		unix.Munmap(r.cons)
		m.Close()
		return nil, fmt.Errorf("record floor: map the ring: %w", err)
	}
	return r, nil
}

// consume moves every ring's consumer position past the records committed
// since the last look, every floorPoll, until stop; one last look then.
func (f *recordFloor) consume() {
	defer f.done.Done()
	t := time.NewTicker(floorPoll)
	defer t.Stop()
	for {
		var n uint64
		for _, r := range f.rings {
			n += r.consume()
		}
		f.read.Add(n)
		select {
		case <-f.stop:
			for _, r := range f.rings {
				f.read.Add(r.consume())
			}
			return
		case <-t.C:
		}
	}
}

// Record header bits (BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT) and
// size.
const (
	ringBusy    = 1 << 31
	ringDiscard = 1 << 30
	ringHdrSize = 8
)

// consume reads the headers of the records committed since the consumer
// position and moves it past them, as a reader that drops every record.
func (r *floorRing) consume() (n uint64) {
	cons := (*uint64)(unsafe.Pointer(&r.cons[0]))
	prod := (*uint64)(unsafe.Pointer(&r.prod[0]))
	data := r.prod[os.Getpagesize():]
	c, p := atomic.LoadUint64(cons), atomic.LoadUint64(prod)
	for c < p {
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&data[c&(floorRingSize-1)])))
		if hdr&ringBusy != 0 {
			break
		}
		size := uint64(hdr&^(ringBusy|ringDiscard)) + ringHdrSize
		c += (size + 7) &^ 7
		if hdr&ringDiscard == 0 {
			n++
		}
	}
	atomic.StoreUint64(cons, c)
	return n
}

// Close detaches the hooks, then reads what the rings hold and unmaps and
// closes them.
func (f *recordFloor) Close() error {
	var errs []error
	if f.hooks != nil {
		errs = append(errs, f.hooks.Close())
		f.hooks = nil
	}
	if f.stop != nil {
		close(f.stop)
		f.done.Wait()
		f.stop = nil
	}
	for _, r := range f.rings {
		errs = append(errs, unix.Munmap(r.prod), unix.Munmap(r.cons), r.m.Close())
	}
	f.rings = nil
	if f.outer != nil {
		errs = append(errs, f.outer.Close())
		f.outer = nil
	}
	return errors.Join(errs...)
}
