package tracer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Capability numbers (linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// checkPrivileges fails early, with what to do, when the process can't load
// tracing programs.
func checkPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	return errors.New("twtop needs root or CAP_BPF and CAP_PERFMON to trace the kernel: run it with sudo (replaying a recording needs no privileges)")
}

// kallsym returns the address of a kernel text symbol from /proc/kallsyms.
func kallsym(name string) (uint64, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return 0, fmt.Errorf("read kernel symbols: %w", err)
	}
	defer f.Close()
	// "ffffffff820089f0 t tw_timer_handler" (modules add "\t[mod]"); the
	// file has some 200,000 lines: match bytes, split only the hit
	sym := []byte(" " + name)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 256<<10), 256<<10)
	for sc.Scan() {
		line := sc.Bytes()
		k := bytes.Index(line, sym)
		if k < 0 || (k+len(sym) < len(line) && line[k+len(sym)] != '\t') {
			continue
		}
		fields := strings.Fields(string(line))
		if len(fields) < 3 || fields[2] != name {
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("kernel symbol %s: bad address %q", name, fields[0])
		}
		if addr == 0 {
			return 0, fmt.Errorf("kernel symbol addresses are hidden (kernel.kptr_restrict): run twtop as root")
		}
		return addr, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read kernel symbols: %w", err)
	}
	return 0, fmt.Errorf("kernel symbol %s not found in /proc/kallsyms", name)
}

// symbolLookup is a kallsym lookup started in the background: the kernel
// takes a tenth of a second to list its symbols, which overlaps with
// loading the kernel's BTF.
type symbolLookup struct {
	done chan struct{}
	addr uint64
	err  error
}

func lookupSymbol(name string) *symbolLookup {
	l := &symbolLookup{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.addr, l.err = kallsym(name)
	}()
	return l
}

// wait returns the lookup's result.
func (l *symbolLookup) wait() (uint64, error) {
	<-l.done
	return l.addr, l.err
}

// tracefsDirs are where tracefs is usually mounted.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// ensureTracefs mounts tracefs when it is missing; classic tracepoints and
// kprobes are created through it.
func ensureTracefs() error {
	for _, d := range tracefsDirs {
		if _, err := os.Stat(d + "/events"); err == nil {
			return nil
		}
	}
	if err := unix.Mount("nodev", tracefsDirs[0], "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it failed (try: mount -t tracefs nodev %s): %w", tracefsDirs[0], err)
	}
	return nil
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// haveKprobes reports whether kprobes can be created: through the kprobe
// PMU or tracefs's kprobe_events.
func haveKprobes() bool {
	if _, err := os.Stat("/sys/bus/event_source/devices/kprobe/type"); err == nil {
		return true
	}
	for _, d := range tracefsDirs {
		if _, err := os.Stat(d + "/kprobe_events"); err == nil {
			return true
		}
	}
	return false
}

// specHasFunc reports whether the BTF describes a function of that name:
// it was not inlined away, so fentry and kprobes can attach.
func specHasFunc(spec *btf.Spec, name string) bool {
	var fn *btf.Func
	if spec.TypeByName(name, &fn) == nil {
		return true
	}
	// a tp_btf target: the tracepoint's BTF typedef
	var tp *btf.Typedef
	return spec.TypeByName("btf_trace_"+name, &tp) == nil
}

// funcParams is the number of parameters of a kernel function, -1 when the
// BTF does not describe it.
func funcParams(spec *btf.Spec, name string) int {
	var fn *btf.Func
	if spec.TypeByName(name, &fn) != nil {
		return -1
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return -1
	}
	return len(proto.Params)
}

// specHasStruct reports whether the BTF describes a struct of that name.
func specHasStruct(spec *btf.Spec, name string) bool {
	var st *btf.Struct
	return spec.TypeByName(name, &st) == nil
}
