package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/twtop/twtop/internal/netns"
	"golang.org/x/sys/unix"
)

// betweenShutdowns, when set by a test, runs between the two shutdowns of
// SimultaneousClose.
var betweenShutdowns func()

// simAttempts bounds the connections SimultaneousClose tries.
const simAttempts = 5

// SimultaneousClose makes both ends of one IPv4 connection send their FIN
// before either receives the other's, so that both go FIN_WAIT1 ->
// CLOSING -> TIME_WAIT (Result.Closing == 2).
//
// On loopback a FIN is normally received within the sending system call,
// so the scenario takes "lo" down and shuts both ends down for writing
// (shutdown SHUT_WR, on a thread pinned to one CPU, right after a kernel
// tick): neither FIN arrives, and both sockets wait in FIN_WAIT1 for their
// retransmission timer, about 200 ms. It then checks with sock_diag that
// both timers expire in the same jiffy, closes both sockets (orphaning
// them, which sends nothing more) and brings "lo" up. The two timers fire
// in the same timer softirq, both retransmitted FINs are queued before
// either is received, and the FINs cross.
//
// Should the two shutdowns straddle a tick (the thread was preempted), the
// timers differ and the FINs would not cross. The scenario then resets
// that connection with SO_LINGER {on, 0} (no TIME_WAIT: it counts in
// TcpExt.TCPAbortOnData, not in TcpExt.TW) and tries a new one, up to 5
// times; Result.Attempts says how many it took and Result.Conns lists
// every connection, the last one being the simultaneous close.
//
// The outcome is checked with counters: net.ipv4.tcp_fin_timeout is 3 s
// while the scenario runs, so an orphaned socket that saw its FIN
// acknowledged before the peer's FIN arrived (FIN_WAIT2, not CLOSING)
// would become a timewait socket armed for under 4 s, counted in
// TcpExt.TWKilled; CLOSING -> TIME_WAIT counts in TcpExt.TW.
func SimultaneousClose(ns *netns.NS) (*Result, error) {
	r := newResult("SimultaneousClose", unix.AF_INET)
	restore, err := setSysctls(ns, "net.ipv4.tcp_fin_timeout", "3")
	if err != nil {
		return nil, fmt.Errorf("scenario: simultaneous close: %w", err)
	}
	before, err := ns.Netstat()
	if err == nil {
		err = ns.Do(func() error { return simClose(ns, r) })
	}
	var after map[string]int64
	if err == nil {
		after, err = ns.Netstat()
	}
	if err == nil {
		tw := after["TcpExt.TW"] - before["TcpExt.TW"]
		killed := after["TcpExt.TWKilled"] - before["TcpExt.TWKilled"]
		switch {
		case tw == 2 && killed == 0:
			r.Closing = 2
		case tw == 1 && killed == 1:
			r.Closing = 1
		case tw == 0 && killed == 0 && !TWCountsCreations():
			// counted when the timers expire; sock_diag shows both
			r.Closing = -1
			err = expectTimewait(ns, r.Family, 2)
		default:
			err = fmt.Errorf("scenario: unexpected counter deltas TcpExt.TW=%d TcpExt.TWKilled=%d", tw, killed)
		}
	}
	if err := errors.Join(err, restore()); err != nil {
		return r, fmt.Errorf("scenario: simultaneous close: %w", err)
	}
	return r, nil
}

// TWCountsCreations reports whether the running kernel counts a timewait
// socket in TcpExt.TW (or TWKilled, for a timeout of at most 4 s) when its
// timer is armed, as from 5.19; before, it counted them when the timer
// expired, and no counter moves when one is created.
func TWCountsCreations() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return true
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 5 || (major == 5 && minor >= 19)
}

// expectTimewait checks that sock_diag shows n timewait sockets, whatever
// their substate.
func expectTimewait(ns *netns.NS, family, n int) error {
	socks, err := ns.Sockets(family, netns.StateMask(netns.TimeWait, netns.FinWait2))
	if err != nil {
		return err
	}
	got := 0
	for _, s := range socks {
		if s.IsTimewaitSock() {
			got++
		}
	}
	if got != n {
		return fmt.Errorf("scenario: %d timewait sockets, want %d", got, n)
	}
	return nil
}

