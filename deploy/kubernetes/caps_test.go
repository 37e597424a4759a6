package kubernetes

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireRoot skips without root, or fails when CI=true, where the
// privileged tests must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but the test needs root")
	}
	t.Skip("the test needs root")
}

// manifestCaps are the capabilities the DaemonSet adds, as setpriv names
// them (bpf, perfmon, ...).
func manifestCaps(t *testing.T) []string {
	t.Helper()
	ds := &decode(t).daemonSets[0]
	var out []string
	for _, c := range twtopContainer(t, ds).SecurityContext.Capabilities.Add {
		out = append(out, strings.ToLower(string(c)))
	}
	return out
}

func buildTwtop(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "twtop")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/twtop")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build twtop: %v\n%s", err, out)
	}
	return bin
}

// withCaps runs bin as uid 0 holding only caps, as a container whose
// securityContext drops ALL and adds caps does: they bound what an exec
// gives root.
func withCaps(bin string, caps []string, args ...string) *exec.Cmd {
	set := "-all"
	for _, c := range caps {
		set += ",+" + c
	}
	return exec.Command("setpriv", append([]string{"--bounding-set=" + set, "--inh-caps=" + set, "--", bin}, args...)...)
}

var (
	metricsLine = regexp.MustCompile(`twtop: metrics on (http://\S+/metrics)`)
	tierLine    = regexp.MustCompile(`twtop: tracing on kernel \S+, tier (\w+)`)
)

// capNumbers are the capability numbers of the names the manifest may use.
var capNumbers = map[string]uint{"bpf": 39, "perfmon": 38, "syslog": 34, "sys_resource": 24}

// twtop traces with exactly the DaemonSet's capabilities: it starts, holds
// no other capability, and its metrics count the TIME_WAIT sockets of
// connections made meanwhile. Without any one of them it does not start.
func TestCapabilitiesFromManifestSuffice(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	caps := manifestCaps(t)
	bin := buildTwtop(t)

	cmd := withCaps(bin, caps, "--metrics", "127.0.0.1:0", "--no-ui")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url, tier := "", ""
	lines := bufio.NewScanner(stderr)
	for tier == "" && lines.Scan() {
		t.Logf("%s", lines.Text())
		if m := metricsLine.FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
		}
		if m := tierLine.FindStringSubmatch(lines.Text()); m != nil {
			tier = m[1]
		}
	}
	if url == "" || tier == "" {
		cmd.Wait()
		t.Fatalf("twtop with capabilities %v did not start tracing", caps)
	}
	go io.Copy(io.Discard, stderr)
	checkCapEff(t, cmd.Process.Pid, caps)

	before := scrapeSum(t, url, "twtop_timewait_created_total")
	const n = 20
	clientCloses(t, n)
	deadline := time.Now().Add(10 * time.Second)
	got := before
	for got-before < n && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		got = scrapeSum(t, url, "twtop_timewait_created_total")
	}
	if got-before < n {
		t.Errorf("twtop_timewait_created_total went from %v to %v over %d client-closed connections", before, got, n)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("twtop after SIGTERM: %v", err)
	}

	// each capability is needed (SYSLOG only by the tracepoint tier)
	for i, c := range caps {
		if c == "sys_resource" || (c == "syslog" && tier != "tracepoint") {
			continue
		}
		fewer := append(append([]string{}, caps[:i]...), caps[i+1:]...)
		out, err := withCaps(bin, fewer, "--report", "json", "--duration", "1s").CombinedOutput()
		if err == nil {
			t.Errorf("twtop started without %s (tier %s): the manifest grants more than it needs\n%s", c, tier, out)
		}
	}
}

// checkCapEff: the process's effective capabilities are exactly caps.
func checkCapEff(t *testing.T, pid int, caps []string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, c := range caps {
		n, ok := capNumbers[c]
		if !ok {
			t.Fatalf("capability %s: number unknown to the test", c)
		}
		want |= 1 << n
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:\t"); ok {
			got, err := strconv.ParseUint(v, 16, 64)
			if err != nil || got != want {
				t.Fatalf("twtop's effective capabilities %s, want %016x (%v)", v, want, caps)
			}
			return
		}
	}
	t.Fatal("no CapEff in /proc/PID/status")
}

// clientCloses makes n loopback connections whose client closes first,
// leaving n TIME_WAIT sockets.
func clientCloses(t *testing.T, n int) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range n {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Close() // the client's FIN first
		if _, err := s.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("server read: %v, want EOF", err)
		}
		s.Close()
	}
}

// scrapeSum is the sum of a metric's samples in a text exposition.
func scrapeSum(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		sum += v
	}
	return sum
}
