package model

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twtop/twtop/lifecycle"
	"github.com/twtop/twtop/tracer/event"
)

var update = flag.Bool("update", false, "rewrite golden files")

// gen builds event streams the way the Tracker yields them.
type gen struct {
	t   uint64
	evs []event.Event
}

var (
	cliAddr = netip.MustParseAddrPort("10.0.0.1:40000")
	srvAddr = netip.MustParseAddrPort("10.0.0.2:80")
)

const (
	clientPid  = 100
	serverPid  = 200
	client2Pid = 300
	nsA        = 7
)

var comms = map[uint32]string{clientPid: "client", serverPid: "server", client2Pid: "client2"}

func (g *gen) next() uint64 { g.t += 1000; return g.t }

func (g *gen) state(ptr uint64, src, dst netip.AddrPort, old, new event.State, pid uint32) {
	e := event.Event{Kind: event.KindState, Time: g.next(), Ptr: ptr, Netns: nsA, Family: event.AFInet,
		Src: src, Dst: dst, OldState: old, NewState: new, Lifetime: -1}
	if pid != 0 {
		e.Flags |= event.FlagOwner
		e.Pid = pid
		copy(e.Comm[:], comms[pid])
	}
	g.evs = append(g.evs, e)
}

func (g *gen) tw(kind event.Kind, ptr uint64, src, dst netip.AddrPort, cause event.Cause, lifetime int64) {
	g.evs = append(g.evs, event.Event{Kind: kind, Time: g.next(), Ptr: ptr, Netns: nsA, Family: event.AFInet,
		Src: src, Dst: dst, NewState: event.TimeWait, Cause: cause, Lifetime: lifetime})
}

// open makes an established connection: client socket c, server child s.
func (g *gen) open(c, s uint64, cli netip.AddrPort) {
	g.state(c, netip.AddrPortFrom(cli.Addr(), 0), srvAddr, event.Close, event.SynSent, clientPid)
	g.state(s, srvAddr, cli, event.Listen, event.SynRecv, 0)
	g.state(c, cli, srvAddr, event.SynSent, event.Established, 0)
	g.state(s, srvAddr, cli, event.SynRecv, event.Established, 0)
}

// closeFirst: the side with ptr a (addr aSrc->aDst, owner aPid) closes
// first; b is the peer. A TIME_WAIT socket tw is created on a's side.
func (g *gen) closeFirst(a uint64, aSrc, aDst netip.AddrPort, aPid uint32, b uint64, bPid uint32, tw uint64) {
	g.state(a, aSrc, aDst, event.Established, event.FinWait1, aPid)
	g.state(b, aDst, aSrc, event.Established, event.CloseWait, 0)
	g.state(b, aDst, aSrc, event.CloseWait, event.LastAck, bPid)
	g.state(a, aSrc, aDst, event.FinWait1, event.FinWait2, 0)
	g.tw(event.KindTWCreate, tw, aSrc, aDst, 0, -1)
	g.state(a, aSrc, aDst, event.FinWait2, event.Close, 0)
	g.state(b, aDst, aSrc, event.LastAck, event.Close, 0)
}

func run(evs []event.Event) *Snapshot {
	m := New(Config{})
	for i := range evs {
		m.Apply(&evs[i])
	}
	return m.Snapshot()
}

func closers(s *Snapshot, by By) map[string]Closer {
	out := map[string]Closer{}
	for _, c := range s.Closers[by] {
		out[c.Key] = c
	}
	return out
}

