// Package tracer loads twtop's kernel programs, attaches them on the best
// tier the kernel allows, and yields the raw records they send, interleaved
// with the records of a periodic scan of TIME_WAIT sockets.
package tracer

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"

	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/settings"
)

// Options select the tier and the in-kernel filters.
type Options struct {
	Tier  Tier
	Netns uint32 // only this network namespace inode (0: all)
	Pid   uint32 // only sockets owned by this process (0: all)
	// Cgroup is a cgroup v2 directory (such as
	// /sys/fs/cgroup/system.slice/nginx.service): only sockets owned by
	// processes in its subtree, a pod's, a container's or a service's
	// ("": all). The kernel checks it (bpf_current_task_under_cgroup).
	Cgroup string
	Port   uint16 // only connections with this local or remote port (0: all)
	Family uint8  // event.AFInet or event.AFInet6 (0: both)

	// ScanNetns are the network namespaces (paths such as
	// /run/netns/NAME or /proc/PID/ns/net) that the TIME_WAIT scan covers;
	// empty means twtop's own. An iter/tcp scan sees only the namespace it
	// was created in.
	ScanNetns []string
	// ScanInterval is the period of the scan (default 1 s).
	ScanInterval time.Duration
	// RingSize is the size in bytes of the kernel's event buffers, a
	// power of two of at least a page (default: DefaultRingSize for the
	// host's CPUs and the ScanNetns' tcp_max_tw_buckets): the sum over all
	// CPUs. With a ring buffer per CPU, each online CPU gets the largest
	// power of two that fits its share, and every CPU at least minCPURing;
	// with perf buffers, each CPU its share rounded up to a power of two
	// pages.
	RingSize uint32

	// BTF is a BTF file for kernels without /sys/kernel/btf/vmlinux (or
	// with Force.NoKernelBTF): CO-RE relocates the programs against it.
	BTF string
	// Force turns fallbacks on that the kernel would not need.
	Force Fallbacks
	// Verbose: a program the kernel refuses has its verifier log written
	// to stderr (LoadError carries it either way).
	Verbose bool
}

// ownerFilter reports whether o filters by the socket's owner.
func (o Options) ownerFilter() bool { return o.Pid != 0 || o.Cgroup != "" }

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("tracer closed")

// Tracer is a running set of attached kernel programs.
type Tracer struct {
	opts    Options
	tier    Tier
	tried   []string // why better tiers were not used
	skipped []string // optional hooks the kernel lacks
	hz      uint32
	// the fallbacks in use, and the BTF the programs were compiled against
	fallbacks Fallbacks
	types     *btf.Spec
	jiffies   uint64 // address of jiffies_64, with OldHelpers
	// the address of tw_timer_handler, for the tracepoint tier
	twTimerFn *symbolLookup
	coll      *ebpf.Collection
	links     []link.Link
	iter      *link.Iter
	cpuRings  []*ebpf.Map // with per-CPU rings: the ring of each possible CPU
	reader    recordReader
	// holdBack: the reader merges per-CPU streams and holds records back
	// this long after their time
	holdBack  time.Duration
	pending   [][]byte      // records drained ahead of a scan, or a sock_diag scan's, not yet returned
	scans     []*scanStream // iter/tcp scans being read, in order
	scanEnds  [][]byte      // their end records, held until the reader is past the scans (finishScans)
	endsAfter int64         // monotonic time the scans finished
	scanSeen  int           // records of the scan being read so far
	scanHead  []byte        // the scans' next record, when a ring record went before it (nextDuringScan)
	early     []byte        // a ring record read during the scans that the scans' records have not reached, in earlyBuf
	earlyBuf  [event.RecordSize]byte
	ringTry   int       // scan records to hand out before the ring is looked at again
	next      time.Time // time of the next scan
	clock     time.Time // the time, read every few hundred records
	deadline  time.Time // the reader's deadline
	reads     uint32
	idle      func() error // see OnIdle

	closed    atomic.Bool // set by Close: Next checks it without the lock
	stopping  atomic.Bool // set by Stop: Next hands out what the buffers hold, then ends
	draining  bool        // Next: the reader was told that no record comes anymore
	drained   bool        // Next: the buffers were read to their end after Stop
	mu        sync.Mutex
	scanNetns []string
	final     *Stats // counters at Close, but Events (see Stats)
	counts    [event.NumKinds]atomic.Uint64
	counted   [event.NumKinds]uint64 // Next: not yet added to counts (count)
	uncounted int                    // Next: records in counted
}

