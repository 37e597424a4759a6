package model

import (
	"net/netip"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// A tuple used twice within a second: the first connection's TIME_WAIT
// socket is taken over (connect() with tcp_tw_reuse, or a SYN on the
// server) and the new connection on the same 4-tuple closes again. Each
// TIME_WAIT socket counts once, under the socket whose close made it.

type rowWant struct {
	by      By
	key     string
	closes  [5]uint64
	created uint64
	open    int64
}

type reuseCase struct {
	evs     []event.Event
	cfg     Config
	created uint64
	open    int
	ended   [endBuckets]uint64
	rows    []rowWant
	absent  []string // process rows that must not exist
	held    int64    // ports held towards srvAddr; -1: not checked
}

var cliPort0 = netip.AddrPortFrom(cliAddr.Addr(), 0)

// clientOnly: a client connection to a remote server (no local server
// socket) that the client closes first.
func (g *gen) clientOnly(ptr uint64, cli netip.AddrPort, pid uint32, tw uint64) {
	g.state(ptr, netip.AddrPortFrom(cli.Addr(), 0), srvAddr, event.Close, event.SynSent, pid)
	g.state(ptr, cli, srvAddr, event.SynSent, event.Established, 0)
	g.state(ptr, cli, srvAddr, event.Established, event.FinWait1, pid)
	g.state(ptr, cli, srvAddr, event.FinWait1, event.FinWait2, 0)
	g.tw(event.KindTWCreate, tw, cli, srvAddr, 0, -1)
	g.state(ptr, cli, srvAddr, event.FinWait2, event.Close, 0)
}

// connectReuse: client2's connect() takes over the client's TIME_WAIT
// socket tw, 300 ms after it was made; c2 and s2 are the new sockets.
func connectReuse(tw2 uint64) []event.Event {
	var g gen
	g.t = 5e9
	g.open(1, 2, cliAddr)
	g.closeFirst(1, cliAddr, srvAddr, clientPid, 2, serverPid, 0xa)
	g.t = 5_300_000_000
	g.state(3, cliPort0, srvAddr, event.Close, event.SynSent, client2Pid)
	g.tw(event.KindTWReuse, 0xa, cliAddr, srvAddr, 0, 300e6)
	g.tw(event.KindTWKill, 0xa, cliAddr, srvAddr, event.CauseConnectReuse, 300e6)
	g.state(4, srvAddr, cliAddr, event.Listen, event.SynRecv, 0)
	g.state(3, cliAddr, srvAddr, event.SynSent, event.Established, 0)
	g.state(4, srvAddr, cliAddr, event.SynRecv, event.Established, 0)
	g.closeFirst(3, cliAddr, srvAddr, client2Pid, 4, serverPid, tw2)
	return g.evs
}

var connectReuseWant = reuseCase{
	created: 2, open: 1, ended: [endBuckets]uint64{endReused: 1},
	rows: []rowWant{
		{ByProcess, "client[100]", [5]uint64{SideActive: 1}, 1, 0},
		{ByProcess, "client2[300]", [5]uint64{SideActive: 1}, 1, 1},
		{ByProcess, "server[200]", [5]uint64{SidePassive: 2}, 0, 0},
		{ByPort, "netns 7 :80", [5]uint64{SidePassive: 2}, 0, 0},
		{ByPeer, "10.0.0.2:80", [5]uint64{SideActive: 2}, 2, 1},
		{ByNetns, "netns 7", [5]uint64{SideActive: 2, SidePassive: 2}, 2, 1},
	},
	held: 1,
}

// synTakeover: the server closes first; the client reconnects from the
// same port 400 ms later, its SYN takes the server's TIME_WAIT socket over,
// and the server closes first again.
func synTakeover() []event.Event {
	var g gen
	g.t = 7e9
	g.open(1, 2, cliAddr)
	g.closeFirst(2, srvAddr, cliAddr, serverPid, 1, clientPid, 0xa)
	g.t = 7_400_000_000
	g.state(3, cliPort0, srvAddr, event.Close, event.SynSent, clientPid)
	rx := event.Event{Kind: event.KindTWRx, Time: g.next(), Ptr: 0xa, Netns: nsA, Family: event.AFInet,
		Src: srvAddr, Dst: cliAddr, NewState: event.TimeWait, Aux: uint32(event.RxSYN), Lifetime: 400e6}
	g.evs = append(g.evs, rx)
	g.tw(event.KindTWKill, 0xa, srvAddr, cliAddr, event.CauseSYN, 400e6)
	g.state(4, srvAddr, cliAddr, event.Listen, event.SynRecv, 0)
	g.state(3, cliAddr, srvAddr, event.SynSent, event.Established, 0)
	g.state(4, srvAddr, cliAddr, event.SynRecv, event.Established, 0)
	g.closeFirst(4, srvAddr, cliAddr, serverPid, 3, clientPid, 0xa)
	return g.evs
}

// untrackedSecond: the first connection's socket is tracked, the second's
// is not (the socket table is full), so its TIME_WAIT socket has no known
// closer and must not be credited to the first one's.
func untrackedSecond() []event.Event {
	var g gen
	g.t = 9e9
	g.state(50, cliPort0, srvAddr, event.Close, event.SynSent, clientPid)
	g.state(50, netip.AddrPortFrom(cliAddr.Addr(), 50000), srvAddr, event.SynSent, event.Established, 0)
	g.clientOnly(1, cliAddr, clientPid, 0xa)
	g.state(51, cliPort0, srvAddr, event.Close, event.SynSent, clientPid)
	g.state(51, netip.AddrPortFrom(cliAddr.Addr(), 50001), srvAddr, event.SynSent, event.Established, 0)
	g.tw(event.KindTWKill, 0xa, cliAddr, srvAddr, event.CauseConnectReuse, 200e6)
	g.clientOnly(3, cliAddr, client2Pid, 0xb)
	return g.evs
}

// unseenEnd: the first TIME_WAIT socket's end is never seen (a lost
// record) and a new one, of the next connection, gets its address.
func unseenEnd() []event.Event {
	var g gen
	g.t = 11e9
	g.open(1, 2, cliAddr)
	g.closeFirst(1, cliAddr, srvAddr, clientPid, 2, serverPid, 0xa)
	cli2 := netip.AddrPortFrom(cliAddr.Addr(), cliAddr.Port()+1)
	g.state(3, cliPort0, srvAddr, event.Close, event.SynSent, client2Pid)
	g.state(4, srvAddr, cli2, event.Listen, event.SynRecv, 0)
	g.state(3, cli2, srvAddr, event.SynSent, event.Established, 0)
	g.state(4, srvAddr, cli2, event.SynRecv, event.Established, 0)
	g.closeFirst(3, cli2, srvAddr, client2Pid, 4, serverPid, 0xa)
	return g.evs
}

func reuseStreams() map[string]reuseCase {
	cases := map[string]reuseCase{}
	add := func(name string, evs []event.Event, want reuseCase) {
		want.evs = evs
		cases[name] = want
	}
	add("connect reuse, new TIME_WAIT at a new address", connectReuse(0xb), connectReuseWant)
	// the kernel's slab hands the freed timewait socket's memory out again
	add("connect reuse, new TIME_WAIT at the same address", connectReuse(0xa), connectReuseWant)
	add("connect reuse, TIME_WAIT delivered after CLOSE", twAfterClose(connectReuse(0xa)), connectReuseWant)
	synWant := reuseCase{
		created: 2, open: 1, ended: [endBuckets]uint64{endSyn: 1},
		rows: []rowWant{
			{ByProcess, "server[200]", [5]uint64{SideActive: 2}, 2, 1},
			{ByProcess, "client[100]", [5]uint64{SidePassive: 2}, 0, 0},
			{ByPort, "netns 7 :80", [5]uint64{SideActive: 2}, 2, 1},
			{ByPeer, "10.0.0.2:80", [5]uint64{SidePassive: 2}, 0, 0},
			{ByNetns, "netns 7", [5]uint64{SideActive: 2, SidePassive: 2}, 2, 1},
		},
		held: 0,
	}
	add("SYN takeover on the server", synTakeover(), synWant)
	add("SYN takeover, TIME_WAIT delivered after CLOSE", twAfterClose(synTakeover()), synWant)
	add("second connection untracked", untrackedSecond(), reuseCase{
		cfg: Config{MaxSockets: 2}, created: 2, open: 1, ended: [endBuckets]uint64{endReused: 1},
		rows: []rowWant{
			{ByProcess, "client[100]", [5]uint64{SideActive: 1}, 1, 0},
			{ByPeer, "10.0.0.2:80", [5]uint64{SideActive: 1}, 1, 0},
			{ByNetns, "netns 7", [5]uint64{SideActive: 1}, 1, 0},
		},
		absent: []string{"client2[300]"},
		held:   -1,
	})
	add("a TIME_WAIT socket's address reused before its end was seen", unseenEnd(), reuseCase{
		created: 2, open: 1, ended: [endBuckets]uint64{endUnknown: 1},
		rows: []rowWant{
			{ByProcess, "client[100]", [5]uint64{SideActive: 1}, 1, 0},
			{ByProcess, "client2[300]", [5]uint64{SideActive: 1}, 1, 1},
			{ByPeer, "10.0.0.2:80", [5]uint64{SideActive: 2}, 2, 1},
			{ByNetns, "netns 7", [5]uint64{SideActive: 2, SidePassive: 2}, 2, 1},
		},
		held: 1,
	})
	return cases
}

func TestTupleReusedWithinASecond(t *testing.T) {
	for name, tc := range reuseStreams() {
		t.Run(name, func(t *testing.T) {
			m := New(tc.cfg)
			applyChecked(t, m, tc.evs)
			s := m.Snapshot()
			if s.Counters.Created != tc.created || s.OpenNow != tc.open || s.Counters.Ended != tc.ended {
				t.Errorf("created %d open %d ended %v; want %d %d %v", s.Counters.Created, s.OpenNow, s.Counters.Ended,
					tc.created, tc.open, tc.ended)
			}
			for _, w := range tc.rows {
				r, ok := closers(s, w.by)[w.key]
				if !ok {
					t.Errorf("no %s row %q", w.by, w.key)
					continue
				}
				if r.Closes != w.closes || r.TimewaitCreated != w.created || r.TimewaitOpen != w.open {
					t.Errorf("%s %s: closes %v, TIME_WAIT %d created %d open; want %v, %d, %d",
						w.by, w.key, r.Closes, r.TimewaitCreated, r.TimewaitOpen, w.closes, w.created, w.open)
				}
			}
			for _, key := range tc.absent {
				if _, ok := closers(s, ByProcess)[key]; ok {
					t.Errorf("process row %q exists", key)
				}
			}
			if tc.held >= 0 {
				var held int64
				for _, p := range s.Ports {
					held += p.Held
				}
				if held != tc.held {
					t.Errorf("%d ports held, want %d: %+v", held, tc.held, s.Ports)
				}
			}
		})
	}
}
