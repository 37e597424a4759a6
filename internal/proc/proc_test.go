package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// shell returns options that run script with /bin/sh, ready on a stderr
// line starting with "ready".
func shell(script string) Options {
	return Options{
		Name:         "sh",
		Path:         "/bin/sh",
		Args:         []string{"-c", script},
		ReadyPrefix:  "ready",
		ReadyTimeout: 10 * time.Second,
		ExitTimeout:  10 * time.Second,
	}
}

// start starts o, failing the test when it cannot, and kills the process
// when the test ends.
func start(t *testing.T, o Options) *Process {
	t.Helper()
	p, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// waitExit fails the test unless p exits within 10 s.
func waitExit(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("process still runs after 10 s")
	}
}

// gone reports whether the process whose id the script wrote to file no
// longer exists (it has exited and been waited for).
func gone(t *testing.T, file string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestReadyLine(t *testing.T) {
	before := time.Now()
	p := start(t, shell("echo starting >&2; echo out; echo ready now >&2; echo after >&2; exec sleep 10"))
	if p.ExecAt().Before(before) || p.ReadyAt().Before(p.ExecAt()) || time.Since(p.ReadyAt()) < 0 {
		t.Errorf("exec at %v, ready at %v, test started at %v: out of order", p.ExecAt(), p.ReadyAt(), before)
	}
	if d := p.ReadyAt().Sub(p.ExecAt()); d > 5*time.Second {
		t.Errorf("ready %v after exec", d)
	}
	select {
	case <-p.Exited():
		t.Fatalf("exited after saying ready (%v)", p.Err())
	default:
	}
	if p.Pid() <= 0 {
		t.Errorf("pid %d", p.Pid())
	}
	if p.State() != nil || p.Err() != nil {
		t.Errorf("running process has state %v, error %v", p.State(), p.Err())
	}
	// The lines after the ready line, and the standard output, which comes
	// through its own pipe, still reach the buffer.
	deadline := time.Now().Add(5 * time.Second)
	for !(strings.Contains(p.Stderr(), "after\n") && strings.Contains(p.Stderr(), "out\n")) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := p.Stderr()
	for _, want := range []string{"starting\n", "out\n", "ready now\n", "after\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr %q lacks %q", got, want)
		}
	}
	p.Kill()
	if p.State() == nil || p.State().Success() {
		t.Errorf("killed process: state %v", p.State())
	}
}

func TestReadyPrefixOnly(t *testing.T) {
	o := shell("echo not ready >&2; echo ready >&2; exec sleep 10")
	o.ReadyTimeout = 5 * time.Second
	p := start(t, o)
	if !strings.HasSuffix(p.Stderr(), "not ready\nready\n") {
		t.Errorf("ready before the line starting with the prefix: stderr %q", p.Stderr())
	}
}

func TestStopSIGINT(t *testing.T) {
	o := shell(`trap 'kill $! 2>/dev/null; echo got INT >&2; exit 0' INT; echo ready >&2; sleep 10 >/dev/null 2>&1 & wait`)
	p := start(t, o)
	begin := time.Now()
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if !strings.Contains(p.Stderr(), "got INT\n") {
		t.Errorf("stderr %q: the process did not get SIGINT", p.Stderr())
	}
	if st := p.State(); st == nil || !st.Success() {
		t.Errorf("state after Stop: %v", st)
	}
	if err := p.Stop(); !errors.Is(err, ErrExited) {
		t.Errorf("second Stop: %v, want ErrExited", err)
	}
}

func TestStopNonZeroExit(t *testing.T) {
	p := start(t, shell("echo ready >&2; exec sleep 10"))
	err := p.Stop()
	if err == nil {
		t.Fatal("Stop of a process killed by SIGINT succeeded")
	}
	if want := "sh: signal: interrupt:\nready\n"; err.Error() != want {
		t.Errorf("Stop: %q, want %q", err, want)
	}
}

func TestStopTimeoutKills(t *testing.T) {
	o := shell("trap '' INT; echo ready >&2; exec sleep 10")
	o.ExitTimeout = 300 * time.Millisecond
	p := start(t, o)
	begin := time.Now()
	err := p.Stop()
	if d := time.Since(begin); d < o.ExitTimeout || d > 5*time.Second {
		t.Errorf("Stop took %v with an exit timeout of %v", d, o.ExitTimeout)
	}
	if want := "sh did not exit within 300ms of SIGINT:\nready\n"; err == nil || err.Error() != want {
		t.Errorf("Stop: %v, want %q", err, want)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("still runs after Stop timed out")
	}
	st := p.State()
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("state %v, want killed by SIGKILL", st)
	}
}

func TestStopAfterExit(t *testing.T) {
	p := start(t, shell("echo ready >&2; sleep 0.2; echo bye >&2; exit 4"))
	waitExit(t, p)
	err := p.Stop()
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Stop: %v, want ErrExited", err)
	}
	if p.Err() == nil || p.Err().Error() != "exit status 4" {
		t.Errorf("Err: %v, want exit status 4", p.Err())
	}
	if !strings.Contains(p.Stderr(), "bye\n") {
		t.Errorf("stderr %q", p.Stderr())
	}
}

