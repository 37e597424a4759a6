package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
)

const testRecording = "../../testdata/server-closes.twrec"

// goneProcess returns the pid of a process that has exited and been
// reaped.
func goneProcess(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if unix.Kill(pid, 0) != unix.ESRCH {
		t.Skipf("pid %d was taken again at once", pid)
	}
	return pid
}

// Mistakes on the command line are usage errors (exit status 2) that say
// in one line what is wrong and what to give instead.
func TestUsageErrorsSayWhatToGive(t *testing.T) {
	gone := strconv.Itoa(goneProcess(t))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--report", "json", "--duration", "5"}, "--duration 5: give a unit, e.g. 5s, 2m, 1h"},
		{[]string{"--report", "json", "--duration=1.5"}, "--duration 1.5: give a unit, e.g. 1.5s, 2m, 1h"},
		{[]string{"--report", "json", "--duration", "5x"}, "--duration 5x: not a duration; give a number and a unit, e.g. 30s, 5m, 1h30m"},
		{[]string{"--replay", testRecording, "--duration", "5"}, "--duration 5: give a unit"},
		{[]string{"--events", "json", "--duration", "1s", "--pid", gone}, "--pid " + gone + ": no such process"},
		{[]string{"--replay", testRecording, "--check", "timewait.craeted == 0"},
			`check "timewait.craeted == 0": no key timewait.craeted in the report; did you mean timewait.created?`},
		{[]string{"--replay", testRecording, "--check", "created == 0"}, "no key created in the report; did you mean timewait.created?"},
		{[]string{"--replay", testRecording, "--check", "timewait.expired == 0"}, "did you mean timewait.ended.expired?"},
		{[]string{"--replay", testRecording, "--check", "top_closers{bi=port}.active_share < 0.5"}, "no key bi in top_closers; did you mean by?"},
		{[]string{"--replay", testRecording, "--check", "max(ports.usag) < 0.8"}, "did you mean ports.usage?"},
		{[]string{"--replay", testRecording, "--check", "nosuch == 0"}, "no key nosuch in the report; its keys: tier, duration_s,"},
		{[]string{"--replay", testRecording, "--check", "timewait == 0"}, "timewait is not a number; name one of its keys: created,"},
		{[]string{"--replay", testRecording, "--check", "tier == 1"}, "tier is text, not a number"},
		{[]string{"--replay", testRecording, "--check", "lost == 0", "--check", "lsot == 0"}, "did you mean lost?"},
		{[]string{"--events", "json", "--ring-size", "3M"}, "--ring-size 3M: give a power of two from 4K to 2G, e.g. 64M"},
		{[]string{"--events", "json", "--ring-size", "1K"}, "--ring-size 1K: give a power of two"},
		{[]string{"--replay", testRecording, "--ring-size", "64M"}, "--ring-size applies to tracing"},
	} {
		err := run(tc.args)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("twtop %q: err = %v, want a usage error", tc.args, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") || strings.Contains(msg, "invalid value") {
			t.Errorf("twtop %q: %q, want one line with %q", tc.args, msg, tc.want)
		}
	}
	// what the report has passes, also where a list has no element now
	for _, expr := range []string{"timewait.created > 0", "count(top_closers{by=port,port=80}) >= 0",
		"max(settings.ip_local_port_range) > 0", "max(ports.usage) < 0.8", "recursion_misses == 0"} {
		if _, err := parseFlags([]string{"--replay", testRecording, "--check", expr}, io.Discard); err != nil {
			t.Errorf("--check %q: %v", expr, err)
		}
	}
}

