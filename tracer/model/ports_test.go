package model

import (
	"bytes"
	"encoding/json"
	"math"
	"net/netip"
	"testing"

	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/settings"
)

// The growth of the ports held towards one destination: held now minus
// held at the start of the 10 s window, over the window's length (at least
// a second).
func TestDestGrowth(t *testing.T) {
	type change struct {
		at    float64 // seconds of event time
		group portGroup
		delta int64
	}
	// steady: one more port in TIME_WAIT every 100 ms, from 0.05 s to
	// 19.95 s
	var steady []change
	for i := 1; i <= 200; i++ {
		steady = append(steady, change{float64(i)/10 - 0.05, heldTimewait, 1})
	}
	tests := []struct {
		name       string
		changes    []change
		now, first float64
		all, live  float64
	}{{
		name: "nothing held", now: 5, first: 1,
	}, {
		// the window began before the trace: it starts with the trace
		name:    "ten ports in the trace's first 1.5 s",
		changes: []change{{1.2, heldConnecting, 10}},
		now:     2.5, first: 1, all: 10 / 1.5, live: 10 / 1.5,
	}, {
		// a few ms of trace count as a second, not as 1000 ports/s
		name:    "a trace 10 ms old",
		changes: []change{{1.005, heldEstablished, 10}},
		now:     1.01, first: 1, all: 10, live: 10,
	}, {
		// at 20 s the window is seconds 11..20, which began with 110
		// held: (200 - 110) / 9 s
		name:    "steady growth over 20 s",
		changes: steady, now: 20, first: 0, all: 10, live: 0,
	}, {
		// at 25 s the window began at 16 s with 160 held: (200 - 160) / 9 s
		name:    "growth stopped 5 s ago",
		changes: steady, now: 25, first: 0, all: 40.0 / 9, live: 0,
	}, {
		// at 31 s the window began at 22 s, after the last change
		name:    "growth stopped 11 s ago",
		changes: steady, now: 31, first: 0, all: 0, live: 0,
	}, {
		name: "established ports closing",
		changes: []change{
			{1, heldEstablished, 100}, {12, heldEstablished, -30}, {13, heldClosing, 30}, {14, heldClosing, -30}, {14, heldTimewait, 30},
		},
		// window 11..20 began with 100 held, none in TIME_WAIT
		now: 20, first: 1, all: 0, live: -30.0 / 9,
	}, {
		// a gap longer than the ring: every second of it began with 5
		name:    "a gap of a minute between changes",
		changes: []change{{2, heldTimewait, 5}, {70.5, heldTimewait, -5}},
		now:     75, first: 1, all: -5.0 / 9, live: 0,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d dest
			for _, c := range tc.changes {
				d.change(c.group, c.delta, uint64(c.at*1e9))
			}
			all, live := d.growth(uint64(tc.now*1e9), uint64(tc.first*1e9))
			if math.Abs(all-tc.all) > 1e-9 || math.Abs(live-tc.live) > 1e-9 {
				t.Fatalf("growth %v (live %v), want %v (live %v)", all, live, tc.all, tc.live)
			}
		})
	}
}

// expireAll ends every TIME_WAIT socket of conns(n, ...) from start on,
// 1 ms apart, then lets time run to end.
func expireAll(evs []event.Event, n int, start, end uint64) []event.Event {
	g := gen{t: start, evs: evs}
	for i := 0; i < n; i++ {
		g.t += 1e6
		cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(40000+i))
		g.tw(event.KindTWExpire, uint64(0x100000+i), cli, srvAddr, event.CauseExpired, 60e9)
	}
	return idleUntil(g.evs, end)
}

// leftOpen makes n connections at perSec a second from 1 s on that stay
// established: ports held outside TIME_WAIT.
func leftOpen(n, perSec int) []event.Event {
	var g gen
	for i := 0; i < n; i++ {
		g.t = 1e9 + uint64(i)*uint64(1e9/perSec)
		g.open(uint64(10*i+1), uint64(10*i+2), netip.AddrPortFrom(cliAddr.Addr(), uint16(20000+i)))
	}
	return g.evs
}

