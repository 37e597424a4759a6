package model

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/settings"
)

func findingIDs(fs []Finding) string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID+"/"+f.Severity)
	}
	return strings.Join(ids, ",")
}

func hostSettings(mod func(*settings.Settings)) settings.Settings {
	s := settings.Settings{Netns: nsA, TwReuse: 2, MaxTwBuckets: 131072, PortLow: 32768, PortHigh: 60999, FinTimeoutS: 60, Timestamps: 1}
	if mod != nil {
		mod(&s)
	}
	return s
}

// conns makes n connections to srvAddr at perSec a second from 1 s on,
// each closed first by the server or the client; every TIME_WAIT socket
// stays open.
func conns(n, perSec int, serverFirst bool) []event.Event {
	var g gen
	g.evs = make([]event.Event, 0, 11*n)
	for i := 0; i < n; i++ {
		g.t = 1e9 + uint64(i)*uint64(1e9/perSec)
		cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(40000+i))
		c, s, tw := uint64(10*i+1), uint64(10*i+2), uint64(0x100000+i)
		g.open(c, s, cli)
		if serverFirst {
			g.closeFirst(s, srvAddr, cli, serverPid, c, clientPid, tw)
		} else {
			g.closeFirst(c, cli, srvAddr, clientPid, s, serverPid, tw)
		}
	}
	return g.evs
}

// aborts makes n connections the client ends with SO_LINGER 0: both
// sockets go from ESTABLISHED to CLOSE, the server's because of the RST
// it received.
func aborts(n int) []event.Event {
	var g gen
	for i := 0; i < n; i++ {
		cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(40000+i))
		c, s := uint64(10*i+1), uint64(10*i+2)
		g.open(c, s, cli)
		g.state(c, cli, srvAddr, event.Established, event.Close, 0)
		g.state(s, srvAddr, cli, event.Established, event.Close, 0)
		g.evs[len(g.evs)-1].Flags |= event.FlagRSTRx
	}
	return g.evs
}

// idleUntil adds an event that changes nothing but the model's clock.
func idleUntil(evs []event.Event, t uint64) []event.Event {
	return append(evs, event.Event{Kind: event.KindTWSubstate, Time: t, Netns: nsA, NewState: event.TimeWait, Lifetime: -1})
}

