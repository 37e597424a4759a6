package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/twtop/twtop/tracer/event"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// TCP states as reported by sock_diag (include/net/tcp_states.h).
const (
	Established   uint8 = 1
	SynSent       uint8 = 2
	SynRecv       uint8 = 3
	FinWait1      uint8 = 4
	FinWait2      uint8 = 5
	TimeWait      uint8 = 6
	Close         uint8 = 7
	CloseWait     uint8 = 8
	LastAck       uint8 = 9
	Listen        uint8 = 10
	Closing       uint8 = 11
	NewSynRecv    uint8 = 12
	BoundInactive uint8 = 13
)

// AllStates selects every TCP state from Established to NewSynRecv.
const AllStates uint32 = 0x1ffe

// TimerTimeWait is the idiag_timer value of a timewait socket.
const TimerTimeWait uint8 = 3

// StateName returns the kernel name of a TCP state, or "STATEn".
func StateName(s uint8) string { return event.State(s).String() }

// StateMask returns the sock_diag state filter selecting states. Values
// above 31 are ignored.
func StateMask(states ...uint8) uint32 {
	var m uint32
	for _, s := range states {
		if s < 32 {
			m |= 1 << s
		}
	}
	return m
}

// Socket is one TCP socket as dumped by sock_diag (struct inet_diag_msg).
//
// Timewait sockets (struct inet_timewait_sock) are reported with Timer ==
// TimerTimeWait, Inode 0 and UID 0, and with State set to their substate:
// TimeWait for the usual one, but FinWait2 for an orphaned FIN_WAIT2 socket
// that the kernel turned into a timewait socket (tcp_fin_timeout <= 60 s).
// The sock_diag state filter matches that substate too, so such a socket is
// only listed when FinWait2 is in the mask. /proc/net/tcp likewise shows it
// as state 05 with timer 3. Use IsTimewaitSock to tell it from a full
// FIN_WAIT2 socket.
type Socket struct {
	Family  int
	State   uint8
	Timer   uint8
	Retrans uint8
	Src     netip.AddrPort
	Dst     netip.AddrPort
	IfIndex uint32
	Cookie  uint64
	// Expires is the time left on the socket's timer (idiag_expires).
	Expires time.Duration
	RQueue  uint32
	WQueue  uint32
	UID     uint32
	Inode   uint32
}

// IsTimewaitSock reports whether s is a timewait socket, whatever its
// substate.
func (s Socket) IsTimewaitSock() bool { return s.Timer == TimerTimeWait }

func (s Socket) String() string {
	tw := ""
	if s.IsTimewaitSock() {
		tw = " timewait"
	}
	return fmt.Sprintf("%s %v -> %v%s expires=%v inode=%d", StateName(s.State), s.Src, s.Dst, tw, s.Expires, s.Inode)
}

// Sizes of the sock_diag structures (linux/inet_diag.h).
const (
	sockIDLen   = 48 // struct inet_diag_sockid
	reqV2Len    = 8 + sockIDLen
	diagMsgLen  = 4 + sockIDLen + 20
	diagTimeout = 5 * time.Second
)