// The forecast: TIME_WAIT sockets leave after 60 s, so at a steady rate
// the ports held level off at the ports held outside TIME_WAIT plus
// rate × 60 s (outside TIME_WAIT only, when tcp_tw_reuse applies); the
// range runs out only when that is more than the range, and then within a
// TIME_WAIT period.
func TestPortForecast(t *testing.T) {
	noReuse := hostSettings(nil) // reuse 2: loopback only, the backend is not
	reuse := hostSettings(func(s *settings.Settings) { s.TwReuse = 1 })
	tests := []struct {
		name       string
		evs        []event.Event
		settings   *settings.Settings
		portRange  int     // without settings
		growth     float64 // growth_per_s, within 0.5%
		needed     int64
		steady     int64
		window     float64 // rate_window_s
		exhaustion float64 // -1: none
		reuse      string  // "true", "false" or "" (unknown)
	}{{
		// 1000 connections from 1.000003 s to 10.990011 s: 100.1/s, which
		// holds 6006 ports once TIME_WAIT levels off, of 28232: never
		// runs out, although the ports held grow 100/s for now
		name: "TIME_WAIT piles up, reuse cannot apply",
		evs:  conns(1000, 100, false), settings: &noReuse,
		growth: 100.1, needed: 6006, steady: 6006, window: 9.99, exhaustion: -1, reuse: "false",
	}, {
		// the nginx figures: 56 new connections/s hold about
		// 3,360 of 28,232 ports; the linear forecast said "runs out in
		// ~8 min"
		name: "a rate whose steady state is an eighth of the range",
		evs:  conns(560, 56, false), settings: &noReuse,
		growth: 56.1, needed: 3366, steady: 3366, window: 9.982, exhaustion: -1, reuse: "false",
	}, {
		// 5000 connections in 9.998008 s: 500.1/s level off at 30006 >
		// 28232 ports; from 5000 held the range fills in
		// 60 s × (28232 - 5000) / (30006 - 5000) = 55.743 s
		name: "a rate whose steady state is more than the range",
		evs:  conns(5000, 500, false), settings: &noReuse,
		growth: 500.1, needed: 30006, steady: 30006, window: 9.998, exhaustion: 55.743, reuse: "false",
	}, {
		// connect() can take the TIME_WAIT ports over, and nothing else
		// is held: no forecast
		name: "TIME_WAIT piles up, reuse applies",
		evs:  conns(1000, 100, false), settings: &reuse,
		growth: 100.1, needed: 6006, steady: 0, window: 9.99, exhaustion: -1, reuse: "true",
	}, {
		// 500 established connections: the forecast takes the ports held
		// outside TIME_WAIT as they are (long connections ramping up
		// after the start of tracing look the same as a leak); the usage
		// findings speak when they fill half the range
		name: "connections left open, reuse applies",
		evs:  leftOpen(500, 50), settings: &reuse,
		growth: 50.1, needed: 3006, steady: 500, window: 9.98, exhaustion: -1, reuse: "true",
	}, {
		name: "more ports held than the range",
		evs:  conns(150, 100, false), portRange: 100,
		growth: 100.7, needed: 6040, steady: 6040, window: 1.49, exhaustion: 0,
	}, {
		name:   "range unknown",
		evs:    conns(150, 100, false),
		growth: 100.7, needed: 6040, steady: 6040, window: 1.49, exhaustion: -1,
	}, {
		// 1000 held at the start of second 11, none at 20 s: -1000 / 9 s;
		// no connection in the window, seconds 11 to 20
		name: "TIME_WAIT sockets expiring",
		evs:  expireAll(conns(1000, 100, false), 1000, 15e9, 20e9), settings: &noReuse,
		growth: -111.111, needed: 0, steady: 0, window: 9, exhaustion: -1, reuse: "false",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{})
			if tc.settings != nil {
				m.SetSettings(*tc.settings)
			}
			if tc.portRange > 0 {
				m.SetPortRange(nsA, tc.portRange)
			}
			for i := range tc.evs {
				m.Apply(&tc.evs[i])
			}
			checkModel(t, m)
			p := m.Snapshot().Ports[0]
			if math.Abs(p.GrowthPerS-tc.growth) > math.Abs(tc.growth)*0.005 || p.NeededAtRate != tc.needed ||
				p.SteadyHeld != tc.steady || p.RateWindowS != tc.window {
				t.Errorf("growth %v/s, needed %d, steady %d, window %v s; want %v/s, %d, %d, %v s",
					p.GrowthPerS, p.NeededAtRate, p.SteadyHeld, p.RateWindowS, tc.growth, tc.needed, tc.steady, tc.window)
			}
			switch {
			case tc.exhaustion < 0 && p.ExhaustionS != nil:
				t.Errorf("exhaustion in %v s, want none", *p.ExhaustionS)
			case tc.exhaustion >= 0 && (p.ExhaustionS == nil || *p.ExhaustionS != tc.exhaustion):
				t.Errorf("exhaustion in %v s, want %v", fmtPtr(p.ExhaustionS), tc.exhaustion)
			}
			if got := fmtPtr(p.ReuseApplies); (tc.reuse == "" && got != "nil") || (tc.reuse != "" && got != tc.reuse) {
				t.Errorf("reuse_applies %s, want %q", got, tc.reuse)
			}
			if (p.ReuseApplies != nil) != (p.ReuseNote != "") {
				t.Errorf("reuse_applies %s with note %q", fmtPtr(p.ReuseApplies), p.ReuseNote)
			}
		})
	}
}

// The forecast's figures are report keys; the optional ones appear only
// when known.
func TestPortsReportKeys(t *testing.T) {
	keys := func(m *Model) map[string]any {
		var buf bytes.Buffer
		if err := m.Snapshot().Report(Meta{}).WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Ports []map[string]any `json:"ports"`
		}
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil || len(doc.Ports) != 1 {
			t.Fatalf("ports %v (%v)", doc.Ports, err)
		}
		return doc.Ports[0]
	}
	evs := conns(1000, 100, false)
	m := New(Config{})
	for i := range evs {
		m.Apply(&evs[i])
	}
	bare := keys(m)
	for _, k := range []string{"growth_per_s", "needed_at_rate", "rate_window_s", "timewait_per_s", "steady_held", "connect_reuse", "connect_eaddrnotavail"} {
		if _, ok := bare[k]; !ok {
			t.Errorf("no %s in %v", k, bare)
		}
	}
	for _, k := range []string{"reuse_applies", "reuse_note", "exhaustion_s", "range_size"} {
		if _, ok := bare[k]; ok {
			t.Errorf("%s without settings: %v", k, bare)
		}
	}
	m.SetSettings(hostSettings(nil))
	full := keys(m)
	if full["reuse_applies"] != false || full["reuse_note"] != "tcp_tw_reuse is loopback only and the destination is not loopback" ||
		full["needed_at_rate"] != 6006.0 || full["steady_held"] != 6006.0 || full["rate_window_s"] != 9.99 ||
		full["connect_eaddrnotavail"] != 0.0 || full["exhaustion_s"] != nil {
		t.Errorf("with settings: %v", full)
	}
}
