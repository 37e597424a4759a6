package tracer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
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
	base, err := envOptions()
	if err != nil {
		t.Fatal(err)
	}
	open := func(port uint16) *Tracer {
		opts := base
		opts.Netns, opts.Port, opts.ScanNetns = ns.Inode(), port, []string{ns.Path()}
		tr, err := Open(opts)
		if err != nil {
			t.Fatalf("open: %+v", err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
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
	if err := helperConnections(path, port, n); err != nil {
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

// --pid N keeps the sockets process N owns, with their TIME_WAIT: two
// processes make connections in one namespace, and a tracer for each pid
// sees exactly its process's connections and none of the other's.
func TestInKernelPidFilter(t *testing.T) {
	ns := netnstest.New(t)
	const helperPort, helperConns = 5003, 2
	helper := exec.Command(os.Args[0], "-test.run=^TestFilterHelperProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), helperNetnsEnv+"="+ns.Path(),
		helperPortEnv+"="+strconv.Itoa(helperPort), helperConnsEnv+"="+strconv.Itoa(helperConns))
	var helperOut strings.Builder
	helper.Stdout, helper.Stderr = &helperOut, &helperOut
	start, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })

	base, err := envOptions()
	if err != nil {
		t.Fatal(err)
	}
	open := func(pid int) *Tracer {
		opts := base
		opts.Netns, opts.Pid, opts.ScanNetns = ns.Inode(), uint32(pid), []string{ns.Path()}
		// scans within the drain below: what they show passes --pid too
		opts.ScanInterval = 200 * time.Millisecond
		tr, err := Open(opts)
		if err != nil {
			t.Fatalf("open: %+v", err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
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
	var helperTW []scenario.Tuple
	err = scenario.WaitFor(ns, unix.AF_INET, scenario.Timeout, func(socks []netns.Socket) error {
		helperTW = helperTW[:0]
		for _, s := range socks {
			if s.State == netns.TimeWait && s.Dst.Port() == helperPort {
				helperTW = append(helperTW, scenario.Tuple{Local: s.Src, Remote: s.Dst})
			}
		}
		if len(helperTW) != helperConns {
			return fmt.Errorf("%d TIME_WAIT sockets towards the helper's listener, want %d", len(helperTW), helperConns)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