// A recording that cannot be read, from a missing file to a directory, is
// an unreadable recording (exit status 2, as the README says), with one
// line naming the file; a misspelt --check key or a --duration without a
// unit is bad usage (2), a failed check 1.
func TestReplayExitStatuses(t *testing.T) {
	dir := t.TempDir()
	empty := dir + "/empty.twrec"
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{dir + "/nonexistent.twrec", "--replay " + dir + "/nonexistent.twrec: no such file or directory"},
		{dir, "--replay " + dir + ": a directory; give a recording file"},
		{empty, "empty"},
	} {
		err := run([]string{"--replay", tc.path, "--report", "json"})
		var br *badRecording
		if !errors.As(err, &br) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--replay %s: %v, want an unreadable recording saying %q", tc.path, err, tc.want)
		}
		if !errors.Is(err, unix.ENOENT) && tc.path == dir+"/nonexistent.twrec" {
			t.Errorf("--replay %s: %v does not wrap ENOENT", tc.path, err)
		}
	}
	// the exit statuses, from the binary (TestReplayBadInput has those of
	// unreadable files)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--replay", dir, "--events", "json"}, 2},
		{[]string{"--replay", testRecording, "--check", "timewait.craeted == 0"}, 2},
		{[]string{"--report", "json", "--duration", "5"}, 2},
		{[]string{"--replay", testRecording, "--check", "timewait.created == 0"}, 1},
		{[]string{"--replay", testRecording, "--check", "timewait.created > 0"}, 0},
	} {
		cmd := exec.Command(twtopBinary(t), tc.args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.want {
			t.Errorf("twtop %q: exit status %d, want %d; stderr %q", tc.args, code, tc.want, stderr.String())
		}
	}
}

var tracingLine = regexp.MustCompile(`^twtop: tracing on kernel \S+, tier (\w+)`)

