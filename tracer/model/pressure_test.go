package model

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/settings"
)

// Port pressure and the findings on it, as an operator who starts twtop
// when the ports are already gone must be able to trust them.

// existingTW is a TIME_WAIT socket the first scan found: it predates
// tracing (event.FlagExisting), its creation time is unknown.
func (g *gen) existingTW(ptr uint64, src, dst netip.AddrPort) {
	g.tw(event.KindTWCreate, ptr, src, dst, 0, -1)
	g.evs[len(g.evs)-1].Flags |= event.FlagExisting
}

// clientTo is a client connection to dst, a remote server (no local
// server socket), that the client closes first: its TIME_WAIT socket tw
// holds cli's port.
func (g *gen) clientTo(ptr uint64, cli, dst netip.AddrPort, tw uint64) {
	g.state(ptr, netip.AddrPortFrom(cli.Addr(), 0), dst, event.Close, event.SynSent, clientPid)
	g.state(ptr, cli, dst, event.SynSent, event.Established, 0)
	g.state(ptr, cli, dst, event.Established, event.FinWait1, clientPid)
	g.state(ptr, cli, dst, event.FinWait1, event.FinWait2, 0)
	g.tw(event.KindTWCreate, tw, cli, dst, 0, -1)
	g.state(ptr, cli, dst, event.FinWait2, event.Close, 0)
}

// connectErr is a connect() from src's address to dst that found no free
// local port: SYN_SENT and back to CLOSE inside the call, then the error.
func (g *gen) connectErr(ptr uint64, src netip.Addr, dst netip.AddrPort) {
	from := netip.AddrPortFrom(src, 0)
	g.state(ptr, from, dst, event.Close, event.SynSent, clientPid)
	g.state(ptr, from, dst, event.SynSent, event.Close, clientPid)
	e := event.Event{Kind: event.KindConnectErr, Time: g.next(), Netns: nsA, Family: event.AFInet,
		Src: from, Dst: dst, Aux: 99, Flags: event.FlagOwner, Pid: clientPid, Lifetime: -1}
	copy(e.Comm[:], comms[clientPid])
	g.evs = append(g.evs, e)
}

// applyAll applies a stream and checks the model at its end.
func applyAll(t *testing.T, m *Model, evs []event.Event) {
	t.Helper()
	for i := range evs {
		m.Apply(&evs[i])
	}
	checkModel(t, m)
}

func cliPort(p int) netip.AddrPort { return netip.AddrPortFrom(cliAddr.Addr(), uint16(p)) }

// portRange101 is the namespace: 101 ephemeral ports, no reuse.
func portRange101(s *settings.Settings) { s.PortLow, s.PortHigh, s.TwReuse = 40000, 40100, 0 }

func portsTo(s *Snapshot, dst string) (PortPressure, bool) {
	for _, p := range s.Ports {
		if p.Dst == dst {
			return p, true
		}
	}
	return PortPressure{}, false
}

