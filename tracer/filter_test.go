package tracer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/internal/workload/workloadtest"
	"github.com/twtop/twtop/lifecycle"
	"github.com/twtop/twtop/tracer/event"
)

// drain reads a private tracer's events for d after traffic ran.
func drain(t *testing.T, tr *Tracer, d time.Duration) []event.Event {
	t.Helper()
	time.AfterFunc(d, func() { tr.Close() })
	st := lifecycle.NewStream(tr, tr.HZ())
	var evs []event.Event
	for {
		e, err := st.Next()
		if errors.Is(err, ErrClosed) {
			return evs
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, *e)
	}
}

// The filters run in the kernel: a tracer for one namespace and one family
// sees exactly that traffic. Not parallel: it opens tracers of its own.
func TestInKernelFilters(t *testing.T) {
	ns := netnstest.New(t)
	other := netnstest.New(t)
	base, err := envOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts := base
	opts.Netns, opts.Family, opts.ScanNetns = ns.Inode(), event.AFInet6, []string{ns.Path()}
	v6, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %+v", err)
	}
	defer v6.Close()
	opts = base
	opts.Netns, opts.Family, opts.ScanNetns = ns.Inode(), event.AFInet, []string{ns.Path()}
	v4, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %+v", err)
	}
	defer v4.Close()
	opts = base
	opts.Netns, opts.Pid, opts.ScanNetns = ns.Inode(), uint32(os.Getpid())+1_000_000, []string{ns.Path()}
	nobody, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %+v", err)
	}
	defer nobody.Close()

	for _, run := range []func() (*scenario.Result, error){
		func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 2, unix.AF_INET) },
		func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 3, unix.AF_INET6) },
		func() (*scenario.Result, error) { return scenario.ClientCloses(other, 4, unix.AF_INET6) },
	} {
		r, err := run()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
	}
	for _, f := range []struct {
		name   string
		tr     *Tracer
		family uint8
		n      int
	}{{"-6", v6, event.AFInet6, 3}, {"-4", v4, event.AFInet, 2}} {
		got := drain(t, f.tr, 2*time.Second)
		eq(t, f.name+": tw_create in the namespace", count(got, created), f.n)
		sameTuples(t, f.name+": tw_create vs sock_diag", tuplesOf(got, created), diagTimewait(t, ns, int(f.family)))
		eq(t, f.name+": ESTABLISHED->FIN_WAIT1", count(got, finWait1), f.n)
		for i := range got {
			e := &got[i]
			if e.Kind == event.KindScanEnd {
				continue
			}
			if e.Family != f.family || e.Netns != ns.Inode() {
				t.Errorf("%s let through %s (family %d, netns %d)", f.name, describe(e), e.Family, e.Netns)
			}
		}
	}
	// the periodic scan is not filtered by pid (a timewait socket has no
	// owner), so only what it derives may appear
	got := drain(t, nobody, 1500*time.Millisecond)
	for i := range got {
		e := &got[i]
		fromScan := e.Kind == event.KindScanEnd || (created(e) && e.Flags&(event.FlagExisting|event.FlagReconciled) != 0)
		if !fromScan {
			t.Errorf("pid-filtered tracer let through %s", describe(e))
		}
	}
}

// finWait1 is an active close: ESTABLISHED to FIN_WAIT1, made in the
// closing process's close().
func finWait1(e *event.Event) bool {
	return e.Kind == event.KindState && e.OldState == event.Established && e.NewState == event.FinWait1
}

// hooked: the event came from a kernel hook, not from the periodic scan,
// which no --pid filters (a timewait socket has no owner).
func hooked(e *event.Event) bool {
	return e.Kind != event.KindScanEnd && e.Flags&(event.FlagExisting|event.FlagReconciled) == 0
}

func touches(e *event.Event, ports ...uint16) bool {
	return slices.Contains(ports, e.Src.Port()) || slices.Contains(ports, e.Dst.Port())
}

// diagTimewaitTo lists the namespace's timewait sockets (both families)
// whose local or remote port is port.
func diagTimewaitTo(t *testing.T, ns *netns.NS, port uint16) []scenario.Tuple {
	t.Helper()
	var out []scenario.Tuple
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		for _, tp := range diagTimewait(t, ns, f) {
			if tp.Local.Port() == port || tp.Remote.Port() == port {
				out = append(out, tp)
			}
		}
	}
	return sortTuples(out)
}

