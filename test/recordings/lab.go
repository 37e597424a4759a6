package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/twtop/twtop/internal/aptget"
	"github.com/twtop/twtop/internal/netns"
	"golang.org/x/sys/unix"
)

// The namespace's two addresses, on the two ends of a veth pair inside it:
// the client or proxy side, and the backend. Neither is a loopback
// address, so the default tcp_tw_reuse=2 (loopback only) does not apply to
// connections between them.
var (
	proxyAddr   = netip.MustParseAddr("10.77.0.1")
	backendAddr = netip.MustParseAddr("10.77.0.2")
)

const backendPort = 8080

// lab is a fresh network namespace with proxyAddr and backendAddr.
type lab struct {
	ns *netns.NS
}

func newLab() (*lab, error) {
	ip, err := apt.Need("ip", "iproute2")
	if err != nil {
		return nil, err
	}
	ns, err := netns.New()
	if err != nil {
		return nil, fmt.Errorf("create network namespace: %w", err)
	}
	l := &lab{ns: ns}
	for _, args := range [][]string{
		{"link", "add", "tw-proxy", "type", "veth", "peer", "name", "tw-backend"},
		{"addr", "add", proxyAddr.String() + "/24", "dev", "tw-proxy"},
		{"addr", "add", backendAddr.String() + "/24", "dev", "tw-backend"},
		{"link", "set", "tw-proxy", "up"},
		{"link", "set", "tw-backend", "up"},
	} {
		if out, err := l.output(context.Background(), ip, args...); err != nil {
			return nil, errors.Join(fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out), ns.Close())
		}
	}
	return l, nil
}

// Close ends the namespace; the kernel then purges what is left in it.
func (l *lab) Close() error {
	if err := l.ns.Close(); err != nil {
		return fmt.Errorf("close namespace: %w", err)
	}
	return nil
}

// start starts cmd inside the namespace: the process is forked from the
// namespace's thread and so inherits its network namespace, which start
// then checks unless the process has already exited.
func (l *lab) start(cmd *exec.Cmd) error {
	err := l.ns.Do(func() error { return cmd.Start() })
	if err != nil {
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	var st unix.Stat_t
	path := fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)
	err = unix.Stat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return nil // already exited: nothing left to check
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if uint32(st.Ino) != l.ns.Inode() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("%s runs in network namespace %d, not %d", cmd.Path, st.Ino, l.ns.Inode())
	}
	return nil
}

// output runs name with args inside the namespace and returns its
// combined output.
func (l *lab) output(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := l.start(cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return []byte(out.String()), err
}

// listen opens a TCP listener in the namespace. It is plain TCP, as
// nginx's and most servers' are: Go's listeners otherwise use MPTCP where
// the kernel has it, and the accepted connections are then MPTCP sockets
// that fell back to TCP.
func (l *lab) listen(ap netip.AddrPort) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	var ln net.Listener
	err := l.ns.Do(func() error {
		var err error
		ln, err = lc.Listen(context.Background(), "tcp4", ap.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %v: %w", ap, err)
	}
	return ln, nil
}

// dial connects from local to remote inside the namespace with exactly one
// connect() call (Go's dialer repeats a connect() that fails with
// EADDRNOTAVAIL). When local's port is 0 the kernel picks one at connect
// time, as for a client that does not bind (IP_BIND_ADDRESS_NO_PORT).
func (l *lab) dial(local, remote netip.AddrPort) (net.Conn, error) {
	var fd int
	err := l.ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if err := connectFD(fd, local, remote); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "tcp")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("socket to net.Conn: %w", err)
	}
	return c, nil
}

// connectFD binds the blocking socket fd to local and connects it to
// remote, waiting at most 5 s.
func connectFD(fd int, local, remote netip.AddrPort) error {
	tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_SNDTIMEO: %w", err)
	}
	if local.Port() == 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
			return fmt.Errorf("IP_BIND_ADDRESS_NO_PORT: %w", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: local.Addr().As4(), Port: int(local.Port())}); err != nil {
		return fmt.Errorf("bind to %v: %w", local, err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: remote.Addr().As4(), Port: int(remote.Port())}); err != nil {
		return fmt.Errorf("connect from %v to %v: %w", local, remote, err)
	}
	return nil
}

// counters returns the namespace's SNMP counters (TcpExt.TW, ...).
func (l *lab) counters() (map[string]int64, error) {
	c, err := l.ns.Netstat()
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	return c, nil
}

// delta returns after[key]-before[key], failing when the kernel has no such
// counter.
func delta(before, after map[string]int64, key string) (int64, error) {
	a, ok := after[key]
	if !ok {
		return 0, fmt.Errorf("kernel has no counter %s", key)
	}
	return a - before[key], nil
}

// sockets returns the namespace's IPv4 TCP sockets in every state, timewait
// sockets included, as sock_diag (and ss) sees them.
func (l *lab) sockets() ([]netns.Socket, error) {
	s, err := l.ns.Sockets(unix.AF_INET, netns.AllStates)
	if err != nil {
		return nil, fmt.Errorf("dump sockets: %w", err)
	}
	return s, nil
}

// timeWait counts the timewait sockets (TIME_WAIT substate) for which
// match holds.
func timeWait(socks []netns.Socket, match func(netns.Socket) bool) int {
	n := 0
	for _, s := range socks {
		if s.IsTimewaitSock() && s.State == netns.TimeWait && match(s) {
			n++
		}
	}
	return n
}

// busy counts the sockets that are neither listening nor timewait sockets
// and for which match holds: connections still open or closing.
// quiesce waits until no connection matching match is open or closing
// (what names them in the timeout error), then returns the namespace's
// sockets and how much TcpExt.TW rose since the counters before.
func (l *lab) quiesce(ctx context.Context, what string, match func(netns.Socket) bool, before map[string]int64) ([]netns.Socket, int64, error) {
	socks, err := l.settle(ctx, 5*time.Second, func(socks []netns.Socket) (bool, string) {
		n := busy(socks, match)
		return n == 0, fmt.Sprintf("%d %s open or closing", n, what)
	})
	if err != nil {
		return nil, 0, err
	}
	after, err := l.counters()
	if err != nil {
		return nil, 0, err
	}
	tw, err := delta(before, after, "TcpExt.TW")
	if err != nil {
		return nil, 0, err
	}
	return socks, tw, nil
}

func busy(socks []netns.Socket, match func(netns.Socket) bool) int {
	n := 0
	for _, s := range socks {
		if !s.IsTimewaitSock() && s.State != netns.Listen && match(s) {
			n++
		}
	}
	return n
}

// settle polls the namespace's sockets until done reports true for them,
// or fails after timeout with the last reason done gave.
func (l *lab) settle(ctx context.Context, timeout time.Duration, done func([]netns.Socket) (bool, string)) ([]netns.Socket, error) {
	deadline := time.Now().Add(timeout)
	for {
		socks, err := l.sockets()
		if err != nil {
			return nil, err
		}
		ok, why := done(socks)
		if ok {
			return socks, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("kernel state not reached after %v: %s", timeout, why)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, fmt.Errorf("interrupted: %w", ctx.Err())
		}
	}
}

// apt installs the commands the workloads need when they are missing.
var apt = aptget.Installer{Prog: "recordings", Log: os.Stdout}
