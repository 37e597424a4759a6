package netns

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSysctlPath(t *testing.T) {
	good := map[string]string{
		"net.ipv4.tcp_tw_reuse":             "/proc/sys/net/ipv4/tcp_tw_reuse",
		"net/ipv4/conf/eth0.100/forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
	}
	for key, want := range good {
		got, err := sysctlPath(key)
		if err != nil || got != want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	for _, key := range []string{"", "net", "kernel.pid_max", "net..ipv4", "net/../../etc/passwd", "net/ipv4/", ".net.ipv4"} {
		if got, err := sysctlPath(key); err == nil {
			t.Errorf("sysctlPath(%q) = %q, want an error", key, got)
		}
	}
}

func TestParseNetstat(t *testing.T) {
	in := "TcpExt: TW TWRecycled TWKilled\nTcpExt: 5 2 1\nIpExt: InNoRoutes\nIpExt: 0\nTcp: RtoAlgorithm MaxConn\nTcp: 1 -1\n"
	out := map[string]int64{}
	if err := parseNetstat([]byte(in), out); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"TcpExt.TW": 5, "TcpExt.TWRecycled": 2, "TcpExt.TWKilled": 1, "IpExt.InNoRoutes": 0, "Tcp.RtoAlgorithm": 1, "Tcp.MaxConn": -1}
	if len(out) != len(want) {
		t.Fatalf("got %v, want %v", out, want)
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("%s = %d, want %d", k, out[k], v)
		}
	}
	for _, bad := range []string{
		"TcpExt: TW\n",
		"TcpExt: TW TWKilled\nTcpExt: 1\n",
		"TcpExt: TW\nIpExt: 1\n",
		"TcpExt: TW\nTcpExt: x\n",
		"TcpExt TW\nTcpExt 1\n",
	} {
		if err := parseNetstat([]byte(bad), map[string]int64{}); err == nil {
			t.Errorf("parseNetstat(%q) succeeded", bad)
		}
	}
}

func TestStateMask(t *testing.T) {
	if got := StateMask(TimeWait, FinWait2); got != 1<<6|1<<5 {
		t.Errorf("StateMask = %#x", got)
	}
	if got := StateMask(40); got != 0 {
		t.Errorf("StateMask(40) = %#x, want 0", got)
	}
	if got, want := AllStates, StateMask(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12); got != want {
		t.Errorf("AllStates = %#x, want %#x", got, want)
	}
	if StateName(TimeWait) != "TIME_WAIT" || StateName(Closing) != "CLOSING" || StateName(0) != "STATE0" || StateName(200) != "STATE200" || StateName(BoundInactive) != "BOUND_INACTIVE" {
		t.Error("StateName")
	}
}

// diagMsg builds a netlink message holding one inet_diag_msg.
func diagMsg(seq uint32, family, state, timer uint8, src, dst netip.AddrPort, expiresMs, uid, inode uint32) []byte {
	ne := binary.NativeEndian
	b := make([]byte, unix.NLMSG_HDRLEN+diagMsgLen)
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint32(b[8:], seq)
	p := b[unix.NLMSG_HDRLEN:]
	p[0], p[1], p[2] = family, state, timer
	binary.BigEndian.PutUint16(p[4:], src.Port())
	binary.BigEndian.PutUint16(p[6:], dst.Port())
	if family == unix.AF_INET {
		a, d := src.Addr().As4(), dst.Addr().As4()
		copy(p[8:], a[:])
		copy(p[24:], d[:])
	} else {
		a, d := src.Addr().As16(), dst.Addr().As16()
		copy(p[8:], a[:])
		copy(p[24:], d[:])
	}
	ne.PutUint32(p[52:], expiresMs)
	ne.PutUint32(p[64:], uid)
	ne.PutUint32(p[68:], inode)
	return b
}

func done(seq uint32) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return b
}

func TestParseDiag(t *testing.T) {
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	dst := netip.MustParseAddrPort("127.0.0.1:8080")
	src6 := netip.MustParseAddrPort("[::1]:40001")
	dst6 := netip.MustParseAddrPort("[::1]:8081")
	var buf []byte
	buf = append(buf, diagMsg(7, unix.AF_INET, TimeWait, TimerTimeWait, src, dst, 59000, 0, 0)...)
	buf = append(buf, diagMsg(6, unix.AF_INET, Listen, 0, src, dst, 0, 0, 1)...) // other sequence: ignored
	buf = append(buf, diagMsg(7, unix.AF_INET6, Established, 0, src6, dst6, 0, 1000, 4242)...)
	var out []Socket
	fin, err := parseDiag(buf, 7, &out)
	if err != nil || fin {
		t.Fatalf("parseDiag = %v, %v", fin, err)
	}
	if len(out) != 2 {
		t.Fatalf("got %d sockets: %v", len(out), out)
	}
	if s := out[0]; s.Family != unix.AF_INET || s.State != TimeWait || !s.IsTimewaitSock() || s.Src != src || s.Dst != dst || s.Expires != 59*time.Second {
		t.Errorf("socket 0 = %+v", s)
	}
	if s := out[1]; s.Family != unix.AF_INET6 || s.State != Established || s.IsTimewaitSock() || s.Src != src6 || s.Dst != dst6 || s.UID != 1000 || s.Inode != 4242 {
		t.Errorf("socket 1 = %+v", s)
	}
	fin, err = parseDiag(done(7), 7, &out)
	if err != nil || !fin {
		t.Errorf("parseDiag(DONE) = %v, %v", fin, err)
	}

	// Malformed input must fail, not panic.
	errMsg := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(errMsg[0:], uint32(len(errMsg)))
	binary.NativeEndian.PutUint16(errMsg[4:], unix.NLMSG_ERROR)
	binary.NativeEndian.PutUint32(errMsg[8:], 7)
	code := -int32(unix.EINVAL)
	binary.NativeEndian.PutUint32(errMsg[16:], uint32(code))
	short := diagMsg(7, unix.AF_INET, TimeWait, 0, src, dst, 0, 0, 0)
	binary.NativeEndian.PutUint32(short[0:], unix.NLMSG_HDRLEN+10)
	badFamily := diagMsg(7, 99, TimeWait, 0, src, dst, 0, 0, 0)
	tooLong := diagMsg(7, unix.AF_INET, TimeWait, 0, src, dst, 0, 0, 0)
	binary.NativeEndian.PutUint32(tooLong[0:], 4096)
	for name, b := range map[string][]byte{"error": errMsg, "short": short, "family": badFamily, "length": tooLong} {
		if _, err := parseDiag(b, 7, &out); err == nil {
			t.Errorf("%s: parseDiag succeeded", name)
		}
	}
	for i := 0; i < len(buf); i++ {
		_, _ = parseDiag(buf[:i], 7, &out) // truncations must not panic
	}
}