// TIME_WAIT sockets that existed before tracing hold their ports like
// those created since: 55 towards one destination in a 101-port range were
// reported as "ports: []". Which end of a socket without history is the
// client is read from the ports: a local one in ip_local_port_range and a
// remote one outside it.
func TestExistingTimewaitHoldsPorts(t *testing.T) {
	var g gen
	g.t = 1e9
	for i := 0; i < 55; i++ {
		g.existingTW(uint64(0x1000+i), cliPort(40000+i), srvAddr)
	}
	// the server's side of 7 connections from the client's range: the
	// local port is the service, the remote one ephemeral
	for i := 0; i < 7; i++ {
		g.existingTW(uint64(0x2000+i), srvAddr, cliPort(40060+i))
	}
	// neither port in the range: which end it is is not known
	g.existingTW(0x3000, cliPort(5000), netip.MustParseAddrPort("10.0.0.9:6000"))
	// a client TIME_WAIT socket a later scan found (its creation record
	// was lost): a creation, with no closing socket to tell its side
	g.t = 2e9
	g.tw(event.KindTWCreate, 0x4000, cliPort(40070), srvAddr, 0, -1)
	g.evs[len(g.evs)-1].Flags |= event.FlagInferred | event.FlagReconciled
	// two of the existing ones expire
	g.tw(event.KindTWExpire, 0x1000, cliPort(40000), srvAddr, event.CauseExpired, -1)
	g.tw(event.KindTWExpire, 0x1001, cliPort(40001), srvAddr, event.CauseExpired, -1)

	m := New(Config{})
	m.SetSettings(hostSettings(portRange101))
	applyChecked(t, m, g.evs)
	s := m.Snapshot()
	if s.OpenNow != 62 || s.Counters.Existing != 63 || s.Counters.Created != 1 {
		t.Fatalf("open %d, existing %d, created %d; want 62, 63, 1", s.OpenNow, s.Counters.Existing, s.Counters.Created)
	}
	if len(s.Ports) != 1 {
		t.Fatalf("ports %+v, want one destination", s.Ports)
	}
	p := s.Ports[0]
	// 53 existing + 1 reconciled; the reconciled one is the only
	// creation, one in the second since it came (1.000 s): 1/s, which
	// holds 60 once TIME_WAIT levels off
	if p.Dst != "10.0.0.2:80" || p.Src != "10.0.0.1" || p.TimeWait != 54 || p.Held != 54 || p.Usage != 0.535 ||
		p.TimewaitPerS != 1 || p.RateWindowS != 1 || p.SteadyHeld != 60 || p.Connections != 0 || p.ExhaustionS != nil {
		t.Fatalf("ports row %+v", p)
	}
	if got := findingIDs(s.Findings); got != "ephemeral_ports/warning" {
		t.Fatalf("findings %q", got)
	}
	if f := s.Findings[0]; f.Title != "Ephemeral ports towards 10.0.0.2:80 are 54% used" ||
		!strings.Contains(strings.Join(f.Evidence, "|"), "54 of 101 local ports held towards 10.0.0.2:80 from 10.0.0.1 (54 in TIME_WAIT)") {
		t.Fatalf("finding %+v", f)
	}
}

// The second case: 56 TIME_WAIT sockets existed, then 5 new
// connections a second; twtop said "held 36, runs out in ~15 s" while ss
// showed 92 of 101 held.
func TestExistingTimewaitAndNewConnections(t *testing.T) {
	var g gen
	g.t = 1e9
	for i := 0; i < 56; i++ {
		g.existingTW(uint64(0x1000+i), cliPort(40000+i), srvAddr)
	}
	for i := 0; i < 20; i++ {
		g.t = 1e9 + uint64(i)*200e6
		g.open(uint64(10*i+1), uint64(10*i+2), cliPort(40056+i))
		g.closeFirst(uint64(10*i+1), cliPort(40056+i), srvAddr, clientPid, uint64(10*i+2), serverPid, uint64(0x5000+i))
	}
	m := New(Config{})
	m.SetSettings(hostSettings(portRange101))
	applyChecked(t, m, g.evs)
	s := m.Snapshot()
	p := s.Ports[0]
	// 76 held of 101; 20 connections from 1.000003 s to 4.800011 s:
	// 5.263/s, whose TIME_WAIT sockets level off at 316 > 101 ports; from
	// 76 the range fills in 60 s × (101 - 76) / (316 - 76) = 6.25 s
	if p.Held != 76 || p.TimeWait != 76 || p.Usage != 0.752 || p.NewPerSec != 5.263 || p.TimewaitPerS != 5.263 ||
		p.RateWindowS != 3.8 || p.SteadyHeld != 316 || p.ExhaustionS == nil || *p.ExhaustionS != 6.25 {
		t.Fatalf("ports row %+v (exhaustion %s)", p, fmtPtr(p.ExhaustionS))
	}
	if s.OpenNow != 76 {
		t.Fatalf("open %d, want 76: the header and the ports agree", s.OpenNow)
	}
	if f := s.Findings[0]; f.Severity != "critical" || f.Title != "Ephemeral ports towards 10.0.0.2:80 are 75% used and run out in ~6.3 s at the current rate" {
		t.Fatalf("finding %+v", f)
	}
}

