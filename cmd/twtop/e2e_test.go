package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// twtopBinary builds ./twtop once for the end-to-end tests.
func twtopBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "twtop-e2e")
		if err != nil {
			buildErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil { // run as nobody too
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "twtop")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build twtop: %v", buildErr)
	}
	return binPath
}

type jsonEvent struct {
	Kind string `json:"kind"`
	New  string `json:"new"`
	Src  string `json:"src"`
}

// startTwtop starts the binary with args and returns once it says it is
// tracing. The caller reads stdout to its end (twtop's exit), then calls
// wait, which also waits for stderr (logged to the test).
func startTwtop(t *testing.T, args ...string) (cmd *exec.Cmd, stdout io.Reader, wait func() error) {
	t.Helper()
	cmd, stdout, wait, _ = startTwtopUntil(t, "tracing on", args...)
	return cmd, stdout, wait
}

// startTwtopUntil is startTwtop returning once a line of stderr contains
// ready, with the metrics URL twtop printed before it (if any).
func startTwtopUntil(t *testing.T, ready string, args ...string) (cmd *exec.Cmd, stdout io.Reader, wait func() error, url string) {
	t.Helper()
	cmd = exec.Command(twtopBinary(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan *string, 1)
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		sc := bufio.NewScanner(stderr)
		var ok bool
		var u string
		for sc.Scan() {
			t.Logf("twtop: %s", sc.Text())
			if m := metricsURL.FindStringSubmatch(sc.Text()); m != nil && !ok {
				u = m[1]
			}
			if !ok && strings.Contains(sc.Text(), ready) {
				ok = true
				started <- &u
			}
		}
		if !ok {
			started <- nil
		}
	}()
	select {
	case u := <-started:
		if u == nil {
			<-stderrDone
			cmd.Wait()
			t.Fatalf("twtop exited before %q: %v", ready, cmd.ProcessState)
		}
		url = *u
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("twtop did not say %q within 30 s", ready)
	}
	return cmd, stdout, func() error {
		<-stderrDone // the pipes reach EOF when twtop exits; only then may Wait close them
		return cmd.Wait()
	}, url
}

// traceNetns runs `twtop --events json --netns PATH` around traffic() and
// returns its events after stopping it with SIGINT.
func traceNetns(t *testing.T, ns *netns.NS, traffic func()) []jsonEvent {
	t.Helper()
	cmd, stdout, wait := startTwtop(t, "--events", "json", "--netns", ns.Path())
	var evs []jsonEvent
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e jsonEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Kind == "" {
				done <- fmt.Errorf("bad JSON line %q: %v", sc.Text(), err)
				return
			}
			evs = append(evs, e)
		}
		done <- sc.Err()
	}()
	traffic()
	time.Sleep(2 * time.Second) // two scan periods
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("twtop did not exit within 5 s of SIGINT")
	}
	if err := wait(); err != nil {
		t.Fatalf("twtop exit after SIGINT: %v", err)
	}
	return evs
}

func countKind(evs []jsonEvent, kind string) int64 {
	var n int64
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func TestEventsJSONMatchesCounters(t *testing.T) {
	ns := netnstest.New(t)
	other := netnstest.New(t) // traffic here must not show up
	before := netnstest.Counters(t, ns)
	var res []*scenario.Result
	evs := traceNetns(t, ns, func() {
		for _, run := range []func() (*scenario.Result, error){
			func() (*scenario.Result, error) { return scenario.Overflow(ns, 2, 5) },
			func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 4, unix.AF_INET) },
			func() (*scenario.Result, error) { return scenario.ServerCloses(ns, 3, unix.AF_INET6) },
			func() (*scenario.Result, error) { return scenario.ClientCloses(other, 5, unix.AF_INET) },
		} {
			r, err := run()
			if err != nil {
				t.Fatal(err)
			}
			res = append(res, r)
		}
	})
	for _, r := range res {
		r.Close()
	}
	after := netnstest.Counters(t, ns)
	tw := netnstest.Delta(t, before, after, "TcpExt.TW")
	overflow := netnstest.Delta(t, before, after, "TcpExt.TCPTimeWaitOverflow")
	if tw != 9 || overflow != 3 {
		t.Fatalf("scenario produced TW %d, overflow %d; want 9 and 3", tw, overflow)
	}
	if got := countKind(evs, "tw_create"); got != tw {
		t.Errorf("tw_create events %d, TcpExt.TW delta %d", got, tw)
	}
	if got := countKind(evs, "tw_overflow"); got != overflow {
		t.Errorf("tw_overflow events %d, TcpExt.TCPTimeWaitOverflow delta %d", got, overflow)
	}
	var fin1 int
	for _, e := range evs {
		if e.Kind == "state" && e.New == "FIN_WAIT1" {
			fin1++
		}
	}
	if fin1 != 5+4+3 {
		t.Errorf("ESTABLISHED->FIN_WAIT1 events %d, want 12 (one per connection of this namespace)", fin1)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--events", "yaml"},
		{"--report", "yaml"},
		{"--events", "json", "--report", "text"},
		{"--attach", "uprobe", "--events", "json"},
		{"-4", "-6", "--events", "json"},
		{"--port", "70000", "--events", "json"},
		{"--events", "json", "extra"},
		{"--bogus"},
		{},
		{"--check", "lost == 0", "--report", "json"},
		{"--replay", "f", "--check", "lost"},
		{"--replay", "f", "--netns", "blue"},
		{"--replay", "f", "--events", "json", "--check", "lost == 0"},
		{"--record", "-", "--report", "json"},
		{"--record", "f", "--events", "json"},
		{"--replay", "f", "--check", "timewait.created == sum(kernel.tw)"},
		{"--fallback", "perf-buffers", "--events", "json"},
		{"--replay", "f", "--btf", "vmlinux"},
		{"--replay", "f", "--fallback", "sock-diag"},
	} {
		err := run(args)
		if _, ok := err.(*usageError); !ok {
			t.Errorf("twtop %q: err = %v, want a usage error", args, err)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("twtop %q: error is not one line: %q", args, err)
		}
	}
}

