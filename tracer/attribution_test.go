package tracer_test

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/ingest"
	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/internal/workload/critest"
	"github.com/twtop/twtop/internal/workload/workloadtest"
	"github.com/twtop/twtop/pipeline"
	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
)

// Environment of TestWorkloadRowsHelperProcess.
const (
	rowsNetnsEnv   = "TWTOP_TEST_ROWS_NETNS"   // the namespace to join
	rowsCgroupEnv  = "TWTOP_TEST_ROWS_CGROUP"  // the cgroup directory to join first
	rowsListenEnv  = "TWTOP_TEST_ROWS_LISTEN"  // the listener's port on 127.0.0.1
	rowsAcceptsEnv = "TWTOP_TEST_ROWS_ACCEPTS" // connections the listener serves
	rowsLocalEnv   = "TWTOP_TEST_ROWS_LOCAL"   // first local port of the client connections
	rowsPlanEnv    = "TWTOP_TEST_ROWS_PLAN"    // client connections: PORT:c|s:N,...
)

// rowsTimeout bounds each wait on a helper or on the kernel; generous, as
// the VM matrix runs under emulation.
const rowsTimeout = 60 * time.Second

// rowsWorkload is one workload of TestWorkloadRows: a cgroup and the
// process moved into it, which listens on port and makes its client
// connections from the local ports firstLocal, firstLocal+1, and on.
type rowsWorkload struct {
	name       string
	cgroup     string
	port       uint16
	firstLocal uint16
	ino        uint64 // the cgroup's id

	accepts         int // connections its listener serves (from the plan)
	plan            []string
	active, passive int // closes its process makes, by side (from the plan)
	timewait        int // its TIME_WAIT sockets as sock_diag lists them
}

// rowsConns are n connections from a client workload to a server
// workload's listener; the client closes first unless serverFirst.
type rowsConns struct {
	from, to    *rowsWorkload
	serverFirst bool
	n           int
}