// simClose runs on the namespace thread.
func simClose(ns *netns.NS, r *Result) (err error) {
	lfd, laddr, err := listen(r.Family, 0, false)
	if err != nil {
		return err
	}
	defer unix.Close(lfd)
	r.Listener = laddr
	defer pinThread()()
	defer func() {
		if uerr := ns.SetLinkUp("lo", true); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	for r.Attempts < simAttempts {
		r.Attempts++
		p, err := connect(lfd, laddr, netip.AddrPort{}, false)
		if err != nil {
			return err
		}
		r.Connects++
		r.Conns = append(r.Conns, p.conn)
		c, s := p.conn.ClientSide(), p.conn.ServerSide()
		aligned, err := shutdownBoth(ns, p)
		if err != nil {
			unix.Close(p.cfd)
			unix.Close(p.sfd)
			return err
		}
		if !aligned {
			if err := abort(p); err != nil {
				return err
			}
			if err := wait(ns, r.Family, []expect{gone(c), gone(s)}); err != nil {
				return err
			}
			if err := ns.SetLinkUp("lo", true); err != nil {
				return err
			}
			continue
		}
		if err := errors.Join(closeFD(p.cfd), closeFD(p.sfd)); err != nil {
			return err
		}
		if err := ns.SetLinkUp("lo", true); err != nil {
			return err
		}
		if err := wait(ns, r.Family, []expect{timeWait(c), timeWait(s)}); err != nil {
			return err
		}
		r.TimeWait = append(r.TimeWait, c, s)
		return nil
	}
	return fmt.Errorf("scenario: retransmission timers never aligned in %d attempts", simAttempts)
}

// shutdownBoth takes "lo" down, shuts both ends of p down for writing and
// reports whether their retransmission timers expire in the same jiffy.
func shutdownBoth(ns *netns.NS, p pair) (bool, error) {
	if err := ns.SetLinkUp("lo", false); err != nil {
		return false, err
	}
	waitTick()
	cerr := unix.Shutdown(p.cfd, unix.SHUT_WR)
	if betweenShutdowns != nil {
		betweenShutdowns()
	}
	serr := unix.Shutdown(p.sfd, unix.SHUT_WR)
	if err := errors.Join(cerr, serr); err != nil {
		return false, fmt.Errorf("scenario: shutdown: %w", err)
	}
	c, s := p.conn.ClientSide(), p.conn.ServerSide()
	// The verdict of one dump can be wrong when a tick falls between its
	// two records, so two dumps out of at most three must agree.
	var same, differ int
	for same < 2 && differ < 2 {
		socks, err := ns.Sockets(unix.AF_INET, netns.StateMask(netns.FinWait1))
		if err != nil {
			return false, err
		}
		var ce, se []time.Duration
		for _, k := range socks {
			switch {
			case k.Timer == 0:
			case k.Src == c.Local && k.Dst == c.Remote:
				ce = append(ce, k.Expires)
			case k.Src == s.Local && k.Dst == s.Remote:
				se = append(se, k.Expires)
			}
		}
		if len(ce) != 1 || len(se) != 1 {
			return false, fmt.Errorf("scenario: want both ends in FIN_WAIT1 with a timer, have %v", socks)
		}
		if ce[0] == se[0] {
			same++
		} else {
			differ++
		}
	}
	return same == 2, nil
}

// abort resets both ends of p (SO_LINGER {on, 0}) and closes them.
func abort(p pair) error {
	var errs []error
	for _, fd := range []int{p.cfd, p.sfd} {
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
			errs = append(errs, fmt.Errorf("scenario: SO_LINGER: %w", err))
		}
		errs = append(errs, closeFD(fd))
	}
	return errors.Join(errs...)
}

// pinThread binds the calling thread to the CPU it runs on, so that timers
// it arms share one timer base, and returns a function undoing it. Where
// affinity cannot be changed it does nothing.
func pinThread() (unpin func()) {
	var old, one unix.CPUSet
	if unix.SchedGetaffinity(0, &old) != nil {
		return func() {}
	}
	var cpu, node uint32
	if _, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0); e != 0 {
		return func() {}
	}
	one.Set(int(cpu))
	if unix.SchedSetaffinity(0, &one) != nil {
		return func() {}
	}
	return func() { _ = unix.SchedSetaffinity(0, &old) }
}

// waitTick spins until CLOCK_MONOTONIC_COARSE, which moves with the kernel
// tick, changes (at most 50 ms), so that what follows starts early in a
// jiffy.
func waitTick() {
	var t0, t unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &t0) != nil {
		return
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
		if unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &t) != nil || t != t0 {
			return
		}
	}
}