func TestFindings(t *testing.T) {
	recycle := func(v int) func(*settings.Settings) {
		return func(s *settings.Settings) { s.Recycle = &v }
	}
	tests := []struct {
		name     string
		evs      []event.Event
		settings []settings.Settings
		want     string
		evidence []string // phrases the first finding's evidence must hold
		absent   []string // phrases no evidence may hold
		title    string   // a phrase of the first finding's title
	}{{
		name: "SO_LINGER 0 to dodge TIME_WAIT",
		evs:  aborts(30), want: "linger_zero/warning",
		evidence: []string{"30 of its 30 closed connections ended with an RST this host sent", "0 resets received"},
		title:    "client[100] ends connections with a reset",
	}, {
		name: "a few aborts are not worth a word",
		evs:  aborts(minAbortsForAdvice - 1), want: "",
	}, {
		name: "quiet: no evidence, no finding",
		evs:  conns(5, 100, false), settings: []settings.Settings{hostSettings(nil)}, want: "",
	}, {
		name: "HTTP/1.0 style server keeps TIME_WAIT",
		evs:  conns(150, 100, true), settings: []settings.Settings{hostSettings(nil)},
		want:     "server_closes_first/warning,tw_recycle/info",
		evidence: []string{"100% of 150 closes on this port were active"},
	}, {
		name: "client to one backend with a small port range and reuse off",
		evs:  idleUntil(conns(70, 100, false), 20e9),
		settings: []settings.Settings{hostSettings(func(s *settings.Settings) {
			s.PortLow, s.PortHigh, s.TwReuse = 40000, 40099, 0
		})},
		want: "ephemeral_ports/warning", evidence: []string{"100 ports / 60 s = 1.67/s", "tcp_tw_reuse cannot apply: tcp_tw_reuse is off"},
		absent: []string{"grows", "TIME_WAIT holds"}, // nothing grows at 20 s, no new connections
	}, {
		name: "reuse cannot apply without timestamps",
		evs:  conns(90, 100, false),
		settings: []settings.Settings{hostSettings(func(s *settings.Settings) {
			s.PortLow, s.PortHigh, s.TwReuse, s.Timestamps = 40000, 40099, 1, 0
		})},
		want: "ephemeral_ports/critical", evidence: []string{"tcp_tw_reuse cannot apply"},
	}, {
		name: "more ports held than the range",
		evs:  conns(150, 100, false),
		settings: []settings.Settings{hostSettings(func(s *settings.Settings) {
			s.PortLow, s.PortHigh = 40000, 40099
		})},
		want: "ephemeral_ports/critical,tw_recycle/info", evidence: []string{"held: 150, the whole range of 100"},
		title: "are 150% used",
	}, {
		// 5000 connections in 10 s, 500.1/s: TIME_WAIT levels off at
		// 30006 ports, more than the 28232 of the range; from the 5000
		// held now that takes 60 s × 23232 / 25006 = 55.7 s
		name: "500 connections/s run out of ports in under a minute",
		evs:  conns(5000, 500, false), settings: []settings.Settings{hostSettings(nil)},
		want: "ephemeral_ports/critical,tw_recycle/info",
		evidence: []string{
			"5000 of 28232 local ports held towards 10.0.0.2:80 from 10.0.0.1 (5000 in TIME_WAIT)",
			"500.1 new connections/s and 500.1 new TIME_WAIT sockets/s towards it over the last 10 s",
			"the ports held level off at about 30006 of 28232",
			"28232 reached in ~56 s",
			"tcp_tw_reuse cannot apply: tcp_tw_reuse is loopback only",
		},
		title: "are 18% used and run out in ~56 s at the current rate",
	}, {
		// 420/s level off at 25206 of 28232 ports: never more than the
		// range, so no forecast (the linear one said "in ~57 s"), but
		// most of it
		name: "420 connections/s hold most of the range",
		evs:  conns(4200, 420, false), settings: []settings.Settings{hostSettings(nil)},
		want: "ephemeral_ports/warning,tw_recycle/info",
		evidence: []string{
			"at 420.1 TIME_WAIT sockets/s the ports held level off at about 25206 of 28232",
			"tcp_tw_reuse cannot apply",
		},
		absent: []string{"reached in"},
		title:  "Ephemeral ports towards 10.0.0.2:80 are 15% used, heading for 89% at the current rate",
	}, {
		// with reuse, the TIME_WAIT ports can be taken over and nothing
		// else is held: nothing to say
		name: "420 connections/s with tcp_tw_reuse: nothing held outside TIME_WAIT",
		evs:  conns(4200, 420, false), settings: []settings.Settings{hostSettings(func(s *settings.Settings) { s.TwReuse = 1 })},
		want: "tw_recycle/info",
	}, {
		// 1000 ports held after 10 s at 100/s: the rate levels off at
		// 6006 of 28232 (21%), so the range never runs out (the linear
		// forecast said ~272 s)
		name: "a rate whose steady state is a fifth of the range",
		evs:  conns(1000, 100, false), settings: []settings.Settings{hostSettings(nil)},
		want: "tw_recycle/info",
	}, {
		name: "tcp_tw_recycle on",
		evs:  conns(5, 100, false), settings: []settings.Settings{hostSettings(recycle(1))},
		want: "tw_recycle/warning", evidence: []string{"net.ipv4.tcp_tw_recycle = 1 in netns 7", "5 TIME_WAIT sockets created in netns 7"},
	}, {
		name: "tcp_tw_recycle present and off: nothing to say",
		evs:  conns(150, 100, true), settings: []settings.Settings{hostSettings(recycle(0))},
		want: "server_closes_first/warning",
	}, {
		name: "tcp_tw_recycle absent, busy namespace",
		evs:  conns(120, 100, true), settings: []settings.Settings{hostSettings(nil)},
		want: "server_closes_first/warning,tw_recycle/info",
	}, {
		name: "tcp_tw_recycle absent, too few TIME_WAIT sockets for a word",
		evs:  conns(99, 100, true), settings: []settings.Settings{hostSettings(nil)},
		want: "",
	}, {
		// findings come in netns order, whatever the order of the settings
		name: "tcp_tw_recycle in two namespaces",
		evs:  conns(120, 100, true),
		settings: []settings.Settings{
			hostSettings(nil),
			hostSettings(func(s *settings.Settings) { s.Netns = 3; recycle(1)(s) }),
		},
		want: "server_closes_first/warning,tw_recycle/warning,tw_recycle/info",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{})
			for _, st := range tc.settings {
				m.SetSettings(st)
			}
			for i := range tc.evs {
				m.Apply(&tc.evs[i])
			}
			s := m.Snapshot()
			checkModel(t, m)
			if got := findingIDs(s.Findings); got != tc.want {
				t.Fatalf("findings %q, want %q: %+v", got, tc.want, s.Findings)
			}
			for _, f := range s.Findings {
				if len(f.Evidence) == 0 {
					t.Errorf("finding %s without evidence", f.ID)
				}
				for _, a := range tc.absent {
					if ev := strings.Join(f.Evidence, "|"); strings.Contains(ev, a) {
						t.Errorf("evidence %q holds %q", ev, a)
					}
				}
			}
			if tc.title != "" && !strings.Contains(s.Findings[0].Title, tc.title) {
				t.Errorf("title %q lacks %q", s.Findings[0].Title, tc.title)
			}
			for _, want := range tc.evidence {
				if ev := strings.Join(s.Findings[0].Evidence, "|"); !strings.Contains(ev, want) {
					t.Errorf("evidence %q lacks %q", ev, want)
				}
			}
			// the same model gives the same findings every time
			for i := 0; i < 5; i++ {
				if again := m.Snapshot().Findings; !reflect.DeepEqual(again, s.Findings) {
					t.Fatalf("findings changed between snapshots:\n%+v\n%+v", s.Findings, again)
				}
			}
		})
	}
}

