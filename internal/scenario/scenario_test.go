package scenario_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"golang.org/x/sys/unix"
)

// setup makes a fresh namespace and reads its counters.
func setup(t *testing.T) (*netns.NS, map[string]int64) {
	t.Helper()
	t.Parallel()
	ns := netnstest.New(t)
	return ns, netnstest.Counters(t, ns)
}

// deltas returns the change of each counter in keys since before.
func deltas(t *testing.T, ns *netns.NS, before map[string]int64, keys ...string) map[string]int64 {
	t.Helper()
	after := netnstest.Counters(t, ns)
	d := make(map[string]int64, len(keys))
	for _, k := range keys {
		d[k] = netnstest.Delta(t, before, after, k)
	}
	return d
}

func wantDeltas(t *testing.T, got, want map[string]int64) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s delta = %d, want %d", k, got[k], v)
		}
	}
}

var twKeys = []string{"TcpExt.TW", "TcpExt.TWKilled", "TcpExt.TWRecycled", "TcpExt.TCPTimeWaitOverflow"}

// sockets returns the namespace's sockets of family in the given states.
func sockets(t *testing.T, ns *netns.NS, family int, states ...uint8) []netns.Socket {
	t.Helper()
	s, err := ns.Sockets(family, netns.StateMask(states...))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tuples(socks []netns.Socket) []scenario.Tuple {
	var out []scenario.Tuple
	for _, s := range socks {
		out = append(out, scenario.Tuple{Local: s.Src, Remote: s.Dst})
	}
	return out
}

func sameTuples(t *testing.T, what string, got, want []scenario.Tuple) {
	t.Helper()
	cmp := func(a, b scenario.Tuple) int { return strings.Compare(a.String(), b.String()) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

// checkTimeWait checks that the TIME_WAIT sockets of family are exactly
// want, all of them timewait sockets armed for about 60 s.
func checkTimeWait(t *testing.T, ns *netns.NS, family int, want []scenario.Tuple) []netns.Socket {
	t.Helper()
	socks := sockets(t, ns, family, netns.TimeWait)
	sameTuples(t, "TIME_WAIT sockets", tuples(socks), want)
	for _, s := range socks {
		if !s.IsTimewaitSock() || s.Inode != 0 || s.Expires <= 50*time.Second || s.Expires > 60*time.Second {
			t.Errorf("TIME_WAIT socket %v: want a timewait socket (timer 3, inode 0) expiring in 50-60 s", s)
		}
	}
	return socks
}

func family(f int) string {
	if f == unix.AF_INET6 {
		return "ipv6"
	}
	return "ipv4"
}

func TestClientCloses(t *testing.T) {
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		t.Run(family(f), func(t *testing.T) {
			ns, before := setup(t)
			r, err := scenario.ClientCloses(ns, 5, f)
			if err != nil {
				t.Fatal(err)
			}
			wantDeltas(t, deltas(t, ns, before, twKeys...), map[string]int64{"TcpExt.TW": 5, "TcpExt.TWKilled": 0, "TcpExt.TWRecycled": 0, "TcpExt.TCPTimeWaitOverflow": 0})
			if len(r.Conns) != 5 || r.Connects != 5 || len(r.TimeWait) != 5 {
				t.Fatalf("result %+v", r)
			}
			var want []scenario.Tuple
			for _, c := range r.Conns {
				if c.Server != r.Listener || !c.Client.Addr().IsLoopback() || c.Client.Addr().Is4() != (f == unix.AF_INET) {
					t.Errorf("connection %+v, listener %v", c, r.Listener)
				}
				want = append(want, c.ClientSide())
			}
			sameTuples(t, "Result.TimeWait", r.TimeWait, want)
			checkTimeWait(t, ns, f, want)
			if others := sockets(t, ns, unix.AF_UNSPEC, netns.Established, netns.FinWait1, netns.FinWait2, netns.CloseWait, netns.LastAck, netns.Closing, netns.Listen); len(others) != 0 {
				t.Errorf("sockets left besides TIME_WAIT: %v", others)
			}
		})
	}
}

func TestServerCloses(t *testing.T) {
	for _, f := range []int{unix.AF_INET, unix.AF_INET6} {
		t.Run(family(f), func(t *testing.T) {
			ns, before := setup(t)
			r, err := scenario.ServerCloses(ns, 4, f)
			if err != nil {
				t.Fatal(err)
			}
			wantDeltas(t, deltas(t, ns, before, twKeys...), map[string]int64{"TcpExt.TW": 4, "TcpExt.TWKilled": 0, "TcpExt.TWRecycled": 0, "TcpExt.TCPTimeWaitOverflow": 0})
			var want []scenario.Tuple
			for _, c := range r.Conns {
				want = append(want, c.ServerSide())
			}
			if len(want) != 4 {
				t.Fatalf("result %+v", r)
			}
			sameTuples(t, "Result.TimeWait", r.TimeWait, want)
			for _, s := range checkTimeWait(t, ns, f, want) {
				if s.Src != r.Listener {
					t.Errorf("TIME_WAIT %v not on the server's port %v", s, r.Listener)
				}
			}
		})
	}
}

// Two runs on one port chosen ahead: the second listener binds the port
// its first run's TIME_WAIT sockets hold, and every TIME_WAIT socket sits
// on it.
func TestServerClosesOn(t *testing.T) {
	ns, before := setup(t)
	var want []scenario.Tuple
	for range 2 {
		r, err := scenario.ServerClosesOn(ns, 20001, 3, unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		if r.Listener.Port() != 20001 || len(r.TimeWait) != 3 {
			t.Fatalf("result %+v", r)
		}
		want = append(want, r.TimeWait...)
	}
	if _, err := scenario.ServerClosesOn(ns, 0, 3, unix.AF_INET); err == nil {
		t.Error("ServerClosesOn port 0: no error")
	}
	// a client port never came round within six connections
	wantDeltas(t, deltas(t, ns, before, twKeys...), map[string]int64{"TcpExt.TW": 6, "TcpExt.TWKilled": 0, "TcpExt.TWRecycled": 0, "TcpExt.TCPTimeWaitOverflow": 0})
	for _, s := range checkTimeWait(t, ns, unix.AF_INET, want) {
		if s.Src.Port() != 20001 {
			t.Errorf("TIME_WAIT %v not on port 20001", s)
		}
	}
}

func TestLinger0(t *testing.T) {
	ns, before := setup(t)
	r, err := scenario.Linger0(ns, 3)
	if err != nil {
		t.Fatal(err)
	}
	d := deltas(t, ns, before, append(twKeys, "TcpExt.TCPAbortOnData", "Tcp.OutRsts", "Tcp.EstabResets")...)
	wantDeltas(t, d, map[string]int64{"TcpExt.TW": 0, "TcpExt.TWKilled": 0, "TcpExt.TCPAbortOnData": 3, "Tcp.OutRsts": 3, "Tcp.EstabResets": 6})
	if r.Failed != 3 || r.Errno != unix.ECONNRESET || len(r.TimeWait) != 0 {
		t.Errorf("result %+v", r)
	}
	if s := sockets(t, ns, unix.AF_UNSPEC, 0); len(s) != 0 {
		t.Errorf("sockets left: %v", s)
	}
}

func TestSimultaneousClose(t *testing.T) {
	ns, before := setup(t)
	start := time.Now()
	r, err := scenario.SimultaneousClose(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("closing sides %d, attempts %d, in %v", r.Closing, r.Attempts, time.Since(start))
	d := deltas(t, ns, before, twKeys...)
	if r.Closing != 2 {
		t.Errorf("%d side(s) went through CLOSING, want 2 (TW %+d, TWKilled %+d)", r.Closing, d["TcpExt.TW"], d["TcpExt.TWKilled"])
	}
	wantDeltas(t, d, map[string]int64{"TcpExt.TW": 2, "TcpExt.TWKilled": 0})
	if r.Attempts < 1 || len(r.Conns) != r.Attempts {
		t.Fatalf("result %+v", r)
	}
	c := r.Conns[len(r.Conns)-1]
	want := []scenario.Tuple{c.ClientSide(), c.ServerSide()}
	sameTuples(t, "Result.TimeWait", r.TimeWait, want)
	checkTimeWait(t, ns, unix.AF_INET, want)
	if v, err := ns.Sysctl("net.ipv4.tcp_fin_timeout"); err != nil || v != "60" {
		t.Errorf("tcp_fin_timeout not restored: %q, %v", v, err)
	}
	if up, err := ns.LinkUp("lo"); err != nil || !up {
		t.Errorf("lo left down: %v, %v", up, err)
	}
}

func TestTwReuse(t *testing.T) {
	ns, before := setup(t)
	start := time.Now()
	r, err := scenario.TwReuse(ns, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d connects, %d reused, %d retries in %v", r.Connects, r.Reused, r.Retries, time.Since(start))
	d := deltas(t, ns, before, twKeys...)
	if r.Connects != 5 || r.Reused != 3 {
		t.Errorf("connects %d reused %d, want 5 and 3", r.Connects, r.Reused)
	}
	wantDeltas(t, d, map[string]int64{"TcpExt.TW": 5, "TcpExt.TWRecycled": int64(r.Reused), "TcpExt.TCPTimeWaitOverflow": 0})
	for _, c := range r.Conns {
		if p := c.Client.Port(); p < 40000 || p > 40001 {
			t.Errorf("client port %d outside 40000-40001", p)
		}
	}
	checkTimeWait(t, ns, unix.AF_INET, r.TimeWait)
	if len(r.TimeWait) != 2 {
		t.Errorf("Result.TimeWait = %v, want 2 tuples", r.TimeWait)
	}
	if v, err := ns.Sysctl("net.ipv4.tcp_tw_reuse"); err != nil || v != "2" {
		t.Errorf("tcp_tw_reuse not restored: %q, %v", v, err)
	}
}

func TestOverflow(t *testing.T) {
	ns, before := setup(t)
	r, err := scenario.Overflow(ns, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	wantDeltas(t, deltas(t, ns, before, twKeys...), map[string]int64{"TcpExt.TW": 2, "TcpExt.TWKilled": 0, "TcpExt.TCPTimeWaitOverflow": 3})
	if len(r.Conns) != 5 || len(r.TimeWait) != 2 {
		t.Fatalf("result %+v", r)
	}
	checkTimeWait(t, ns, unix.AF_INET, []scenario.Tuple{r.Conns[0].ClientSide(), r.Conns[1].ClientSide()})
}

func TestPortExhaustion(t *testing.T) {
	ns, before := setup(t)
	r, err := scenario.PortExhaustion(ns)
	if err != nil {
		t.Fatal(err)
	}
	wantDeltas(t, deltas(t, ns, before, twKeys...), map[string]int64{"TcpExt.TW": 2, "TcpExt.TWRecycled": 0})
	if r.Connects != 2 || r.Failed != 1 || r.Errno != unix.EADDRNOTAVAIL || r.Refused != 1 {
		t.Errorf("result %+v, want 2 connects, one EADDRNOTAVAIL and one refused", r)
	}
	checkTimeWait(t, ns, unix.AF_INET, r.TimeWait)
	if len(r.TimeWait) != 2 {
		t.Errorf("Result.TimeWait = %v", r.TimeWait)
	}
}

func TestBindInUse(t *testing.T) {
	ns, before := setup(t)
	r, err := scenario.BindInUse(ns)
	if err != nil {
		t.Fatal(err)
	}
	wantDeltas(t, deltas(t, ns, before, twKeys...), map[string]int64{"TcpExt.TW": 1})
	if r.Failed != 1 || r.Errno != unix.EADDRINUSE || !r.ReuseAddrBind {
		t.Errorf("result %+v, want one EADDRINUSE and a SO_REUSEADDR bind", r)
	}
	for _, s := range checkTimeWait(t, ns, unix.AF_INET, []scenario.Tuple{r.Conns[0].ServerSide()}) {
		if s.Src != r.Listener {
			t.Errorf("TIME_WAIT %v not on port %v", s, r.Listener)
		}
	}
}

func TestSynTakeover(t *testing.T) {
	ns, before := setup(t)
	r, err := scenario.SynTakeover(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Conns) != 2 || r.Conns[0] != r.Conns[1] {
		t.Fatalf("connections %v, want the same tuple twice", r.Conns)
	}
	c := r.Conns[1]
	// The first connection armed one TIME_WAIT socket; the SYN took it over.
	wantDeltas(t, deltas(t, ns, before, append(twKeys, "Tcp.ActiveOpens", "Tcp.PassiveOpens")...),
		map[string]int64{"TcpExt.TW": 1, "TcpExt.TWRecycled": 0, "Tcp.ActiveOpens": 2, "Tcp.PassiveOpens": 2})
	checkTimeWait(t, ns, unix.AF_INET, nil)
	est := sockets(t, ns, unix.AF_INET, netns.Established)
	sameTuples(t, "ESTABLISHED", tuples(est), []scenario.Tuple{c.ClientSide(), c.ServerSide()})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// procNetTCP returns the lines of /proc/thread-self/net/tcp in ns.
func procNetTCP(t *testing.T, ns *netns.NS) []string {
	t.Helper()
	var lines []string
	err := ns.Do(func() error {
		fd, err := unix.Open("/proc/thread-self/net/tcp", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var b []byte
		buf := make([]byte, 4096)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
			b = append(b, buf[:n]...)
		}
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")[1:]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func hexTuple(ap netip.AddrPort) string {
	a := ap.Addr().As4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", a[3], a[2], a[1], a[0], ap.Port())
}

func TestFinWait2(t *testing.T) {
	ns, before := setup(t)
	start := time.Now()
	r, err := scenario.FinWait2(ns, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	created := time.Since(start)
	// Armed with 2 s <= 4 s: counted as killed, not as TW.
	wantDeltas(t, deltas(t, ns, before, twKeys...), map[string]int64{"TcpExt.TW": 0, "TcpExt.TWKilled": 1})
	if len(r.FinWait2) != 1 || len(r.TimeWait) != 0 {
		t.Fatalf("result %+v", r)
	}
	c := r.FinWait2[0]
	// The timewait socket is listed in its substate, FIN_WAIT2, only.
	if s := sockets(t, ns, unix.AF_INET, netns.TimeWait); len(s) != 0 {
		t.Errorf("TIME_WAIT filter lists %v", s)
	}
	fw2 := sockets(t, ns, unix.AF_INET, netns.FinWait2)
	if len(fw2) != 1 || fw2[0].Src != c.Local || fw2[0].Dst != c.Remote || !fw2[0].IsTimewaitSock() || fw2[0].Inode != 0 ||
		fw2[0].Expires <= 0 || fw2[0].Expires > 2*time.Second {
		t.Errorf("FIN_WAIT2 sockets %v, want one timewait socket %v expiring within 2 s", fw2, c)
	}
	// /proc/net/tcp shows it the same way: state 05, timer 3.
	var line string
	for _, l := range procNetTCP(t, ns) {
		if f := strings.Fields(l); len(f) > 5 && f[1] == hexTuple(c.Local) && f[2] == hexTuple(c.Remote) {
			line = l
			if f[3] != "05" || !strings.HasPrefix(f[5], "03:") {
				t.Errorf("/proc/net/tcp: %s, want state 05 timer 03", l)
			}
		}
	}
	if line == "" {
		t.Errorf("%v missing from /proc/net/tcp", c)
	}
	if err := scenario.WaitGone(ns, 4*time.Second, c); err != nil {
		t.Fatal(err)
	}
	lived := time.Since(start) - created
	t.Logf("FIN_WAIT2 timewait socket created after %v, gone %v later", created, lived)
	if lived < 1500*time.Millisecond || lived > 3*time.Second {
		t.Errorf("FIN_WAIT2 timewait socket lived %v, want about 2 s", lived)
	}
	// The server still holds its half: CLOSE_WAIT.
	cw := sockets(t, ns, unix.AF_INET, netns.CloseWait)
	sameTuples(t, "CLOSE_WAIT", tuples(cw), []scenario.Tuple{{Local: c.Remote, Remote: c.Local}})
}

func TestNetnsPurge(t *testing.T) {
	t.Parallel()
	netnstest.RequireRoot(t)
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	path, inode := ns.Path(), ns.Inode()
	r, err := scenario.NetnsPurge(ns, 3)
	if err != nil {
		ns.Close()
		t.Fatal(err)
	}
	if len(r.TimeWait) != 3 || r.NSInode != inode {
		t.Errorf("result %+v", r)
	}
	if err := ns.Do(func() error { return nil }); !errors.Is(err, netns.ErrClosed) {
		t.Errorf("namespace still served: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); !errors.Is(err, unix.ENOENT) {
		t.Errorf("stat %s after purge: %v, want ENOENT", path, err)
	}
}

func TestBadInput(t *testing.T) {
	ns, _ := setup(t)
	if _, err := scenario.ClientCloses(ns, 0, unix.AF_INET); err == nil {
		t.Error("ClientCloses(n=0) succeeded")
	}
	if _, err := scenario.ServerCloses(ns, 1, unix.AF_UNIX); err == nil {
		t.Error("ServerCloses(AF_UNIX) succeeded")
	}
	if _, err := scenario.Overflow(ns, -1, 2); err == nil {
		t.Error("Overflow(limit=-1) succeeded")
	}
	if _, err := scenario.TwReuse(ns, 0, 2); err == nil {
		t.Error("TwReuse(ports=0) succeeded")
	}
	if _, err := scenario.FinWait2(ns, 1500*time.Millisecond); err == nil {
		t.Error("FinWait2(1.5s) succeeded")
	}
	if _, err := scenario.Linger0(ns, 100000); err == nil {
		t.Error("Linger0(100000) succeeded")
	}
}