// Open checks privileges and kernel support, loads and attaches the
// programs, and runs the first scan (TIME_WAIT sockets that already exist).
func Open(opts Options) (t *Tracer, err error) {
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = time.Second
	}
	if opts.RingSize == 0 {
		opts.RingSize = DefaultRingSize(runtime.NumCPU(), maxTimewait(opts.ScanNetns))
	}
	if r := opts.RingSize; r < uint32(os.Getpagesize()) || r&(r-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d: give a power of two of at least %d bytes", r, os.Getpagesize())
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	t = &Tracer{opts: opts, scanNetns: slices.Clone(opts.ScanNetns)}
	// The tracepoint tier needs tw_timer_handler's address. Look it up
	// now, while the rest loads, when that tier is asked for or auto will
	// likely come down to it (no kprobes); otherwise only if it does.
	if opts.Tier == Tracepoint || (opts.Tier == Auto && !haveKprobes()) {
		t.twTimerFn = lookupSymbol("tw_timer_handler")
	}
	types, ownBTF, err := kernelTypes(opts.BTF, opts.Force)
	if err != nil {
		return nil, err
	}
	t.types = types
	t.fallbacks = opts.Force
	if !ownBTF {
		t.fallbacks.NoKernelBTF = true
	}
	if err := features.HaveProgramHelper(ebpf.Kprobe, asm.FnProbeReadKernel); errors.Is(err, ebpf.ErrNotSupported) {
		t.fallbacks.OldHelpers = true // below 5.5
	} else if err != nil {
		return nil, fmt.Errorf("probe for bpf_probe_read_kernel: %w", err)
	}
	if t.fallbacks.NoKernelBTF || t.fallbacks.OldHelpers {
		// fentry, tp_btf and iter/tcp all attach by the kernel's own BTF,
		// and came after the old helpers
		t.fallbacks.ClassicTracepoints = true
		t.fallbacks.SockDiag = true
	} else if !specHasStruct(types, "bpf_iter__tcp") {
		t.fallbacks.SockDiag = true // below 5.9
	}
	if err := features.HaveMapType(ebpf.RingBuf); errors.Is(err, ebpf.ErrNotSupported) {
		t.fallbacks.PerfBuffer = true // below 5.8
	} else if err != nil {
		return nil, fmt.Errorf("probe for the BPF ring buffer: %w", err)
	}
	if !t.fallbacks.PerfBuffer && !t.fallbacks.SharedRing && haveRingInMap() != nil {
		// a ring per CPU only saves the traced host time: where the
		// kernel refuses it, the shared ring carries the same records
		t.fallbacks.SharedRing = true
	}
	if t.fallbacks.OldHelpers {
		if t.jiffies, err = kallsym("jiffies_64"); err != nil {
			return nil, fmt.Errorf("without bpf_jiffies64 (before 5.5) twtop reads jiffies_64, which needs a kernel with CONFIG_KALLSYMS_ALL: %w", err)
		}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise RLIMIT_MEMLOCK: %w", err)
	}
	if err := ensureTracefs(); err != nil {
		return nil, err
	}

	tiers := []Tier{opts.Tier}
	if opts.Tier == Auto {
		tiers = []Tier{Fentry, Kprobe, Tracepoint}
		if t.fallbacks.NoKernelBTF || t.fallbacks.OldHelpers {
			tiers = tiers[1:]
		}
	}
	var lastErr error
	for _, tier := range tiers {
		lastErr = t.start(tier)
		if lastErr == nil {
			break
		}
		t.tried = append(t.tried, fmt.Sprintf("%s: %v", tier, lastErr))
	}
	if lastErr != nil {
		if opts.Tier != Auto {
			return nil, fmt.Errorf("attach tier %s is not available on kernel %s (try --attach auto): %w", opts.Tier, kernelRelease(), lastErr)
		}
		return nil, fmt.Errorf("no attach tier works on kernel %s: %w", kernelRelease(), lastErr)
	}
	// the kernel's types were for loading: let them (a mapping of
	// vmlinux's BTF and what was parsed of it) go
	t.types = nil
	tr := t // t is nil by the time a failure returns
	defer func() {
		if err != nil {
			tr.Close()
		}
	}()
	if err := t.calibrate(); err != nil {
		return nil, err
	}
	t.next = time.Now().Add(opts.ScanInterval)
	return t, nil
}