func TestExitBeforeReady(t *testing.T) {
	o := shell("echo no kernel >&2; exit 3")
	o.Label, o.Until = "tracer --x", "it traced"
	_, err := Start(context.Background(), o)
	if want := "tracer --x exited before it traced (exit status 3):\nno kernel\n"; err == nil || err.Error() != want {
		t.Errorf("Start: %v, want %q", err, want)
	}
}

func TestExitBeforeReadyDefaultWording(t *testing.T) {
	_, err := Start(context.Background(), shell("exit 1"))
	if want := "sh exited before it was ready (exit status 1):\n"; err == nil || err.Error() != want {
		t.Errorf("Start: %v, want %q", err, want)
	}
}

func TestReadyTimeoutKills(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	o := shell("echo $$ > " + pidFile + "; echo loading >&2; exec sleep 10")
	o.ReadyTimeout = time.Second
	o.Reach = "attach"
	begin := time.Now()
	_, err := Start(context.Background(), o)
	if d := time.Since(begin); d < o.ReadyTimeout || d > 5*time.Second {
		t.Errorf("Start took %v with a ready timeout of %v", d, o.ReadyTimeout)
	}
	if want := "sh did not attach within 1s:\nloading\n"; err == nil || err.Error() != want {
		t.Errorf("Start: %v, want %q", err, want)
	}
	if !gone(t, pidFile) {
		t.Error("process still exists after the ready timeout")
	}
}

func TestInterrupted(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// cancel once the process runs and has written its id
		for {
			if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	_, err := Start(ctx, shell("echo $$ > "+pidFile+"; exec sleep 10"))
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "interrupted: ") {
		t.Errorf("Start: %v, want interrupted: context canceled", err)
	}
	if !gone(t, pidFile) {
		t.Error("process still exists after the context was cancelled")
	}
}

func TestStartFails(t *testing.T) {
	o := shell("")
	o.Path = filepath.Join(t.TempDir(), "missing")
	_, err := Start(context.Background(), o)
	if err == nil || !strings.HasPrefix(err.Error(), "start sh: ") {
		t.Errorf("Start: %v, want start sh: ...", err)
	}
	o = shell("")
	o.StdoutFile = filepath.Join(t.TempDir(), "no", "such", "dir")
	_, err = Start(context.Background(), o)
	if err == nil || !strings.HasPrefix(err.Error(), "sh output: ") {
		t.Errorf("Start: %v, want sh output: ...", err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Name: "a", Path: "/bin/true", ReadyTimeout: time.Second, ExitTimeout: time.Second},
		{Name: "b", Path: "/bin/true", ReadyMarker: "m", ReadyTimeout: time.Second, ExitTimeout: time.Second},
		{Name: "c", Path: "/bin/true", ReadyPrefix: "r", ExitTimeout: time.Second},
		{Name: "d", Path: "/bin/true", ReadyPrefix: "r", ReadyTimeout: time.Second},
	} {
		if p, err := Start(context.Background(), o); err == nil {
			p.Kill()
			t.Errorf("%s: Start with %+v succeeded", o.Name, o)
		}
	}
}

func TestStdoutFileMarker(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	o := shell("echo first; echo BEGINX; sleep 0.3; echo BEGIN; echo on stderr >&2; exec sleep 10")
	o.ReadyPrefix = ""
	o.ReadyMarker = "BEGIN"
	o.StdoutFile = out
	begin := time.Now()
	p := start(t, o)
	// "BEGINX" is not the marker: ready only after the sleep.
	if d := time.Since(begin); d < 300*time.Millisecond {
		t.Errorf("ready after %v, before the marker line", d)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "first\nBEGINX\nBEGIN\n") {
		t.Errorf("stdout file %q", b)
	}
	if err := p.Stop(); err == nil {
		t.Error("Stop of a process killed by SIGINT succeeded")
	}
	if p.out != nil {
		t.Error("stdout file still open after Stop")
	}
	if strings.Contains(p.Stderr(), "first") {
		t.Errorf("stderr %q holds the standard output", p.Stderr())
	}
}

func TestMarkerOnFirstLine(t *testing.T) {
	o := shell("echo BEGIN; exec sleep 10")
	o.ReadyPrefix, o.ReadyMarker = "", "BEGIN"
	o.StdoutFile = filepath.Join(t.TempDir(), "out")
	p := start(t, o)
	p.Kill()
	if p.out != nil {
		t.Error("stdout file still open after Kill")
	}
}

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				fmt.Fprintf(&b, "%d.%d\n", i, j)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 800 {
		t.Fatalf("%d lines, want 800", len(lines))
	}
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	if len(seen) != 800 {
		t.Errorf("%d distinct lines, want 800", len(seen))
	}
}