// --port P keeps the connections with P at either end, of both families,
// and drops a second listener's in the same namespace: each tracer sees
// exactly its listener's TIME_WAIT sockets and both ends' transitions.
func TestInKernelPortFilter(t *testing.T) {
	ns := netnstest.New(t)
	// below ip_local_port_range: no client of the scenarios gets them
	const portA, portB = 5001, 5002
	open := func(port uint16) *Tracer {
		return openIn(t, ns, func(o *Options) { o.Port = port })
	}
	trA, trB := open(portA), open(portB)
	before := netnstest.Counters(t, ns)
	a4 := must[*scenario.Result](t)(scenario.ClientClosesOn(ns, portA, 3, unix.AF_INET))
	closeResult(t, a4)
	a6 := must[*scenario.Result](t)(scenario.ClientClosesOn(ns, portA, 1, unix.AF_INET6))
	closeResult(t, a6)
	b4 := must[*scenario.Result](t)(scenario.ClientClosesOn(ns, portB, 2, unix.AF_INET))
	closeResult(t, b4)
	eqTWCreated(t, before, netnstest.Counters(t, ns), 6)

	for _, c := range []struct {
		name string
		tr   *Tracer
		port uint16
		tw   []scenario.Tuple
	}{
		{"--port 5001", trA, portA, append(slices.Clone(a4.TimeWait), a6.TimeWait...)},
		{"--port 5002", trB, portB, b4.TimeWait},
	} {
		got := drain(t, c.tr, 1500*time.Millisecond)
		n := len(c.tw)
		sameTuples(t, c.name+": tw_create vs the scenario", tuplesOf(got, created), c.tw)
		sameTuples(t, c.name+": tw_create vs sock_diag", tuplesOf(got, created), diagTimewaitTo(t, ns, c.port))
		// both ends of each connection: the client's active close, the
		// server's passive one
		eq(t, c.name+": ESTABLISHED->FIN_WAIT1", count(got, finWait1), n)
		eq(t, c.name+": CLOSE_WAIT->LAST_ACK", count(got, func(e *event.Event) bool {
			return e.Kind == event.KindState && e.OldState == event.CloseWait && e.NewState == event.LastAck
		}), n)
		for i := range got {
			e := &got[i]
			if e.Kind != event.KindScanEnd && (!touches(e, c.port) || e.Netns != ns.Inode()) {
				t.Errorf("%s let through %s (netns %d)", c.name, describe(e), e.Netns)
			}
		}
	}
}

// Environment of the helper process of TestInKernelPidFilter.
const (
	helperNetnsEnv = "TWTOP_TEST_HELPER_NETNS"
	helperPortEnv  = "TWTOP_TEST_HELPER_PORT"
	helperConnsEnv = "TWTOP_TEST_HELPER_CONNS"
	// a cgroup directory the helper joins first (TestInKernelCgroupFilter)
	helperCgroupEnv = "TWTOP_TEST_HELPER_CGROUP"
)