// new_per_s is over the time the window actually covers: since the first
// connection when that is less than 10 s ago, so a short trace or a load
// that stopped is not divided by 10 s.
func TestRateOverTheSpanCovered(t *testing.T) {
	// active is active_per_s: the pace between the window's first and
	// last connection (its ESTABLISHED, 3.995008 s: 600 in 2.995005 s),
	// which stays the paced rate after the load stopped
	tests := []struct {
		name   string
		evs    []event.Event
		rate   float64
		window float64
		active float64
	}{{
		// 600 connections paced at 200/s: from 1.000003 s to 3.995011 s
		name: "a load paced at 200/s for 3 s, at its end",
		evs:  conns(600, 200, false), rate: 200.333, window: 2.995, active: 200.334,
	}, {
		// the same, then 2 s without connections: 600 in 4.999997 s
		name: "the same load, 2 s after it stopped",
		evs:  idleUntil(conns(600, 200, false), 6e9), rate: 120, window: 5, active: 200.334,
	}, {
		// 30 s at 100/s: the last 10 s window, seconds 21 to now
		// (30.990011 s), holds 1000 connections
		name: "a long steady load",
		evs:  conns(3000, 100, false), rate: 100.1, window: 9.99, active: 100.1,
	}, {
		// a destination that appeared 3.5 s into the trace: its own 150
		// connections over its 1.49 s, not over the 4.99 s of the trace
		name: "a destination that appeared late",
		evs:  append(idleUntil(nil, 1e9), shift(conns(150, 100, false), 3.5e9)...), rate: 100.671, window: 1.49, active: 100.671,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{})
			m.SetSettings(hostSettings(nil))
			applyAll(t, m, tc.evs)
			p := m.Snapshot().Ports[0]
			if p.NewPerSec != tc.rate || p.RateWindowS != tc.window || p.TimewaitPerS != tc.rate {
				t.Fatalf("new_per_s %v, timewait_per_s %v over %v s; want %v over %v s", p.NewPerSec, p.TimewaitPerS, p.RateWindowS, tc.rate, tc.window)
			}
			if p.ActivePerS != tc.active {
				t.Fatalf("active_per_s %v, want %v", p.ActivePerS, tc.active)
			}
		})
	}
}

// shift moves a stream later by d ns.
func shift(evs []event.Event, d uint64) []event.Event {
	for i := range evs {
		evs[i].Time += d
	}
	return evs
}

