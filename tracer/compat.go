package tracer

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
)

// Fallbacks are the ways older kernels get the same records. Each one is
// used where the kernel lacks the newer feature, and can be forced (to
// prove it on a newer kernel, or to step around a vendor kernel's hole).
type Fallbacks struct {
	// PerfBuffer: per-CPU perf buffers merged by time in user space
	// instead of the BPF ring buffer (missing before 5.8).
	PerfBuffer bool
	// ClassicTracepoints: classic tracepoints instead of tp_btf (which
	// needs the kernel's own BTF).
	ClassicTracepoints bool
	// SockDiag: the TIME_WAIT scan over sock_diag from user space instead
	// of a BPF iter/tcp program (missing before 5.9).
	SockDiag bool
	// NoKernelBTF: compile against Options.BTF as if the kernel had no
	// /sys/kernel/btf/vmlinux. Implies ClassicTracepoints and SockDiag and
	// rules out the fentry tier: fentry, tp_btf and iterators need the
	// kernel's BTF.
	NoKernelBTF bool
	// OldHelpers: bpf_probe_read instead of bpf_probe_read_kernel and
	// bpf_probe_read_user, and jiffies read from jiffies_64 (the helpers
	// are 5.5+). Implies ClassicTracepoints and SockDiag and rules out the
	// fentry tier, which came with them.
	OldHelpers bool
	// SharedRing: one ring buffer that every CPU writes to instead of a
	// ring buffer per CPU in an array of maps (the kernel may refuse ring
	// buffers there). Costs the traced host a lock and cache lines moving
	// between CPUs on every record. Without effect with PerfBuffer.
	SharedRing bool
}

var fallbackNames = []string{"perf-buffer", "classic-tracepoints", "sock-diag", "no-kernel-btf", "old-helpers", "shared-ring"}

func (f *Fallbacks) fields() []*bool {
	return []*bool{&f.PerfBuffer, &f.ClassicTracepoints, &f.SockDiag, &f.NoKernelBTF, &f.OldHelpers, &f.SharedRing}
}

// ParseFallbacks parses a comma-separated list of perf-buffer,
// classic-tracepoints, sock-diag, no-kernel-btf, old-helpers and
// shared-ring ("" for none).
func ParseFallbacks(s string) (Fallbacks, error) {
	var f Fallbacks
	fs := f.fields()
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		i := indexOf(fallbackNames, w)
		if i < 0 {
			return f, fmt.Errorf("unknown fallback %q: want %s", w, strings.Join(fallbackNames, ", "))
		}
		*fs[i] = true
	}
	return f, nil
}

// String lists the fallbacks in use, comma-separated ("" for none).
func (f Fallbacks) String() string {
	var on []string
	for i, b := range f.fields() {
		if *b {
			on = append(on, fallbackNames[i])
		}
	}
	return strings.Join(on, ",")
}

// With is f with g's fallbacks added.
func (f Fallbacks) With(g Fallbacks) Fallbacks {
	fs, gs := f.fields(), g.fields()
	for i := range fs {
		*fs[i] = *fs[i] || *gs[i]
	}
	return f
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// kernelBTFPath is where the kernel exposes its own BTF.
const kernelBTFPath = "/sys/kernel/btf/vmlinux"

// kernelTypes returns the BTF to compile against: the kernel's own, or the
// file given with --btf where the kernel has none (or NoKernelBTF is
// forced). own reports whether the kernel has BTF of its own, which
// fentry, tp_btf and iter/tcp need.
func kernelTypes(file string, force Fallbacks) (spec *btf.Spec, own bool, err error) {
	if !force.NoKernelBTF {
		if spec, err := btf.LoadKernelSpec(); err == nil {
			if file == "" {
				return spec, true, nil
			}
			own = true
		} else if file == "" {
			return nil, false, fmt.Errorf("kernel has no BTF (%s): pass --btf FILE with this kernel's BTF (a BTFHub file for %s, or a vmlinux with a .BTF section): %w", kernelBTFPath, kernelRelease(), err)
		}
	} else if file == "" {
		return nil, false, errors.New("the no-kernel-btf fallback needs --btf FILE")
	}
	spec, err = btf.LoadSpec(file)
	if err != nil {
		return nil, false, fmt.Errorf("read BTF from %s (--btf): %w", file, err)
	}
	return spec, own, nil
}

// Features is what the running kernel offers twtop, as far as it can be
// seen (some probes need privileges: those are then unknown).
type Features struct {
	Release   string
	KernelBTF bool  // /sys/kernel/btf/vmlinux exists
	RingBuf   *bool // BPF_MAP_TYPE_RINGBUF (5.8+); nil: unknown
	// RingInMap: ring buffers (of any size) in an array of maps, a ring
	// per CPU; nil: unknown
	RingInMap *bool
	// ProbeReadKernel: bpf_probe_read_kernel (5.5+); nil: unknown
	ProbeReadKernel *bool
	Kprobes         bool
	IterTCP         bool // the kernel's BTF describes the iter/tcp context (5.9+)
	// Missing are the timewait functions the kernel's BTF does not
	// describe (inlined or renamed): their hooks cannot attach.
	Missing []string
}

// ProbeFeatures looks at the running kernel without loading anything
// that needs root; what needs privileges and is not allowed is unknown.
func ProbeFeatures() Features {
	f := Features{Release: kernelRelease(), Kprobes: haveKprobes()}
	if _, err := os.Stat(kernelBTFPath); err == nil {
		f.KernelBTF = true
	}
	probe := func(err error) *bool {
		if errors.Is(err, ebpf.ErrNotSupported) {
			b := false
			return &b
		}
		if err != nil {
			return nil
		}
		b := true
		return &b
	}
	f.RingBuf = probe(features.HaveMapType(ebpf.RingBuf))
	if f.RingBuf != nil && *f.RingBuf {
		f.RingInMap = probe(haveRingInMap())
	}
	f.ProbeReadKernel = probe(features.HaveProgramHelper(ebpf.Kprobe, asm.FnProbeReadKernel))
	if spec, err := btf.LoadKernelSpec(); err == nil {
		var s *btf.Struct
		f.IterTCP = spec.TypeByName("bpf_iter__tcp", &s) == nil
		seen := map[string]bool{}
		for _, hs := range tierHooks {
			for _, h := range hs {
				if (h.kind == hookKprobe || h.kind == hookKretprobe) && !seen[h.target] {
					seen[h.target] = true
					if !specHasFunc(spec, h.target) {
						f.Missing = append(f.Missing, h.target)
					}
				}
			}
		}
	}
	return f
}

// Needed says which fallbacks the features call for, as Open decides them.
func (f Features) Needed() Fallbacks {
	old := f.ProbeReadKernel != nil && !*f.ProbeReadKernel
	return Fallbacks{
		PerfBuffer:         f.RingBuf != nil && !*f.RingBuf,
		ClassicTracepoints: !f.KernelBTF || old,
		SockDiag:           !f.KernelBTF || !f.IterTCP || old,
		NoKernelBTF:        !f.KernelBTF,
		OldHelpers:         old,
		SharedRing:         f.RingBuf != nil && *f.RingBuf && f.RingInMap != nil && !*f.RingInMap,
	}
}
