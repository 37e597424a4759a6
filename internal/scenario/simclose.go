package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"golang.org/x/sys/unix"
)

// SimultaneousClose makes one IPv4 connection and closes both ends while
// "lo" is down, so that neither FIN can be sent: both sockets sit in
// FIN_WAIT1 with the FIN in their write queue and a zero-window-probe
// timer of one RTO (about 200 ms). Both timers are armed in the same
// jiffy, so once "lo" is up again they fire in the same timer softirq and
// both FINs are queued before either is received: the FINs cross, both
// sides go FIN_WAIT1 -> CLOSING -> TIME_WAIT (Result.Closing == 2).
//
// Had one FIN been delivered first, its receiver would go through CLOSING
// and the sender through FIN_WAIT2 instead (Result.Closing == 1). To tell
// the two apart, net.ipv4.tcp_fin_timeout is 3 s while the scenario runs:
// an orphaned socket reaching FIN_WAIT2 then becomes a timewait socket
// with a timeout under 4 s, which the kernel counts in TcpExt.TWKilled,
// whereas CLOSING -> TIME_WAIT counts in TcpExt.TW. Both ends finish in
// TIME_WAIT either way.
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
		default:
			err = fmt.Errorf("scenario: unexpected counter deltas TcpExt.TW=%d TcpExt.TWKilled=%d", tw, killed)
		}
	}
	if err := errors.Join(err, restore()); err != nil {
		return r, fmt.Errorf("scenario: simultaneous close: %w", err)
	}
	return r, nil
}

// simClose runs on the namespace thread.
func simClose(ns *netns.NS, r *Result) (err error) {
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
	r.Connects++
	r.Conns = append(r.Conns, p.conn)
	c, s := p.conn.ClientSide(), p.conn.ServerSide()

	if err := ns.SetLinkUp("lo", false); err != nil {
		unix.Close(p.cfd)
		unix.Close(p.sfd)
		return err
	}
	defer func() {
		if uerr := ns.SetLinkUp("lo", true); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	waitTick()
	cerr := closeFD(p.cfd)
	serr := closeFD(p.sfd)
	if err := errors.Join(cerr, serr); err != nil {
		return err
	}
	if err := wait(ns, r.Family, []expect{state(c, netns.FinWait1), state(s, netns.FinWait1)}); err != nil {
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

// waitTick spins until CLOCK_MONOTONIC_COARSE, which moves with the kernel
// tick, changes (at most 50 ms), so that the two closes that follow happen
// early in one jiffy and their timers expire together.
func waitTick() {
	if os.Getenv("TWTOP_NOTICK") != "" {
		return
	}
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
