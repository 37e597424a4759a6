package netns_test

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"golang.org/x/sys/unix"
)

func selfInode(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestNewIsolated(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	if uint64(ns.Inode()) == selfInode(t) {
		t.Fatalf("namespace inode %d is the process's own", ns.Inode())
	}
	var st unix.Stat_t
	if err := unix.Stat(ns.Path(), &st); err != nil {
		t.Fatalf("stat %s: %v", ns.Path(), err)
	}
	if uint32(st.Ino) != ns.Inode() {
		t.Errorf("%s has inode %d, want %d", ns.Path(), st.Ino, ns.Inode())
	}
	var inside uint32
	if err := ns.Do(func() error {
		var st unix.Stat_t
		err := unix.Stat("/proc/thread-self/ns/net", &st)
		inside = uint32(st.Ino)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside != ns.Inode() {
		t.Errorf("Do runs in namespace %d, want %d", inside, ns.Inode())
	}
	up, err := ns.LinkUp("lo")
	if err != nil || !up {
		t.Errorf("lo up = %v, %v; want true", up, err)
	}
	if _, err := ns.LinkUp("nosuchif0"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("LinkUp(nosuchif0) = %v, want ENODEV", err)
	}
	if err := ns.SetLinkUp("a-name-much-too-long-for-an-interface", true); err == nil {
		t.Error("SetLinkUp with a long name succeeded")
	}
}

func TestSetLinkUp(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	for _, want := range []bool{false, true} {
		if err := ns.SetLinkUp("lo", want); err != nil {
			t.Fatal(err)
		}
		if up, err := ns.LinkUp("lo"); err != nil || up != want {
			t.Fatalf("lo up = %v, %v; want %v", up, err, want)
		}
	}
}

func TestDo(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	sentinel := errors.New("sentinel")
	if err := ns.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want sentinel", err)
	}
	if err := ns.Do(nil); err == nil {
		t.Error("Do(nil) succeeded")
	}
	if err := ns.Do(func() error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Do(panic) = %v", err)
	}
	// Nested calls run directly on the namespace thread.
	var outer, inner int
	err := ns.Do(func() error {
		outer = unix.Gettid()
		return ns.Do(func() error {
			inner = unix.Gettid()
			return nil
		})
	})
	if err != nil || outer != inner {
		t.Errorf("nested Do: %v, threads %d and %d", err, outer, inner)
	}
	if err := ns.Do(ns.Close); err == nil {
		t.Error("Close inside Do succeeded")
	}
	// The thread survives the panic above and serves concurrent callers.
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- ns.Do(func() error { runtime.Gosched(); return nil }) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	netnstest.RequireRoot(t)
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	path := ns.Path()
	if err := ns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ns.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat %s after Close: %v, want not exist", path, err)
	}
	if err := ns.Do(func() error { return nil }); !errors.Is(err, netns.ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	if _, err := ns.Sockets(unix.AF_INET, 0); !errors.Is(err, netns.ErrClosed) {
		t.Errorf("Sockets after Close = %v, want ErrClosed", err)
	}
}

// TestManyNamespaces checks that New never moves a thread the process
// relies on (like the main one, which /proc/self/net follows) and that
// Close reaps every thread.
func TestManyNamespaces(t *testing.T) {
	t.Parallel()
	netnstest.RequireRoot(t)
	self := selfInode(t)
	for range 20 {
		ns, err := netns.New()
		if err != nil {
			t.Fatal(err)
		}
		if uint64(ns.Inode()) == self {
			t.Fatalf("namespace inode %d is the process's own", ns.Inode())
		}
		if err := ns.Close(); err != nil {
			t.Fatal(err)
		}
		if got := selfInode(t); got != self {
			t.Fatalf("process namespace changed from %d to %d", self, got)
		}
	}
}

func rootSysctl(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestSysctl(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	const key, file = "net.ipv4.tcp_fin_timeout", "/proc/sys/net/ipv4/tcp_fin_timeout"
	root := rootSysctl(t, file)
	if v, err := ns.Sysctl(key); err != nil || v != "60" {
		t.Fatalf("Sysctl(%s) = %q, %v; want 60", key, v, err)
	}
	if err := ns.SetSysctl(key, "7"); err != nil {
		t.Fatal(err)
	}
	if v, err := ns.Sysctl("net/ipv4/tcp_fin_timeout"); err != nil || v != "7" {
		t.Errorf("after set: %q, %v; want 7", v, err)
	}
	if got := rootSysctl(t, file); got != root {
		t.Errorf("the process's namespace changed: %s = %s, was %s", key, got, root)
	}
	if err := ns.SetSysctl("net.ipv4.ip_local_port_range", "40000 40001"); err != nil {
		t.Fatal(err)
	}
	if v, err := ns.Sysctl("net.ipv4.ip_local_port_range"); err != nil || strings.Join(strings.Fields(v), " ") != "40000 40001" {
		t.Errorf("port range = %q, %v", v, err)
	}
	if err := ns.SetSysctl(key, "not-a-number"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("bad value: %v, want EINVAL", err)
	}
	if _, err := ns.Sysctl("net.ipv4.no_such_sysctl"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing key: %v, want ENOENT", err)
	}
	if err := ns.SetSysctl("kernel.pid_max", "1"); err == nil {
		t.Error("SetSysctl outside net succeeded")
	}
	if !ns.HasSysctl(key) || ns.HasSysctl("net.ipv4.no_such_sysctl") {
		t.Error("HasSysctl")
	}
}

func TestNetstat(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	c := netnstest.Counters(t, ns)
	for _, k := range []string{"TcpExt.TW", "TcpExt.TWRecycled", "TcpExt.TWKilled", "TcpExt.TCPTimeWaitOverflow", "Tcp.ActiveOpens", "Tcp.CurrEstab", "IpExt.InOctets"} {
		v, ok := c[k]
		if !ok {
			t.Errorf("counter %s missing", k)
		} else if v != 0 && k != "IpExt.InOctets" {
			t.Errorf("fresh namespace: %s = %d, want 0", k, v)
		}
	}
}

// tcpListener makes a listener on 127.0.0.1 or [::1] in the calling thread's
// namespace and returns it with its port and inode.
func tcpListener(family int) (fd int, port uint16, inode uint32, err error) {
	fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, 0, err
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if family == unix.AF_INET6 {
		sa = &unix.SockaddrInet6{Addr: [16]byte{15: 1}}
	}
	if err = unix.Bind(fd, sa); err == nil {
		err = unix.Listen(fd, 1)
	}
	var st unix.Stat_t
	if err == nil {
		err = unix.Fstat(fd, &st)
	}
	if err == nil {
		sa, err = unix.Getsockname(fd)
	}
	if err != nil {
		unix.Close(fd)
		return -1, 0, 0, err
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		port = uint16(sa.Port)
	case *unix.SockaddrInet6:
		port = uint16(sa.Port)
	}
	return fd, port, uint32(st.Ino), nil
}

func TestSockets(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	type listener struct {
		fd     int
		port   uint16
		inode  uint32
		family int
	}
	var ls []listener
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		var l listener
		err := ns.Do(func() error {
			var err error
			l.fd, l.port, l.inode, err = tcpListener(family)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		l.family = family
		ls = append(ls, l)
		defer unix.Close(l.fd)
	}
	// A listener in the test's own namespace must not show up.
	outFD, _, outInode, err := tcpListener(unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(outFD)

	all, err := ns.Sockets(unix.AF_UNSPEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("got %d sockets, want 2: %v", len(all), all)
	}
	for _, s := range all {
		if s.Inode == outInode {
			t.Errorf("socket of the process's namespace listed: %v", s)
		}
	}
	for _, l := range ls {
		socks, err := ns.Sockets(l.family, netns.StateMask(netns.Listen))
		if err != nil {
			t.Fatal(err)
		}
		if len(socks) != 1 {
			t.Fatalf("family %d: got %v", l.family, socks)
		}
		s := socks[0]
		if s.Family != l.family || s.State != netns.Listen || s.Src.Port() != l.port || !s.Src.Addr().IsLoopback() ||
			s.Inode != l.inode || s.UID != uint32(os.Geteuid()) || s.IsTimewaitSock() {
			t.Errorf("family %d: got %+v, want listener on port %d inode %d", l.family, s, l.port, l.inode)
		}
		none, err := ns.Sockets(l.family, netns.StateMask(netns.TimeWait, netns.Established))
		if err != nil || len(none) != 0 {
			t.Errorf("TIME_WAIT|ESTABLISHED: %v, %v; want none", none, err)
		}
	}
	if _, err := ns.Sockets(unix.AF_UNIX, 0); err == nil {
		t.Error("Sockets(AF_UNIX) succeeded")
	}
}

func ExampleNS() {
	ns, err := netns.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ns.Close()
	if err := ns.SetSysctl("net.ipv4.tcp_fin_timeout", "2"); err != nil {
		fmt.Println(err)
	}
}