func TestWhoCloses(t *testing.T) {
	cli2 := netip.MustParseAddrPort("10.0.0.1:40001")
	var g gen
	// connection 1: the client closes first (HTTP keep-alive timeout on
	// the client); connection 2: the server closes first (HTTP/1.0)
	g.open(1, 2, cliAddr)
	g.closeFirst(1, cliAddr, srvAddr, clientPid, 2, serverPid, 0xa1)
	g.open(3, 4, cli2)
	g.closeFirst(4, srvAddr, cli2, serverPid, 3, clientPid, 0xa2)
	// connection 3: SO_LINGER 0, both sockets reset
	cli3 := netip.MustParseAddrPort("10.0.0.1:40002")
	g.open(5, 6, cli3)
	g.state(5, cli3, srvAddr, event.Established, event.Close, clientPid)
	g.state(6, srvAddr, cli3, event.Established, event.Close, 0)
	// connection 4: simultaneous close
	cli4 := netip.MustParseAddrPort("10.0.0.1:40003")
	g.open(7, 8, cli4)
	g.state(7, cli4, srvAddr, event.Established, event.FinWait1, clientPid)
	g.state(8, srvAddr, cli4, event.Established, event.FinWait1, serverPid)
	g.state(7, cli4, srvAddr, event.FinWait1, event.Closing, 0)
	g.state(8, srvAddr, cli4, event.FinWait1, event.Closing, 0)
	g.tw(event.KindTWCreate, 0xa3, cli4, srvAddr, 0, -1)
	g.state(7, cli4, srvAddr, event.Closing, event.Close, 0)
	g.tw(event.KindTWCreate, 0xa4, srvAddr, cli4, 0, -1)
	g.state(8, srvAddr, cli4, event.Closing, event.Close, 0)

	s := run(g.evs)
	want := [5]uint64{SideActive: 2, SidePassive: 2, SideSimultaneous: 2, SideReset: 2}
	if s.Counters.Closes != want {
		t.Fatalf("closes %v, want %v", s.Counters.Closes, want)
	}
	if s.ClosedSockets() != 8 {
		t.Fatalf("closed sockets %d, want 8 (every socket of 4 connections)", s.ClosedSockets())
	}
	if s.Counters.Created != 4 || s.OpenNow != 4 {
		t.Fatalf("created %d open %d, want 4 and 4", s.Counters.Created, s.OpenNow)
	}
	procs := closers(s, ByProcess)
	client, server := procs["client[100]"], procs["server[200]"]
	if client.Closes[SideActive] != 1 || client.Closes[SidePassive] != 1 || client.Closes[SideReset] != 1 || client.Closes[SideSimultaneous] != 1 {
		t.Errorf("client row %+v", client)
	}
	if server.Closes[SideActive] != 1 || server.Closes[SidePassive] != 1 || server.Closes[SideSimultaneous] != 1 {
		t.Errorf("server row %+v", server)
	}
	// the server child sockets of connections 1-3 never ran in the
	// server's context before their close (accept not traced, softirq
	// transitions carry no owner): connection 3's reset has no process
	if server.Closes[SideReset] != 0 {
		t.Errorf("softirq reset attributed to the server: %+v", server)
	}
	if client.TimewaitCreated != 2 || server.TimewaitCreated != 2 {
		t.Errorf("TIME_WAIT created: client %d server %d, want 2 and 2", client.TimewaitCreated, server.TimewaitCreated)
	}
	port := closers(s, ByPort)["netns 7 :80"]
	if port.Closes[SideActive] != 1 || port.Closes[SidePassive] != 1 || port.TimewaitCreated != 2 || port.TimewaitOpen != 2 {
		t.Errorf("port 80 row %+v", port)
	}
	peer := closers(s, ByPeer)["10.0.0.2:80"]
	if peer.Closes[SideActive] != 1 || peer.Closes[SidePassive] != 1 || peer.TimewaitCreated != 2 {
		t.Errorf("peer row %+v", peer)
	}
}

func TestTimewaitEndsAndLifetimes(t *testing.T) {
	var g gen
	for i := uint64(0); i < 100; i++ {
		g.tw(event.KindTWCreate, 0x100+i, cliAddr, srvAddr, 0, -1)
	}
	g.tw(event.KindTWCreate, 0x200, cliAddr, srvAddr, 0, -1)
	g.evs[len(g.evs)-1].Flags |= event.FlagExisting
	causes := []event.Cause{event.CauseExpired, event.CauseConnectReuse, event.CauseSYN, event.CauseRSTReceived, event.CausePurge, event.CauseVanished}
	for i := uint64(0); i < 90; i++ {
		kind := event.KindTWKill
		c := causes[i%6]
		if c == event.CauseExpired {
			kind = event.KindTWExpire
		}
		g.tw(kind, 0x100+i, cliAddr, srvAddr, c, int64(1+i)*1e9)
	}
	g.tw(event.KindTWExpire, 0x200, cliAddr, srvAddr, 0, -1) // existing: lifetime unknown
	g.evs[len(g.evs)-1].Flags |= event.FlagInferred
	s := run(g.evs)
	r := s.Report(Meta{Tier: "tracepoint"})
	if r.Timewait.Created != 100 || r.Timewait.ExistingAtStart != 1 || r.Timewait.OpenAtEnd != 10 {
		t.Fatalf("timewait %+v", r.Timewait)
	}
	e := r.Timewait.Ended
	if e.Expired != 16 || e.Reused != 15 || e.SynRecycled != 15 || e.RST != 15 || e.Purged != 15 || e.Unknown != 15 {
		t.Fatalf("ended %+v", e)
	}
	// invariant: created + existing = ended + open
	ended := e.Expired + e.Reused + e.SynRecycled + e.RST + e.Purged + e.Unknown
	if r.Timewait.Created+r.Timewait.ExistingAtStart != ended+uint64(r.Timewait.OpenAtEnd) {
		t.Fatalf("created %d + existing %d != ended %d + open %d", r.Timewait.Created, r.Timewait.ExistingAtStart, ended, r.Timewait.OpenAtEnd)
	}
	// lifetimes 1..90 s: the exact p50 is 45 s, p90 81 s, max 90 s
	l := r.LifetimeMS
	if l.Count != 90 || !within(l.P50, 45000) || !within(l.P90, 81000) || l.Max != 90000 {
		t.Fatalf("lifetime %+v", l)
	}
	if strings.Join(r.Inferred, ",") != "timewait.ended,lifetime_ms" {
		t.Fatalf("inferred %v", r.Inferred)
	}
	if r.Reuse.ConnectReuse != 0 || r.Reuse.SynRecycle != 15 {
		t.Fatalf("reuse %+v", r.Reuse)
	}
}

