package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// attachLine starts the line twtop prints on stderr once it traces.
	attachLine = "twtop: tracing on kernel"
	// readyTimeout bounds how long loading and attaching a tracer may take
	// (bpftrace compiles its program first).
	readyTimeout = time.Minute
	// exitTimeout bounds how long a tracer may take to exit after SIGINT.
	exitTimeout = 2 * time.Minute
	// userHZ is the unit of utime and stime in /proc/PID/stat.
	userHZ = 100
)

// syncBuffer collects output written by one goroutine and read by another.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tracerProc is a running tracer process: twtop or bpftrace.
type tracerProc struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	out    *os.File // standard output, when it goes to a file
	exited chan struct{}
	err    error // Wait's result, set before exited is closed

	execAt  time.Time // just before fork and exec
	readyAt time.Time // when the tracer said it traces
	// CPU the process had used when it said it traces.
	readyUser, readySys time.Duration
}

// tracerUsage is what a tracer process used, from its rusage after exit.
type tracerUsage struct {
	User, Sys time.Duration // whole run
	// SteadyUser and SteadySys leave out what was used before the tracer
	// said it traces (loading, compiling, attaching).
	SteadyUser, SteadySys time.Duration
	MaxRSSKB              int64
}

// startTracer starts path with args and returns once it traces. stdoutFile,
// when set, receives the standard output; otherwise it is kept with the
// standard error. The tracer traces once readyLine returns true for a line
// of its standard error or, with readyMarker set, once stdoutFile holds a
// line equal to readyMarker.
func startTracer(ctx context.Context, name, path string, args []string, stdoutFile string, readyLine func(string) bool, readyMarker string) (*tracerProc, error) {
	t := &tracerProc{name: name, stderr: &syncBuffer{}, exited: make(chan struct{})}
	t.cmd = exec.Command(path, args...)
	if stdoutFile != "" {
		f, err := os.Create(stdoutFile)
		if err != nil {
			return nil, fmt.Errorf("%s output: %w", name, err)
		}
		t.out = f
		t.cmd.Stdout = f
	} else {
		t.cmd.Stdout = t.stderr
	}
	pr, pw := io.Pipe()
	t.cmd.Stderr = pw
	ready := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		said := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(t.stderr, line)
			if !said && readyLine != nil && readyLine(line) {
				said = true
				ready <- time.Now()
			}
		}
		_, _ = io.Copy(t.stderr, pr)
	}()
	t.execAt = time.Now()
	if err := t.cmd.Start(); err != nil {
		pw.Close()
		t.closeOut()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		t.err = t.cmd.Wait()
		pw.Close()
		close(t.exited)
	}()
	if readyMarker != "" {
		go watchFile(stdoutFile, readyMarker, ready, t.exited)
	}
	timeout := time.NewTimer(readyTimeout)
	defer timeout.Stop()
	select {
	case t.readyAt = <-ready:
		t.readyUser, t.readySys = procCPU(t.cmd.Process.Pid)
		return t, nil
	case <-t.exited:
		t.closeOut()
		return nil, fmt.Errorf("%s exited before it traced (%v):\n%s", name, t.err, t.stderr)
	case <-timeout.C:
		t.kill()
		return nil, fmt.Errorf("%s did not start tracing within %v:\n%s", name, readyTimeout, t.stderr)
	case <-ctx.Done():
		t.kill()
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
}

// watchFile polls path until it holds a line equal to marker, then sends
// the time on ready. It gives up when done is closed.
func watchFile(path, marker string, ready chan<- time.Time, done <-chan struct{}) {
	want := []byte(marker + "\n")
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		if err == nil && (bytes.HasPrefix(b, want) || bytes.Contains(b, append([]byte("\n"), want...))) {
			ready <- time.Now()
			return
		}
		select {
		case <-tick.C:
		case <-done:
			return
		}
	}
}

// pid is the tracer's process id.
func (t *tracerProc) pid() int { return t.cmd.Process.Pid }

// stop sends SIGINT, waits for the tracer to exit with status 0 and
// returns its resource usage.
func (t *tracerProc) stop() (tracerUsage, error) {
	defer t.closeOut()
	select {
	case <-t.exited:
		return tracerUsage{}, fmt.Errorf("%s stopped before the churn ended (%v):\n%s", t.name, t.err, t.stderr)
	default:
	}
	if err := t.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return tracerUsage{}, fmt.Errorf("signal %s: %w", t.name, err)
	}
	select {
	case <-t.exited:
	case <-time.After(exitTimeout):
		t.kill()
		return tracerUsage{}, fmt.Errorf("%s did not exit within %v of SIGINT:\n%s", t.name, exitTimeout, t.stderr)
	}
	if t.err != nil {
		return tracerUsage{}, fmt.Errorf("%s: %w:\n%s", t.name, t.err, t.stderr)
	}
	var u tracerUsage
	ru, ok := t.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return u, fmt.Errorf("%s: no resource usage after exit", t.name)
	}
	u.User = time.Duration(ru.Utime.Nano())
	u.Sys = time.Duration(ru.Stime.Nano())
	u.SteadyUser = max(0, u.User-t.readyUser)
	u.SteadySys = max(0, u.Sys-t.readySys)
	u.MaxRSSKB = ru.Maxrss
	return u, nil
}

// kill ends the tracer if it still runs and waits for it.
func (t *tracerProc) kill() {
	select {
	case <-t.exited:
	default:
		_ = t.cmd.Process.Kill()
		<-t.exited
	}
	t.closeOut()
}

func (t *tracerProc) closeOut() {
	if t.out != nil {
		t.out.Close()
		t.out = nil
	}
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
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS of %d: %w", pid, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
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
	return startTracer(ctx, "twtop", bin, args, "", func(line string) bool {
		return strings.HasPrefix(line, attachLine)
	}, "")
}

// bpftraceMarker is the line the peer's BEGIN probe prints; bpftrace runs
// BEGIN once every other probe is attached.
const bpftraceMarker = "bench: ready"

// bpftraceProgram prints every sock:inet_sock_set_state event.
const bpftraceProgram = `BEGIN { printf("` + bpftraceMarker + `\n"); } ` +
	`tracepoint:sock:inet_sock_set_state { printf("%d %d %d\n", args->oldstate, args->newstate, args->sport); }`

// startBpftrace starts the bpftrace peer with its output going to file.
func startBpftrace(ctx context.Context, bin, file string) (*tracerProc, error) {
	return startTracer(ctx, "bpftrace", bin, []string{"-e", bpftraceProgram}, file, nil, bpftraceMarker)
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

// need returns the path of the command name, installing the Debian
// package pkg with apt-get when it is missing.
func need(name, pkg string) (string, error) {
	if p, err := lookPath(name); err == nil {
		return p, nil
	}
	fmt.Fprintf(os.Stderr, "bench: %s missing, installing %s with apt-get\n", name, pkg)
	install := func() error {
		cmd := exec.Command("apt-get", "install", "-y", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
	if err := install(); err != nil {
		update := exec.Command("apt-get", "update")
		update.Stdout, update.Stderr = os.Stderr, os.Stderr
		if err := update.Run(); err != nil {
			return "", fmt.Errorf("apt-get update: %w", err)
		}
		if err := install(); err != nil {
			return "", fmt.Errorf("apt-get install %s: %w", pkg, err)
		}
	}
	p, err := lookPath(name)
	if err != nil {
		return "", fmt.Errorf("after installing %s: %w", pkg, err)
	}
	return p, nil
}

// lookPath finds name in PATH or in the sbin directories, which a
// non-login root shell may not have in PATH.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin", name)
}
