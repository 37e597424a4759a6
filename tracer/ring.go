package tracer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/tracer/event"
)

// ringBatch is how many records a reader takes out of a ring at a time
// before it gives their space back to the kernel.
const ringBatch = 512

// The length word of a ring buffer record header (struct bpf_ringbuf_hdr).
const (
	ringBusyBit    = 1 << 31 // reserved, not yet committed
	ringDiscardBit = 1 << 30 // discarded: skip it
	ringHeaderSize = 8
)

// ring is one BPF ring buffer mapped into this process: records are copied
// out and their space is given back with one store of the consumer
// position per batch, no system call and no lock per record.
type ring struct {
	fd   int
	cons []byte // the consumer page
	prod []byte // the producer page, then the data pages
	mask uintptr
}

func mapRing(m *ebpf.Map) (_ *ring, err error) {
	size := int(m.MaxEntries())
	if m.Type() != ebpf.RingBuf || size == 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("map %v of %d bytes is not a ring buffer", m.Type(), size)
	}
	g := &ring{fd: m.FD(), mask: uintptr(size - 1)}
	page := os.Getpagesize()
	if g.cons, err = unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, fmt.Errorf("map the ring buffer's consumer page: %w", err)
	}
	// the kernel lays the data pages out twice in a row, so that a record
	// wrapping around the end reads whole; mapping them once keeps the
	// ring's resident size at its size (read copies a wrapped record in
	// two parts)
	if g.prod, err = unix.Mmap(m.FD(), int64(page), page+size, unix.PROT_READ, unix.MAP_SHARED); err != nil {
		unix.Munmap(g.cons)
		return nil, fmt.Errorf("map the ring buffer's data pages: %w", err)
	}
	return g, nil
}

// unmap releases the mappings; safe to call twice.
func (g *ring) unmap() error {
	var errs []error
	for _, m := range [][]byte{g.prod, g.cons} {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
		}
	}
	g.prod, g.cons = nil, nil
	return errors.Join(errs...)
}

// ringPoller waits in epoll_wait for the kernel programs' wakeups on a set
// of rings, for Close (an eventfd) or for a timeout.
type ringPoller struct {
	epfd   int
	wake   int // eventfd written by Close
	events []unix.EpollEvent
}

// newRingPoller polls the rings; edge: report a ring only when the kernel
// wakes it up, not whenever it holds records.
func newRingPoller(rings []*ring, edge bool) (_ *ringPoller, err error) {
	p := &ringPoller{epfd: -1, wake: -1, events: make([]unix.EpollEvent, len(rings)+1)}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	if p.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	add := func(fd int, events uint32) error {
		ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
		if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return fmt.Errorf("epoll_ctl: %w", err)
		}
		return nil
	}
	var ringEvents uint32 = unix.EPOLLIN
	if edge {
		ringEvents |= unix.EPOLLET
	}
	for _, g := range rings {
		if err := add(g.fd, ringEvents); err != nil {
			return nil, err
		}
	}
	if err := add(p.wake, unix.EPOLLIN); err != nil {
		return nil, err
	}
	return p, nil
}

// wait blocks until a ring is woken, the timeout passes (timeout < 0: no
// bound) or Close wakes it (closed).
func (p *ringPoller) wait(timeout time.Duration) (closed bool, err error) {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	n, err := unix.EpollWait(p.epfd, p.events, ms)
	if errors.Is(err, unix.EINTR) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read ring buffer: epoll_wait: %w", err)
	}
	for _, ev := range p.events[:n] {
		if int(ev.Fd) == p.wake {
			return true, nil
		}
	}
	return false, nil
}

// wakeUp makes a wait return closed, now or when it is next called.
func (p *ringPoller) wakeUp() error {
	var one [8]byte
	one[0] = 1 // eventfd counters are in native byte order; 1 is nonzero in either
	if _, err := unix.Write(p.wake, one[:]); err != nil {
		return fmt.Errorf("wake the ring buffer reader: %w", err)
	}
	return nil
}

// close closes the descriptors that are open; safe to call twice.
func (p *ringPoller) close() error {
	var errs []error
	for _, fd := range []int{p.wake, p.epfd} {
		if fd >= 0 {
			errs = append(errs, unix.Close(fd))
		}
	}
	p.wake, p.epfd = -1, -1
	return errors.Join(errs...)
}

// stamp is a record's time (ts_ns, its first 8 bytes).
func stamp(rec []byte) int64 { return int64(binary.LittleEndian.Uint64(rec[:8])) }