// start loads and attaches one tier; on failure everything it made is
// released.
func (t *Tracer) start(tier Tier) (err error) {
	switch {
	case tier == Kprobe && !haveKprobes():
		return errors.New("the kernel has no kprobes (built without CONFIG_KPROBES)")
	case tier == Fentry && t.fallbacks.NoKernelBTF:
		return errors.New("fentry needs the kernel's own BTF (/sys/kernel/btf/vmlinux)")
	case tier == Fentry && t.fallbacks.OldHelpers:
		return errors.New("fentry needs Linux 5.5 or later")
	}
	spec, err := loadTwtop()
	if err != nil {
		return fmt.Errorf("load program spec: %w", err)
	}
	hooks, skipped := t.selectHooks(tier)
	keep := keepPrograms(hooks, !t.fallbacks.SockDiag)
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	// The helper calls on the buffers not used are dead code, but their
	// maps must still exist: a one-slot array stands in for a ring.
	perCPU := !t.fallbacks.PerfBuffer && !t.fallbacks.SharedRing
	stub := func(name string) *ebpf.MapSpec {
		return &ebpf.MapSpec{Name: name, Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}
	}
	var ringSizes []uint32
	switch {
	case t.fallbacks.PerfBuffer:
		spec.Maps["events"] = stub("events")
		spec.Maps["cpu_rings"] = stub("cpu_rings")
	case perCPU:
		if ringSizes, err = cpuRingSizes(t.opts.RingSize); err != nil {
			return err
		}
		spec.Maps["events"] = stub("events")
		spec.Maps["cpu_rings"].MaxEntries = uint32(len(ringSizes))
		spec.Maps["cpu_rings"].InnerMap.MaxEntries = slices.Max(ringSizes)
		spec.Maps["perf_events"].MaxEntries = 1 // unused
	default:
		spec.Maps["events"].MaxEntries = t.opts.RingSize
		spec.Maps["cpu_rings"] = stub("cpu_rings")
		spec.Maps["perf_events"].MaxEntries = 1 // unused
	}

	cfg := twtopConfig{
		Netns:  t.opts.Netns,
		Pid:    t.opts.Pid,
		Port:   t.opts.Port,
		Family: t.opts.Family,
		// wake the reader every wakeupEvery records of a CPU; it polls
		// every pollEvery for the rest
		WakeupMask: wakeupEvery - 1,
	}
	if t.fallbacks.PerfBuffer {
		cfg.PerfBuffer = 1
	}
	if perCPU {
		cfg.PerCpuRings = 1
	}
	if t.opts.Cgroup != "" {
		cfg.Cgroup = 1
	}
	if t.fallbacks.OldHelpers {
		cfg.OldHelpers = 1
		cfg.JiffiesAddr = t.jiffies
	}
	if tier == Tracepoint {
		cfg.TpTier = 1
		if t.twTimerFn == nil {
			t.twTimerFn = lookupSymbol("tw_timer_handler")
		}
		if cfg.TwTimerFn, err = t.twTimerFn.wait(); err != nil {
			return err
		}
	}
	if err := spec.Variables["cfg"].Set(cfg); err != nil {
		return fmt.Errorf("set config: %w", err)
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{KernelTypes: t.types},
	})
	if err != nil {
		if tier == Fentry && errors.Is(err, os.ErrPermission) {
			return errors.New("the kernel refuses fentry/fexit programs (permission denied even with CAP_BPF; a locked-down or restricted kernel)")
		}
		lerr := newLoadError(tier, err)
		if t.opts.Verbose {
			fmt.Fprintf(os.Stderr, "twtop: %+v\n", lerr)
		}
		return lerr
	}
	t.coll = coll
	defer func() {
		if err != nil {
			t.release()
		}
	}()
	if t.opts.Cgroup != "" {
		if err := setCgroupFilter(coll.Maps["cgroup_filter"], t.opts.Cgroup); err != nil {
			return err
		}
	}
	if perCPU {
		if err := t.makeCPURings(coll.Maps["cpu_rings"], ringSizes); err != nil {
			return err
		}
	}
	for _, h := range hooks {
		l, err := attach(coll.Programs[h.prog], h)
		if err != nil && h.optional {
			skipped = append(skipped, h.target)
			continue
		}
		if err != nil {
			return fmt.Errorf("attach %s to %s: %w", h.prog, h.target, err)
		}
		t.links = append(t.links, l)
	}
	t.skipped = skipped
	if !t.fallbacks.SockDiag {
		if t.iter, err = link.AttachIter(link.IterOptions{Program: coll.Programs[scanProg]}); err != nil {
			return fmt.Errorf("attach TIME_WAIT scan (iter/tcp): %w", err)
		}
	}
	if t.reader, err = t.openReader(perCPU); err != nil {
		return fmt.Errorf("open the kernel's event buffers: %w", err)
	}
	t.tier = tier
	return nil
}

