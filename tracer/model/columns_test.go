package model

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

func keysOf(rows []Closer) string {
	var k []string
	for _, r := range rows {
		k = append(k, r.Key)
	}
	return strings.Join(k, ",")
}

func TestSortClosers(t *testing.T) {
	rows := func() []Closer {
		return []Closer{
			{By: "peer", Key: "other", Closes: [5]uint64{SideActive: 50}, TimewaitCreated: 50},
			{By: "peer", Key: "c", Closes: [5]uint64{SideActive: 1, SidePassive: 3}, TimewaitCreated: 1, TimewaitOpen: 1, ConnectErrors: 7},
			{By: "peer", Key: "a", Closes: [5]uint64{SideActive: 4, SideReset: 1}, TimewaitCreated: 4, TimewaitOpen: 0},
			{By: "peer", Key: "d", Closes: [5]uint64{SideSimultaneous: 2}, TimewaitCreated: 2, TimewaitOpen: 2, BindErrors: 1},
			{By: "peer", Key: "b", Closes: [5]uint64{SideActive: 1, SidePassive: 3}, TimewaitCreated: 1, TimewaitOpen: 1},
		}
	}
	tests := []struct {
		col  CloserColumn
		desc bool
		want string
	}{
		{ColumnKey, false, "a,b,c,d,other"},
		{ColumnKey, true, "d,c,b,a,other"},
		{ColumnActive, true, "a,b,c,d,other"}, // b and c tie: by key
		{ColumnActive, false, "d,b,c,a,other"},
		{ColumnPassive, true, "b,c,a,d,other"},
		{ColumnSimultaneous, true, "d,a,b,c,other"},
		{ColumnReset, true, "a,b,c,d,other"},
		{ColumnTotal, true, "a,b,c,d,other"},
		{ColumnTotal, false, "d,b,c,a,other"},
		{ColumnActiveShare, true, "a,b,c,d,other"},
		{ColumnTimewaitCreated, true, "a,d,b,c,other"},
		{ColumnTimewaitOpen, true, "d,b,c,a,other"},
		{ColumnConnectErrors, true, "c,a,b,d,other"},
		{ColumnBindErrors, true, "d,a,b,c,other"},
		{CloserColumn(99), false, "a,b,c,d,other"}, // unknown: by key
	}
	for _, tc := range tests {
		t.Run(tc.col.String(), func(t *testing.T) {
			r := rows()
			SortClosers(r, tc.col, tc.desc)
			if got := keysOf(r); got != tc.want {
				t.Fatalf("sorted by %s desc=%v: %s, want %s", tc.col, tc.desc, got, tc.want)
			}
		})
	}
}

func TestColumnAndRankingNames(t *testing.T) {
	cols := CloserColumns()
	if len(cols) != 11 {
		t.Fatalf("%d columns", len(cols))
	}
	seen := map[string]bool{}
	for _, c := range cols {
		back, err := ParseCloserColumn(c.String())
		if err != nil || back != c || seen[c.String()] {
			t.Errorf("column %d: name %q parses to %d, %v (seen before: %v)", c, c.String(), back, err, seen[c.String()])
		}
		seen[c.String()] = true
	}
	if _, err := ParseCloserColumn("Active"); err == nil {
		t.Error("column names are lower case")
	}
	for _, b := range Rankings() {
		back, err := ParseBy(b.String())
		if err != nil || back != b {
			t.Errorf("ranking %d: name %q parses to %d, %v", b, b.String(), back, err)
		}
	}
	if _, err := ParseBy("cgroup"); err == nil || !strings.Contains(err.Error(), "unknown ranking") {
		t.Errorf("ParseBy(cgroup): %v", err)
	}
	if By(9).String() != "By(9)" || CloserColumn(-1).String() != "CloserColumn(-1)" {
		t.Errorf("out of range names %q %q", By(9), CloserColumn(-1))
	}
}