// run is the unread part of one ring buffer: its records are parsed in
// place, and their space given back to the kernel once they are copied
// out.
type run struct {
	g       *ring
	data    []byte   // the data pages
	consPos *uintptr // the consumer position, on the consumer page
	pos     uintptr  // the position of the head record, or of the next to parse
	prod    uintptr  // the producer position when the ring was last looked at
	given   uintptr  // the consumer position given back to the kernel
	head    []byte   // the head record as written (see event.WireSize); nil: none
	next    uintptr  // the position after the head record
	ts      int64    // head's time; math.MaxInt64 without a head
	wrapped [event.RecordSize]byte
}

func newRun(g *ring) *run {
	u := &run{
		g:       g,
		data:    g.prod[os.Getpagesize():],
		consPos: (*uintptr)(unsafe.Pointer(&g.cons[0])),
		ts:      math.MaxInt64,
	}
	u.pos = atomic.LoadUintptr(u.consPos)
	u.prod, u.given = u.pos, u.pos
	return u
}

// look takes in the records committed since the ring was last looked at.
func (u *run) look() error {
	u.prod = atomic.LoadUintptr((*uintptr)(unsafe.Pointer(&u.g.prod[0])))
	if u.head == nil {
		return u.parse()
	}
	return nil
}

// parse makes the record at pos the head, if it was committed when the
// ring was last looked at, skipping discarded records.
func (u *run) parse() error {
	u.head, u.ts = nil, math.MaxInt64
	for u.prod-u.pos >= ringHeaderSize {
		// the length word is read atomically: the kernel's xchg that
		// clears the busy bit orders the record's bytes before it
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&u.data[u.pos&u.g.mask])))
		if hdr&ringBusyBit != 0 {
			return nil
		}
		size := uintptr(hdr &^ (ringBusyBit | ringDiscardBit))
		next := u.pos + ringHeaderSize + (size+7)&^7
		if next-u.pos > u.prod-u.pos {
			return fmt.Errorf("read ring buffer: a record of %d bytes runs past the producer position", size)
		}
		if hdr&ringDiscardBit != 0 {
			u.pos = next
			continue
		}
		if size < event.MinRecordSize {
			u.pos = next
			return fmt.Errorf("short ring buffer record: %d bytes", size)
		}
		size = min(size, event.RecordSize)
		// a record that wraps around the end continues at the start
		off := (u.pos + ringHeaderSize) & u.g.mask
		if end := off + size; end <= uintptr(len(u.data)) {
			u.head = u.data[off:end:end]
		} else {
			n := copy(u.wrapped[:size], u.data[off:])
			copy(u.wrapped[n:size], u.data)
			u.head = u.wrapped[:size]
		}
		u.next, u.ts = next, stamp(u.head)
		return nil
	}
	return nil
}

// take moves past the head record.
func (u *run) take() error {
	u.pos = u.next
	return u.parse()
}

// giveBack hands the space of the records taken back to the kernel.
func (u *run) giveBack() {
	if u.pos != u.given {
		atomic.StoreUintptr(u.consPos, u.pos)
		u.given = u.pos
	}
}

// ringReader reads one ring buffer or, merging them by time, a ring
// buffer per CPU. Records are parsed where the kernel wrote them and
// copied out in batches of up to ringBatch, each record's space given back
// to the kernel as it is copied (one store of the consumer position per
// batch, no system call and no lock per record).
//
// One ring is read in the order of its records. The rings of the CPUs are
// merged: each CPU writes its records in the order of their time stamps,
// almost always (an interrupt's program can write between another
// program's stamp and its write), and the record released next is the
// oldest head among the rings, records of equal time in the order of their
// CPUs. A look at the rings that began at monotonic time T has seen every
// record committed before T, so records stamped before T-holdBack are
// released; a record stamped earlier on another CPU, committed later, can
// overtake the ones held back. The rings of the CPUs are polled
// edge-triggered: a Read waits for a kernel program's wakeup (every
// wakeupEvery records of a CPU), Close, the deadline, or the time the
// oldest record held leaves the hold-back, and then looks again. One ring
// is polled level-triggered, and waited on only when it has nothing.
type ringReader struct {
	buf    []byte // records copied out, event.RecordSize bytes apart
	next   int    // offset in buf of the next record to return
	owners event.Owners

	deadline time.Time

	mu     sync.Mutex // held by Read while it copies or waits; Close unmaps under it
	closed bool
	runs   []*run
	merge  bool
	cutoff int64 // with merge, records stamped before this (CLOCK_MONOTONIC ns) are released
	final  bool  // no record comes anymore: a look releases every record
	rings  []*ring
	poll   *ringPoller

	once sync.Once
}

