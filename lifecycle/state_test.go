package lifecycle

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// A timewait socket's state keeps its tuple exactly (IPv4, IPv6, an
// IPv4-mapped IPv6 address and a zone are four different addresses): the
// end the scan infers repeats the creation record's fields but those of
// the record alone (CPU, sequence number, timer), an end record
// without a tuple gets it, and the shared IPv6 addresses and the births
// learnt later are dropped with the last socket using them.
func TestTrackerStateKeepsTuples(t *testing.T) {
	addrs := []netip.Addr{
		netip.MustParseAddr("10.0.0.1"),
		netip.MustParseAddr("fd00::1"),
		netip.MustParseAddr("::ffff:10.0.0.1"),
		netip.MustParseAddr("fe80::1%eth0"),
	}
	tk := NewTracker(250)
	var got []event.Event
	emit := func(e *event.Event) { got = append(got, *e) }
	var creates []event.Event
	ts := uint64(1e9)
	for i, a := range addrs {
		fam := uint8(event.AFInet6)
		if a.Is4() {
			fam = event.AFInet
		}
		e := event.Event{Kind: event.KindTWCreate, Time: ts, CPU: uint16(i), Seq: uint32(10 + i), Ptr: 0x1000 + uint64(i)*0x40,
			Netns: 7, Family: fam, Src: netip.AddrPortFrom(a, 40000), Dst: netip.AddrPortFrom(addrs[1], 443),
			OldState: event.FinWait2, NewState: event.TimeWait, Aux: 15000, Aux2: 3, Lifetime: -1}
		creates = append(creates, e)
		tk.Add(&e, emit)
		ts += 1e6
	}
	// the first scan finds one more, from before tracing
	scan := creates[0]
	scan.Kind, scan.Ptr, scan.Time, scan.Src = event.KindScanTW, 0x9000, ts, netip.AddrPortFrom(addrs[2], 40001)
	tk.Add(&scan, emit)
	end := event.Event{Kind: event.KindScanEnd, Time: ts + 1e6, Netns: 7, Lifetime: -1}
	tk.Add(&end, emit)
	if tk.Open() != 5 || tk.births.Len() != 0 {
		t.Fatalf("open %d, births %d", tk.Open(), tk.births.Len())
	}
	// its creation record, seen late, gives its birth
	birth := scan
	birth.Kind, birth.Time = event.KindTWCreate, ts-5e6
	tk.Add(&birth, emit)
	if tk.births.Len() != 1 {
		t.Fatalf("births %d", tk.births.Len())
	}

	// an end without a tuple, one with, and the rest vanish from two scans
	got = got[:0]
	kill := event.Event{Kind: event.KindTWKill, Time: ts + 2e6, Ptr: creates[1].Ptr, Cause: event.CauseRSTReceived, Lifetime: -1}
	tk.Add(&kill, emit)
	if g := got[0]; g.Src != creates[1].Src || g.Dst != creates[1].Dst || g.Netns != 7 || g.Family != event.AFInet6 || g.Lifetime != int64(ts+2e6-creates[1].Time) {
		t.Fatalf("kill without a tuple: %+v", g)
	}
	exp := creates[0]
	exp.Kind, exp.Time = event.KindTWExpire, ts+3e6
	tk.Add(&exp, emit)
	for i := range 2 {
		end.Time = ts + uint64(10+i)*1e9
		end.Aux2 = 0
		tk.Add(&end, emit)
	}
	byPtr := map[uint64]event.Event{}
	for _, g := range got {
		if g.Kind == event.KindTWKill && g.Cause == event.CauseVanished {
			byPtr[g.Ptr] = g
		}
	}
	if len(byPtr) != 3 {
		t.Fatalf("%d vanished, want 3: %+v", len(byPtr), got)
	}
	for _, c := range creates[2:] {
		g := byPtr[c.Ptr]
		want := c
		want.Kind, want.Cause, want.Time = event.KindTWKill, event.CauseVanished, ts+10e9
		want.CPU, want.Seq, want.Aux, want.Aux2 = 0, 0, 0, 0
		want.Flags = event.FlagInferred | event.FlagReconciled
		want.Lifetime = int64(want.Time - c.Time)
		if g != want {
			t.Errorf("vanished:\n got %+v\nwant %+v", g, want)
		}
	}
	if g := byPtr[0x9000]; g.Lifetime != int64(ts+10e9-birth.Time) || g.Src != scan.Src {
		t.Errorf("vanished socket from before tracing: %+v", g)
	}
	if tk.Open() != 0 || tk.births.Len() != 0 || tk.addrs.Len() != 0 {
		t.Fatalf("open %d, births %d, addresses %d", tk.Open(), tk.births.Len(), tk.addrs.Len())
	}
}

// A scan leaves its mark on the open sockets it shows instead of keeping
// their ptrs: a socket shown is not missing, one not shown is, and a new
// socket's mark (0) is never a scan's, also once a namespace's marks went
// round (after 65,535 scans).
func TestTrackerScanMarks(t *testing.T) {
	const ns = 7
	a := event.Event{Kind: event.KindTWCreate, Ptr: 0x1000, Netns: ns, Family: event.AFInet,
		Src:      netip.MustParseAddrPort("10.0.0.1:40000"),
		Dst:      netip.MustParseAddrPort("10.0.0.2:443"),
		OldState: event.FinWait2, NewState: event.TimeWait, Aux: 15000, Lifetime: -1}
	b := a
	b.Ptr, b.Src = 0x2000, netip.MustParseAddrPort("10.0.0.1:40001")
	for _, tc := range []struct {
		name  string
		marks uint16 // the namespace's last mark before the scans that follow the first
		showA bool   // whether those scans show a
	}{
		{"shown", 0, true},
		{"not shown", 0, false},
		{"shown, marks going round", 0xfffe, true},
		{"not shown, marks going round", 0xfffe, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := NewTracker(250)
			var vanished []uint64
			emit := func(e *event.Event) {
				if e.Kind == event.KindTWKill && e.Cause == event.CauseVanished {
					vanished = append(vanished, e.Ptr)
				}
			}
			ts := uint64(1e9)
			scan := func(shown ...event.Event) {
				for _, s := range shown {
					s.Kind, s.Time = event.KindScanTW, ts
					tk.Add(&s, emit)
				}
				ts += 1e9
				end := event.Event{Kind: event.KindScanEnd, Time: ts, Netns: ns, Lifetime: -1}
				tk.Add(&end, emit)
				ts += 1e9
			}
			scan(b) // the first scan: b existed before tracing
			c := a
			c.Time = ts
			tk.Add(&c, emit) // a is created after it, with mark 0
			ts += 1e9
			tk.marks[ns] = tc.marks
			for range 3 {
				if tc.showA {
					scan(a, b)
				} else {
					scan(b)
				}
			}
			if m := tk.marks[ns]; m == 0 {
				t.Fatal("a scan took mark 0")
			}
			want := []uint64{a.Ptr}
			if tc.showA {
				want = nil
			}
			if !slices.Equal(vanished, want) {
				t.Fatalf("vanished %#x, want %#x", vanished, want)
			}
		})
	}
}