// The snapshot holds every row, so a reader can rank by any column: the
// peers with the most connect() errors are found even when the default
// top N (by closes) leaves them out.
func TestTopClosers(t *testing.T) {
	m := New(Config{TopN: 2, MaxKeys: 6})
	var g gen
	g.t = 1e9
	// peers 10.0.1.1..3 get 3, 2, 1 closed connections; 10.0.2.1..5 get
	// 1..5 connect() errors and no connection
	for p := 1; p <= 3; p++ {
		srv := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(p)}), 80)
		for i := 0; i < 4-p; i++ {
			cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(1000*p+i))
			c := uint64(100*p + i)
			g.state(c, netip.AddrPortFrom(cli.Addr(), 0), srv, event.Close, event.SynSent, clientPid)
			g.state(c, cli, srv, event.SynSent, event.Established, 0)
			g.state(c, cli, srv, event.Established, event.FinWait1, clientPid)
			g.state(c, cli, srv, event.FinWait1, event.FinWait2, 0)
			g.tw(event.KindTWCreate, 0x1000+c, cli, srv, 0, -1)
			g.state(c, cli, srv, event.FinWait2, event.Close, 0)
		}
	}
	for p := 1; p <= 5; p++ {
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 2, byte(p)}), 80)
		for i := 0; i < p; i++ {
			e := event.Event{Kind: event.KindConnectErr, Time: g.next(), Netns: nsA, Dst: dst, Flags: event.FlagOwner, Lifetime: -1}
			withComm(&e, clientPid, "client")
			g.evs = append(g.evs, e)
		}
	}
	applyChecked(t, m, g.evs)
	s := m.Snapshot()
	// 8 peers, 6 tracked: 10.0.2.4 and .5 (the last seen) fold into other
	if got := keysOf(s.AllClosers[ByPeer]); got != "10.0.1.1:80,10.0.1.2:80,10.0.1.3:80,10.0.2.1:80,10.0.2.2:80,10.0.2.3:80,other" {
		t.Fatalf("all peers %s", got)
	}
	if got := keysOf(s.Closers[ByPeer]); got != "10.0.1.1:80,10.0.1.2:80,other" {
		t.Fatalf("default top 2: %s", got)
	}
	tests := []struct {
		by    By
		col   CloserColumn
		desc  bool
		n     int
		want  string
		other Closer // the "other" row's figures (By and Key aside)
	}{{
		by: ByPeer, col: ColumnConnectErrors, desc: true, n: 2,
		want:  "10.0.2.3:80,10.0.2.2:80,other",
		other: Closer{Closes: [5]uint64{SideActive: 6}, TimewaitCreated: 6, TimewaitOpen: 6, ConnectErrors: 1 + 4 + 5},
	}, {
		by: ByPeer, col: ColumnTotal, desc: false, n: 3,
		want:  "10.0.2.1:80,10.0.2.2:80,10.0.2.3:80,other", // no closes, then by key
		other: Closer{Closes: [5]uint64{SideActive: 6}, TimewaitCreated: 6, TimewaitOpen: 6, ConnectErrors: 9},
	}, {
		by: ByPeer, col: ColumnKey, desc: true, n: 0, // all of them
		want:  "10.0.2.3:80,10.0.2.2:80,10.0.2.1:80,10.0.1.3:80,10.0.1.2:80,10.0.1.1:80,other",
		other: Closer{ConnectErrors: 9},
	}, {
		by: ByProcess, col: ColumnTimewaitOpen, desc: true, n: 1,
		want:  "client[100]",
		other: Closer{},
	}, {
		by: ByNetns, col: ColumnActive, desc: true, n: 5,
		want:  "netns 7",
		other: Closer{},
	}}
	for _, tc := range tests {
		t.Run(tc.by.String()+"/"+tc.col.String(), func(t *testing.T) {
			rows := s.TopClosers(tc.by, tc.col, tc.desc, tc.n)
			if got := keysOf(rows); got != tc.want {
				t.Fatalf("top %d by %s: %s, want %s: %+v", tc.n, tc.col, got, tc.want, rows)
			}
			var other Closer
			for _, r := range rows {
				if r.By != tc.by.String() {
					t.Errorf("row %s has by %q", r.Key, r.By)
				}
				if r.Key == otherKey {
					other = r
					other.By, other.Key = "", ""
				}
			}
			if other != tc.other {
				t.Errorf("other row %+v, want %+v", other, tc.other)
			}
		})
	}
	// TopClosers hands out its own rows
	before := s.TopClosers(ByPeer, ColumnKey, false, 0)
	rows := s.TopClosers(ByPeer, ColumnKey, false, 0)
	rows[0].Key = "changed"
	SortClosers(s.Closers[ByPeer], ColumnKey, true)
	if !reflect.DeepEqual(s.TopClosers(ByPeer, ColumnKey, false, 0), before) {
		t.Error("changing returned rows changed the snapshot")
	}
	if s.TopClosers(By(7), ColumnKey, false, 3) != nil {
		t.Error("rows for an unknown ranking")
	}
}
