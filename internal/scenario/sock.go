package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"golang.org/x/sys/unix"
)

// Timeout bounds every blocking socket call and every wait for a kernel
// state in this package.
const Timeout = 5 * time.Second

// pollInterval is the pause between two sock_diag dumps while waiting.
const pollInterval = 2 * time.Millisecond

func loopback(family int) (netip.Addr, error) {
	switch family {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	case unix.AF_INET6:
		return netip.IPv6Loopback(), nil
	}
	return netip.Addr{}, fmt.Errorf("scenario: unsupported address family %d", family)
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func addrPort(sa unix.Sockaddr) (netip.AddrPort, error) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("scenario: unexpected socket address %T", sa)
}

func localAddr(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("scenario: getsockname: %w", err)
	}
	return addrPort(sa)
}

// newSocket makes a blocking TCP socket whose blocking calls time out after
// Timeout. It must run on the namespace thread.
func newSocket(family int, reuseAddr bool) (int, error) {
	return newSocketProto(family, unix.IPPROTO_TCP, reuseAddr)
}

// newSocketProto is newSocket for protocol proto: IPPROTO_TCP, or
// IPPROTO_MPTCP as Go's net package uses for listeners since Go 1.24 (a
// plain TCP client then talks to a TCP subflow of the MPTCP listener).
func newSocketProto(family, proto int, reuseAddr bool) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, fmt.Errorf("scenario: socket: %w", err)
	}
	if err := setTimeouts(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("scenario: IPV6_V6ONLY: %w", err)
		}
	}
	if reuseAddr {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("scenario: SO_REUSEADDR: %w", err)
		}
	}
	return fd, nil
}

func setTimeouts(fd int) error {
	tv := unix.NsecToTimeval(Timeout.Nanoseconds())
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			return fmt.Errorf("scenario: socket timeout: %w", err)
		}
	}
	return nil
}

// listen makes a listener on the loopback address of family and port (0
// for an ephemeral one). It must run on the namespace thread.
func listen(family int, port uint16, reuseAddr bool) (int, netip.AddrPort, error) {
	return listenProto(family, unix.IPPROTO_TCP, port, reuseAddr)
}

// listenProto is listen with a socket of protocol proto.
func listenProto(family, proto int, port uint16, reuseAddr bool) (int, netip.AddrPort, error) {
	lo, err := loopback(family)
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	fd, err := newSocketProto(family, proto, reuseAddr)
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(lo, port))); err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("scenario: bind listener to port %d: %w", port, err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("scenario: listen: %w", err)
	}
	addr, err := localAddr(fd)
	if err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, err
	}
	return fd, addr, nil
}

// dial connects a new socket to dst, first binding it to local when local
// is valid. It must run on the namespace thread. Errors from connect wrap
// the errno.
func dial(dst, local netip.AddrPort, reuseAddr bool) (int, netip.AddrPort, error) {
	family := unix.AF_INET6
	if dst.Addr().Is4() {
		family = unix.AF_INET
	}
	fd, err := newSocket(family, reuseAddr)
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	if local.IsValid() {
		if err := unix.Bind(fd, sockaddr(local)); err != nil {
			unix.Close(fd)
			return -1, netip.AddrPort{}, fmt.Errorf("scenario: bind to %v: %w", local, err)
		}
	}
	for {
		err = unix.Connect(fd, sockaddr(dst))
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("scenario: connect to %v: %w", dst, err)
	}
	addr, err := localAddr(fd)
	if err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, err
	}
	return fd, addr, nil
}