// EADDRNOTAVAIL counts against the destination connect() was for, not
// every one: clients to :9000 (72 failed) and :9001 (none) both got "216
// connect() calls failed".
func TestConnectErrorsPerDestination(t *testing.T) {
	d9000 := netip.MustParseAddrPort("10.0.0.2:9000")
	d9001 := netip.MustParseAddrPort("10.0.0.2:9001")
	setup := func(s *settings.Settings) { s.PortLow, s.PortHigh, s.TwReuse = 40000, 40099, 0 }

	t.Run("one destination exhausted", func(t *testing.T) {
		var g gen
		g.t = 1e9
		for i := 0; i < 100; i++ {
			g.clientTo(uint64(10*i+1), cliPort(40000+i), d9000, uint64(0x1000+i))
		}
		for i := 0; i < 10; i++ { // the same ports, another destination, one every 2 s
			g.t = 1e9 + uint64(i)*2e9
			g.clientTo(uint64(10*i+2), cliPort(40000+i), d9001, uint64(0x2000+i))
		}
		for i := 0; i < 72; i++ {
			g.connectErr(uint64(5000+i), cliAddr.Addr(), d9000)
		}
		m := New(Config{})
		m.SetSettings(hostSettings(setup))
		applyChecked(t, m, g.evs)
		s := m.Snapshot()
		p0, _ := portsTo(s, "10.0.0.2:9000")
		p1, _ := portsTo(s, "10.0.0.2:9001")
		if p0.ConnectEAddrNotAvail != 72 || p0.Held != 100 || p0.Usage != 1 || p0.ExhaustionS == nil || *p0.ExhaustionS != 0 {
			t.Errorf(":9000 %+v", p0)
		}
		if p1.ConnectEAddrNotAvail != 0 || p1.Held != 10 || p1.Usage != 0.1 {
			t.Errorf(":9001 %+v", p1)
		}
		if s.Counters.ConnectAddrNotAvail != 72 {
			t.Errorf("%d EADDRNOTAVAIL in all, want 72", s.Counters.ConnectAddrNotAvail)
		}
		if got := findingIDs(s.Findings); got != "ephemeral_ports/critical,tw_recycle/info" {
			t.Fatalf("findings %q, want one on ports, for :9000", got)
		}
		ev := strings.Join(s.Findings[0].Evidence, "|")
		if !strings.Contains(s.Findings[0].Title, "towards 10.0.0.2:9000 are 100% used") ||
			!strings.Contains(ev, "72 connect() calls towards 10.0.0.2:9000 failed with EADDRNOTAVAIL") {
			t.Fatalf("finding %+v", s.Findings[0])
		}
	})

	// connect() fails while twtop sees only 9 of the ports held (the
	// others by sockets it never saw): the kernel's word wins, the
	// destination reads 100% used until a port towards it is let go
	t.Run("exhausted with few ports seen", func(t *testing.T) {
		var g gen
		g.t = 1e9
		for i := 0; i < 9; i++ { // one a second: the rate holds 68 ports, not the range
			g.t = 1e9 + uint64(i)*1e9
			g.clientTo(uint64(10*i+1), cliPort(40000+i), d9000, uint64(0x1000+i))
		}
		for i := 0; i < 3; i++ {
			g.connectErr(uint64(5000+i), cliAddr.Addr(), d9000)
		}
		m := New(Config{})
		m.SetSettings(hostSettings(setup))
		applyChecked(t, m, g.evs)
		p := m.Snapshot().Ports[0]
		if p.Held != 9 || p.Usage != 1 || p.ExhaustionS == nil || *p.ExhaustionS != 0 || p.ConnectEAddrNotAvail != 3 {
			t.Fatalf("while connect() fails: %+v (exhaustion %s)", p, fmtPtr(p.ExhaustionS))
		}
		g.evs = g.evs[:0]
		g.tw(event.KindTWExpire, 0x1000, cliPort(40000), d9000, event.CauseExpired, 60e9)
		applyChecked(t, m, g.evs)
		if p := m.Snapshot().Ports[0]; p.Held != 8 || p.Usage != 0.08 || p.ExhaustionS != nil {
			t.Fatalf("after a port was let go: %+v (exhaustion %s)", p, fmtPtr(p.ExhaustionS))
		}
	})
}

// reuseLoop makes n connections from 127.0.0.1 to 127.0.0.1:8080 at
// perSec a second from 1 s on, each closed first by the client; from the
// 101st on, each connect() takes over the TIME_WAIT tuple of the
// connection 100 before it, so 100 ports stay held.
func reuseLoop(n, perSec int) []event.Event {
	lo := netip.MustParseAddr("127.0.0.1")
	dst := netip.MustParseAddrPort("127.0.0.1:8080")
	var g gen
	for i := 0; i < n; i++ {
		g.t = 1e9 + uint64(i)*uint64(1e9/perSec)
		cli := netip.AddrPortFrom(lo, uint16(40000+i%100))
		ptr := uint64(10*i + 1)
		g.state(ptr, netip.AddrPortFrom(lo, 0), dst, event.Close, event.SynSent, clientPid)
		if i >= 100 {
			old := uint64(0x10000 + i - 100)
			g.tw(event.KindTWReuse, old, cli, dst, 0, 1560e6)
			g.tw(event.KindTWKill, old, cli, dst, event.CauseConnectReuse, 1560e6)
		}
		g.state(ptr, cli, dst, event.SynSent, event.Established, 0)
		g.state(ptr, cli, dst, event.Established, event.FinWait1, clientPid)
		g.state(ptr, cli, dst, event.FinWait1, event.FinWait2, 0)
		g.tw(event.KindTWCreate, uint64(0x10000+i), cli, dst, 0, -1)
		g.state(ptr, cli, dst, event.FinWait2, event.Close, 0)
	}
	for i := range g.evs {
		g.evs[i].Src, g.evs[i].Dst = netip.AddrPortFrom(lo, g.evs[i].Src.Port()), netip.AddrPortFrom(lo, g.evs[i].Dst.Port())
	}
	return g.evs
}

