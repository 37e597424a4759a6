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
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/internal/workload/workloadtest"
)

const podHolderEnv = "TWTOP_TEST_POD_HOLDER" // JSON: cgroup dir, netns path, port, connections

// holderPort is the listener of the pod holder's connections.
const holderPort = 5090

// TestPodHolderHelperProcess is the pod's process of
// TestReportPodHoldsExistingTimewait, run whole in the pod's network
// namespace: it joins the cgroup it is given, makes connections it closes
// first, says "ready" on stdout and stays, a process of the pod, until its
// stdin is closed.
func TestPodHolderHelperProcess(t *testing.T) {
	v := os.Getenv(podHolderEnv)
	if v == "" {
		return
	}
	var cfg struct {
		Cgroup, Netns string
		Conns         int
	}
	err := json.Unmarshal([]byte(v), &cfg)
	if err == nil {
		err = workloadtest.Join(cfg.Cgroup)
	}
	if err == nil {
		err = scenario.ClientClosesFromHere(cfg.Netns, holderPort, cfg.Conns, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// startPodHolder runs TestPodHolderHelperProcess in cgroup directory cg
// and the namespace ns, making conns connections, and returns once they
// are made; the process stays until t ends.
func startPodHolder(t *testing.T, ns *netns.NS, cg string, conns int) {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{"Cgroup": cg, "Netns": ns.Path(), "Conns": conns})
	helper := exec.Command("nsenter", "--net="+ns.Path(), os.Args[0], "-test.run=^TestPodHolderHelperProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), podHolderEnv+"="+string(cfg))
	var stderr strings.Builder
	helper.Stderr = &stderr
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- helper.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			helper.Process.Kill()
			<-done
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
				io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			helper.Wait()
			t.Fatalf("pod holder process ended before its connections were made: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("pod holder process not ready within 30 s: %s", stderr.String())
	}
}

// kernelTimewait is the number of TIME_WAIT sockets in ns, as sock_diag
// (ss) lists them.
func kernelTimewait(t *testing.T, ns *netns.NS) int64 {
	t.Helper()
	socks, err := ns.Sockets(unix.AF_UNSPEC, netns.StateMask(netns.TimeWait, netns.FinWait2))
	if err != nil {
		t.Fatalf("sock_diag: %v", err)
	}
	var n int64
	for _, s := range socks {
		if s.IsTimewaitSock() {
			n++
		}
	}
	return n
}

// podPortsRow is a ports row as the pod tests read it.
type podPortsRow struct {
	Netns     uint32
	Dst       string
	TimeWait  int64 `json:"time_wait"`
	Namespace string
	Pod       string
	PodUID    string `json:"pod_uid"`
}

// podCloserRow is a top_closers row with its open TIME_WAIT sockets.
type podCloserRow struct {
	closerRow
	TimewaitOpen int64 `json:"timewait_open"`
}

// podReport is what the pod tests read of a JSON report.
type podReport struct {
	Timewait struct {
		Created         uint64
		ExistingAtStart uint64 `json:"existing_at_start"`
		OpenAtEnd       int64  `json:"open_at_end"`
	}
	TopClosers []podCloserRow `json:"top_closers"`
	Ports      []podPortsRow
}

// pods returns the report's pod rows.
func (r *podReport) pods() []podCloserRow {
	var rows []podCloserRow
	for _, row := range r.TopClosers {
		if row.By == "pod" {
			rows = append(rows, row)
		}
	}
	return rows
}

// TIME_WAIT sockets a pod's process left in the pod's network namespace
// before twtop started have no owner twtop saw: the report counts them in
// the pod's row by the namespace (named by the runtime), exactly as many
// as the kernel lists there, and names the pod on the destination whose
// ports they hold. A recording keeps the namespace's pod: its replay
// reports the same, without the node.
func TestReportPodHoldsExistingTimewait(t *testing.T) {
	netnstest.RequireRoot(t)
	uid, id, cri := runtimeWithPod(t, "shop", "web-1", "app")
	sock := cri.Serve(t, "containerd.sock")
	cg := podCgroup(t, uid, id)
	ns := netnstest.New(t)
	const conns = 6
	file := filepath.Join(t.TempDir(), "pod.twrec")

	startPodHolder(t, ns, cg, conns)
	before := kernelTimewait(t, ns)
	if before != conns {
		t.Fatalf("the kernel lists %d TIME_WAIT sockets in the pod's namespace, want %d", before, conns)
	}
	_, stdout, wait := startTwtop(t, "--report", "json", "--netns", ns.Path(), "--duration", "3s",
		"--cri-socket", sock, "--record", file)
	out, err := io.ReadAll(stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("twtop: %v", err)
	}
	after := kernelTimewait(t, ns)
	if after != before {
		t.Fatalf("the kernel's TIME_WAIT sockets changed while tracing: %d, then %d", before, after)
	}

	check := func(what, out string) {
		t.Helper()
		var rep podReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%s report: %v\n%s", what, err, out)
		}
		if rep.Timewait.ExistingAtStart != uint64(after) || rep.Timewait.Created != 0 || rep.Timewait.OpenAtEnd != after {
			t.Errorf("%s timewait %+v, want %d existing at start and open, none created", what, rep.Timewait, after)
		}
		// every one of them open, as many as the kernel lists
		want := podCloserRow{closerRow{By: "pod", Key: "shop/web-1", TimewaitCreated: uint64(after),
			Namespace: "shop", Pod: "web-1", PodUID: uid}, after}
		if pods := rep.pods(); len(pods) != 1 || pods[0] != want {
			t.Errorf("%s pod rows\n got %+v\nwant [%+v]\n%s", what, pods, want, out)
		}
		wantPorts := podPortsRow{Netns: ns.Inode(), Dst: fmt.Sprintf("127.0.0.1:%d", holderPort), TimeWait: after, Namespace: "shop", Pod: "web-1"}
		if len(rep.Ports) != 1 || rep.Ports[0] != wantPorts {
			t.Errorf("%s ports\n got %+v\nwant [%+v]", what, rep.Ports, wantPorts)
		}
	}
	check("live", string(out))
	replayed, stderr, code := replayBinary(t, file, "--report", "json")
	if code != 0 {
		t.Fatalf("replay exited %d: %s", code, stderr)
	}
	check("replayed", replayed)
}