// Workload attribution end to end, on real cgroups: processes moved into
// cgroups named as kubelet's systemd driver names two containers of one
// pod, as Docker names a container and as systemd names a service, make
// connections to one another in a fresh network namespace, each closing
// some first and some second. The real tracer's records go through the
// pipeline (lifecycle tracker, model) with a workload resolver that asks a
// CRI runtime for the pod's names, and the snapshot's pod, container and
// service rows hold exactly the closes by side and the TIME_WAIT sockets
// (created, still open) that the kernel shows for each cgroup's process,
// under the names the runtime and the cgroup paths give.
func TestWorkloadRows(t *testing.T) {
	ns := netnstest.New(t)
	uid, sandbox := randomPodUID(t), randomHex(t, 32)
	nginxID, envoyID, dockerID := randomHex(t, 32), randomHex(t, 32), randomHex(t, 32)
	unit := "twtop-test-" + randomHex(t, 4) + ".service"
	const namespace, pod = "shop", "web-7d9f"

	// listeners and client ports below ip_local_port_range, so that no
	// other socket takes them
	nginx := &rowsWorkload{name: "nginx (kubelet, cri-containerd)", cgroup: workloadtest.PodCgroup(t, uid, nginxID), port: 5101, firstLocal: 10100}
	envoy := &rowsWorkload{name: "envoy (kubelet, cri-containerd)", cgroup: workloadtest.PodCgroup(t, uid, envoyID), port: 5102, firstLocal: 10200}
	docker := &rowsWorkload{name: "docker", cgroup: workloadtest.Cgroup(t, "system.slice", "docker-"+dockerID+".scope"), port: 5103, firstLocal: 10300}
	service := &rowsWorkload{name: unit, cgroup: workloadtest.Cgroup(t, "system.slice", unit), port: 5104, firstLocal: 10400}
	all := []*rowsWorkload{nginx, envoy, docker, service}
	plan := []rowsConns{
		{from: docker, to: nginx, n: 3},
		{from: docker, to: service, serverFirst: true, n: 2},
		{from: service, to: envoy, n: 4},
		{from: nginx, to: docker, serverFirst: true, n: 1},
		{from: nginx, to: envoy, n: 2},
		{from: envoy, to: service, n: 1},
	}
	conns := 0
	for _, c := range plan {
		mode, closer, closed := "c", c.from, c.to
		if c.serverFirst {
			mode, closer, closed = "s", c.to, c.from
		}
		c.from.plan = append(c.from.plan, fmt.Sprintf("%d:%s:%d", c.to.port, mode, c.n))
		c.to.accepts += c.n
		closer.active += c.n
		closed.passive += c.n
		conns += c.n
	}
	for _, w := range all {
		var st unix.Stat_t
		if err := unix.Stat(w.cgroup, &st); err != nil {
			t.Fatal(err)
		}
		w.ino = st.Ino
	}

	cri := critest.New()
	cri.AddPod(uid, namespace, pod, sandbox)
	cri.AddContainer(nginxID, sandbox, "nginx")
	cri.AddContainer(envoyID, sandbox, "envoy")
	// another pod the runtime lists, whose names must not leak into the rows
	other := randomHex(t, 32)
	cri.AddPod(randomPodUID(t), "kube-system", "coredns-5d78", other)
	cri.AddContainer(randomHex(t, 32), other, "coredns")
	resolver, err := workload.New(workload.Config{CRISocket: cri.Serve(t, "containerd.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resolver.Close() })

	// the tracer and the pipeline, wired as twtop's live mode wires them
	opts, err := tracer.EnvOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Netns, opts.ScanNetns, opts.ScanInterval = ns.Inode(), []string{ns.Path()}, 200*time.Millisecond
	tr, err := tracer.Open(opts)
	if err != nil {
		t.Fatalf("open: %+v", err)
	}
	t.Cleanup(func() { tr.Close() })
	m := model.New(model.Config{Tier: ingest.Tier(tr.Tier().String()), Workloads: resolver})
	src := pipeline.NewLiveSource(tr, opts.ScanNetns)
	src.OnState = func(s record.State) { ingest.State(m, s) }
	if err := src.ReadStates(); err != nil {
		t.Fatal(err)
	}
	var scans atomic.Int64
	fed := make(chan error, 1)
	go func() {
		fed <- pipeline.Each(src, tr.HZ(), func(e *event.Event) error {
			m.Apply(e)
			if e.Kind == event.KindScanEnd {
				scans.Add(1)
			}
			return nil
		})
	}()
	t.Logf("tier %s on kernel %s", tr.Tier(), tr.KernelRelease())

	before := netnstest.Counters(t, ns)
	helpers := make([]*rowsHelper, len(all))
	for i, w := range all {
		helpers[i] = startRowsHelper(t, ns, w)
	}
	for _, h := range helpers {
		h.expect("ready")
	}
	for _, h := range helpers {
		h.send("go")
		h.expect("done")
	}
	for _, h := range helpers {
		h.finish()
	}

	// the kernel's view: nothing left but the TIME_WAIT sockets, each a
	// cgroup's by its local port (a listener's, or in a client's range)
	var tw []netns.Socket
	err = scenario.WaitFor(ns, unix.AF_INET, rowsTimeout, func(socks []netns.Socket) error {
		tw = tw[:0]
		for _, s := range socks {
			if !s.IsTimewaitSock() || s.State != netns.TimeWait {
				return fmt.Errorf("socket %v is not in TIME_WAIT", s)
			}
			tw = append(tw, s)
		}
		if len(tw) != conns {
			return fmt.Errorf("%d TIME_WAIT sockets, want one per connection, %d", len(tw), conns)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if six, err := ns.Sockets(unix.AF_INET6, netns.AllStates); err != nil || len(six) != 0 {
		t.Fatalf("IPv6 sockets in the namespace: %v (%v)", six, err)
	}
	for _, s := range tw {
		w := ownerOf(all, s.Src.Port())
		if w == nil {
			t.Fatalf("TIME_WAIT socket %v: no workload has its local port", s)
		}
		w.timewait++
	}
	after := netnstest.Counters(t, ns)
	for _, c := range []struct {
		key  string
		want int64
	}{{"Tcp.ActiveOpens", int64(conns)}, {"Tcp.PassiveOpens", int64(conns)}, {"Tcp.EstabResets", 0}, {"Tcp.OutRsts", 0}} {
		if d := netnstest.Delta(t, before, after, c.key); d != c.want {
			t.Errorf("%s moved by %d, want %d", c.key, d, c.want)
		}
	}
	if n := after["Tcp.CurrEstab"]; n != 0 {
		t.Errorf("Tcp.CurrEstab %d, want 0", n)
	}
	if scenario.TWCountsCreations() {
		if d := netnstest.Delta(t, before, after, "TcpExt.TW"); d != int64(conns) {
			t.Errorf("TcpExt.TW moved by %d, want %d TIME_WAIT sockets armed", d, conns)
		}
	}
	for _, w := range all {
		// every active close left its TIME_WAIT socket with the closer
		if w.timewait != w.active {
			t.Errorf("%s: the kernel shows %d TIME_WAIT sockets, the plan %d active closes", w.name, w.timewait, w.active)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// let the tracer deliver what it still holds: three more periodic
	// scans (the tracepoint tier reconciles creations with them)
	seen := scans.Load()
	for deadline := time.Now().Add(rowsTimeout); scans.Load() < seen+3; {
		select {
		case err := <-fed:
			t.Fatalf("the pipeline ended before the tracer was closed: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d scans in %v", scans.Load()-seen, rowsTimeout)
		}
	}
	st, err := tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if n := st.TotalLost(); n != 0 {
		t.Fatalf("tracer lost %d records", n)
	}
	tr.Close()
	select {
	case err := <-fed:
		if err != nil {
			t.Fatalf("pipeline: %v", err)
		}
	case <-time.After(rowsTimeout):
		t.Fatal("the pipeline did not end with the tracer")
	}

	sides := func(ws ...*rowsWorkload) (c model.Closer) {
		for _, w := range ws {
			c.Closes[model.SideActive] += uint64(w.timewait)
			c.Closes[model.SidePassive] += uint64(w.passive)
			c.TimewaitCreated += uint64(w.timewait)
			c.TimewaitOpen += int64(w.timewait)
		}
		return c
	}
	named := func(c model.Closer, by model.By, key string, set func(*model.Closer), ws ...*rowsWorkload) rowsWant {
		c.By, c.Key = by.String(), key
		set(&c)
		return rowsWant{c, ws}
	}
	want := map[model.By][]rowsWant{
		model.ByPod: {named(sides(nginx, envoy), model.ByPod, namespace+"/"+pod, func(c *model.Closer) {
			c.Namespace, c.Pod, c.PodUID = namespace, pod, uid
		}, nginx, envoy)},
		model.ByContainer: {
			named(sides(nginx), model.ByContainer, namespace+"/"+pod+"/nginx", func(c *model.Closer) {
				c.Namespace, c.Pod, c.PodUID, c.Container, c.ContainerID = namespace, pod, uid, "nginx", nginxID
			}, nginx),
			named(sides(envoy), model.ByContainer, namespace+"/"+pod+"/envoy", func(c *model.Closer) {
				c.Namespace, c.Pod, c.PodUID, c.Container, c.ContainerID = namespace, pod, uid, "envoy", envoyID
			}, envoy),
			named(sides(docker), model.ByContainer, dockerID, func(c *model.Closer) { c.ContainerID = dockerID }, docker),
		},
		model.ByService: {named(sides(service), model.ByService, unit, func(c *model.Closer) { c.Service = unit }, service)},
	}
	// names come from the resolver in the background: a snapshot shows
	// what it has resolved by then (a pod not named yet is asked again
	// after the resolver's retry time, 15 s)
	var snap *model.Snapshot
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		snap = m.Snapshot()
		if rowsMatch(snap, want) || time.Now().After(deadline) {
			break
		}
	}
	for _, by := range []model.By{model.ByPod, model.ByContainer, model.ByService} {
		got := snap.AllClosers[by]
		for _, r := range got {
			t.Logf("%s %s: closes active %d, passive %d; TIME_WAIT created %d, open %d", by, r.Key,
				r.Closes[model.SideActive], r.Closes[model.SidePassive], r.TimewaitCreated, r.TimewaitOpen)
		}
		if len(got) != len(want[by]) {
			t.Errorf("%d %s rows, want %d:\n%s", len(got), by, len(want[by]), rowsString(got))
		}
		for _, w := range want[by] {
			i := slices.IndexFunc(got, func(c model.Closer) bool { return c.Key == w.row.Key })
			if i < 0 {
				t.Errorf("no %s row %q:\n%s", by, w.row.Key, rowsString(got))
				continue
			}
			if got[i] != w.row {
				t.Errorf("%s row %q\n got %s\nwant %s", by, w.row.Key, rowString(got[i]), rowString(w.row))
			}
			var ids []uint64
			for _, cw := range w.cgroups {
				ids = append(ids, cw.ino)
			}
			if g := slices.Sorted(slices.Values(snap.RowCgroups(by, &got[i]))); !slices.Equal(g, slices.Sorted(slices.Values(ids))) {
				t.Errorf("%s row %q sums cgroups %v, want %v", by, w.row.Key, g, ids)
			}
		}
	}
	c := snap.Counters
	total := sides(all...)
	if c.Closes != total.Closes || c.Created != total.TimewaitCreated || int64(snap.OpenNow) != total.TimewaitOpen {
		t.Errorf("totals: closes %v, %d TIME_WAIT created, %d open; the kernel: closes %v, %d TIME_WAIT sockets",
			c.Closes, c.Created, snap.OpenNow, total.Closes, total.TimewaitCreated)
	}
}

// rowsWant is a workload row as wanted, and the workloads whose cgroups
// it sums.
type rowsWant struct {
	row     model.Closer
	cgroups []*rowsWorkload
}

// rowsMatch reports whether the snapshot's workload rows are the ones
// wanted, names included.
func rowsMatch(s *model.Snapshot, want map[model.By][]rowsWant) bool {
	for by, rows := range want {
		if len(s.AllClosers[by]) != len(rows) {
			return false
		}
		for _, w := range rows {
			if !slices.Contains(s.AllClosers[by], w.row) {
				return false
			}
		}
	}
	return true
}

func rowString(c model.Closer) string {
	return fmt.Sprintf("%+v", c)
}

func rowsString(rows []model.Closer) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString("  " + rowString(r) + "\n")
	}
	if b.Len() == 0 {
		return "  (none)"
	}
	return b.String()
}

// ownerOf is the workload whose listener or client range has local port p.
func ownerOf(ws []*rowsWorkload, p uint16) *rowsWorkload {
	for _, w := range ws {
		if p == w.port || (p >= w.firstLocal && p < w.firstLocal+100) {
			return w
		}
	}
	return nil
}

// rowsHelper is a running TestWorkloadRowsHelperProcess.
type rowsHelper struct {
	t     *testing.T
	w     *rowsWorkload
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	errs  *strings.Builder
}

// startRowsHelper starts the process of workload w in namespace ns.
func startRowsHelper(t *testing.T, ns *netns.NS, w *rowsWorkload) *rowsHelper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorkloadRowsHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), rowsNetnsEnv+"="+ns.Path(), rowsCgroupEnv+"="+w.cgroup,
		rowsListenEnv+"="+strconv.Itoa(int(w.port)), rowsAcceptsEnv+"="+strconv.Itoa(w.accepts),
		rowsLocalEnv+"="+strconv.Itoa(int(w.firstLocal)), rowsPlanEnv+"="+strings.Join(w.plan, ","))
	h := &rowsHelper{t: t, w: w, cmd: cmd, lines: make(chan string, 4), errs: &strings.Builder{}}
	cmd.Stderr = h.errs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if h.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	return h
}

// expect waits for the line want from the helper.
func (h *rowsHelper) expect(want string) {
	h.t.Helper()
	select {
	case got, ok := <-h.lines:
		if !ok {
			h.cmd.Wait()
			h.t.Fatalf("%s: helper ended before %q: %v\n%s", h.w.name, want, h.cmd.ProcessState, h.errs)
		}
		if got != want {
			h.t.Fatalf("%s: helper said %q, want %q", h.w.name, got, want)
		}
	case <-time.After(rowsTimeout):
		h.t.Fatalf("%s: no %q from the helper in %v", h.w.name, want, rowsTimeout)
	}
}

func (h *rowsHelper) send(line string) {
	h.t.Helper()
	if _, err := io.WriteString(h.in, line+"\n"); err != nil {
		h.t.Fatalf("%s: %v", h.w.name, err)
	}
}

// finish tells the helper to end once its listener served every
// connection, and waits for it.
func (h *rowsHelper) finish() {
	h.t.Helper()
	h.in.Close()
	for range h.lines {
	}
	if err := h.cmd.Wait(); err != nil {
		h.t.Fatalf("%s: helper: %v\n%s", h.w.name, err, h.errs)
	}
}

// TestWorkloadRowsHelperProcess is not a test on its own: TestWorkloadRows
// runs it as the process of each workload. It joins its cgroup and the
// namespace, listens, says "ready", waits for "go", makes its client
// connections one after another, says "done", and ends once its listener
// served every connection it was told about and stdin is closed.
func TestWorkloadRowsHelperProcess(t *testing.T) {
	path := os.Getenv(rowsNetnsEnv)
	if path == "" {
		return
	}
	if err := rowsHelperMain(path); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func rowsHelperMain(path string) error {
	if err := workloadtest.Join(os.Getenv(rowsCgroupEnv)); err != nil {
		return err
	}
	listen, err1 := strconv.Atoi(os.Getenv(rowsListenEnv))
	accepts, err2 := strconv.Atoi(os.Getenv(rowsAcceptsEnv))
	local, err3 := strconv.Atoi(os.Getenv(rowsLocalEnv))
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	// sockets are made in the namespace of the thread that makes them
	runtime.LockOSThread()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	lfd, err := rowsSocket()
	if err != nil {
		return err
	}
	if err := unix.Bind(lfd, loopback(listen)); err != nil {
		return fmt.Errorf("bind :%d: %w", listen, err)
	}
	if err := unix.Listen(lfd, 64); err != nil {
		return err
	}
	served := make(chan error, accepts)
	go func() {
		for n := 0; n < accepts; {
			fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			n++
			if err != nil {
				served <- fmt.Errorf("accept: %w", err)
				return
			}
			go func() { served <- rowsServe(fd) }()
		}
	}()
	fmt.Println("ready")
	in := bufio.NewReader(os.Stdin)
	if line, err := in.ReadString('\n'); err != nil || line != "go\n" {
		return fmt.Errorf("wait for go: %q, %v", line, err)
	}
	next := local
	for _, batch := range strings.FieldsFunc(os.Getenv(rowsPlanEnv), func(r rune) bool { return r == ',' }) {
		var port, n int
		var mode string
		f := strings.Split(batch, ":")
		if len(f) != 3 {
			return fmt.Errorf("bad plan %q", batch)
		}
		port, err1 = strconv.Atoi(f[0])
		n, err2 = strconv.Atoi(f[2])
		mode = f[1]
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		for range n {
			if err := rowsDial(next, port, mode == "s"); err != nil {
				return err
			}
			next++
		}
	}
	fmt.Println("done")
	for range accepts {
		select {
		case err := <-served:
			if err != nil {
				return err
			}
		case <-time.After(rowsTimeout):
			return fmt.Errorf("the listener on :%d served fewer than %d connections", listen, accepts)
		}
	}
	// stdin's end: the test has every helper's "done"
	io.Copy(io.Discard, in)
	return unix.Close(lfd)
}

func loopback(port int) unix.Sockaddr {
	return &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
}

// rowsSocket is a TCP socket whose reads and writes time out.
func rowsSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := rowsTimeouts(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func rowsTimeouts(fd int) error {
	tv := unix.NsecToTimeval(rowsTimeout.Nanoseconds())
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			return err
		}
	}
	return nil
}

// rowsDial connects from local port local to the listener on port, says
// which end closes first, and closes: first, or after the server's FIN.
func rowsDial(local, port int, serverFirst bool) (err error) {
	fd, err := rowsSocket()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()
	if err := unix.Bind(fd, loopback(local)); err != nil {
		return fmt.Errorf("bind :%d: %w", local, err)
	}
	for {
		err = unix.Connect(fd, loopback(port))
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("connect :%d->:%d: %w", local, port, err)
	}
	mode := []byte{'c'}
	if serverFirst {
		mode[0] = 's'
	}
	if _, err := unix.Write(fd, mode); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if serverFirst {
		if err := rowsReadEOF(fd); err != nil {
			return err
		}
	}
	return unix.Close(fd)
}

// rowsServe serves one accepted connection: it reads which end closes
// first and closes, first or after the client's FIN.
func rowsServe(fd int) error {
	if err := rowsTimeouts(fd); err != nil {
		unix.Close(fd)
		return err
	}
	var b [1]byte
	for {
		n, err := unix.Read(fd, b[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n != 1 {
			unix.Close(fd)
			return fmt.Errorf("read the mode: %d bytes, %v", n, err)
		}
		break
	}
	if b[0] != 's' {
		if err := rowsReadEOF(fd); err != nil {
			unix.Close(fd)
			return err
		}
	}
	return unix.Close(fd)
}

// rowsReadEOF reads until the peer's FIN; data is an error.
func rowsReadEOF(fd int) error {
	var buf [16]byte
	for {
		n, err := unix.Read(fd, buf[:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("read to EOF: %w", err)
		case n > 0:
			return fmt.Errorf("%d unexpected bytes", n)
		}
		return nil
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// randomPodUID is a random UID in the form Kubernetes gives pods.
func randomPodUID(t *testing.T) string {
	r := randomHex(t, 16)
	return r[:8] + "-" + r[8:12] + "-" + r[12:16] + "-" + r[16:20] + "-" + r[20:32]
}
