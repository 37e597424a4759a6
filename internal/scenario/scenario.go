// Package scenario drives TCP connections on loopback inside a netns.NS so
// that each function leaves one well-defined TIME_WAIT pattern in the
// kernel, for tests of the tracer.
//
// Every function creates its sockets on the namespace thread (with raw
// system calls, so that options such as SO_LINGER, SO_REUSEADDR and
// IPV6_V6ONLY are exact), runs its connections one after another, and
// returns only once sock_diag shows the kernel state it aims for, or fails
// after Timeout. Sysctls a scenario changes are put back before it returns;
// the timewait sockets it made keep the values they were armed with.
// Scenarios must not run concurrently on the same namespace, since some
// read the namespace's SNMP counters.
package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"golang.org/x/sys/unix"
)

// maxConns bounds the connection counts a caller may ask for.
const maxConns = 1000

// Tuple is a connection seen from one end: Local is the end that holds
// the socket.
type Tuple struct {
	Local, Remote netip.AddrPort
}

func (t Tuple) String() string { return t.Local.String() + "->" + t.Remote.String() }

// Conn is one connection made by a scenario.
type Conn struct {
	Client, Server netip.AddrPort
}

// ClientSide is the connection seen from the client.
func (c Conn) ClientSide() Tuple { return Tuple{Local: c.Client, Remote: c.Server} }

// ServerSide is the connection seen from the server.
func (c Conn) ServerSide() Tuple { return Tuple{Local: c.Server, Remote: c.Client} }

// Result describes what a scenario did. Fields a scenario does not use are
// zero.
type Result struct {
	Scenario string
	// PID is the process owning every socket (os.Getpid()).
	PID    int
	Family int
	// Listener is the server's listening address.
	Listener netip.AddrPort
	// Conns lists every established connection, in order.
	Conns []Conn
	// TimeWait lists the timewait sockets in the TIME_WAIT substate that
	// the scenario left, from the side holding them.
	TimeWait []Tuple
	// FinWait2 lists timewait sockets in the FIN_WAIT2 substate (FinWait2).
	FinWait2 []Tuple
	// Connects counts successful connect() calls.
	Connects int
	// Failed counts the calls that failed as the scenario intends, with
	// Errno the error they returned (ECONNRESET for Linger0's reads,
	// EADDRNOTAVAIL for PortExhaustion, EADDRINUSE for BindInUse).
	Failed int
	Errno  unix.Errno
	// Refused counts connect() calls refused by the peer
	// (PortExhaustion).
	Refused int
	// Retries counts connect() calls that TwReuse repeated after
	// EADDRNOTAVAIL while its TIME_WAIT sockets were too young to reuse.
	Retries int
	// Reused counts connects that took over a TIME_WAIT tuple (TwReuse).
	Reused int
	// listenProto is the listener's protocol (0: IPPROTO_TCP).
	listenProto int
	// listenPort is the listener's port (0: one the kernel picks).
	listenPort uint16
	// Attempts counts the connections SimultaneousClose needed (see there).
	Attempts int
	// Closing counts the sides that passed through CLOSING
	// (SimultaneousClose): 2 when the two FINs crossed, 1 when one side
	// saw its FIN acknowledged before the peer's FIN arrived, -1 when the
	// kernel cannot tell (before 5.19 its counters move at expiry).
	Closing int
	// ReuseAddrBind reports that BindInUse's second bind(), with
	// SO_REUSEADDR, succeeded next to the TIME_WAIT socket.
	ReuseAddrBind bool
	// NSInode is the inode of the namespace NetnsPurge closed.
	NSInode uint32

	held fds
}

// Close closes the sockets the scenario left open (FinWait2's server,
// SynTakeover's second connection). It is safe to call more than once.
func (r *Result) Close() error {
	var errs []error
	for _, fd := range r.held {
		errs = append(errs, closeFD(fd))
	}
	r.held = nil
	return errors.Join(errs...)
}

// refusedPort is a port nothing listens on in a scenario's namespace.
const refusedPort = 9