// newRingReader reads the ring buffers ms: one, or one per CPU merged by
// time.
func newRingReader(ms []*ebpf.Map) (_ *ringReader, err error) {
	r := &ringReader{buf: make([]byte, 0, ringBatch*event.RecordSize), merge: len(ms) > 1, cutoff: math.MaxInt64}
	defer func() {
		if err != nil {
			for _, g := range r.rings {
				g.unmap()
			}
		}
	}()
	for i, m := range ms {
		g, err := mapRing(m)
		if err != nil {
			if r.merge {
				err = fmt.Errorf("CPU %d: %w", i, err)
			}
			return nil, err
		}
		r.rings = append(r.rings, g)
		r.runs = append(r.runs, newRun(g))
	}
	if r.poll, err = newRingPoller(r.rings, r.merge); err != nil {
		return nil, err
	}
	return r, nil
}

// Read returns the next record (event.RecordSize bytes, valid until the
// next Read).
func (r *ringReader) Read() ([]byte, error) {
	if r.next < len(r.buf) {
		rec := r.buf[r.next : r.next+event.RecordSize : r.next+event.RecordSize]
		r.next += event.RecordSize
		return rec, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var began time.Time // of the last look; zero: look before waiting
	for {
		if r.closed {
			return nil, ErrClosed
		}
		if err := r.fill(); err != nil {
			r.buf = r.buf[:0]
			return nil, err
		}
		if len(r.buf) > 0 {
			r.next = event.RecordSize
			return r.buf[:event.RecordSize:event.RecordSize], nil
		}
		if began.IsZero() {
			// nothing due of what the last look took in: look again
			began = time.Now()
			if err := r.look(); err != nil {
				return nil, err
			}
			continue
		}
		// a look that began at or after the deadline found nothing due
		if !r.deadline.IsZero() && !began.Before(r.deadline) {
			return nil, fmt.Errorf("read ring buffer: %w", os.ErrDeadlineExceeded)
		}
		// wait for a wakeup, until the oldest record held is due, or
		// until the deadline
		timeout, bounded := time.Duration(0), false
		if _, ts := r.oldest(); r.merge && ts != math.MaxInt64 {
			timeout, bounded = time.Duration(ts+dueAfter-int64(monotonicNow())), true
		}
		if !r.deadline.IsZero() {
			if left := time.Until(r.deadline); !bounded || left < timeout {
				timeout, bounded = left, true
			}
		}
		began = time.Time{}
		if !bounded {
			timeout = -1
		} else if timeout <= 0 {
			continue // due already: look again
		}
		closed, err := r.poll.wait(timeout)
		if err != nil {
			return nil, err
		}
		if closed {
			return nil, ErrClosed
		}
	}
}

// look takes in the records committed since the last look; with merge,
// it moves the cutoff to holdBack before the look began.
func (r *ringReader) look() error {
	began := int64(monotonicNow())
	for _, u := range r.runs {
		if err := u.look(); err != nil {
			return err
		}
	}
	if r.merge && !r.final {
		r.cutoff = began - int64(holdBack)
	}
	return nil
}

// oldest returns the run whose head is oldest, and its time
// (math.MaxInt64: no run has a head).
func (r *ringReader) oldest() (*run, int64) {
	var old *run
	ts := int64(math.MaxInt64)
	for _, u := range r.runs {
		if u.ts < ts {
			old, ts = u, u.ts
		}
	}
	return old, ts
}

// fill copies up to ringBatch records that are due into buf, oldest
// first, and gives their space back.
func (r *ringReader) fill() (err error) {
	r.buf, r.next = r.buf[:0], 0
	for len(r.buf) < ringBatch*event.RecordSize {
		u, ts := r.oldest()
		if u == nil || ts >= r.cutoff {
			break
		}
		r.buf = event.Widen(r.buf, u.head)
		r.owners.Restore(r.buf[len(r.buf)-event.RecordSize:])
		if err = u.take(); err != nil {
			break
		}
	}
	for _, u := range r.runs {
		u.giveBack()
	}
	return err
}

func (r *ringReader) SetDeadline(d time.Time) { r.deadline = d }

// Final: every record is due once looked at.
func (r *ringReader) Final() {
	r.final = true
	r.cutoff = math.MaxInt64
}

func (r *ringReader) Lost() uint64 { return 0 }

func (r *ringReader) Owners() (restored, unknown uint64) { return r.owners.Counts() }

// Close wakes a Read blocked in epoll_wait, then unmaps the rings and
// closes the descriptors once no Read uses them; safe to call twice.
func (r *ringReader) Close() error {
	var err error
	r.once.Do(func() {
		err = r.poll.wakeUp()
		r.mu.Lock()
		defer r.mu.Unlock()
		r.closed = true
		errs := []error{err}
		for _, g := range r.rings {
			errs = append(errs, g.unmap())
		}
		err = errors.Join(append(errs, r.poll.close())...)
	})
	return err
}

// minCPURing is the smallest ring buffer a CPU gets: 1 MiB holds some
// 8,700 whole records (16,000 IPv4 records without an owner), eight times
// the wakeupEvery records after which a CPU wakes the reader, about 60 ms
// of a CPU at a saturated churn. Below that
// a reader that is late by a few wakeups would lose records.
const minCPURing = 1 << 20

// cpuRingSizes returns the size of the ring buffer of every possible CPU:
// total shared among the CPUs online now, each the largest power of two
// within its share and at least minCPURing; a CPU offline now gets
// minCPURing (it may come online while twtop runs).
func cpuRingSizes(total uint32) ([]uint32, error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count the possible CPUs: %w", err)
	}
	return ringSizes(total, onlineCPUs(ncpu)), nil
}