func within(got, want float64) bool { return got >= want*0.99 && got <= want*1.01 }

// Rankings stay bounded: past MaxKeys distinct keys everything folds into
// "other", and only TopN rows plus "other" are reported.
func TestAggregatesBounded(t *testing.T) {
	m := New(Config{TopN: 5, MaxKeys: 50})
	for i := 0; i < 1000; i++ {
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 80)
		e := event.Event{Kind: event.KindConnectErr, Time: uint64(i + 1), Dst: dst, Pid: 1, Flags: event.FlagOwner, Lifetime: -1}
		m.Apply(&e)
	}
	s := m.Snapshot()
	rows := s.Closers[ByPeer]
	if len(rows) != 6 || rows[5].Key != otherKey {
		t.Fatalf("%d rows, last %q; want 5 + other", len(rows), rows[len(rows)-1].Key)
	}
	var total uint64
	for _, r := range rows {
		total += r.ConnectErrors
	}
	if total != 1000 || s.Counters.ConnectAddrNotAvail != 1000 {
		t.Fatalf("connect errors %d in rows, %d counted; want 1000", total, s.Counters.ConnectAddrNotAvail)
	}
	if len(m.aggs.peer.rows) != 50 {
		t.Fatalf("%d keys tracked, want the cap 50", len(m.aggs.peer.rows))
	}
}

// The model's report for the tracer's captured records (Linux 6.18,
// tracepoint tier): two server-side TIME_WAIT sockets that existed at
// start, one client close, one SO_LINGER 0 abort, one EADDRINUSE.
func TestReportGolden(t *testing.T) {
	data, err := os.ReadFile("../event/testdata/records.hex")
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for _, line := range strings.Fields(string(data)) {
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, b)
	}
	st := lifecycle.NewStream(&sliceSource{recs: recs}, 250)
	m := New(Config{})
	for {
		e, err := st.Next()
		if err != nil {
			break
		}
		m.Apply(e)
	}
	r := m.Snapshot().Report(Meta{Tier: "tracepoint"})
	var got bytes.Buffer
	if err := r.WriteJSON(&got); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteText(&got); err != nil {
		t.Fatal(err)
	}
	const path = "testdata/report.golden"
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("report differs from %s:\n%s", path, got.Bytes())
	}
	// figures a person can check against the capture's description
	var back Report
	json.Unmarshal(want[:bytes.Index(want, []byte("\n}\n"))+3], &back)
	if back.Timewait.ExistingAtStart != 2 || back.Timewait.Created != 1 || back.Closes.Reset != 2 ||
		back.Closes.Active != 1 || back.Closes.Passive != 1 || back.Errors.BindEAddrInUse != 1 {
		t.Fatalf("report figures %+v %+v %+v", back.Timewait, back.Closes, back.Errors)
	}
}

type sliceSource struct{ recs [][]byte }

func (s *sliceSource) Next() ([]byte, error) {
	if len(s.recs) == 0 {
		return nil, errEnd
	}
	r := s.recs[0]
	s.recs = s.recs[1:]
	return r, nil
}

var errEnd = &event.Error{Reason: "end of test records"}