func newResult(name string, family int) *Result {
	return &Result{Scenario: name, PID: os.Getpid(), Family: family}
}

func checkCount(name string, n, min int) error {
	if n < min || n > maxConns {
		return fmt.Errorf("scenario: %s: count %d out of range [%d, %d]", name, n, min, maxConns)
	}
	return nil
}

// closeOrder is who closes a connection first.
type closeOrder int

const (
	clientFirst closeOrder = iota
	serverFirst
	clientReset
)

// finish closes both ends of p in order and returns what the kernel must
// show afterwards on the two tuples. For clientReset it also returns the
// error the server's read got.
func finish(p pair, order closeOrder) ([]expect, error) {
	c, s := p.conn.ClientSide(), p.conn.ServerSide()
	switch order {
	case clientFirst:
		if err := closeFD(p.cfd); err != nil {
			unix.Close(p.sfd)
			return nil, err
		}
		err := readEOF(p.sfd)
		return []expect{timeWait(c), gone(s)}, errors.Join(err, closeFD(p.sfd))
	case serverFirst:
		if err := closeFD(p.sfd); err != nil {
			unix.Close(p.cfd)
			return nil, err
		}
		err := readEOF(p.cfd)
		return []expect{timeWait(s), gone(c)}, errors.Join(err, closeFD(p.cfd))
	case clientReset:
		err := unix.SetsockoptLinger(p.cfd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		if err != nil {
			err = fmt.Errorf("scenario: SO_LINGER: %w", err)
		}
		err = errors.Join(err, closeFD(p.cfd))
		if err != nil {
			unix.Close(p.sfd)
			return nil, err
		}
		rerr := readEOF(p.sfd)
		if !errors.Is(rerr, unix.ECONNRESET) {
			rerr = fmt.Errorf("scenario: server read after linger-0 close: want ECONNRESET, got %w", rerr)
		}
		if err := closeFD(p.sfd); err != nil {
			return nil, err
		}
		return []expect{gone(c), gone(s)}, rerr
	}
	return nil, fmt.Errorf("scenario: bad close order %d", order)
}

// closes runs n connections to one listener, closing each in order, and
// waits until every connection reached its final state.
func closes(ns *netns.NS, r *Result, n int, order closeOrder) error {
	if _, err := loopback(r.Family); err != nil {
		return err
	}
	var want []expect
	proto := r.listenProto
	if proto == 0 {
		proto = unix.IPPROTO_TCP
	}
	err := ns.Do(func() error {
		// a port chosen ahead may be held by the TIME_WAIT sockets of
		// an earlier run's server side: SO_REUSEADDR lets the listener
		// bind it again
		lfd, laddr, err := listenProto(r.Family, proto, r.listenPort, r.listenPort != 0)
		if err != nil {
			return err
		}
		defer unix.Close(lfd)
		r.Listener = laddr
		for i := 0; i < n; i++ {
			p, err := connect(lfd, laddr, netip.AddrPort{}, false)
			if err != nil {
				return err
			}
			r.Connects++
			r.Conns = append(r.Conns, p.conn)
			w, err := finish(p, order)
			if order == clientReset && errors.Is(err, unix.ECONNRESET) {
				r.Failed++
				r.Errno = unix.ECONNRESET
				err = nil
			}
			if err != nil {
				return err
			}
			// Wait for this connection to settle before the next one so
			// that the order of the timewait sockets is the order of Conns.
			if err := wait(ns, r.Family, w); err != nil {
				return err
			}
			want = append(want, w...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := wait(ns, r.Family, want); err != nil {
		return err
	}
	for _, w := range want {
		if w.State == netns.TimeWait {
			r.TimeWait = append(r.TimeWait, w.Tuple)
		}
	}
	return nil
}

// ClientCloses makes n connections (family unix.AF_INET on 127.0.0.1 or
// unix.AF_INET6 on ::1) whose client closes first; the server closes after
// reading EOF. It leaves n TIME_WAIT sockets on the client side.
func ClientCloses(ns *netns.NS, n, family int) (*Result, error) {
	r := newResult("ClientCloses", family)
	if err := checkCount(r.Scenario, n, 1); err != nil {
		return nil, err
	}
	if err := closes(ns, r, n, clientFirst); err != nil {
		return r, fmt.Errorf("scenario: client closes: %w", err)
	}
	return r, nil
}

// ClientClosesOn is ClientCloses with the listener on port, chosen ahead
// (say, for a tracer's port filter); one outside ip_local_port_range is
// never a client's port as well.
func ClientClosesOn(ns *netns.NS, port uint16, n, family int) (*Result, error) {
	return closesOn(ns, "ClientClosesOn", "client closes", port, n, family, clientFirst)
}

// closesOn is closes of n connections to a listener on port, for the
// scenario name (what: its description in errors).
func closesOn(ns *netns.NS, name, what string, port uint16, n, family int, order closeOrder) (*Result, error) {
	r := newResult(name, family)
	if err := checkCount(r.Scenario, n, 1); err != nil {
		return nil, err
	}
	if port == 0 {
		return nil, fmt.Errorf("scenario: %s: port 0; use %s", r.Scenario, strings.TrimSuffix(name, "On"))
	}
	r.listenPort = port
	if err := closes(ns, r, n, order); err != nil {
		return r, fmt.Errorf("scenario: %s on port %d: %w", what, port, err)
	}
	return r, nil
}

// ServerCloses makes n connections whose server closes first, leaving n
// TIME_WAIT sockets on the server's (listener's) port.
func ServerCloses(ns *netns.NS, n, family int) (*Result, error) {
	r := newResult("ServerCloses", family)
	if err := checkCount(r.Scenario, n, 1); err != nil {
		return nil, err
	}
	if err := closes(ns, r, n, serverFirst); err != nil {
		return r, fmt.Errorf("scenario: server closes: %w", err)
	}
	return r, nil
}

// ServerClosesOn is ServerCloses with the listener on port, chosen ahead:
// runs on different ports outside ip_local_port_range never share a
// tuple, so none takes over another's TIME_WAIT sockets, while a run on
// the port of an earlier one may (a client port that comes round again
// meets its server-side TIME_WAIT socket, and the SYN takes it over).
func ServerClosesOn(ns *netns.NS, port uint16, n, family int) (*Result, error) {
	return closesOn(ns, "ServerClosesOn", "server closes", port, n, family, serverFirst)
}

// ServerClosesMPTCP is ServerCloses with an MPTCP listener, as Go servers
// have by default since Go 1.24: plain TCP clients reach it through a TCP
// subflow, whose TIME_WAIT sockets the kernel marks as belonging to the
// subflow protocol rather than to TCP's own.
func ServerClosesMPTCP(ns *netns.NS, n, family int) (*Result, error) {
	r := newResult("ServerClosesMPTCP", family)
	r.listenProto = unix.IPPROTO_MPTCP
	if err := checkCount(r.Scenario, n, 1); err != nil {
		return nil, err
	}
	if err := closes(ns, r, n, serverFirst); err != nil {
		return r, fmt.Errorf("scenario: server (MPTCP listener) closes: %w", err)
	}
	return r, nil
}

// Linger0 makes n IPv4 connections whose client sets SO_LINGER {on, 0}
// and closes: the client sends a RST, the server's read fails with
// ECONNRESET, and no TIME_WAIT socket is left anywhere.
func Linger0(ns *netns.NS, n int) (*Result, error) {
	r := newResult("Linger0", unix.AF_INET)
	if err := checkCount(r.Scenario, n, 1); err != nil {
		return nil, err
	}
	if err := closes(ns, r, n, clientReset); err != nil {
		return r, fmt.Errorf("scenario: linger 0: %w", err)
	}
	return r, nil
}

// Overflow sets net.ipv4.tcp_max_tw_buckets to limit and makes n
// client-first closes: the first limit clients get a TIME_WAIT socket, the
// other n-limit hit TcpExt.TCPTimeWaitOverflow and are simply closed.
func Overflow(ns *netns.NS, limit, n int) (*Result, error) {
	r := newResult("Overflow", unix.AF_INET)
	if err := checkCount(r.Scenario, n, 1); err != nil {
		return nil, err
	}
	if limit < 0 || limit > maxConns {
		return nil, fmt.Errorf("scenario: overflow: limit %d out of range [0, %d]", limit, maxConns)
	}
	restore, err := setSysctls(ns, "net.ipv4.tcp_max_tw_buckets", strconv.Itoa(limit))
	if err != nil {
		return nil, fmt.Errorf("scenario: overflow: %w", err)
	}
	err = ns.Do(func() error {
		lfd, laddr, err := listen(r.Family, 0, false)
		if err != nil {
			return err
		}
		defer unix.Close(lfd)
		r.Listener = laddr
		for i := 0; i < n; i++ {
			p, err := connect(lfd, laddr, netip.AddrPort{}, false)
			if err != nil {
				return err
			}
			r.Connects++
			r.Conns = append(r.Conns, p.conn)
			w, err := finish(p, clientFirst)
			if err != nil {
				return err
			}
			if i >= limit {
				w[0] = gone(w[0].Tuple) // overflowed: no timewait socket
			} else {
				r.TimeWait = append(r.TimeWait, w[0].Tuple)
			}
			if err := wait(ns, r.Family, w); err != nil {
				return err
			}
		}
		return nil
	})
	if err := errors.Join(err, restore()); err != nil {
		return r, fmt.Errorf("scenario: overflow: %w", err)
	}
	return r, nil
}

// Port range used by the port-exhaustion scenarios.
const firstPort = 40000

// tinyPortRange makes a listener first (so that it does not take a port of
// the range) and then shrinks ip_local_port_range to ports ports; the
// other sysctls in kv are set too. It must not run on the namespace thread.
func tinyPortRange(ns *netns.NS, r *Result, ports int, kv ...string) (lfd int, restore func() error, err error) {
	lfd = -1
	err = ns.Do(func() error {
		var err error
		lfd, r.Listener, err = listen(r.Family, 0, false)
		return err
	})
	if err != nil {
		return -1, nil, err
	}
	last := firstPort + ports - 1
	if p := int(r.Listener.Port()); p >= firstPort && p <= last {
		unix.Close(lfd)
		return -1, nil, fmt.Errorf("scenario: listener port %d inside the port range", p)
	}
	kv = append(kv, "net.ipv4.ip_local_port_range", fmt.Sprintf("%d %d", firstPort, last))
	restore, err = setSysctls(ns, kv...)
	if err != nil {
		unix.Close(lfd)
		return -1, nil, err
	}
	return lfd, restore, nil
}

// TwReuse sets net.ipv4.tcp_tw_reuse=1 (with timestamps on and, where the
// kernel has it, net.ipv4.tcp_tw_reuse_delay=100 ms), narrows
// ip_local_port_range to ports ports and makes conns client-first
// connections to one listener. Once every port holds a TIME_WAIT socket,
// each connect() has to take over one of them: TwReuse retries connect()
// while the kernel still refuses with EADDRNOTAVAIL (the TIME_WAIT socket
// must be older than the reuse delay: 1 s before Linux 6.14), up to
// Timeout per connection. Result.Reused counts the connects whose tuple
// was a TIME_WAIT socket just before.
func TwReuse(ns *netns.NS, ports, conns int) (*Result, error) {
	r := newResult("TwReuse", unix.AF_INET)
	if ports < 1 || ports > 100 {
		return nil, fmt.Errorf("scenario: tw reuse: ports %d out of range [1, 100]", ports)
	}
	if err := checkCount(r.Scenario, conns, 1); err != nil {
		return nil, err
	}
	kv := []string{"net.ipv4.tcp_tw_reuse", "1", "net.ipv4.tcp_timestamps", "1"}
	if ns.HasSysctl("net.ipv4.tcp_tw_reuse_delay") {
		kv = append(kv, "net.ipv4.tcp_tw_reuse_delay", "100")
	}
	lfd, restore, err := tinyPortRange(ns, r, ports, kv...)
	if err != nil {
		return nil, fmt.Errorf("scenario: tw reuse: %w", err)
	}
	defer unix.Close(lfd)
	tw := make(map[Tuple]bool)
	for i := 0; i < conns && err == nil; i++ {
		err = reuseOne(ns, r, lfd, tw)
	}
	for t := range tw {
		r.TimeWait = append(r.TimeWait, t)
	}
	if err := errors.Join(err, restore()); err != nil {
		return r, fmt.Errorf("scenario: tw reuse: %w", err)
	}
	return r, nil
}

// reuseOne makes one client-first connection for TwReuse; tw holds the
// client-side TIME_WAIT tuples.
func reuseOne(ns *netns.NS, r *Result, lfd int, tw map[Tuple]bool) error {
	deadline := time.Now().Add(Timeout)
	var p pair
	for {
		err := ns.Do(func() error {
			var err error
			p, err = connect(lfd, r.Listener, netip.AddrPort{}, false)
			return err
		})
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EADDRNOTAVAIL) || time.Now().After(deadline) {
			return err
		}
		r.Retries++
		time.Sleep(20 * time.Millisecond)
	}
	r.Connects++
	r.Conns = append(r.Conns, p.conn)
	if tw[p.conn.ClientSide()] {
		r.Reused++
	}
	w, err := finish(p, clientFirst)
	if err != nil {
		return err
	}
	tw[p.conn.ClientSide()] = true
	return wait(ns, r.Family, w)
}

// PortExhaustion sets net.ipv4.tcp_tw_reuse=0 and a port range of two
// ports, makes two client-first connections, and then a third connect()
// that fails with EADDRNOTAVAIL because both ports hold a TIME_WAIT socket
// towards the listener. Last, a connect() to a port where nothing listens
// is refused (Result.Refused 1).
func PortExhaustion(ns *netns.NS) (*Result, error) {
	r := newResult("PortExhaustion", unix.AF_INET)
	lfd, restore, err := tinyPortRange(ns, r, 2, "net.ipv4.tcp_tw_reuse", "0")
	if err != nil {
		return nil, fmt.Errorf("scenario: port exhaustion: %w", err)
	}
	defer unix.Close(lfd)
	err = ns.Do(func() error {
		for i := 0; i < 2; i++ {
			p, err := connect(lfd, r.Listener, netip.AddrPort{}, false)
			if err != nil {
				return err
			}
			r.Connects++
			r.Conns = append(r.Conns, p.conn)
			w, err := finish(p, clientFirst)
			if err != nil {
				return err
			}
			if err := wait(ns, r.Family, w); err != nil {
				return err
			}
			r.TimeWait = append(r.TimeWait, w[0].Tuple)
		}
		p, err := connect(lfd, r.Listener, netip.AddrPort{}, false)
		if err == nil {
			unix.Close(p.cfd)
			unix.Close(p.sfd)
			return fmt.Errorf("scenario: third connect succeeded from %v", p.conn.Client)
		}
		if !errors.Is(err, unix.EADDRNOTAVAIL) {
			return err
		}
		r.Failed++
		r.Errno = unix.EADDRNOTAVAIL
		// a connect() refused by the peer also goes from SYN_SENT to
		// CLOSE, and is no EADDRNOTAVAIL
		if fd, _, err := dial(netip.AddrPortFrom(r.Listener.Addr(), refusedPort), netip.AddrPort{}, false); err == nil {
			unix.Close(fd)
			return fmt.Errorf("scenario: connect to port %d, where nothing listens, succeeded", refusedPort)
		} else if !errors.Is(err, unix.ECONNREFUSED) {
			return err
		}
		r.Refused++
		return nil
	})
	if err := errors.Join(err, restore()); err != nil {
		return r, fmt.Errorf("scenario: port exhaustion: %w", err)
	}
	return r, nil
}

// BindInUse runs a server with SO_REUSEADDR on port P whose one connection
// it closes first, leaving a TIME_WAIT socket on P, and closes the
// listener. A new socket's bind() to P without SO_REUSEADDR then fails
// with EADDRINUSE (Result.Errno); one with SO_REUSEADDR succeeds
// (Result.ReuseAddrBind).
func BindInUse(ns *netns.NS) (*Result, error) {
	r := newResult("BindInUse", unix.AF_INET)
	err := ns.Do(func() error {
		lfd, laddr, err := listen(r.Family, 0, true)
		if err != nil {
			return err
		}
		r.Listener = laddr
		p, err := connect(lfd, laddr, netip.AddrPort{}, false)
		if err != nil {
			unix.Close(lfd)
			return err
		}
		r.Connects++
		r.Conns = append(r.Conns, p.conn)
		w, err := finish(p, serverFirst)
		if err := errors.Join(err, closeFD(lfd)); err != nil {
			return err
		}
		if err := wait(ns, r.Family, w); err != nil {
			return err
		}
		r.TimeWait = append(r.TimeWait, w[0].Tuple)
		for _, reuse := range []bool{false, true} {
			fd, err := newSocket(r.Family, reuse)
			if err != nil {
				return err
			}
			berr := unix.Bind(fd, sockaddr(laddr))
			if err := closeFD(fd); err != nil {
				return err
			}
			switch {
			case !reuse && errors.Is(berr, unix.EADDRINUSE):
				r.Failed++
				r.Errno = unix.EADDRINUSE
			case !reuse:
				return fmt.Errorf("scenario: bind to %v without SO_REUSEADDR: want EADDRINUSE, got %v", laddr, berr)
			case berr != nil:
				return fmt.Errorf("scenario: bind to %v with SO_REUSEADDR: %w", laddr, berr)
			default:
				r.ReuseAddrBind = true
			}
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("scenario: bind in use: %w", err)
	}
	return r, nil
}

// SynTakeover makes a connection whose server closes first, leaving a
// server-side TIME_WAIT socket on tuple T, and then binds a new client
// socket (SO_REUSEADDR) to the same local port and connects again to the
// same listener: the SYN is accepted by the TIME_WAIT socket
// (TCP_TW_SYN), which the kernel then kills, and the new connection is
// established on T. Result.Conns holds both connections (same tuple); the
// second stays open until Result.Close.
func SynTakeover(ns *netns.NS) (*Result, error) {
	r := newResult("SynTakeover", unix.AF_INET)
	err := ns.Do(func() error {
		lfd, laddr, err := listen(r.Family, 0, true)
		if err != nil {
			return err
		}
		defer unix.Close(lfd)
		r.Listener = laddr
		p, err := connect(lfd, laddr, netip.AddrPort{}, false)
		if err != nil {
			return err
		}
		r.Connects++
		r.Conns = append(r.Conns, p.conn)
		w, err := finish(p, serverFirst)
		if err != nil {
			return err
		}
		if err := wait(ns, r.Family, w); err != nil {
			return err
		}
		// Let the timestamp clock (1 ms) move on, so that the new SYN is
		// newer than the TIME_WAIT socket's last timestamp.
		time.Sleep(5 * time.Millisecond)
		q, err := connect(lfd, laddr, p.conn.Client, true)
		if err != nil {
			return err
		}
		r.held.add(q.cfd, q.sfd)
		r.Connects++
		r.Conns = append(r.Conns, q.conn)
		if q.conn != p.conn {
			return fmt.Errorf("scenario: second connection %v differs from first %v", q.conn, p.conn)
		}
		return wait(ns, r.Family, []expect{
			state(q.conn.ClientSide(), netns.Established),
			state(q.conn.ServerSide(), netns.Established),
		})
	})
	if err != nil {
		return r, errors.Join(fmt.Errorf("scenario: syn takeover: %w", err), r.Close())
	}
	return r, nil
}

// FinWait2 sets net.ipv4.tcp_fin_timeout to timeout (whole seconds,
// 1-60), makes one connection whose client closes first while the server
// keeps its socket open, and returns once the client's orphaned FIN_WAIT2
// socket has become a timewait socket in the FIN_WAIT2 substate
// (Result.FinWait2). That socket expires after about timeout; see
// WaitGone. The server socket, in CLOSE_WAIT, stays open until
// Result.Close.
func FinWait2(ns *netns.NS, timeout time.Duration) (*Result, error) {
	r := newResult("FinWait2", unix.AF_INET)
	if timeout < time.Second || timeout > 60*time.Second || timeout%time.Second != 0 {
		return nil, fmt.Errorf("scenario: fin wait2: timeout %v not a whole number of seconds in [1s, 60s]", timeout)
	}
	restore, err := setSysctls(ns, "net.ipv4.tcp_fin_timeout", strconv.Itoa(int(timeout/time.Second)))
	if err != nil {
		return nil, fmt.Errorf("scenario: fin wait2: %w", err)
	}
	err = ns.Do(func() error {
		lfd, laddr, err := listen(r.Family, 0, false)
		if err != nil {
			return err
		}
		defer unix.Close(lfd)
		r.Listener = laddr
		p, err := connect(lfd, laddr, netip.AddrPort{}, false)
		if err != nil {
			return err
		}
		r.held.add(p.sfd)
		r.Connects++
		r.Conns = append(r.Conns, p.conn)
		if err := closeFD(p.cfd); err != nil {
			return err
		}
		if err := readEOF(p.sfd); err != nil {
			return err
		}
		c := p.conn.ClientSide()
		if err := wait(ns, r.Family, []expect{
			{Tuple: c, State: netns.FinWait2, tw: true},
			state(p.conn.ServerSide(), netns.CloseWait),
		}); err != nil {
			return err
		}
		r.FinWait2 = append(r.FinWait2, c)
		return nil
	})
	if err := errors.Join(err, restore()); err != nil {
		return r, errors.Join(fmt.Errorf("scenario: fin wait2: %w", err), r.Close())
	}
	return r, nil
}

// NetnsPurge leaves k client-side TIME_WAIT sockets (ClientCloses over
// IPv4) in ns and closes ns. The kernel then tears the namespace down
// asynchronously and purges the TIME_WAIT sockets (inet_twsk_purge). The
// caller must have closed every other socket of ns. ns is closed even when
// the scenario fails.
func NetnsPurge(ns *netns.NS, k int) (*Result, error) {
	inode := ns.Inode()
	r, err := ClientCloses(ns, k, unix.AF_INET)
	if err := errors.Join(err, ns.Close()); err != nil {
		return r, fmt.Errorf("scenario: netns purge: %w", err)
	}
	r.Scenario = "NetnsPurge"
	r.NSInode = inode
	return r, nil
}

// ClientClosesFromHere is for a helper process, whose connections must be
// its own: it joins the network namespace at path on the calling thread
// for good, calls ready (when not nil), then makes n IPv4 connections over
// loopback to a listener of its own on port, each closed by the client
// first: n TIME_WAIT sockets on the client side, all made by this process.
func ClientClosesFromHere(path string, port, n int, ready func() error) error {
	runtime.LockOSThread() // for good: the thread never leaves the namespace
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		unix.Close(fd)
		return fmt.Errorf("setns: %w", err)
	}
	unix.Close(fd)
	if ready != nil {
		if err := ready(); err != nil {
			return err
		}
	}
	addr := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(lfd)
	if err := unix.Bind(lfd, addr); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(lfd, n); err != nil {
		return err
	}
	buf := make([]byte, 16)
	for range n {
		cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if err := unix.Connect(cfd, addr); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		sfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		if err := unix.Close(cfd); err != nil {
			return err
		}
		for { // to EOF, then the server closes
			m, err := unix.Read(sfd, buf)
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			if m == 0 {
				break
			}
		}
		if err := unix.Close(sfd); err != nil {
			return err
		}
	}
	return nil
}