// A periodic re-read of the settings replaces the earlier one: one row per
// namespace, the latest values, no finding counted twice.
func TestSettingsReread(t *testing.T) {
	m := New(Config{})
	on := 1
	m.SetSettings(hostSettings(func(s *settings.Settings) { s.Recycle = &on }))
	m.SetSettings(hostSettings(func(s *settings.Settings) { s.Recycle = &on }))
	evs := conns(5, 100, false)
	for i := range evs {
		m.Apply(&evs[i])
	}
	s := m.Snapshot()
	if len(s.Settings) != 1 || findingIDs(s.Findings) != "tw_recycle/warning" {
		t.Fatalf("settings %+v, findings %q; want one row, one tw_recycle", s.Settings, findingIDs(s.Findings))
	}
	on = 0 // the model keeps its own copy
	if s := m.Snapshot(); findingIDs(s.Findings) != "tw_recycle/warning" {
		t.Fatalf("findings %q after the caller changed its value", findingIDs(s.Findings))
	}
	// the re-read: recycle gone, a wider port range, then an unreadable
	// range that leaves usage unknown
	m.SetSettings(hostSettings(func(s *settings.Settings) { s.PortLow = 30000 }))
	s = m.Snapshot()
	if len(s.Settings) != 1 || s.Settings[0].Recycle != nil || s.Ports[0].RangeSize != 31000 || findingIDs(s.Findings) != "" {
		t.Fatalf("after re-read: settings %+v ports %+v findings %q", s.Settings, s.Ports, findingIDs(s.Findings))
	}
	m.SetSettings(hostSettings(func(s *settings.Settings) { s.PortLow, s.PortHigh = 5, 4 }))
	if p := m.Snapshot().Ports[0]; p.RangeSize != 0 || p.ExhaustionS != nil {
		t.Fatalf("range kept after an invalid re-read: %+v", p)
	}
}

