package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/twtop/twtop/tracer"
)

// The "empty hooks" variant attaches a program that returns at once to
// every hook of twtop's tracepoint tier (tracer.TracepointTierHooks: the
// BTF tracepoints on TCP's state changes, resets and timers, and the
// bind() syscall tracepoints), so that its ratio is what these attachments
// alone cost the churn: the floor under any tracer that uses them, before
// it reads a field or writes a record. The program on the state change
// tracepoint counts its runs in a per-CPU array (countProg): its run time
// is the reference printed beside twtop's on_state.

// emptyHooks holds the attached empty programs.
type emptyHooks struct {
	progs []*ebpf.Program
	links []link.Link
	count *ebpf.Map
}

var ret0 = asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}

// stateHook is the BTF tracepoint of TCP's state changes.
const stateHook = "inet_sock_set_state"

// countInsns adds one to slot 0 of the per-CPU array m.
func countInsns(m *ebpf.Map) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
}

func attachEmptyHooks() (*emptyHooks, error) {
	count, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("count map: %w", err)
	}
	h, err := attachHooks(countProg, countInsns(count))
	if err != nil {
		return nil, errors.Join(err, count.Close())
	}
	h.count = count
	return h, nil
}

// attachHooks attaches a program that returns at once to every hook of
// the tracepoint tier but the state change tracepoint, which gets state,
// named stateName.
func attachHooks(stateName string, state asm.Instructions) (h *emptyHooks, err error) {
	h = &emptyHooks{}
	defer func() {
		if err != nil {
			err = errors.Join(err, h.Close())
			h = nil
		}
	}()
	btf, classic := tracer.TracepointTierHooks()
	for _, name := range btf {
		pname, insns := "empty", ret0
		if name == stateHook {
			pname, insns = stateName, state
		}
		p, err := h.load(&ebpf.ProgramSpec{Name: pname, Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
			AttachTo: name, Instructions: insns, License: "GPL"}, name)
		if err != nil {
			return h, err
		}
		if err := h.attach(link.AttachTracing(link.TracingOptions{Program: p})); err != nil {
			return h, fmt.Errorf("attach %s to %s: %w", pname, name, err)
		}
	}
	for _, tp := range classic {
		group, name, ok := strings.Cut(tp, "/")
		if !ok {
			return h, fmt.Errorf("tracepoint %q is not group/name", tp)
		}
		p, err := h.load(&ebpf.ProgramSpec{Name: "empty", Type: ebpf.TracePoint, Instructions: ret0, License: "GPL"}, tp)
		if err != nil {
			return h, err
		}
		if err := h.attach(link.Tracepoint(group, name, p, nil)); err != nil {
			return h, fmt.Errorf("attach empty to %s: %w", tp, err)
		}
	}
	return h, nil
}

func (h *emptyHooks) load(spec *ebpf.ProgramSpec, hook string) (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(spec)
	if err != nil {
		return nil, fmt.Errorf("load %s for %s: %w", spec.Name, hook, err)
	}
	h.progs = append(h.progs, p)
	return p, nil
}

func (h *emptyHooks) attach(l link.Link, err error) error {
	if err != nil {
		return err
	}
	h.links = append(h.links, l)
	return nil
}

// Close detaches and unloads the programs.
func (h *emptyHooks) Close() error {
	var errs []error
	for _, l := range h.links {
		errs = append(errs, l.Close())
	}
	for _, p := range h.progs {
		errs = append(errs, p.Close())
	}
	if h.count != nil {
		errs = append(errs, h.count.Close())
	}
	h.links, h.progs, h.count = nil, nil, nil
	return errors.Join(errs...)
}
