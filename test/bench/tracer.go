package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twtop/twtop/internal/aptget"
	"github.com/twtop/twtop/internal/proc"
)

const (
	// attachLine starts the line twtop prints on stderr once it traces.
	attachLine = "twtop: tracing on kernel"
	// readyTimeout bounds how long loading and attaching a tracer may take
	// (bpftrace compiles its program first).
	readyTimeout = time.Minute
	// exitTimeout bounds how long a tracer may take to exit after SIGINT;
	// then it is killed and its run marked failed.
	exitTimeout = 30 * time.Second
	// userHZ is the unit of utime and stime in /proc/PID/stat.
	userHZ = 100
)

// tracerProc is a running tracer process: twtop or bpftrace.
type tracerProc struct {
	name string
	p    *proc.Process
	// CPU the process had used when it said it traces.
	readyUser, readySys time.Duration
}

// tracerUsage is what a tracer process used, from its rusage after exit.
type tracerUsage struct {
	User, Sys time.Duration // whole run
	// SteadyUser and SteadySys leave out what was used before the tracer
	// said it traces (loading, compiling, attaching).
	SteadyUser, SteadySys time.Duration
	MaxRSSKB              int64 // VmHWM just before SIGINT
}

// startTracer starts the tracer o describes and returns once it traces:
// once a line of its standard error starts with o.ReadyPrefix or, with
// o.ReadyMarker set, once o.StdoutFile holds a line equal to it.
func startTracer(ctx context.Context, o proc.Options) (*tracerProc, error) {
	o.ReadyTimeout, o.ExitTimeout = readyTimeout, exitTimeout
	o.Until, o.Reach = "it traced", "start tracing"
	p, err := proc.Start(ctx, o)
	if err != nil {
		return nil, err
	}
	t := &tracerProc{name: o.Name, p: p}
	t.readyUser, t.readySys = procCPU(p.Pid())
	return t, nil
}

// attach is the time from exec until the tracer said it traces.
func (t *tracerProc) attach() time.Duration { return t.p.ReadyAt().Sub(t.p.ExecAt()) }

// stop sends SIGINT, waits for the tracer to exit with status 0 and
// returns its resource usage.
func (t *tracerProc) stop() (tracerUsage, error) {
	// The peak resident set comes from the tracer's own VmHWM, read just
	// before SIGINT: the rusage after exit would not do, because its
	// ru_maxrss counts the memory of the harness that spawned it (os/exec
	// starts the child on the harness's memory until exec).
	hwm, hwmErr := vmHWM(t.p.Pid())
	err := t.p.Stop()
	if errors.Is(err, proc.ErrExited) {
		return tracerUsage{}, fmt.Errorf("%s stopped before the churn ended (%v):\n%s", t.name, t.p.Err(), t.p.Stderr())
	}
	if err != nil {
		return tracerUsage{}, err
	}
	var u tracerUsage
	ru, ok := t.p.State().SysUsage().(*syscall.Rusage)
	if !ok {
		return u, fmt.Errorf("%s: no resource usage after exit", t.name)
	}
	u.User = time.Duration(ru.Utime.Nano())
	u.Sys = time.Duration(ru.Stime.Nano())
	u.SteadyUser = max(0, u.User-t.readyUser)
	u.SteadySys = max(0, u.Sys-t.readySys)
	if hwmErr != nil {
		return u, fmt.Errorf("%s: peak resident set: %w", t.name, hwmErr)
	}
	u.MaxRSSKB = hwm
	return u, nil
}

// procCPU returns the user and system time process pid has used so far
// (all its threads, in units of 10 ms), or zeros when it cannot be read.
func procCPU(pid int) (user, sys time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// the command name may hold spaces and parentheses: fields start after
	// the last ')'
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return 0, 0
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	tick := time.Second / userHZ
	return time.Duration(ut) * tick, time.Duration(st) * tick
}