// Sockets dumps the namespace's TCP sockets of family (unix.AF_INET,
// unix.AF_INET6, or unix.AF_UNSPEC for both) whose state is in stateMask
// (see StateMask; 0 means AllStates). It is an in-process "ss -tan".
func (n *NS) Sockets(family int, stateMask uint32) ([]Socket, error) {
	var fams []int
	switch family {
	case unix.AF_INET, unix.AF_INET6:
		fams = []int{family}
	case unix.AF_UNSPEC:
		fams = []int{unix.AF_INET, unix.AF_INET6}
	default:
		return nil, fmt.Errorf("netns: sockets: unsupported family %d", family)
	}
	if stateMask == 0 {
		stateMask = AllStates
	}
	var out []Socket
	err := n.Do(func() error {
		for _, f := range fams {
			s, err := dumpTCP(uint8(f), stateMask)
			if err != nil {
				return err
			}
			out = append(out, s...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// dumpTCP must run on the namespace thread.
func dumpTCP(family uint8, states uint32) ([]Socket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("netns: sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(diagTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("netns: sock_diag timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netns: sock_diag bind: %w", err)
	}
	const seq = 1
	req := make([]byte, unix.NLMSG_HDRLEN+reqV2Len)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	b := req[unix.NLMSG_HDRLEN:]
	b[0] = family
	b[1] = unix.IPPROTO_TCP
	ne.PutUint32(b[4:], states)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netns: sock_diag request: %w", err)
	}
	var out []Socket
	buf := make([]byte, 1<<16)
	for {
		m, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netns: sock_diag receive: %w", err)
		}
		done, err := parseDiag(buf[:m], seq, &out)
		if err != nil {
			return nil, err
		}
		if done {
			return out, nil
		}
	}
}

// parseDiag parses one netlink datagram of a sock_diag dump, appending the
// sockets to out. It reports whether the dump is complete.
func parseDiag(b []byte, seq uint32, out *[]Socket) (bool, error) {
	ne := binary.NativeEndian
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		mseq := ne.Uint32(b[8:])
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return false, fmt.Errorf("netns: sock_diag: bad message length %d", l)
		}
		payload := b[unix.NLMSG_HDRLEN:l]
		if mseq == seq {
			switch typ {
			case unix.NLMSG_DONE:
				return true, nil
			case unix.NLMSG_ERROR:
				if len(payload) < 4 {
					return false, errors.New("netns: sock_diag: short error message")
				}
				if code := int32(ne.Uint32(payload)); code != 0 {
					return false, fmt.Errorf("netns: sock_diag: %w", unix.Errno(-code))
				}
			case unix.SOCK_DIAG_BY_FAMILY:
				s, err := parseDiagMsg(payload)
				if err != nil {
					return false, err
				}
				*out = append(*out, s)
			}
		}
		al := (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return false, nil
}

// parseDiagMsg decodes a struct inet_diag_msg.
func parseDiagMsg(p []byte) (Socket, error) {
	if len(p) < diagMsgLen {
		return Socket{}, fmt.Errorf("netns: sock_diag: short inet_diag_msg (%d bytes)", len(p))
	}
	ne := binary.NativeEndian
	s := Socket{
		Family:  int(p[0]),
		State:   p[1],
		Timer:   p[2],
		Retrans: p[3],
	}
	id := p[4 : 4+sockIDLen]
	sport := binary.BigEndian.Uint16(id[0:])
	dport := binary.BigEndian.Uint16(id[2:])
	var src, dst netip.Addr
	switch s.Family {
	case unix.AF_INET:
		src = netip.AddrFrom4([4]byte(id[4:8]))
		dst = netip.AddrFrom4([4]byte(id[20:24]))
	case unix.AF_INET6:
		src = netip.AddrFrom16([16]byte(id[4:20]))
		dst = netip.AddrFrom16([16]byte(id[20:36]))
	default:
		return Socket{}, fmt.Errorf("netns: sock_diag: unexpected family %d", s.Family)
	}
	s.Src = netip.AddrPortFrom(src, sport)
	s.Dst = netip.AddrPortFrom(dst, dport)
	s.IfIndex = ne.Uint32(id[36:])
	s.Cookie = uint64(ne.Uint32(id[40:])) | uint64(ne.Uint32(id[44:]))<<32
	rest := p[4+sockIDLen:]
	s.Expires = time.Duration(ne.Uint32(rest[0:])) * time.Millisecond
	s.RQueue = ne.Uint32(rest[4:])
	s.WQueue = ne.Uint32(rest[8:])
	s.UID = ne.Uint32(rest[12:])
	s.Inode = ne.Uint32(rest[16:])
	return s, nil
}

// TimewaitSockets dumps the IPv4 and IPv6 timewait sockets, whatever their
// substate, of the network namespace of the calling thread. A caller that
// joined another namespace must have locked its goroutine to the thread.
func TimewaitSockets() ([]Socket, error) {
	// the state filter matches a timewait socket's substate
	mask := StateMask(TimeWait, FinWait2)
	var out []Socket
	for _, f := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := dumpTCP(f, mask)
		if err != nil {
			return nil, err
		}
		for _, s := range socks {
			if s.IsTimewaitSock() {
				out = append(out, s)
			}
		}
	}
	return out, nil
}