// openReader opens the reader of the buffers in use and sets holdBack.
func (t *Tracer) openReader(perCPU bool) (recordReader, error) {
	t.holdBack = 0
	switch {
	case t.fallbacks.PerfBuffer:
		r, err := newPerfReader(t.coll.Maps["perf_events"], int(t.opts.RingSize)/max(1, runtime.NumCPU()))
		if err != nil {
			return nil, err
		}
		t.holdBack = holdBack
		return r, nil
	case perCPU:
		r, err := newRingReader(t.cpuRings)
		if err != nil {
			return nil, err
		}
		t.holdBack = holdBack
		return r, nil
	}
	r, err := newRingReader([]*ebpf.Map{t.coll.Maps["events"]})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// selectHooks lists what a tier attaches on this kernel: classic
// tracepoints in place of tp_btf ones when those are the fallback, the
// variant of a program that matches its function's prototype, and no
// optional hook whose function the kernel lacks (those are returned as
// skipped).
func (t *Tracer) selectHooks(tier Tier) (hooks []hook, skipped []string) {
	for _, h := range hooksFor(tier, t.fallbacks.ClassicTracepoints) {
		if h.nargs > 0 && funcParams(t.types, h.target) != h.nargs {
			continue
		}
		if h.optional && h.kind != hookTracepoint && !specHasFunc(t.types, h.target) {
			skipped = append(skipped, h.target)
			continue
		}
		hooks = append(hooks, h)
	}
	return hooks, skipped
}

func attach(prog *ebpf.Program, h hook) (link.Link, error) {
	if prog == nil {
		return nil, fmt.Errorf("program %s missing from the object", h.prog)
	}
	switch h.kind {
	case hookTracing:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case hookTracepoint:
		group, name, _ := strings.Cut(h.target, "/")
		return link.Tracepoint(group, name, prog, nil)
	case hookKprobe:
		return link.Kprobe(h.target, prog, nil)
	case hookKretprobe:
		return link.Kretprobe(h.target, prog, nil)
	}
	return nil, fmt.Errorf("unknown hook kind %d", h.kind)
}

// release detaches and unloads everything; safe to call twice.
func (t *Tracer) release() {
	if t.reader != nil {
		t.reader.Close() // stays set: Next may still be using it
	}
	if t.iter != nil {
		t.iter.Close()
		t.iter = nil
	}
	for _, l := range t.links {
		l.Close()
	}
	t.links = nil
	for _, m := range t.cpuRings {
		m.Close()
	}
	t.cpuRings = nil
	if t.coll != nil {
		t.coll.Close()
		t.coll = nil
	}
}

// Stop detaches every program, so that no record is written anymore, and
// makes Next hand out the records the buffers still hold and then return
// ErrClosed: a recording ends with the records of the moment it was
// stopped, where Close drops the last poll interval's. It may be called
// from another goroutine (a signal handler) while Next blocks; Next sees
// it within pollEvery. A scan under way is dropped. Close frees the rest.
func (t *Tracer) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() || t.stopping.Load() {
		return
	}
	for _, l := range t.links {
		l.Close()
	}
	t.links = nil
	t.stopping.Store(true)
}

// drain is Next after Stop: the records the reader still has, with the
// scans' held end records in their place, then ErrClosed. It reports
// false when it queued records in pending instead of returning one.
func (t *Tracer) drain() ([]byte, bool, error) {
	if t.drained {
		return nil, true, ErrClosed
	}
	if !t.draining {
		t.draining = true
		t.closeScans()
		t.reader.Final()
		t.reader.SetDeadline(time.Now())
		if len(t.pending) > 0 {
			return nil, false, nil // a ring record kept during the scans (closeScans) comes first
		}
	}
	r, err := t.reader.Read()
	if err == nil {
		if t.releaseScanEnds(r) {
			return nil, false, nil
		}
		t.count(r)
		return r, true, nil
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, true, err
	}
	if len(t.scanEnds) > 0 {
		t.pending = append(t.pending, t.scanEnds...)
		t.scanEnds = t.scanEnds[:0]
		return nil, false, nil
	}
	t.drained = true
	return nil, true, ErrClosed
}

