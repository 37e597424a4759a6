package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// What a program costs the traced host: the kernel's own run-time
// statistics (kernel.bpf_stats_enabled), which the harness turns on for
// its whole run. Each figure is one program's total run time over its
// runs, read while the tracer still runs; the runs of the empty-hooks
// variant give the same figure for the count-only program on the state
// change tracepoint, the reference beside twtop's on_state.

// stateProg is the name of twtop's program on the state change
// tracepoint (tp_btf; the classic tracepoint's twin is tp_state).
var stateProgs = []string{"on_state", "tp_state"}

// countProg is the name of the count-only reference program.
const countProg = "count_state"

// progCost is one program's runs and their mean cost.
type progCost struct {
	runs uint64
	ns   float64 // mean run time
}

// enableKernelStats turns on the kernel's BPF run-time statistics until
// the returned closer is closed (nil when the kernel cannot: before 5.8).
func enableKernelStats() io.Closer {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		fmt.Printf("bench: no BPF run-time statistics (%v): the ns/run figures are left out\n", err)
		return nil
	}
	return c
}

// programCost sums the statistics of the loaded programs called name (the
// kernel keeps 15 characters of a name).
func programCost(names ...string) (progCost, error) {
	var runs uint64
	var total time.Duration
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return progCost{}, fmt.Errorf("list BPF programs: %w", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, ierr := p.Info()
		st, serr := p.Stats()
		p.Close()
		if ierr != nil || serr != nil || !nameIn(info.Name, names) {
			continue
		}
		runs += st.RunCount
		total += st.Runtime
	}
	c := progCost{runs: runs}
	if runs > 0 {
		c.ns = float64(total.Nanoseconds()) / float64(runs)
	}
	return c, nil
}

func nameIn(name string, names []string) bool {
	for _, n := range names {
		if len(n) > 15 {
			n = n[:15]
		}
		if name == n {
			return true
		}
	}
	return false
}