// Readers take published snapshots while the writer applies events (run
// with -race): a snapshot never changes once published.
func TestConcurrentSnapshotReaders(t *testing.T) {
	m := New(Config{})
	var latest atomic.Pointer[Snapshot] // a publisher's holder, as the pipeline keeps one
	var g gen
	for i := uint64(0); i < 2000; i++ {
		cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(20000+i))
		g.open(10*i+1, 10*i+2, cli)
		g.closeFirst(10*i+1, cli, srvAddr, clientPid, 10*i+2, serverPid, 0x10000+i)
	}
	done := make(chan struct{})
	errs := make(chan string, 4)
	for r := 0; r < 4; r++ {
		go func() {
			var last uint64
			for {
				select {
				case <-done:
					errs <- ""
					return
				default:
				}
				s := latest.Load()
				if s == nil {
					continue
				}
				created := s.Counters.Created
				rep := s.Report(Meta{})
				if rep.Timewait.Created != created || created < last {
					errs <- "snapshot changed or went backwards"
					return
				}
				last = created
			}
		}()
	}
	for i := range g.evs {
		m.Apply(&g.evs[i])
		if i%100 == 0 {
			latest.Store(m.Snapshot())
		}
	}
	latest.Store(m.Snapshot())
	close(done)
	for r := 0; r < 4; r++ {
		if e := <-errs; e != "" {
			t.Fatal(e)
		}
	}
	if got := latest.Load().Counters.Created; got != 2000 {
		t.Fatalf("created %d, want 2000", got)
	}
}

// A client's ports towards one destination: held from connect() until its
// TIME_WAIT socket ends; the server's TIME_WAIT sockets hold none of them.
func TestPortPressure(t *testing.T) {
	var g gen
	for i := uint64(0); i < 30; i++ {
		g.t = 1e9 + i*100e6 // 10 connections a second for 3 s
		cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(40000+i))
		g.open(10*i+1, 10*i+2, cli)
		g.closeFirst(10*i+1, cli, srvAddr, clientPid, 10*i+2, serverPid, 0x1000+i)
	}
	for i := uint64(0); i < 10; i++ {
		g.tw(event.KindTWExpire, 0x1000+i, cliAddr, srvAddr, event.CauseExpired, 60e9)
	}
	// one server-closes-first connection: its TIME_WAIT is on the server
	cli := netip.AddrPortFrom(cliAddr.Addr(), 50000)
	g.open(9001, 9002, cli)
	g.closeFirst(9002, srvAddr, cli, serverPid, 9001, clientPid, 0x9000)
	// one connection still open
	cli = netip.AddrPortFrom(cliAddr.Addr(), 50001)
	g.open(9003, 9004, cli)

	m := New(Config{})
	m.SetPortRange(nsA, 100)
	for i := range g.evs {
		m.Apply(&g.evs[i])
	}
	ports := m.Snapshot().Ports
	if len(ports) != 1 {
		t.Fatalf("ports %+v, want one destination", ports)
	}
	p := ports[0]
	// 21 ports held now, none at the start (1.000001 s), now is 3.900036 s:
	// growth 21 / 2.900035 s = 7.241/s. The rates are over the time since
	// the first connection (established at 1.000003 s): 32 connections and
	// 30 client TIME_WAIT sockets in 2.900033 s, 11.034/s and 10.345/s. At
	// that rate TIME_WAIT levels off at 621 ports (620.68), plus the one
	// established: 622 > 100, so the range runs out, in
	// 60 s × (100 - 21) / (622 - 21) = 7.887 s
	if p.ExhaustionS == nil || *p.ExhaustionS != 7.887 {
		t.Fatalf("exhaustion_s %v, want 7.887", fmtPtr(p.ExhaustionS))
	}
	if p.ReuseApplies != nil || p.ReuseNote != "" {
		t.Fatalf("reuse %v %q without settings", fmtPtr(p.ReuseApplies), p.ReuseNote)
	}
	p.ExhaustionS, p.forecastHeld = nil, 0
	want := PortPressure{Netns: nsA, Src: "10.0.0.1", Dst: "10.0.0.2:80", Established: 1, TimeWait: 20,
		Held: 21, NewPerSec: 11.034, Connections: 32, RangeSize: 100, Usage: 0.21,
		GrowthPerS: 7.241, NeededAtRate: 662, RateWindowS: 2.9, TimewaitPerS: 10.345, ActivePerS: 11.034, SteadyHeld: 622}
	if p != want {
		t.Fatalf("ports row\n got %+v\nwant %+v", p, want)
	}
}

func fmtPtr[T any](p *T) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}
