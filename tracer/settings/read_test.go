package settings_test

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/tracer/settings"
	"golang.org/x/sys/unix"
)

// threadNetns returns the network namespace inode of the calling thread.
func threadNetns(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatalf("stat own namespace: %v", err)
	}
	return st.Ino
}

// hostSysctl reads net.ipv4.name of the test process's namespace.
func hostSysctl(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// setSysctls sets net.ipv4 sysctls in ns, given as name, value pairs.
func setSysctls(t *testing.T, ns *netns.NS, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := ns.SetSysctl("net.ipv4."+kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
}

// makeTimeWait leaves one TIME_WAIT socket in ns (the client side of a
// loopback connection that the client closed first) and waits until the
// kernel counted it in TcpExt.TW.
func makeTimeWait(t *testing.T, ns *netns.NS) {
	t.Helper()
	err := ns.Do(func() error {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return err
		}
		s, err := ln.Accept()
		if err != nil {
			c.Close()
			return err
		}
		c.Close()
		return s.Close()
	})
	if err != nil {
		t.Fatalf("make TIME_WAIT: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for netnstest.Counters(t, ns)["TcpExt.TW"] < 1 {
		if time.Now().After(deadline) {
			t.Fatal("TcpExt.TW stayed 0")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReadNamespace(t *testing.T) {
	ns := netnstest.New(t)
	hasDelay := ns.HasSysctl("net.ipv4.tcp_tw_reuse_delay")
	hasRecycle := ns.HasSysctl("net.ipv4.tcp_tw_recycle")
	t.Logf("kernel has tcp_tw_reuse_delay: %v, tcp_tw_recycle: %v", hasDelay, hasRecycle)
	setSysctls(t, ns,
		"tcp_tw_reuse", "1",
		"ip_local_port_range", "40000 40009",
		"tcp_max_tw_buckets", "7",
		"tcp_fin_timeout", "5",
		"tcp_timestamps", "2",
	)
	if hasDelay {
		setSysctls(t, ns, "tcp_tw_reuse_delay", "2500")
	}
	makeTimeWait(t, ns)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadNetns(t)
	s, c, err := settings.Read(ns.Path())
	after := threadNetns(t)
	if err != nil {
		t.Fatalf("Read(%s): %v", ns.Path(), err)
	}
	if before != after {
		t.Fatalf("Read moved the calling thread from namespace %d to %d", before, after)
	}
	if uint64(ns.Inode()) == before {
		t.Fatal("test namespace is the caller's namespace")
	}

	want := settings.Settings{
		Netns:        ns.Inode(),
		TwReuse:      1,
		MaxTwBuckets: 7,
		PortLow:      40000,
		PortHigh:     40009,
		FinTimeoutS:  5,
		Timestamps:   2,
	}
	got := s
	got.TwReuseDelayMs, got.Recycle = nil, nil
	if got != want {
		t.Errorf("Read = %+v, want %+v", got, want)
	}
	if hasDelay {
		if s.TwReuseDelayMs == nil || *s.TwReuseDelayMs != 2500 {
			t.Errorf("TwReuseDelayMs = %v, want 2500", fmtPtr(s.TwReuseDelayMs))
		}
	} else if s.TwReuseDelayMs != nil {
		t.Errorf("TwReuseDelayMs = %d on a kernel without the sysctl", *s.TwReuseDelayMs)
	}
	if hasRecycle != (s.Recycle != nil) {
		t.Errorf("Recycle = %v, kernel has tcp_tw_recycle: %v", fmtPtr(s.Recycle), hasRecycle)
	}
	if n := s.PortRangeSize(); n != 10 {
		t.Errorf("PortRangeSize = %d, want 10", n)
	}

	nc := netnstest.Counters(t, ns)
	if c["TcpExt.TW"] != nc["TcpExt.TW"] || c["TcpExt.TW"] != 1 {
		t.Errorf("TcpExt.TW = %d, namespace has %d, want 1", c["TcpExt.TW"], nc["TcpExt.TW"])
	}
	if len(c) != len(nc) {
		t.Errorf("Read returned %d counters, the namespace has %d", len(c), len(nc))
	}
	for k := range nc {
		if _, ok := c[k]; !ok {
			t.Errorf("counter %s missing", k)
		}
	}
	for _, k := range []string{"TcpExt.TWRecycled", "TcpExt.TWKilled", "TcpExt.TCPTimeWaitOverflow", "Tcp.ActiveOpens"} {
		if _, ok := c[k]; !ok {
			t.Errorf("counter %s missing", k)
		}
	}
	if c["Tcp.ActiveOpens"] != 1 {
		t.Errorf("Tcp.ActiveOpens = %d, want 1 in the fresh namespace", c["Tcp.ActiveOpens"])
	}
}

func fmtPtr(p *int) string {
	if p == nil {
		return "nil"
	}
	return strconv.Itoa(*p)
}

func TestReadOwn(t *testing.T) {
	ns := netnstest.New(t)
	setSysctls(t, ns, "ip_local_port_range", "40000 40009")

	s, c, err := settings.Read("")
	if err != nil {
		t.Fatalf("Read(\"\"): %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	if uint64(s.Netns) != st.Ino {
		t.Errorf("Netns = %d, want the process's %d", s.Netns, st.Ino)
	}
	if s.Netns == ns.Inode() {
		t.Errorf("Read(\"\") read the test namespace")
	}
	if got, want := fmt.Sprintf("%d\t%d", s.PortLow, s.PortHigh), hostSysctl(t, "ip_local_port_range"); got != want {
		t.Errorf("port range %q, host has %q", got, want)
	}
	if s.PortLow == 40000 && s.PortHigh == 40009 {
		t.Errorf("Read(\"\") returned the test namespace's port range")
	}
	for name, got := range map[string]int{
		"tcp_tw_reuse":       s.TwReuse,
		"tcp_max_tw_buckets": s.MaxTwBuckets,
		"tcp_fin_timeout":    s.FinTimeoutS,
		"tcp_timestamps":     s.Timestamps,
	} {
		if want := hostSysctl(t, name); strconv.Itoa(got) != want {
			t.Errorf("%s = %d, host has %s", name, got, want)
		}
	}
	if _, ok := c["TcpExt.TW"]; !ok {
		t.Error("counter TcpExt.TW missing")
	}

	// "" is the calling thread's namespace: inside the namespace thread it
	// is the test namespace.
	var in settings.Settings
	if err := ns.Do(func() error {
		var err error
		in, _, err = settings.Read("")
		return err
	}); err != nil {
		t.Fatalf("Read(\"\") in namespace: %v", err)
	}
	if in.Netns != ns.Inode() || in.PortLow != 40000 || in.PortHigh != 40009 {
		t.Errorf("Read(\"\") on the namespace thread = %+v, want namespace %d with ports 40000-40009", in, ns.Inode())
	}
}

// TestReadLeavesNoThreads checks that the threads Read moves into a
// namespace end: afterwards only the netns helper's own thread is in it.
func TestReadLeavesNoThreads(t *testing.T) {
	ns := netnstest.New(t)
	for i := 0; i < 20; i++ {
		if _, _, err := settings.Read(ns.Path()); err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	want := fmt.Sprintf("net:[%d]", ns.Inode())
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range tasks {
			if l, err := os.Readlink(p); err == nil && l == want {
				n++
			}
		}
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d threads in the test namespace, want 1 (the netns helper's)", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadConcurrent reads two namespaces and the own one at once (run it
// with -race).
func TestReadConcurrent(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	setSysctls(t, a, "tcp_max_tw_buckets", "11")
	setSysctls(t, b, "tcp_max_tw_buckets", "22")
	host := hostSysctl(t, "tcp_max_tw_buckets")
	errs := make(chan error, 30)
	for i := 0; i < 10; i++ {
		for _, tc := range []struct {
			path string
			want string
		}{{a.Path(), "11"}, {b.Path(), "22"}, {"", host}} {
			go func() {
				s, _, err := settings.Read(tc.path)
				if err == nil && strconv.Itoa(s.MaxTwBuckets) != tc.want {
					err = fmt.Errorf("Read(%q): tcp_max_tw_buckets %d, want %s", tc.path, s.MaxTwBuckets, tc.want)
				}
				errs <- err
			}()
		}
	}
	for i := 0; i < 30; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestReadErrors(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadNetns(t)

	_, _, err := settings.Read("/nonexistent/ns/net")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read of a missing path: %v, want an error wrapping fs.ErrNotExist", err)
	}
	// Not a network namespace: setns fails (EINVAL as root, EPERM
	// otherwise) and nothing may change.
	for _, p := range []string{"testdata/netstat.txt", "/proc/self/ns/uts"} {
		s, c, err := settings.Read(p)
		if err == nil {
			t.Errorf("Read(%s) = %+v, %d counters, want an error", p, s, len(c))
			continue
		}
		if !strings.HasPrefix(err.Error(), "settings: ") {
			t.Errorf("error %q lacks the package prefix", err)
		}
		if os.Geteuid() == 0 && !errors.Is(err, unix.EINVAL) {
			t.Errorf("Read(%s): %v, want EINVAL", p, err)
		}
	}
	if after := threadNetns(t); after != before {
		t.Errorf("calling thread moved from namespace %d to %d", before, after)
	}
}
