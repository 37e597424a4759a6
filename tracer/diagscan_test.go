package tracer

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/lifecycle"
	"github.com/twtop/twtop/tracer/event"
)

func TestDiagParseJiffies(t *testing.T) {
	const list = `Timer List Version: v0.10
HRTIMER_MAX_CLOCK_BASES: 8
now at 365849821019 nsecs

cpu: 0
  .idle_jiffies   : 4294983697
  .last_jiffies   : 4294983713
jiffies: 4294983713

cpu: 1
jiffies: 4294983714
`
	j, err := parseJiffies(strings.NewReader(list))
	if err != nil || j != 4294983713 {
		t.Fatalf("parseJiffies = %d, %v; want 4294983713", j, err)
	}
	if _, err := parseJiffies(strings.NewReader("cpu: 0\n  .last_jiffies   : 1\n")); err == nil {
		t.Fatal("no error without a jiffies line")
	}
	if _, err := parseJiffies(strings.NewReader("jiffies: x\n")); err == nil {
		t.Fatal("no error for a bad number")
	}
}

func TestDiagTimerJiffies(t *testing.T) {
	// the kernel shows jiffies_to_msecs(j), which rounds up
	for _, hz := range knownHZ {
		for _, j := range []uint64{0, 1, 2, 3, 7, 299, 300, 301, 15000, 60 * uint64(hz)} {
			ms := (j*1000 + uint64(hz) - 1) / uint64(hz)
			if got := timerJiffies(time.Duration(ms)*time.Millisecond, hz); uint64(got) != j {
				t.Errorf("HZ %d: %d jiffies shown as %d ms read back as %d", hz, j, ms, got)
			}
		}
	}
}

// A namespace that is gone reads as os.ErrNotExist, which drops it from the
// scan.
func TestDiagScanGoneNamespace(t *testing.T) {
	_, err := diagScan("/proc/self/task/2147483647/ns/net", 1, 250)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want os.ErrNotExist", err)
	}
}

// diagRecords decodes a diagScan result and checks its shape: scan records,
// then one end record in namespace inode counting them.
func diagRecords(t *testing.T, recs [][]byte, inode uint32) (tws []event.Event, end event.Event) {
	t.Helper()
	if len(recs) == 0 {
		t.Fatal("no records")
	}
	for i, r := range recs {
		if len(r) != event.RecordSize {
			t.Fatalf("record %d: %d bytes", i, len(r))
		}
		var e event.Event
		if err := event.Decode(r, &e); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if i < len(recs)-1 {
			if e.Kind != event.KindScanTW {
				t.Fatalf("record %d: kind %s, want scan_tw", i, e.Kind)
			}
			tws = append(tws, e)
		} else {
			end = e
		}
	}
	if end.Kind != event.KindScanEnd || end.Netns != inode || int(end.Aux) != len(tws) || end.Ptr == 0 {
		t.Fatalf("end record %+v, want scan_end in netns %d counting %d, with jiffies", end, inode, len(tws))
	}
	return tws, end
}

// scanHZ derives HZ from two scans 100 ms apart, as the tracer's first
// calibration step does, and checks that jiffies advance at about that
// rate.
func scanHZ(t *testing.T, path string, inode uint32) uint32 {
	t.Helper()
	a := must[[][]byte](t)(diagScan(path, inode, 1000))
	time.Sleep(100 * time.Millisecond)
	b := must[[][]byte](t)(diagScan(path, inode, 1000))
	_, ea := diagRecords(t, a, inode)
	_, eb := diagRecords(t, b, inode)
	hz, _ := nearestHZ(eb.Ptr-ea.Ptr, int64(eb.Time-ea.Time)) // scan end records carry jiffies in ptr
	rate := float64(eb.Ptr-ea.Ptr) / (float64(eb.Time-ea.Time) / 1e9)
	if rate < 0.9*float64(hz) || rate > 1.1*float64(hz) {
		t.Fatalf("jiffies advance %.0f/s, not about HZ %d", rate, hz)
	}
	t.Logf("HZ %d (jiffies advance %.1f/s)", hz, rate)
	return hz
}