// "keeps 384% of the ephemeral ports in TIME_WAIT" when 10% were held and
// loopback reuse was working: findings are worded on what is held, and
// needed_at_rate is only a projection, left out where reuse is at work.
func TestFindingsOnWhatIsHeld(t *testing.T) {
	loopback := func(high int) settings.Settings {
		return hostSettings(func(s *settings.Settings) { s.PortLow, s.PortHigh = 40000, high }) // tcp_tw_reuse 2
	}
	t.Run("reuse at work, 10% held", func(t *testing.T) {
		m := New(Config{})
		m.SetSettings(loopback(40999))
		applyAll(t, m, reuseLoop(640, 64))
		s := m.Snapshot()
		p := s.Ports[0]
		// 640 connections from 1.000001 s to 10.984376 s (9.984375 s):
		// 64.1/s, which would be 3846 ports (385%) without reuse
		if p.Held != 100 || p.Usage != 0.1 || p.ConnectReuse != 540 || p.NeededAtRate != 3846 || p.SteadyHeld != 0 ||
			p.ExhaustionS != nil || fmtPtr(p.ReuseApplies) != "true" {
			t.Fatalf("ports row %+v", p)
		}
		if got := findingIDs(s.Findings); got != "tw_recycle/info" {
			t.Fatalf("findings %q, want none on ports", got)
		}
	})
	t.Run("reuse at work, 67% held", func(t *testing.T) {
		m := New(Config{})
		m.SetSettings(loopback(40149))
		applyAll(t, m, reuseLoop(640, 64))
		s := m.Snapshot()
		if got := findingIDs(s.Findings); got != "ephemeral_ports/warning,tw_recycle/info" {
			t.Fatalf("findings %q", got)
		}
		f := s.Findings[0]
		ev := strings.Join(f.Evidence, "|")
		if f.Title != "Ephemeral ports towards 127.0.0.1:8080 are 67% used" ||
			!strings.Contains(ev, "540 TIME_WAIT tuples towards it taken over by connect()") ||
			!strings.Contains(ev, "tcp_tw_reuse can take over the 100 in TIME_WAIT; 0 held outside TIME_WAIT") {
			t.Fatalf("finding %+v", f)
		}
		if strings.Contains(ev, "needed_at_rate") || strings.Contains(ev, "3846") {
			t.Fatalf("evidence projects the rate while reuse works: %q", ev)
		}
	})
	t.Run("no reuse: the projection is named as one", func(t *testing.T) {
		m := New(Config{})
		m.SetSettings(hostSettings(func(s *settings.Settings) { s.PortLow, s.PortHigh, s.TwReuse = 40000, 40099, 0 }))
		// 70 connections in 0.69 s: 70/s over a second, which would hold
		// 4200 ports; from 70 held the 100 are reached in
		// 60 s × 30 / 4130 = 0.44 s
		applyChecked(t, m, conns(70, 100, false))
		f := m.Snapshot().Findings[0]
		if ev := strings.Join(f.Evidence, "|"); f.Title != "Ephemeral ports towards 10.0.0.2:80 are 70% used and run out in ~0.4 s at the current rate" ||
			!strings.Contains(ev, "projection (needed_at_rate): if each of the 70.0 new connections/s left a TIME_WAIT socket here and none was reused, 60 s of TIME_WAIT would hold 4200 ports") {
			t.Fatalf("finding %+v", f)
		}
	})
}