// accept takes the next connection from listener lfd and checks that it
// comes from peer.
func accept(lfd int, peer netip.AddrPort) (int, error) {
	var (
		fd  int
		sa  unix.Sockaddr
		err error
	)
	for {
		fd, sa, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return -1, fmt.Errorf("scenario: accept: %w", err)
	}
	got, err := addrPort(sa)
	if err == nil && got != peer {
		err = fmt.Errorf("scenario: accepted %v, want %v", got, peer)
	}
	if err == nil {
		err = setTimeouts(fd)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// pair is one established connection with both of its descriptors.
type pair struct {
	conn Conn
	cfd  int
	sfd  int
}

// connect opens a connection from local (if valid) to the listener lfd at
// dst. It must run on the namespace thread.
func connect(lfd int, dst, local netip.AddrPort, reuseAddr bool) (pair, error) {
	cfd, caddr, err := dial(dst, local, reuseAddr)
	if err != nil {
		return pair{}, err
	}
	sfd, err := accept(lfd, caddr)
	if err != nil {
		unix.Close(cfd)
		return pair{}, err
	}
	return pair{conn: Conn{Client: caddr, Server: dst}, cfd: cfd, sfd: sfd}, nil
}

// readEOF reads from fd until the peer's FIN. It fails on data, a timeout
// or an error (which it wraps).
func readEOF(fd int) error {
	var buf [64]byte
	for {
		m, err := unix.Read(fd, buf[:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return fmt.Errorf("scenario: no FIN from peer within %v: %w", Timeout, err)
		case err != nil:
			return fmt.Errorf("scenario: read: %w", err)
		case m > 0:
			return fmt.Errorf("scenario: unexpected %d bytes from peer", m)
		}
		return nil
	}
}

func closeFD(fd int) error {
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("scenario: close: %w", err)
	}
	return nil
}

// fds is a list of descriptors a Result keeps open.
type fds []int

func (f *fds) add(fd ...int) { *f = append(*f, fd...) }

// expect is a wanted sock_diag entry: a socket with source Tuple.Local and
// destination Tuple.Remote in State (a timewait socket when tw is set), or
// no socket at all for that tuple when State is 0.
type expect struct {
	Tuple
	State uint8
	tw    bool
}

func timeWait(t Tuple) expect       { return expect{Tuple: t, State: netns.TimeWait, tw: true} }
func gone(t Tuple) expect           { return expect{Tuple: t} }
func state(t Tuple, s uint8) expect { return expect{Tuple: t, State: s} }

// check returns nil when socks match every expectation.
func check(socks []netns.Socket, want []expect) error {
	for _, w := range want {
		var found []netns.Socket
		for _, s := range socks {
			if s.Src == w.Local && s.Dst == w.Remote {
				found = append(found, s)
			}
		}
		switch {
		case w.State == 0 && len(found) > 0:
			return fmt.Errorf("%v -> %v still present: %v", w.Local, w.Remote, found)
		case w.State == 0:
		case len(found) != 1:
			return fmt.Errorf("%v -> %v: want one %s socket, have %v", w.Local, w.Remote, netns.StateName(w.State), found)
		case found[0].State != w.State || (w.tw && !found[0].IsTimewaitSock()):
			return fmt.Errorf("%v -> %v: want %s, have %v", w.Local, w.Remote, netns.StateName(w.State), found[0])
		}
	}
	return nil
}

// wait polls sock_diag in ns until every expectation holds or Timeout
// passes.
func wait(ns *netns.NS, family int, want []expect) error {
	return WaitFor(ns, family, Timeout, func(socks []netns.Socket) error { return check(socks, want) })
}

// WaitFor dumps the TCP sockets of family in ns (all states) every few
// milliseconds until ok returns nil, and fails with ok's last error once
// timeout has passed.
func WaitFor(ns *netns.NS, family int, timeout time.Duration, ok func([]netns.Socket) error) error {
	deadline := time.Now().Add(timeout)
	for {
		socks, err := ns.Sockets(family, netns.AllStates)
		if err != nil {
			return err
		}
		err = ok(socks)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("scenario: timed out after %v: %w", timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// WaitGone waits until ns has no socket at all on any of tuples, for
// example until the FIN_WAIT2 timewait socket of FinWait2 has expired.
func WaitGone(ns *netns.NS, timeout time.Duration, tuples ...Tuple) error {
	if len(tuples) == 0 {
		return nil
	}
	want := make([]expect, len(tuples))
	for i, t := range tuples {
		want[i] = gone(t)
	}
	family := unix.AF_INET6
	if tuples[0].Local.Addr().Is4() {
		family = unix.AF_INET
	}
	return WaitFor(ns, family, timeout, func(socks []netns.Socket) error { return check(socks, want) })
}

// setSysctls sets each key to its value in ns and returns a function that
// puts back the old values.
func setSysctls(ns *netns.NS, kv ...string) (restore func() error, err error) {
	var old []string
	restore = func() error {
		var errs []error
		for i := len(old) - 2; i >= 0; i -= 2 {
			errs = append(errs, ns.SetSysctl(old[i], old[i+1]))
		}
		return errors.Join(errs...)
	}
	if len(kv)%2 != 0 {
		return nil, errors.New("scenario: odd sysctl list")
	}
	for i := 0; i < len(kv); i += 2 {
		v, err := ns.Sysctl(kv[i])
		if err != nil {
			return nil, errors.Join(err, restore())
		}
		if err := ns.SetSysctl(kv[i], kv[i+1]); err != nil {
			return nil, errors.Join(err, restore())
		}
		old = append(old, kv[i], v)
	}
	return restore, nil
}
