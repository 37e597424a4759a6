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
	nsCloses := map[string][5]uint64{}
	for _, n := range s.Netns {
		if n.Open < 0 {
			t.Errorf("netns %d: %d open", n.Netns, n.Open)
		}
		nsOpen += n.Open
		nsCloses[netnsRow(n.Netns).Key] = n.Closes
	}
	if nsOpen != int64(s.OpenNow) {
		t.Errorf("open per netns sums to %d, open %d", nsOpen, s.OpenNow)
	}
	for by, rows := range s.AllClosers {
		var all, top Closer
		for _, r := range rows {
			if r.TimewaitOpen < 0 || r.TimewaitOpen > int64(r.TimewaitCreated) {
				t.Errorf("%s %s: %d open of %d created", r.By, r.Key, r.TimewaitOpen, r.TimewaitCreated)
			}
			if r.By != By(by).String() {
				t.Errorf("row %s %s in the %s ranking", r.By, r.Key, By(by))
			}
			all.add(&r)
		}
		for _, r := range s.Closers[by] {
			top.add(&r)
		}
		if all != top {
			t.Errorf("%s: the top rows and other sum to %+v, all rows to %+v", By(by), top, all)
		}
	}
	// every close, connect and bind error, and attributed TIME_WAIT socket
	// counts in exactly one namespace row
	var ns Closer
	for _, r := range s.AllClosers[ByNetns] {
		ns.add(&r)
		if want, ok := nsCloses[r.Key]; ok && r.Closes != want {
			t.Errorf("%s: closes %v in the ranking, %v in netns stats", r.Key, r.Closes, want)
		}
	}
	if ns.Closes != c.Closes || ns.ConnectErrors != c.ConnectAddrNotAvail || ns.BindErrors != c.BindAddrInUse {
		t.Errorf("netns rows sum to closes %v errors %d/%d; counted %v %d/%d",
			ns.Closes, ns.ConnectErrors, ns.BindErrors, c.Closes, c.ConnectAddrNotAvail, c.BindAddrInUse)
	}
	if ns.TimewaitOpen > int64(s.OpenNow) || ns.TimewaitCreated > c.Created+c.Existing {
		t.Errorf("netns rows: %d open, %d created; model %d open, %d created", ns.TimewaitOpen, ns.TimewaitCreated, s.OpenNow, c.Created+c.Existing)
	}
	for _, p := range s.Ports {
		if p.Connecting < 0 || p.Established < 0 || p.Closing < 0 || p.TimeWait < 0 || p.Held < 0 {
			t.Errorf("ports %s -> %s: negative %+v", p.Src, p.Dst, p)
		}
		if p.Held != p.Connecting+p.Established+p.Closing+p.TimeWait {
			t.Errorf("ports %s -> %s: held %d is not the sum of its groups", p.Src, p.Dst, p.Held)
		}
		if p.ExhaustionS != nil && *p.ExhaustionS < 0 {
			t.Errorf("ports %s -> %s: exhaustion in %v s", p.Src, p.Dst, *p.ExhaustionS)
		}
	}
	for _, v := range s.OpenSeries {
		if v < 0 {
			t.Errorf("open series has %d", v)
		}
	}
}

// checkModel checks a snapshot's invariants and, inside the model, that
// every destination's held gauges are the sockets and TIME_WAIT sockets
// holding a port there (Snapshot shows the TopN destinations only).
func checkModel(t *testing.T, m *Model) {
	t.Helper()
	checkInvariants(t, m.Snapshot())
	var held, want [heldGroups]int64
	for k, d := range m.dests {
		for g, v := range d.held {
			if v < 0 {
				t.Errorf("destination %v: %d ports in group %d", k, v, g)
			}
			held[g] += v
		}
	}
	for _, s := range m.socks {
		want[s.held]++
	}
	for i := range m.tws.Keys() {
		if tw := m.tws.At(i); m.books.Get(tw.books).client != 0 {
			want[heldTimewait]++
		}
	}
	want[heldNone] = 0
	// the shared books are held by the open TIME_WAIT sockets using them,
	// and only by them; a client's names the destination it counts under
	books := map[uint32]uint32{}
	for i := range m.tws.Keys() {
		tw := m.tws.At(i)
		books[tw.books]++
		if client := m.books.Get(tw.books).client != 0; client != (tw.dest != 0) || tw.dest > uint32(len(m.destByID)) {
			t.Errorf("TIME_WAIT socket %#x: client %v, destination id %d of %d", m.tws.Keys()[i], client, tw.dest, len(m.destByID))
		}
	}
	for id, n := range books {
		if got := m.books.Refs(id); got != n {
			t.Errorf("books %d: %d users counted, %d open TIME_WAIT sockets use it", id, got, n)
		}
	}
	if m.books.Len() != len(books) {
		t.Errorf("books: %d in use, %d interned", len(books), m.books.Len())
	}
	if held != want {
		t.Errorf("held ports by group %v, sockets holding them %v", held, want)
	}
}

// applyChecked applies a stream, checking the model after every event.
func applyChecked(t *testing.T, m *Model, evs []event.Event) {
	t.Helper()
	for i := range evs {
		m.Apply(&evs[i])
		checkModel(t, m)
		if t.Failed() {
			t.Fatalf("after event %d: %+v", i, evs[i])
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
	streams["client closes first"] = conns(300, 100, false)
	streams["server closes first"] = conns(300, 100, true)
	for name, st := range orderStreams() {
		streams["order: "+name] = st
	}
	for name, st := range reuseStreams() {
		streams["reuse: "+name] = st.evs
	}
	for name, evs := range streams {
		t.Run(name, func(t *testing.T) {
			m := New(Config{MaxTimewait: 500, MaxKeys: 10, MaxSockets: 400})
			for i := range evs {
				m.Apply(&evs[i])
				if i%97 == 0 || i == len(evs)-1 {
					checkModel(t, m)
				}
			}
		})
	}
}