func TestOverflowAndFinTimeoutFindings(t *testing.T) {
	var g gen
	g.tw(event.KindTWCreate, 0xa, cliAddr, srvAddr, 0, -1)
	g.tw(event.KindTWExpire, 0xa, cliAddr, srvAddr, event.CauseExpired, 60_500e6)
	g.evs = append(g.evs, event.Event{Kind: event.KindTWOverflow, Time: g.next(), Netns: nsA, Aux: 2, Aux2: 2, Lifetime: -1})
	m := New(Config{})
	m.SetSettings(hostSettings(func(s *settings.Settings) { s.FinTimeoutS = 15 }))
	for i := range g.evs {
		m.Apply(&g.evs[i])
	}
	s := m.Snapshot()
	checkModel(t, m)
	if got := findingIDs(s.Findings); got != "timewait_overflow/warning,fin_timeout_myth/info" {
		t.Fatalf("findings %q", got)
	}
	if ev := strings.Join(s.Findings[1].Evidence, "|"); !strings.Contains(ev, "tcp_fin_timeout = 15 s") || !strings.Contains(ev, "median TIME_WAIT lifetime 60.5 s") {
		t.Fatalf("evidence %q", ev)
	}
	// the advisor sees the namespace's bucket limit from the overflow record
	if ev := strings.Join(s.Findings[0].Evidence, "|"); !strings.Contains(ev, "tcp_max_tw_buckets is 2") {
		t.Fatalf("overflow evidence %q lacks the limit", ev)
	}
}

// Resets are split by who sent the RST; a connect() that never connected
// is not a closed connection.
func TestResetsAndFailedConnects(t *testing.T) {
	evs := aborts(3)
	var g gen
	g.t = 1e12
	g.state(99, netip.AddrPortFrom(cliAddr.Addr(), 0), srvAddr, event.Close, event.SynSent, clientPid)
	g.state(99, netip.AddrPortFrom(cliAddr.Addr(), 0), srvAddr, event.SynSent, event.Close, 0) // EADDRNOTAVAIL, refused
	evs = append(evs, g.evs...)
	s := run(evs)
	r := s.Report(Meta{})
	if c := r.Closes; c.Reset != 6 || c.ResetReceived != 3 || c.Active+c.Passive+c.Simultaneous != 0 {
		t.Errorf("closes %+v, want 6 resets of which 3 received", c)
	}
	for _, row := range r.TopClosers {
		if row.By == "process" && (row.Reset != 3 || row.ResetReceived != 0 || row.Pid != clientPid || row.Comm != "client") {
			t.Errorf("process row %+v, want the client's 3 resets sent", row)
		}
		if row.By == "port" && (row.Reset != 3 || row.ResetReceived != 3 || row.Port != srvAddr.Port() || row.Netns != nsA) {
			t.Errorf("port row %+v, want the server's 3 resets received", row)
		}
	}
}

// Reuse is reported as a share of connect() calls, with the age of the
// TIME_WAIT sockets taken over.
func TestReuseShareAndAge(t *testing.T) {
	evs := conns(4, 100, false) // 4 connect() calls
	reuse := func(ptr uint64, age int64) event.Event {
		return event.Event{Kind: event.KindTWReuse, Time: 5e9, Ptr: ptr, Netns: nsA, Family: event.AFInet,
			Src: cliAddr, Dst: srvAddr, NewState: event.TimeWait, Lifetime: age}
	}
	evs = append(evs, reuse(0x100000, 1500e6))
	r := run(evs).Report(Meta{})
	if got := r.Reuse; got.ConnectReuse != 1 || got.ConnectShare != 0.25 || got.AgeMS.Count != 1 ||
		got.AgeMS.P50 < 1485 || got.AgeMS.P50 > 1515 {
		t.Errorf("reuse %+v, want 1 of 4 connects (0.25), age about 1500 ms", got)
	}
}
