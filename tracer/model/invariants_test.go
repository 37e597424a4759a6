package model

import (
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// checkInvariants holds on every snapshot of every test stream:
// TIME_WAIT sockets are conserved, closes add up, no gauge is negative.
func checkInvariants(t *testing.T, s *Snapshot) {
	t.Helper()
	c := &s.Counters
	var ended uint64
	for _, v := range c.Ended {
		ended += v
	}
	tracked := c.Created + c.Existing - c.EvictedTimewait
	if tracked != ended-c.EndedUntracked+uint64(s.OpenNow) {
		t.Errorf("created %d + existing %d - evicted %d != ended %d - untracked %d + open %d",
			c.Created, c.Existing, c.EvictedTimewait, ended, c.EndedUntracked, s.OpenNow)
	}
	var sides uint64
	for _, v := range c.Closes[SideActive:] {
		sides += v
	}
	if sides != s.ClosedSockets() {
		t.Errorf("closes by side %d != closed sockets %d", sides, s.ClosedSockets())
	}
	var nsOpen int64
	for _, n := range s.Netns {
		if n.Open < 0 {
			t.Errorf("netns %d: %d open", n.Netns, n.Open)
		}
		nsOpen += n.Open
	}
	if nsOpen != int64(s.OpenNow) {
		t.Errorf("open per netns sums to %d, open %d", nsOpen, s.OpenNow)
	}
	for _, rows := range s.Closers {
		for _, r := range rows {
			if r.TimewaitOpen < 0 || r.TimewaitOpen > int64(r.TimewaitCreated) {
				t.Errorf("%s %s: %d open of %d created", r.By, r.Key, r.TimewaitOpen, r.TimewaitCreated)
			}
		}
	}
	for _, p := range s.Ports {
		if p.Connecting < 0 || p.Established < 0 || p.Closing < 0 || p.TimeWait < 0 {
			t.Errorf("ports %s -> %s: negative %+v", p.Src, p.Dst, p)
		}
	}
	for _, v := range s.OpenSeries {
		if v < 0 {
			t.Errorf("open series has %d", v)
		}
	}
}

// Every stream the tests build, checked after every event.
func TestInvariantsOnEveryStream(t *testing.T) {
	streams := map[string][]event.Event{}
	var g gen
	g.open(1, 2, cliAddr)
	g.closeFirst(1, cliAddr, srvAddr, clientPid, 2, serverPid, 0xa)
	g.tw(event.KindTWKill, 0xa, cliAddr, srvAddr, event.CauseSYN, 5e9)
	g.tw(event.KindTWExpire, 0xb, cliAddr, srvAddr, event.CauseExpired, -1) // never created
	streams["one connection"] = g.evs
	streams["churn"] = churn(3000)
	for name, evs := range streams {
		t.Run(name, func(t *testing.T) {
			m := New(Config{MaxTimewait: 500, MaxKeys: 10})
			for i := range evs {
				m.Apply(&evs[i])
				if i%97 == 0 || i == len(evs)-1 {
					checkInvariants(t, m.Snapshot())
				}
			}
		})
	}
}