// serverSession is a connection to srvAddr the server closes first,
// lasting d ns from its handshake to the server's FIN.
func (g *gen) serverSession(c, s uint64, cli netip.AddrPort, d uint64, tw uint64) {
	g.open(c, s, cli)
	g.t += d
	g.closeFirst(s, srvAddr, cli, serverPid, c, clientPid, tw)
}

// A service that closes first after many requests per connection has
// keep-alive on: the advice looks at how long its connections lasted
// (twtop cannot count requests) before it blames keep-alive, and names
// both readings.
func TestServerClosesFirstAdvice(t *testing.T) {
	tests := []struct {
		name     string
		dur      uint64
		evidence string
		advice   string
	}{{
		// nginx with keep-alive on closing every 1000th request
		name: "long connections", dur: 5e9,
		evidence: "the connections it closed lasted p50 about 4.8 s, p90 about 4.8 s from the handshake to its FIN (150 measured)",
		advice:   "its connections last long, which fits keep-alive on and ending them: raise its request limit or idle timeout",
	}, {
		name: "short connections", dur: 2e6,
		evidence: "the connections it closed lasted p50 about 2.0 ms, p90 about 2.0 ms from the handshake to its FIN (150 measured)",
		advice:   "its connections are short, which fits one request each",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var g gen
			for i := 0; i < 150; i++ {
				g.t = 1e9 + uint64(i)*1e8
				g.serverSession(uint64(10*i+1), uint64(10*i+2), cliPort(40000+i), tc.dur, uint64(0x1000+i))
			}
			m := New(Config{})
			applyChecked(t, m, g.evs)
			f := m.Snapshot().Findings[0]
			if f.ID != "server_closes_first" {
				t.Fatalf("findings %+v", m.Snapshot().Findings)
			}
			if ev := strings.Join(f.Evidence, "|"); !strings.Contains(ev, tc.evidence) {
				t.Errorf("evidence %q lacks %q", ev, tc.evidence)
			}
			for _, want := range []string{tc.advice, "twtop cannot count requests per connection",
				"Either keep-alive is off (or clients ask for Connection: close), or it is on and its request limit or idle timeout is low"} {
				if !strings.Contains(f.Advice, want) {
					t.Errorf("advice %q lacks %q", f.Advice, want)
				}
			}
		})
	}
	// connections accepted before tracing began: no duration to go by
	var g gen
	for i := 0; i < 120; i++ {
		cli := cliPort(40000 + i)
		s, c := uint64(10*i+2), uint64(10*i+1)
		g.state(s, srvAddr, cli, event.Established, event.FinWait1, serverPid)
		g.state(c, cli, srvAddr, event.Established, event.CloseWait, 0)
		g.state(s, srvAddr, cli, event.FinWait1, event.FinWait2, 0)
		g.tw(event.KindTWCreate, uint64(0x1000+i), srvAddr, cli, 0, -1)
		g.state(s, srvAddr, cli, event.FinWait2, event.Close, 0)
	}
	m := New(Config{})
	applyChecked(t, m, g.evs)
	f := m.Snapshot().Findings[0]
	if ev := strings.Join(f.Evidence, "|"); f.ID != "server_closes_first" || !strings.Contains(ev, "how long its connections lasted is not known") ||
		!strings.Contains(f.Advice, "or it is on and its request limit or idle timeout is low") {
		t.Fatalf("finding %+v", f)
	}
}