// ringSizes shares total among the CPUs online (see cpuRingSizes).
func ringSizes(total uint32, online []bool) []uint32 {
	n := 0
	for _, on := range online {
		if on {
			n++
		}
	}
	share := uint64(total) / uint64(max(n, 1))
	size := uint64(minCPURing)
	for size*2 <= share {
		size *= 2
	}
	sizes := make([]uint32, len(online))
	for cpu := range sizes {
		sizes[cpu] = minCPURing
		if online[cpu] {
			sizes[cpu] = uint32(size)
		}
	}
	return sizes
}

// onlineCPUs reports which of the ncpu possible CPUs are online, from
// /sys/devices/system/cpu/online (a list such as 0-3,6); all of them
// where it cannot be read.
func onlineCPUs(ncpu int) []bool {
	online := make([]bool, ncpu)
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err == nil {
		err = parseCPUList(strings.TrimSpace(string(b)), online)
	}
	if err != nil {
		for i := range online {
			online[i] = true
		}
	}
	return online
}

// parseCPUList marks the CPUs of list (such as 0-3,6) in set.
func parseCPUList(list string, set []bool) error {
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err := strconv.Atoi(lo)
		if err != nil {
			return fmt.Errorf("CPU list %q: %w", list, err)
		}
		b, err := strconv.Atoi(hi)
		if err != nil {
			return fmt.Errorf("CPU list %q: %w", list, err)
		}
		for cpu := a; cpu <= b && cpu < len(set); cpu++ {
			if cpu >= 0 {
				set[cpu] = true
			}
		}
	}
	return nil
}

// makeCPURings creates a ring buffer of sizes[cpu] bytes for every CPU and
// puts it in outer, the programs' cpu_rings, before any program is
// attached.
func (t *Tracer) makeCPURings(outer *ebpf.Map, sizes []uint32) error {
	for cpu, size := range sizes {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "cpu_ring", Type: ebpf.RingBuf, MaxEntries: size})
		if err != nil {
			return fmt.Errorf("create the ring buffer of CPU %d (%d bytes): %w", cpu, size, err)
		}
		t.cpuRings = append(t.cpuRings, m)
		if err := outer.Put(uint32(cpu), m); err != nil {
			return fmt.Errorf("put the ring buffer of CPU %d in cpu_rings: %w", cpu, err)
		}
	}
	return nil
}

// haveRingInMap reports whether the kernel takes ring buffers as the
// values of an array of maps, rings of a size other than the array's
// template included (kernels before 5.10 compare the sizes); the error
// wraps ebpf.ErrNotSupported when it refuses them.
func haveRingInMap() error {
	page := uint32(os.Getpagesize())
	outer, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "ring_probe", Type: ebpf.ArrayOfMaps, KeySize: 4, MaxEntries: 1,
		InnerMap: &ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 2 * page},
	})
	if err != nil {
		return refusal(err)
	}
	defer outer.Close()
	inner, err := ebpf.NewMap(&ebpf.MapSpec{Name: "ring_probe", Type: ebpf.RingBuf, MaxEntries: page})
	if err != nil {
		return fmt.Errorf("ring buffer for the probe: %w", err)
	}
	defer inner.Close()
	if err := outer.Put(uint32(0), inner); err != nil {
		return refusal(err)
	}
	return nil
}

// refusal wraps err with ebpf.ErrNotSupported unless it is a lack of
// privileges.
func refusal(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("ring buffers in an array of maps: %w", err)
	}
	return fmt.Errorf("ring buffers in an array of maps: %w: %w", ebpf.ErrNotSupported, err)
}
