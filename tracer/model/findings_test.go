package model

import (
	"net/netip"
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

func TestFindings(t *testing.T) {
	conns := func(n int, serverFirst bool) []event.Event {
		var g gen
		for i := 0; i < n; i++ {
			g.t = 1e9 + uint64(i)*10e6
			cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(40000+i))
			c, s, tw := uint64(10*i+1), uint64(10*i+2), uint64(0x1000+i)
			g.open(c, s, cli)
			if serverFirst {
				g.closeFirst(s, srvAddr, cli, serverPid, c, clientPid, tw)
			} else {
				g.closeFirst(c, cli, srvAddr, clientPid, s, serverPid, tw)
			}
		}
		return g.evs
	}
	tests := []struct {
		name     string
		evs      []event.Event
		settings settings.Settings
		want     string
		evidence string // a phrase one finding's evidence must hold
	}{{
		name: "quiet: no evidence, no finding",
		evs:  conns(5, false), settings: hostSettings(nil), want: "",
	}, {
		name: "HTTP/1.0 style server keeps TIME_WAIT",
		evs:  conns(150, true), settings: hostSettings(nil),
		want: "server_closes_first/warning", evidence: "100% of 150 closes on this port were active",
	}, {
		name: "client to one backend with a small port range and reuse off",
		evs:  conns(70, false),
		settings: hostSettings(func(s *settings.Settings) {
			s.PortLow, s.PortHigh, s.TwReuse = 40000, 40099, 0
		}),
		want: "ephemeral_ports/warning", evidence: "100 ports / 60 s = 1.67/s",
	}, {
		name: "reuse cannot apply without timestamps",
		evs:  conns(90, false),
		settings: hostSettings(func(s *settings.Settings) {
			s.PortLow, s.PortHigh, s.TwReuse, s.Timestamps = 40000, 40099, 1, 0
		}),
		want: "ephemeral_ports/critical", evidence: "tcp_tw_reuse cannot apply",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{})
			m.SetSettings(tc.settings)
			for i := range tc.evs {
				m.Apply(&tc.evs[i])
			}
			s := m.Snapshot()
			checkInvariants(t, s)
			if got := findingIDs(s.Findings); got != tc.want {
				t.Fatalf("findings %q, want %q: %+v", got, tc.want, s.Findings)
			}
			if tc.evidence != "" && !strings.Contains(strings.Join(s.Findings[0].Evidence, "|"), tc.evidence) {
				t.Fatalf("evidence %q lacks %q", s.Findings[0].Evidence, tc.evidence)
			}
		})
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
	if got := findingIDs(s.Findings); got != "timewait_overflow/warning,fin_timeout_myth/info" {
		t.Fatalf("findings %q", got)
	}
	if ev := strings.Join(s.Findings[1].Evidence, "|"); !strings.Contains(ev, "tcp_fin_timeout = 15 s") || !strings.Contains(ev, "median TIME_WAIT lifetime 60.5 s") {
		t.Fatalf("evidence %q", ev)
	}
}