// TestFilterHelperProcess is not a test on its own: TestInKernelPidFilter
// runs it as a second process, which joins the namespace, waits for a line
// on stdin, makes the connections and exits.
func TestFilterHelperProcess(t *testing.T) {
	path := os.Getenv(helperNetnsEnv)
	if path == "" {
		return
	}
	port, _ := strconv.Atoi(os.Getenv(helperPortEnv))
	n, _ := strconv.Atoi(os.Getenv(helperConnsEnv))
	var err error
	if cg := os.Getenv(helperCgroupEnv); cg != "" {
		err = workloadtest.Join(cg)
	}
	if err == nil {
		err = helperConnections(path, port, n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperConnections makes the helper's connections once the test says go
// (a line on stdin), after the helper joined the namespace.
func helperConnections(path string, port, n int) error {
	return scenario.ClientClosesFromHere(path, port, n, func() error {
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return fmt.Errorf("wait for the go: %w", err)
		}
		return nil
	})
}

// openIn opens a tracer of the harness's options for namespace ns (its
// filter and its scan), changed by set (if not nil); it is closed when t
// ends.
func openIn(t *testing.T, ns *netns.NS, set func(*Options)) *Tracer {
	t.Helper()
	opts, err := envOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Netns, opts.ScanNetns = ns.Inode(), []string{ns.Path()}
	if set != nil {
		set(&opts)
	}
	tr, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %+v", err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// startHelper starts TestFilterHelperProcess making n connections to its
// own listener on port in ns, after joining cgroup (if not ""); a line on
// the returned pipe says go.
func startHelper(t *testing.T, ns *netns.NS, port, n int, cgroup string) (*exec.Cmd, io.Writer, *strings.Builder) {
	helper := exec.Command(os.Args[0], "-test.run=^TestFilterHelperProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), helperNetnsEnv+"="+ns.Path(),
		helperPortEnv+"="+strconv.Itoa(port), helperConnsEnv+"="+strconv.Itoa(n), helperCgroupEnv+"="+cgroup)
	out := &strings.Builder{}
	helper.Stdout, helper.Stderr = out, out
	start, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	return helper, start, out
}

// helperTimewait waits for the helper's n TIME_WAIT sockets towards its
// listener on port and returns their tuples.
func helperTimewait(t *testing.T, ns *netns.NS, port uint16, n int) []scenario.Tuple {
	var tw []scenario.Tuple
	err := scenario.WaitFor(ns, unix.AF_INET, scenario.Timeout, func(socks []netns.Socket) error {
		tw = tw[:0]
		for _, s := range socks {
			if s.State == netns.TimeWait && s.Dst.Port() == port {
				tw = append(tw, scenario.Tuple{Local: s.Src, Remote: s.Dst})
			}
		}
		if len(tw) != n {
			return fmt.Errorf("%d TIME_WAIT sockets towards the helper's listener, want %d", len(tw), n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tw
}

// --pid N keeps the sockets process N owns, with their TIME_WAIT: two
// processes make connections in one namespace, and a tracer for each pid
// sees exactly its process's connections and none of the other's.
func TestInKernelPidFilter(t *testing.T) {
	ns := netnstest.New(t)
	const helperPort, helperConns = 5003, 2
	helper, start, helperOut := startHelper(t, ns, helperPort, helperConns, "")

	open := func(pid int) *Tracer {
		return openIn(t, ns, func(o *Options) {
			o.Pid = uint32(pid)
			// scans within the drain below: what they show passes --pid too
			o.ScanInterval = 200 * time.Millisecond
		})
	}
	self, other := open(os.Getpid()), open(helper.Process.Pid)
	before := netnstest.Counters(t, ns)
	c4 := must[*scenario.Result](t)(scenario.ClientCloses(ns, 3, unix.AF_INET))
	closeResult(t, c4)
	s6 := must[*scenario.Result](t)(scenario.ServerCloses(ns, 2, unix.AF_INET6))
	closeResult(t, s6)
	if _, err := io.WriteString(start, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := helper.Wait(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, helperOut.String())
	}
	helperTW := helperTimewait(t, ns, helperPort, helperConns)
	eqTWCreated(t, before, netnstest.Counters(t, ns), 3+2+helperConns)

	mine := append(slices.Clone(c4.TimeWait), s6.TimeWait...)
	for _, c := range []struct {
		name  string
		tr    *Tracer
		pid   int
		ports []uint16 // the listeners of the process's connections
		tw    []scenario.Tuple
	}{
		{"--pid (this test)", self, os.Getpid(), []uint16{c4.Listener.Port(), s6.Listener.Port()}, mine},
		{"--pid (the helper)", other, helper.Process.Pid, []uint16{helperPort}, helperTW},
	} {
		got := drain(t, c.tr, 1500*time.Millisecond)
		isCreated := func(e *event.Event) bool { return created(e) && hooked(e) }
		sameTuples(t, c.name+": tw_create vs the process's TIME_WAIT sockets", tuplesOf(got, isCreated), c.tw)
		sameTuples(t, c.name+": tw_create, the scan's reconciled ones included", tuplesOf(got, created), c.tw)
		eq(t, c.name+": ESTABLISHED->FIN_WAIT1", count(got, finWait1), len(c.tw))
		for i := range got {
			e := &got[i]
			if !hooked(e) {
				continue
			}
			if !touches(e, c.ports...) || e.Netns != ns.Inode() {
				t.Errorf("%s let through %s, not a connection of pid %d", c.name, describe(e), c.pid)
			}
			if e.Owned() && e.Pid != uint32(c.pid) {
				t.Errorf("%s let through %s owned by pid %d", c.name, describe(e), e.Pid)
			}
		}
	}
}

// A cgroup filter keeps the sockets of the processes in the cgroup's
// subtree, with their TIME_WAIT: a helper in a container's cgroup (kubelet's
// naming) makes connections beside this test's own in one namespace; a
// tracer on the pod's cgroup (the container's parent) sees exactly the
// helper's, one on a sibling pod's sees none of either.
func TestInKernelCgroupFilter(t *testing.T) {
	ns := netnstest.New(t)
	uid, id := "0c1e1f6a-4d2b-4c3d-9e8f-"+fmt.Sprintf("%012x", os.Getpid()), fmt.Sprintf("%064x", os.Getpid())
	ctr := workloadtest.PodCgroup(t, uid, id)
	pod := filepath.Dir(ctr)
	sibling := workloadtest.Cgroup(t, "kubepods.slice", "kubepods-besteffort.slice",
		"kubepods-besteffort-pod"+fmt.Sprintf("%x", os.Getpid())+".slice")
	const helperPort, helperConns = 5004, 3
	helper, start, helperOut := startHelper(t, ns, helperPort, helperConns, ctr)

	open := func(cgroup string) *Tracer {
		return openIn(t, ns, func(o *Options) {
			o.Cgroup = cgroup
			o.ScanInterval = 200 * time.Millisecond
		})
	}
	inPod, inSibling := open(pod), open(sibling)
	before := netnstest.Counters(t, ns)
	c4 := must[*scenario.Result](t)(scenario.ClientCloses(ns, 2, unix.AF_INET))
	closeResult(t, c4)
	if _, err := io.WriteString(start, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := helper.Wait(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, helperOut.String())
	}
	helperTW := helperTimewait(t, ns, helperPort, helperConns)
	eqTWCreated(t, before, netnstest.Counters(t, ns), 2+helperConns)

	got := drain(t, inPod, 1500*time.Millisecond)
	isCreated := func(e *event.Event) bool { return created(e) && hooked(e) }
	sameTuples(t, "pod's cgroup: tw_create vs the helper's TIME_WAIT sockets", tuplesOf(got, isCreated), helperTW)
	sameTuples(t, "pod's cgroup: tw_create, the scan's reconciled ones included", tuplesOf(got, created), helperTW)
	eq(t, "pod's cgroup: ESTABLISHED->FIN_WAIT1", count(got, finWait1), helperConns)
	for i := range got {
		e := &got[i]
		if hooked(e) && !touches(e, helperPort) {
			t.Errorf("the pod's cgroup let through %s, not a connection of the helper", describe(e))
		}
		if e.Owned() && e.Pid != uint32(helper.Process.Pid) {
			t.Errorf("the pod's cgroup let through %s owned by pid %d", describe(e), e.Pid)
		}
	}
	got = drain(t, inSibling, 500*time.Millisecond)
	for i := range got {
		if e := &got[i]; e.Kind != event.KindScanEnd {
			t.Errorf("a sibling pod's cgroup let through %s", describe(e))
		}
	}
}

// Stop keeps the tail: the records still in the buffers when it is called
// are handed out before ErrClosed (Close drops them). The traffic runs
// while nothing reads the tracer, so every record of it is in the buffers
// at the Stop, and in the merge's hold-back with rings per CPU.
func TestStopKeepsTheTail(t *testing.T) {
	const n = 40
	ns := netnstest.New(t)
	// every TIME_WAIT socket stays: with tcp_tw_reuse 2 (loopback) a
	// connect() a second after an earlier one may take its tuple over
	if err := ns.SetSysctl("net.ipv4.tcp_tw_reuse", "0"); err != nil {
		t.Fatal(err)
	}
	tr := openIn(t, ns, nil)
	r, err := scenario.ClientCloses(ns, n, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var want []scenario.Tuple
	for deadline := time.Now().Add(5 * time.Second); len(want) < n && time.Now().Before(deadline); {
		want = diagTimewait(t, ns, unix.AF_INET)
		if len(want) < n {
			time.Sleep(10 * time.Millisecond)
		}
	}
	tr.Stop()
	tr.Stop() // a second Stop changes nothing
	st := lifecycle.NewStream(tr, tr.HZ())
	var got []event.Event
	for {
		e, err := st.Next()
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, *e)
	}
	if _, err := tr.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after the end: %v, want ErrClosed", err)
	}
	eq(t, "ESTABLISHED->FIN_WAIT1 after Stop", count(got, finWait1), n)
	eq(t, "tw_create after Stop", count(got, created), n)
	sameTuples(t, "tw_create vs sock_diag", tuplesOf(got, created), want)
}