// A connection accepted before tracing began has no SYN_RECV to say it is
// the server's: its ports do (a local service port, a remote ephemeral
// one), so it makes no peer row keyed by the client's ephemeral port and
// holds no port towards it.
func TestAcceptedBeforeTracing(t *testing.T) {
	var g gen
	g.t = 1e9
	cli := cliPort(40000)
	// the server closes first; both sockets are first seen now
	g.state(2, srvAddr, cli, event.Established, event.FinWait1, serverPid)
	g.state(1, cli, srvAddr, event.Established, event.CloseWait, 0)
	g.state(1, cli, srvAddr, event.CloseWait, event.LastAck, clientPid)
	g.state(2, srvAddr, cli, event.FinWait1, event.FinWait2, 0)
	g.tw(event.KindTWCreate, 0xa, srvAddr, cli, 0, -1)
	g.state(2, srvAddr, cli, event.FinWait2, event.Close, 0)
	g.state(1, cli, srvAddr, event.LastAck, event.Close, 0)
	// neither port in the range: neither a service nor a peer row
	a, b := netip.MustParseAddrPort("10.0.0.1:5000"), netip.MustParseAddrPort("10.0.0.3:6000")
	g.state(3, a, b, event.Established, event.FinWait1, clientPid)
	g.state(3, a, b, event.FinWait1, event.FinWait2, 0)
	g.state(3, a, b, event.FinWait2, event.Close, 0)

	m := New(Config{})
	m.SetSettings(hostSettings(nil))
	// while the connection is open, the client's port is held towards
	// the server, and nothing towards the client
	applyChecked(t, m, g.evs[:2])
	if s := m.Snapshot(); len(s.Ports) != 1 || s.Ports[0].Dst != "10.0.0.2:80" || s.Ports[0].Held != 1 {
		t.Errorf("ports while open %+v, want the client's one port towards 10.0.0.2:80", s.Ports)
	}
	applyChecked(t, m, g.evs[2:])
	s := m.Snapshot()
	peers, ports := closers(s, ByPeer), closers(s, ByPort)
	if _, ok := peers["10.0.0.1:40000"]; ok || len(peers) != 1 || peers["10.0.0.2:80"].Closes[SidePassive] != 1 {
		t.Errorf("peer rows %+v, want only 10.0.0.2:80 (the client's passive close)", peers)
	}
	if len(ports) != 1 || ports["netns 7 :80"].Closes[SideActive] != 1 || ports["netns 7 :80"].TimewaitCreated != 1 {
		t.Errorf("port rows %+v, want netns 7 :80 with the server's active close", ports)
	}
	if len(s.Ports) != 0 {
		t.Errorf("ports %+v: the server's TIME_WAIT socket holds none, the client's port was let go", s.Ports)
	}
	if s.Counters.Closes != [5]uint64{SideActive: 2, SidePassive: 1} {
		t.Errorf("closes %v", s.Counters.Closes)
	}
}

// The text report has the ports table and the settings even when no
// finding fires (the README says it has both).
func TestTextReportPortsAndSettings(t *testing.T) {
	m := New(Config{})
	m.SetSettings(hostSettings(nil))
	evs := conns(5, 100, false)
	applyChecked(t, m, evs)
	s := m.Snapshot()
	if len(s.Findings) != 0 {
		t.Fatalf("findings %+v, want none", s.Findings)
	}
	var b bytes.Buffer
	if err := s.Report(Meta{Tier: "fentry"}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, want := range []string{
		"Settings:  netns 7: tcp_tw_reuse 2, tcp_timestamps 1, ip_local_port_range 32768-60999, tcp_max_tw_buckets 131072, tcp_fin_timeout 60 s\n",
		"\nPorts:     local ports held per destination",
		"DESTINATION              SOURCE            HELD     TW  USAGE    NEW/S     TW/S  OVER  STEADY EXHAUST EADDRNOTAVAIL  REUSED REUSE\n",
		"10.0.0.2:80              10.0.0.1             5      5     0%      5.0      5.0     1     300       -             0       0    no\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
	b.Reset()
	if err := New(Config{}).Snapshot().Report(Meta{}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if text := b.String(); !strings.Contains(text, "Settings:  not read for any namespace\n") ||
		!strings.Contains(text, "Ports:     no client connection or client TIME_WAIT socket seen\n") {
		t.Errorf("empty report:\n%s", text)
	}
}