// Close detaches every program and frees the maps. It may be called from
// another goroutine (a signal handler) while Next blocks; Next then
// returns ErrClosed.
func (t *Tracer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Swap(true) {
		return nil
	}
	if st, err := t.stats(); err == nil {
		t.final = &st
	}
	t.release() // closing the reader unblocks Next
	return nil
}

// Tier is the tier in use.
func (t *Tracer) Tier() Tier { return t.tier }

// Rejected says why better tiers were skipped (auto only).
func (t *Tracer) Rejected() []string { return t.tried }

// Fallbacks are the older kernels' ways in use, forced or needed.
func (t *Tracer) Fallbacks() Fallbacks { return t.fallbacks }

// SkippedHooks lists the optional kernel functions the tier could not hook
// on this kernel (inlined or renamed); what they add is then missing.
func (t *Tracer) SkippedHooks() []string { return t.skipped }

// HZ is the kernel's timer frequency, measured at start; timewait timers
// are reported in jiffies.
func (t *Tracer) HZ() uint32 { return t.hz }

// RingSize is the size in bytes of the kernel's event buffers, all CPUs'
// together (Options.RingSize, or its default).
func (t *Tracer) RingSize() uint32 { return t.opts.RingSize }

// KernelRelease is uname -r of the traced kernel.
func (t *Tracer) KernelRelease() string { return kernelRelease() }

// Next returns the next raw record (event.RecordSize bytes, valid until the
// next call): ring buffer records and, once per scan interval, the scan's
// records ending with an event.KindScanEnd record.
func (t *Tracer) Next() ([]byte, error) {
	r, err := t.nextRecord()
	if err != nil {
		t.publishCounts()
	}
	return r, err
}

func (t *Tracer) nextRecord() ([]byte, error) {
	for {
		if t.closed.Load() {
			t.closeScans()
			return nil, ErrClosed
		}
		if len(t.pending) > 0 {
			r := t.pending[0]
			t.pending = t.pending[1:]
			t.count(r)
			return r, nil
		}
		if t.stopping.Load() {
			if r, done, err := t.drain(); done {
				return r, err
			}
			continue
		}
		if len(t.scans) > 0 {
			r, err := t.nextDuringScan()
			if err != nil {
				return nil, err
			}
			if r != nil {
				t.count(r)
				return r, nil
			}
			t.finishScans()
			continue
		}
		// The clock is read every 256 records, and whenever the reader
		// waited until its deadline: a stale clock only makes the next
		// wait end sooner.
		if t.reads&255 == 0 {
			t.clock = time.Now()
		}
		t.reads++
		if t.clock.After(t.next) {
			if err := t.scanAll(); err != nil {
				if t.closed.Load() {
					return nil, ErrClosed
				}
				return nil, err
			}
			continue
		}
		// Records below the kernel programs' wakeup threshold arrive
		// without a wakeup: poll for them every pollEvery.
		if !t.clock.Before(t.deadline) {
			t.deadline = earliest(t.next, t.clock.Add(pollEvery))
			t.reader.SetDeadline(t.deadline)
		}
		r, err := t.reader.Read()
		if err == nil {
			if t.releaseScanEnds(r) {
				continue
			}
			t.count(r)
			return r, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, err
		}
		if t.releaseScanEnds(nil) {
			continue
		}
		t.clock = time.Now()
		t.publishCounts()
		if t.idle != nil {
			if err := t.idle(); err != nil {
				return nil, err
			}
		}
	}
}

// OnIdle sets f to be called on Next's goroutine each time Next has waited
// for records until its reader's deadline (at most pollEvery, 100 ms)
// without one: a caller that buffers records can write them out then. An
// error from f is returned by Next. Set it before the first Next.
func (t *Tracer) OnIdle(f func() error) { t.idle = f }

// recordReader is where kernel records come from: the ring buffers of the
// CPUs merged by time, the shared ring buffer or, on kernels without
// ring buffers, the per-CPU perf buffers merged by time. Read and
// SetDeadline are called from one goroutine; Close from any.
type recordReader interface {
	// Read returns the next record (event.RecordSize bytes, valid until
	// the next Read). It returns an error wrapping os.ErrDeadlineExceeded
	// when the deadline passed with nothing to return, and ErrClosed once
	// Close was called.
	Read() ([]byte, error)
	// SetDeadline bounds how long Read blocks; the zero time means none.
	SetDeadline(time.Time)
	// Final says that no record will be written anymore (the programs
	// are detached): the records a merge holds back are released as
	// soon as they are read.
	Final()
	// Close makes a blocked Read return ErrClosed; safe to call twice.
	Close() error
	// Lost counts records the reader learned the kernel dropped beyond
	// the programs' own count (perf's lost-samples records).
	Lost() uint64
	// Owners counts the owners put back (event.Owners.Counts); safe to
	// call while Read runs.
	Owners() (restored, unknown uint64)
}