func TestDiagScan(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	const n4, n6 = 4, 3
	r4 := must[*scenario.Result](t)(scenario.ClientCloses(ns, n4, unix.AF_INET))
	closeResult(t, r4)
	r6 := must[*scenario.Result](t)(scenario.ServerCloses(ns, n6, unix.AF_INET6))
	closeResult(t, r6)
	want := sortTuples(slices.Concat(r4.TimeWait, r6.TimeWait))
	if len(want) != n4+n6 {
		t.Fatalf("scenarios left %d TIME_WAIT sockets, want %d", len(want), n4+n6)
	}

	hz := scanHZ(t, ns.Path(), ns.Inode())
	before := monotonicNow()
	recs := must[[][]byte](t)(diagScan(ns.Path(), ns.Inode(), hz))
	after := monotonicNow()
	tws, end := diagRecords(t, recs, ns.Inode())

	// the kernel's own view, as ss shows it
	socks := must[[]netns.Socket](t)(ns.Sockets(unix.AF_UNSPEC, netns.StateMask(netns.TimeWait)))
	cookies := map[scenario.Tuple]uint64{}
	for _, s := range socks {
		cookies[scenario.Tuple{Local: s.Src, Remote: s.Dst}] = s.Cookie
	}
	eq(t, "scan records", len(tws), n4+n6)
	eq(t, "end record count", int(end.Aux), n4+n6)
	sameTuples(t, "scan tuples vs the scenarios' TIME_WAIT sockets", tuplesOf(tws, func(*event.Event) bool { return true }), want)
	sameTuples(t, "scan tuples vs sock_diag", tuplesOf(tws, func(*event.Event) bool { return true }), diagTimewait(t, ns, unix.AF_UNSPEC))
	if end.Time < before || end.Time > after {
		t.Errorf("end record time %d outside the call [%d, %d]", end.Time, before, after)
	}
	for i := range tws {
		e := &tws[i]
		fam := uint8(event.AFInet6)
		if e.Src.Addr().Is4() {
			fam = event.AFInet
		}
		eq(t, describe(e)+": family", e.Family, fam)
		eq(t, describe(e)+": netns", e.Netns, ns.Inode())
		eq(t, describe(e)+": substate", e.NewState, event.TimeWait)
		eq(t, describe(e)+": time", e.Time, end.Time)
		if !event.IsSyntheticPtr(e.Ptr) {
			t.Errorf("%s: ptr %#x is not synthetic", describe(e), e.Ptr)
		}
		if c := cookies[scenario.Tuple{Local: e.Src, Remote: e.Dst}]; e.Ptr != event.SyntheticPtr(c) {
			t.Errorf("%s: ptr %#x, want the cookie's %#x", describe(e), e.Ptr, event.SyntheticPtr(c))
		}
		if e.Aux == 0 || e.Aux > 60*hz {
			t.Errorf("%s: timer %d jiffies, want (0, %d]", describe(e), e.Aux, 60*hz)
		}
	}

	// the same socket keeps its ptr from scan to scan
	again, _ := diagRecords(t, must[[][]byte](t)(diagScan(ns.Path(), ns.Inode(), hz)), ns.Inode())
	ptrs := func(evs []event.Event) []uint64 {
		var out []uint64
		for _, e := range evs {
			out = append(out, e.Ptr)
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(ptrs(tws), ptrs(again)) {
		t.Errorf("ptrs changed between scans:\n%x\n%x", ptrs(tws), ptrs(again))
	}
}

// A timewait socket in the FIN_WAIT2 substate is listed, a full socket
// (CLOSE_WAIT) is not; fed to the Tracker, the scans report it as existing
// and, once it expired, as vanished, once.
func TestDiagScanFinWait2(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	r := must[*scenario.Result](t)(scenario.FinWait2(ns, 2*time.Second))
	closeResult(t, r)
	hz := scanHZ(t, ns.Path(), ns.Inode())

	tk := lifecycle.NewTracker(hz)
	var out []event.Event
	feed := func() []event.Event {
		t.Helper()
		recs := must[[][]byte](t)(diagScan(ns.Path(), ns.Inode(), hz))
		tws, _ := diagRecords(t, recs, ns.Inode())
		for _, b := range recs {
			var e event.Event
			if err := event.Decode(b, &e); err != nil {
				t.Fatal(err)
			}
			tk.Add(&e, func(e *event.Event) { out = append(out, *e) })
		}
		return tws
	}
	tws := feed()
	if len(tws) != 1 {
		t.Fatalf("%d scan records, want 1", len(tws))
	}
	sameTuples(t, "scan tuples", tuplesOf(tws, func(*event.Event) bool { return true }), r.FinWait2)
	eq(t, "substate", tws[0].NewState, event.FinWait2)
	if tws[0].Aux == 0 || tws[0].Aux > 2*hz {
		t.Errorf("timer %d jiffies, want (0, %d]", tws[0].Aux, 2*hz)
	}
	if err := scenario.WaitGone(ns, 10*time.Second, r.FinWait2...); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		eq(t, "scan records after expiry", len(feed()), 0)
	}
	var got []string
	for i := range out {
		if e := &out[i]; e.Kind != event.KindScanEnd {
			got = append(got, e.Kind.String()+" "+e.Cause.String())
			eq(t, "ptr", e.Ptr, tws[0].Ptr)
		}
	}
	if want := []string{"tw_create unknown", "tw_kill vanished"}; !slices.Equal(got, want) {
		t.Errorf("tracker events %q, want %q", got, want)
	}
	if out[0].Flags&event.FlagExisting == 0 {
		t.Errorf("creation %s not marked existing", describe(&out[0]))
	}
}

// Our own namespace ("") is scanned in place.
func TestDiagScanOwnNamespace(t *testing.T) {
	netnstest.RequireRoot(t)
	inode := must[uint32](t)(NetnsInode(""))
	tws, _ := diagRecords(t, must[[][]byte](t)(diagScan("", inode, 250)), inode)
	for i := range tws {
		if !event.IsSyntheticPtr(tws[i].Ptr) || tws[i].Netns != inode {
			t.Errorf("%s: ptr %#x netns %d", describe(&tws[i]), tws[i].Ptr, tws[i].Netns)
		}
	}
}

func TestDiagFilterScan(t *testing.T) {
	v4 := netip.MustParseAddrPort("127.0.0.1:40000")
	v6 := netip.MustParseAddrPort("[::1]:40001")
	srv4, srv6 := netip.MustParseAddrPort("127.0.0.1:80"), netip.MustParseAddrPort("[::1]:443")
	build := func() [][]byte {
		evs := []event.Event{
			{Kind: event.KindScanTW, Ptr: event.SyntheticPtr(1), Netns: 7, Family: event.AFInet, Src: v4, Dst: srv4},
			{Kind: event.KindScanTW, Ptr: event.SyntheticPtr(2), Netns: 7, Family: event.AFInet6, Src: v6, Dst: srv6},
			{Kind: event.KindScanTW, Ptr: event.SyntheticPtr(3), Netns: 7, Family: event.AFInet6, Src: srv6, Dst: v6},
			{Kind: event.KindScanEnd, Ptr: 12345, Netns: 7, Aux: 3},
		}
		recs := make([][]byte, len(evs))
		for i := range evs {
			recs[i] = make([]byte, event.RecordSize)
			event.Encode(&evs[i], recs[i])
		}
		return recs
	}
	for _, tc := range []struct {
		name string
		o    Options
		want []uint64 // cookies kept
	}{
		{"none", Options{}, []uint64{1, 2, 3}},
		{"family", Options{Family: event.AFInet6}, []uint64{2, 3}},
		{"port either side", Options{Port: 443}, []uint64{2, 3}},
		{"port and family", Options{Port: 80, Family: event.AFInet6}, nil},
		{"this netns", Options{Netns: 7, Port: 40000}, []uint64{1}},
		{"other netns", Options{Netns: 8}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := filterScan(build(), tc.o, func(*event.Event) bool { return false })
			var got []uint64
			var e event.Event
			for i, r := range recs {
				if err := event.Decode(r, &e); err != nil {
					t.Fatal(err)
				}
				if i == len(recs)-1 {
					if e.Kind != event.KindScanEnd || e.Ptr != 12345 || e.Netns != 7 || int(e.Aux) != len(got) {
						t.Fatalf("end record %+v, want jiffies 12345, netns 7, count %d", e, len(got))
					}
					continue
				}
				got = append(got, e.Ptr>>1&^(1<<62))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("kept cookies %v, want %v", got, tc.want)
			}
		})
	}
}
