package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
)

// replayBinary runs `twtop --replay FILE args...` and returns stdout,
// stderr and the exit status.
func replayBinary(t *testing.T, file string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(twtopBinary(t), append([]string{"--replay", file}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// Record while reporting live; the replay's report is byte for byte the
// live one, and both equal the namespace's counters. The replay needs no
// privileges.
func TestRecordReplayRoundTrip(t *testing.T) {
	ns := netnstest.New(t)
	file := filepath.Join(t.TempDir(), "rt.twrec")
	before := netnstest.Counters(t, ns)
	_, stdout, wait := startTwtop(t, "--record", file, "--report", "json", "--netns", ns.Path(), "--duration", "7s")
	for _, run := range []func() (*scenario.Result, error){
		// first: the overflow needs a namespace holding no TIME_WAIT yet
		func() (*scenario.Result, error) { return scenario.Overflow(ns, 2, 4) },
		func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 4, unix.AF_INET) },
		func() (*scenario.Result, error) { return scenario.ServerCloses(ns, 3, unix.AF_INET6) },
		func() (*scenario.Result, error) { return scenario.Linger0(ns, 2) },
	} {
		r, err := run()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
	}
	live, err := io.ReadAll(stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("twtop: %v", err)
	}
	after := netnstest.Counters(t, ns)
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("recording mode %v, want 0600", fi.Mode().Perm())
	}

	// replay as nobody, from a readable copy
	pubDir, err := os.MkdirTemp("", "twtop-replay")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pubDir) })
	if err := os.Chmod(pubDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(pubDir, "pub.twrec")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(twtopBinary(t), "--replay", pub, "--report", "json")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	replayed, err := cmd.Output()
	if err != nil {
		t.Fatalf("replay as nobody: %v\n%s", err, errb.String())
	}
	if !bytes.Equal(live, replayed) {
		t.Fatalf("replayed report differs from the live one\nlive:\n%s\nreplay:\n%s", live, replayed)
	}

	var rep struct {
		Timewait struct{ Created, Overflow int64 }
		Closes   struct{ Reset int64 }
		Kernel   []struct {
			Netns    uint32
			TW       int64 `json:"tw"`
			Overflow int64 `json:"timewait_overflow"`
		}
	}
	if err := json.Unmarshal(replayed, &rep); err != nil {
		t.Fatal(err)
	}
	tw := netnstest.Delta(t, before, after, "TcpExt.TW")
	overflow := netnstest.Delta(t, before, after, "TcpExt.TCPTimeWaitOverflow")
	if tw != 2+4+3 || overflow != 2 {
		t.Fatalf("scenarios made TW %d, overflow %d; want 9 and 2", tw, overflow)
	}
	if rep.Timewait.Created != tw || rep.Timewait.Overflow != overflow {
		t.Errorf("report: created %d, overflow %d; kernel: TW %d, overflow %d", rep.Timewait.Created, rep.Timewait.Overflow, tw, overflow)
	}
	if len(rep.Kernel) != 1 || rep.Kernel[0].TW != tw || rep.Kernel[0].Overflow != overflow {
		t.Errorf("report's kernel section %+v, want TW %d and overflow %d read in the namespace", rep.Kernel, tw, overflow)
	}

	out, _, code := replayBinary(t, file, "--check", "timewait.created == 9", "--check", "lost == 0", "--check", "timewait.overflow == 0")
	if code != 1 || !strings.Contains(out, "PASS  timewait.created == 9  (actual 9)") ||
		!strings.Contains(out, "FAIL  timewait.overflow == 0  (actual 2)") {
		t.Errorf("checks: exit %d, output:\n%s", code, out)
	}
}

// A recording killed with SIGKILL replays everything older than a second:
// its blocks are flushed at least once a second.
func TestRecordSurvivesSIGKILL(t *testing.T) {
	ns := netnstest.New(t)
	file := filepath.Join(t.TempDir(), "killed.twrec")
	before := netnstest.Counters(t, ns)
	cmd, _, wait := startTwtop(t, "--record", file, "--netns", ns.Path())
	r, err := scenario.ClientCloses(ns, 6, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	after := netnstest.Counters(t, ns)
	time.Sleep(2500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait()
	out, stderr, code := replayBinary(t, file, "--report", "json")
	if code != 0 {
		t.Fatalf("replay of a killed recording: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "trailer") {
		t.Errorf("replay does not warn that the recording was cut short:\n%s", stderr)
	}
	var rep struct{ Timewait struct{ Created int64 } }
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if tw := netnstest.Delta(t, before, after, "TcpExt.TW"); rep.Timewait.Created != tw || tw != 6 {
		t.Errorf("replayed %d TIME_WAIT creations, TcpExt.TW delta %d (want 6)", rep.Timewait.Created, tw)
	}
}

// Damaged, foreign or missing input, or a directory: one line naming the
// offset or what is wrong, exit status 2.
func TestReplayBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ name, file, want string }{
		{"text", write("text", []byte("not a recording\n")), "offset 0: not a twtop recording"},
		{"empty", write("empty", nil), "empty file"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"directory", dir, "a directory"},
	} {
		_, stderr, code := replayBinary(t, tc.file, "--report", "text")
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || !strings.Contains(lines[len(lines)-1], tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %q", tc.name, code, stderr, tc.want)
		}
	}
}