// DefaultRingSize is the size of the ring buffers, all CPUs' together,
// for a host of ncpu CPUs whose traced namespaces hold up to timewait
// TIME_WAIT sockets each (tcp_max_tw_buckets): the larger of
//
//   - 8 MiB per CPU: 130,000 records of 64 bytes, the ring buffer's
//     header included, which is what a transition takes unless it writes
//     an owner; two thirds of a second of one CPU at a saturated churn,
//     for when the reader is descheduled while every CPU writes, as the
//     UI's reader shares the host with the churn and the drawing;
//   - timewaitRingBytes per TIME_WAIT socket: sockets that entered
//     TIME_WAIT within a few seconds expire together, each writing a
//     record from the timer softirq (every tier hooks the expiry), which
//     no task preempts. On two CPUs, with 262,144 TIME_WAIT sockets filled
//     in the churn's first three seconds, their expiry 60 s later lost
//     36,000-115,000 records with 16 MiB (76,580 between two samples
//     0.7 s apart in the run sampled), as many with the reader at nice
//     -10, and none with 32 MiB.
//
// 16 MiB at least and 256 MiB at most, rounded up to a power of two. The
// rings are resident from the start: they are most of an idle twtop's
// memory.
func DefaultRingSize(ncpu, timewait int) uint32 {
	want := max(uint64(max(ncpu, 1))*8<<20, uint64(max(timewait, 0))*timewaitRingBytes)
	size := uint64(16 << 20)
	for size < want && size < 256<<20 {
		size <<= 1
	}
	return uint32(size)
}

// timewaitRingBytes is the ring room DefaultRingSize keeps per TIME_WAIT
// socket a namespace may hold: twice an IPv4 expiry record's 64 bytes, for
// the records already in the ring when a burst of expiries comes and for
// CPUs that armed more than their share of the timers.
const timewaitRingBytes = 128

// maxTimewait is the largest tcp_max_tw_buckets of the namespaces at
// paths ("" or none: twtop's own); 0 where none can be read.
func maxTimewait(paths []string) int {
	if len(paths) == 0 {
		paths = []string{""}
	}
	n := 0
	for _, p := range paths {
		if s, _, err := settings.Read(p); err == nil {
			n = max(n, s.MaxTwBuckets)
		}
	}
	return n
}

// wakeupEvery is how many records a CPU writes per wakeup of the reader
// (a power of two): 64 KiB of IPv4 records, a small part of the ring even
// with many CPUs writing at once.
const wakeupEvery = 1024

// pollEvery bounds how long a record waits in the ring buffer when the
// kernel programs did not wake the reader for it.
const pollEvery = 100 * time.Millisecond

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// count counts a record handed out. The counters Stats reads are atomic,
// and a locked add for every record showed as some 15 ns per record in a
// profile of --record under a saturated churn, so Next's goroutine counts
// in plain counters and adds them to the atomic ones every countEvery
// records, whenever it waits for records, and when it ends.
func (t *Tracer) count(r []byte) {
	if k := int(event.RawKind(r)); k < len(t.counted) {
		t.counted[k]++
	}
	if t.uncounted++; t.uncounted >= countEvery {
		t.publishCounts()
	}
}

// countEvery bounds how many records Stats may not count yet while Next
// hands them out.
const countEvery = 64

// publishCounts adds what count counted since the last time to the
// counters Stats reads.
func (t *Tracer) publishCounts() {
	for k, n := range t.counted {
		if n != 0 {
			t.counts[k].Add(n)
			t.counted[k] = 0
		}
	}
	t.uncounted = 0
}

// setCgroupFilter puts the cgroup directory dir into the programs' cgroup
// array, before any program is attached.
func setCgroupFilter(m *ebpf.Map, dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cgroup filter: %w", err)
	}
	defer f.Close()
	if err := m.Put(uint32(0), uint32(f.Fd())); err != nil {
		return fmt.Errorf("cgroup filter %s (not a cgroup v2 directory?): %w", dir, err)
	}
	return nil
}