// A live run names the tier it uses in one line on stderr, before any
// event; why better tiers were not used only with --verbose, one line
// each, before that line.
func TestTierLines(t *testing.T) {
	netnstest.RequireRoot(t)
	better := map[string][]string{"fentry": nil, "kprobe": {"fentry"}, "tracepoint": {"fentry", "kprobe"}}
	var tier string
	for _, verbose := range []bool{false, true} {
		args := []string{"--events", "json", "--duration", "1500ms"}
		if verbose {
			args = append(args, "--verbose")
		}
		out, err := exec.Command(twtopBinary(t), args...).CombinedOutput()
		if err != nil {
			t.Fatalf("twtop %q: %v\n%s", args, err, out)
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		var tierAt, firstEvent = -1, -1
		var notUsing []string
		for i, l := range lines {
			switch {
			case strings.HasPrefix(l, "{"):
				if firstEvent < 0 {
					firstEvent = i
				}
			case strings.HasPrefix(l, "twtop: not using tier "):
				if tierAt >= 0 {
					t.Errorf("%q after the tracing line", l)
				}
				name, _, _ := strings.Cut(strings.TrimPrefix(l, "twtop: not using tier "), ":")
				notUsing = append(notUsing, name)
			case strings.Contains(l, "tier"):
				m := tracingLine.FindStringSubmatch(l)
				if m == nil || tierAt >= 0 {
					t.Errorf("twtop %q: another line naming a tier: %q", args, l)
					continue
				}
				tierAt, tier = i, m[1]
			}
		}
		if tierAt < 0 || firstEvent < 0 || tierAt > firstEvent {
			t.Fatalf("twtop %q: want the tier line (at %d) before the first event (at %d):\n%s", args, tierAt, firstEvent, out)
		}
		want, ok := better[tier]
		if !ok {
			t.Fatalf("unknown tier %q", tier)
		}
		if !verbose {
			want = nil
		}
		if fmt.Sprint(notUsing) != fmt.Sprint(want) {
			t.Errorf("twtop %q on tier %s: \"not using tier\" lines for %v, want %v:\n%s", args, tier, notUsing, want, out)
		}
	}
}

// traceAround runs the binary with args (which end it with --duration),
// calls traffic once it traces, and returns its stdout and stderr lines.
func traceAround(t *testing.T, traffic func(), args ...string) (stdout []string, stderr []string) {
	t.Helper()
	cmd := exec.Command(twtopBinary(t), args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tracing := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(errPipe)
		said := false
		for sc.Scan() {
			stderr = append(stderr, sc.Text())
			if !said && strings.Contains(sc.Text(), "tracing on") {
				said = true
				tracing <- true
			}
		}
		if !said {
			tracing <- false
		}
	}()
	if !<-tracing {
		<-done
		cmd.Wait()
		t.Fatalf("twtop %q exited before tracing: %v\n%s", args, cmd.ProcessState, strings.Join(stderr, "\n"))
	}
	traffic()
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("twtop %q: %v\n%s", args, err, strings.Join(stderr, "\n"))
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"), stderr
}

// --pid N of a process that made no connection says so at the end, once;
// of the process that made them, it shows their TIME_WAIT sockets and
// says nothing.
func TestPidNothingMatched(t *testing.T) {
	ns := netnstest.New(t)
	idle := exec.Command("sleep", "60")
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { idle.Process.Kill(); idle.Wait() }()
	for _, pid := range []int{idle.Process.Pid, os.Getpid()} {
		traffic := func() {
			r, err := scenario.ClientCloses(ns, 2, unix.AF_INET)
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
		}
		events, stderr := traceAround(t, traffic, "--events", "json", "--netns", ns.Path(), "--pid", strconv.Itoa(pid), "--duration", "2s")
		// the scan's records pass --pid (a TIME_WAIT socket has no owner):
		// count the creations the hooks saw
		created := 0
		for _, e := range events {
			if strings.Contains(e, `"kind":"tw_create"`) && !strings.Contains(e, `"reconciled":true`) && !strings.Contains(e, `"existing":true`) {
				created++
			}
		}
		notes := 0
		for _, l := range stderr {
			if l == fmt.Sprintf("twtop: nothing matched --pid %d", pid) {
				notes++
			}
		}
		switch pid {
		case os.Getpid():
			if created != 2 || notes != 0 {
				t.Errorf("--pid %d (this test, which made 2 TIME_WAIT sockets): %d created, %d notes; want 2 and none\n%s",
					pid, created, notes, strings.Join(stderr, "\n"))
			}
		default:
			if created != 0 || notes != 1 {
				t.Errorf("--pid %d (sleep): %d created, %d notes; want none and one\n%s", pid, created, notes, strings.Join(stderr, "\n"))
			}
		}
	}
}

// The advice after lost records names a size --ring-size takes, twice the
// one in use, and none beyond the largest.
func TestRingAdvice(t *testing.T) {
	for _, c := range []struct {
		size uint64
		want string
	}{
		{16 << 20, "the kernel's event buffers (16M) were full at times; run with --ring-size 32M to give them more room"},
		{512 << 20, "the kernel's event buffers (512M) were full at times; run with --ring-size 1G to give them more room"},
		{1 << 30, "the kernel's event buffers (1G) were full at times; run with --ring-size 2G to give them more room"},
		{maxRingSize, "the kernel's event buffers (2G) were full at times"},
		{64 << 10, "the kernel's event buffers (64K) were full at times; run with --ring-size 128K to give them more room"},
	} {
		got := ringAdvice(c.size)
		if got != c.want {
			t.Errorf("ringAdvice(%d) = %q, want %q", c.size, got, c.want)
		}
		if i := strings.Index(got, "--ring-size "); i >= 0 {
			arg := strings.Fields(got[i:])[1]
			if n, err := parseSize(arg); err != nil || uint64(n) != 2*c.size {
				t.Errorf("--ring-size %s reads as %d (%v), want %d", arg, n, err, 2*c.size)
			}
		}
	}
}

// The tracing line names the event buffers' size only when the TIME_WAIT
// capacity raised it and --ring-size did not set it.
func TestRingNote(t *testing.T) {
	for _, c := range []struct {
		asked, size uint32
		ncpu        int
		want        string
	}{
		{0, 16 << 20, 2, ""},
		{0, 32 << 20, 2, ", event buffers 32M for the TIME_WAIT sockets tcp_max_tw_buckets allows"},
		{32 << 20, 32 << 20, 2, ""},
		{0, 32 << 20, 4, ""},
		{0, 64 << 20, 4, ", event buffers 64M for the TIME_WAIT sockets tcp_max_tw_buckets allows"},
	} {
		if got := ringNote(c.asked, c.size, c.ncpu); got != c.want {
			t.Errorf("ringNote(%d, %d, %d) = %q, want %q", c.asked, c.size, c.ncpu, got, c.want)
		}
	}
}
