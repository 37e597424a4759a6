package main

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// floorHooks are the hooks of twtop's tracepoint tier: BTF tracepoints on
// TCP's state changes, resets and timers, and the bind() syscall
// tracepoints. The "empty hooks" variant attaches a program that returns
// at once to each, so that its ratio is what these attachments alone cost
// the churn: the floor under any tracer that uses them, before it reads a
// field or writes a record.
var floorHooks = []struct {
	name    string
	syscall bool // a classic syscalls/ tracepoint, else a BTF tracepoint
}{
	{"inet_sock_set_state", false},
	{"tcp_receive_reset", false},
	{"tcp_send_reset", false},
	{"timer_start", false},
	{"timer_cancel", false},
	{"timer_expire_entry", false},
	{"sys_enter_bind", true},
	{"sys_exit_bind", true},
}

// emptyHooks holds the attached empty programs.
type emptyHooks struct {
	progs []*ebpf.Program
	links []link.Link
}

func attachEmptyHooks() (h *emptyHooks, err error) {
	h = &emptyHooks{}
	defer func() {
		if err != nil {
			err = errors.Join(err, h.Close())
			h = nil
		}
	}()
	ret0 := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	for _, hk := range floorHooks {
		spec := &ebpf.ProgramSpec{Name: "empty", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
			AttachTo: hk.name, Instructions: ret0, License: "GPL"}
		if hk.syscall {
			spec = &ebpf.ProgramSpec{Name: "empty", Type: ebpf.TracePoint, Instructions: ret0, License: "GPL"}
		}
		p, err := ebpf.NewProgram(spec)
		if err != nil {
			return h, fmt.Errorf("empty program for %s: %w", hk.name, err)
		}
		h.progs = append(h.progs, p)
		var l link.Link
		if hk.syscall {
			l, err = link.Tracepoint("syscalls", hk.name, p, nil)
		} else {
			l, err = link.AttachTracing(link.TracingOptions{Program: p})
		}
		if err != nil {
			return h, fmt.Errorf("attach an empty program to %s: %w", hk.name, err)
		}
		h.links = append(h.links, l)
	}
	return h, nil
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
	h.links, h.progs = nil, nil
	return errors.Join(errs...)
}