func TestHelpTeaches(t *testing.T) {
	for _, want := range []string{"--events json", "--attach", "--netns", "tracepoint", "jq", "CAP_BPF",
		"--record FILE", "--replay FILE", "--check", "max(ports.usage) < 0.8", "Exit status"} {
		if !strings.Contains(usageText, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
	if err := run([]string{"--help"}); err != nil {
		t.Fatalf("--help: %v", err)
	}
}

// Without privileges twtop says, in one line, what to do.
func TestUnprivilegedOneLineError(t *testing.T) {
	netnstest.RequireRoot(t) // to drop to nobody
	cmd := exec.Command(twtopBinary(t), "--events", "json")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1; output %q", err, out)
	}
	msg := strings.TrimSuffix(string(out), "\n")
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "sudo") || !strings.Contains(msg, "CAP_BPF") {
		t.Fatalf("want one line saying to use sudo or CAP_BPF, got %q", out)
	}
}

// `twtop --report json` over real traffic: its figures equal the
// namespace's counters, also with the older kernels' ways forced.
func TestReportJSONMatchesCounters(t *testing.T) {
	for _, fallbacks := range []string{"", "perf-buffer,classic-tracepoints,sock-diag"} {
		t.Run("fallbacks="+fallbacks, func(t *testing.T) { testReportJSON(t, fallbacks) })
	}
}

func testReportJSON(t *testing.T, fallbacks string) {
	ns := netnstest.New(t)
	before := netnstest.Counters(t, ns)
	_, stdout, wait := startTwtop(t, "--report", "json", "--netns", ns.Path(), "--duration", "6s", "--fallback", fallbacks)
	for _, run := range []func() (*scenario.Result, error){
		func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 3, unix.AF_INET) },
		func() (*scenario.Result, error) { return scenario.ServerCloses(ns, 2, unix.AF_INET) },
		func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 2, unix.AF_INET6) },
		func() (*scenario.Result, error) { return scenario.Linger0(ns, 1) },
	} {
		r, err := run()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
	}
	out, err := io.ReadAll(stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("twtop: %v", err)
	}
	after := netnstest.Counters(t, ns)
	var rep struct {
		Closes   struct{ Active, Passive, Simultaneous, Reset uint64 }
		Timewait struct {
			Created   uint64
			OpenAtEnd int `json:"open_at_end"`
		}
		Lost uint64
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if tw := netnstest.Delta(t, before, after, "TcpExt.TW"); rep.Timewait.Created != uint64(tw) || tw != 7 {
		t.Errorf("timewait.created %d, TcpExt.TW delta %d (want 7)", rep.Timewait.Created, tw)
	}
	if rep.Timewait.OpenAtEnd != 7 {
		t.Errorf("timewait.open_at_end %d, want 7", rep.Timewait.OpenAtEnd)
	}
	// each connection has both ends in the namespace: 7 active and 7
	// passive closes, and the abort resets both ends
	if rep.Closes.Active != 7 || rep.Closes.Passive != 7 || rep.Closes.Reset != 2 || rep.Closes.Simultaneous != 0 {
		t.Errorf("closes %+v, want 7 active, 7 passive, 2 reset", rep.Closes)
	}
	if rep.Lost != 0 {
		t.Errorf("lost %d", rep.Lost)
	}
}

// --probe says what the kernel offers; as root it loads the programs and
// names the tier, without root it says what root would add.
func TestProbe(t *testing.T) {
	netnstest.RequireRoot(t)
	out, err := exec.Command(twtopBinary(t), "--probe").CombinedOutput()
	if err != nil {
		t.Fatalf("twtop --probe: %v\n%s", err, out)
	}
	for _, want := range []string{"kernel ", "kernel BTF", "ring buffer", "iter/tcp", "fallbacks", "(loaded and attached; --attach auto)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--probe output lacks %q:\n%s", want, out)
		}
	}
	forced, err := exec.Command(twtopBinary(t), "--probe", "--fallback", "perf-buffer,sock-diag").CombinedOutput()
	if err != nil {
		t.Fatalf("twtop --probe --fallback: %v\n%s", err, forced)
	}
	if !strings.Contains(string(forced), "fallbacks used") || !strings.Contains(string(forced), "perf-buffer,") {
		t.Errorf("--probe --fallback perf-buffer,sock-diag does not say it used them:\n%s", forced)
	}
	cmd := exec.Command(twtopBinary(t), "--probe")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "run as root") {
		t.Errorf("unprivileged --probe: %v\n%s", err, out)
	}
}

// Without a terminal, the UI modes say what to give instead, before doing
// anything else.
func TestUINeedsATerminal(t *testing.T) {
	for _, args := range [][]string{{}, {"--replay", "../../testdata/server-closes.twrec"}} {
		err := run(args) // the test's stdout is not a terminal
		if _, ok := err.(*usageError); !ok || !strings.Contains(err.Error(), "needs a terminal") {
			t.Errorf("twtop %q: err = %v, want a usage error about the terminal", args, err)
		}
	}
}