// vmRSS returns the resident set size of process pid in KiB, from
// /proc/PID/status.
func vmRSS(pid int) (int64, error) { return procStatusKB(pid, "VmRSS") }

// vmHWM returns the most process pid has had resident so far, in KiB.
func vmHWM(pid int) (int64, error) { return procStatusKB(pid, "VmHWM") }

// procStatusKB returns a field of /proc/PID/status given in kB.
func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s of %d: %w", field, pid, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// twtopExit matches twtop's last stderr line.
var twtopExit = regexp.MustCompile(`twtop: (\d+) records, (\d+) lost, (\d+) missed by the kernel's recursion guard`)

// twtopCounters returns the records, lost records and recursion misses
// twtop printed when it exited.
func twtopCounters(stderr string) (records, lost, misses uint64, ok bool) {
	m := twtopExit.FindStringSubmatch(stderr)
	if m == nil {
		return 0, 0, 0, false
	}
	records, _ = strconv.ParseUint(m[1], 10, 64)
	lost, _ = strconv.ParseUint(m[2], 10, 64)
	misses, _ = strconv.ParseUint(m[3], 10, 64)
	return records, lost, misses, true
}

// startTwtop starts `twtop --record FILE --netns PATH` and returns once it
// traces.
func startTwtop(ctx context.Context, bin, file, nsPath string, bound time.Duration) (*tracerProc, error) {
	args := []string{"--record", file, "--netns", nsPath, "--duration", bound.String()}
	return startTracer(ctx, proc.Options{Name: "twtop", Path: bin, Args: args, ReadyPrefix: attachLine})
}

// The UI runs on a pseudo-terminal of this size.
const uiCols, uiRows = 200, 60

// startTwtopUI starts `twtop --netns PATH`, the UI, on term and returns
// once it traces. It runs until SIGINT.
func startTwtopUI(ctx context.Context, bin string, term *os.File, nsPath string) (*tracerProc, error) {
	return startTracer(ctx, proc.Options{Name: "twtop UI", Path: bin, Args: []string{"--netns", nsPath},
		Terminal: term, Env: []string{"TERM=xterm-256color"}, ReadyPrefix: attachLine})
}

// bpftraceMarker is the line the peer's BEGIN probe prints; bpftrace runs
// BEGIN once every other probe is attached.
const bpftraceMarker = "bench: ready"

// bpftraceProgram prints every sock:inet_sock_set_state event.
const bpftraceProgram = `BEGIN { printf("` + bpftraceMarker + `\n"); } ` +
	`tracepoint:sock:inet_sock_set_state { printf("%d %d %d\n", args->oldstate, args->newstate, args->sport); }`

// startBpftrace starts the bpftrace peer with its output going to file.
func startBpftrace(ctx context.Context, bin, file string) (*tracerProc, error) {
	return startTracer(ctx, proc.Options{Name: "bpftrace", Path: bin, Args: []string{"-e", bpftraceProgram},
		StdoutFile: file, ReadyMarker: bpftraceMarker})
}

var bpftraceLost = regexp.MustCompile(`Lost (\d+) events`)

// bpftraceCounts counts the event lines bpftrace wrote to file and the
// events it reported lost there or in stderr.
func bpftraceCounts(file, stderr string) (events, lost uint64, err error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, fmt.Errorf("bpftrace output: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 0 && line[0] >= '0' && line[0] <= '9' {
			events++
			continue
		}
		if m := bpftraceLost.FindSubmatch(line); m != nil {
			n, _ := strconv.ParseUint(string(m[1]), 10, 64)
			lost += n
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, fmt.Errorf("read bpftrace output: %w", err)
	}
	for _, m := range bpftraceLost.FindAllStringSubmatch(stderr, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 64)
		lost += n
	}
	return events, lost, nil
}

// apt installs the commands the harness needs when they are missing.
var apt = aptget.Installer{Prog: "bench", Log: os.Stderr}
