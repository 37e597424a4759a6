package model

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/tracer/event"
)

// fakeWorkloads resolves cgroup ids from a table; an id in late is
// answered false until it has been asked that many times.
type fakeWorkloads struct {
	ws   map[uint64]workload.Workload
	late map[uint64]int
	asks map[uint64]int
}

func (f *fakeWorkloads) Lookup(id uint64) (workload.Workload, bool) {
	f.asks[id]++
	if f.asks[id] < f.late[id] {
		return workload.Workload{Kind: workload.KindOther, CgroupID: id}, false
	}
	w, ok := f.ws[id]
	if !ok {
		return workload.Workload{Kind: workload.KindOther, CgroupID: id}, true
	}
	w.CgroupID = id
	return w, true
}

const (
	cgWebNginx   = 11 // pod default/web-a, container nginx
	cgPodB       = 12 // a pod the runtime has not named
	cgService    = 13 // nginx.service
	cgWebSidecar = 14 // pod default/web-a, container sidecar: resolved late
	cgUser       = 15 // a session: no workload
)

var (
	ctrB    = strings.Repeat("b", 64)
	testWLs = map[uint64]workload.Workload{
		cgWebNginx: {Kind: workload.KindPod, PodUID: "uid-a", ContainerID: strings.Repeat("a", 64),
			Namespace: "default", Pod: "web-a", Container: "nginx"},
		cgPodB:    {Kind: workload.KindPod, PodUID: "uid-b", ContainerID: ctrB},
		cgService: {Kind: workload.KindService, Service: "nginx.service"},
		cgWebSidecar: {Kind: workload.KindPod, PodUID: "uid-a", ContainerID: strings.Repeat("c", 64),
			Namespace: "default", Pod: "web-a", Container: "sidecar"},
	}
)

// ownedBy sets the cgroup of the owned events of each socket (by pointer)
// from ptr.
func ownedBy(evs []event.Event, cg map[uint64]uint64) {
	for i := range evs {
		if evs[i].Owned() {
			evs[i].Cgroup = cg[evs[i].Ptr]
		}
	}
}

func rowString(c Closer) string {
	return fmt.Sprintf("%s %q active=%d passive=%d tw=%d/%d ns=%s pod=%s uid=%s ctr=%s cid=%.12s svc=%s",
		c.By, c.Key, c.Closes[SideActive], c.Closes[SidePassive], c.TimewaitOpen, c.TimewaitCreated,
		c.Namespace, c.Pod, c.PodUID, c.Container, c.ContainerID, c.Service)
}

func rowStrings(rows []Closer) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(rowString(r) + "\n")
	}
	return b.String()
}

func TestWorkloadRankings(t *testing.T) {
	var g gen
	cg := map[uint64]uint64{}
	conn := func(n int, clientCg uint64) {
		c, s := uint64(2*n+1), uint64(2*n+2)
		cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(40000+n))
		cg[c], cg[s] = clientCg, cgService
		g.open(c, s, cli)
		// the client closes first, its TIME_WAIT socket has no owner
		g.closeFirst(c, cli, srvAddr, clientPid, s, serverPid, uint64(0xa0+n))
	}
	conn(0, cgWebNginx)
	conn(1, cgPodB)
	conn(2, cgWebNginx)
	conn(3, cgWebSidecar) // not resolved yet: asked once, not again within the second
	conn(4, cgUser)
	g.t += 2e9
	conn(5, cgWebSidecar) // asked again a second later: resolved, conn 3 counts too
	conn(6, cgWebSidecar)
	// the first one's TIME_WAIT socket ends
	g.tw(event.KindTWExpire, 0xa0, netip.AddrPortFrom(cliAddr.Addr(), 40000), srvAddr, event.CauseExpired, 60e9)
	ownedBy(g.evs, cg)

	// the invariants hold after every event (a snapshot each time, which
	// asks about pending ids again)
	applyChecked(t, New(Config{Workloads: &fakeWorkloads{ws: testWLs, asks: map[uint64]int{}}}), g.evs)

	f := &fakeWorkloads{ws: testWLs, late: map[uint64]int{cgWebSidecar: 2}, asks: map[uint64]int{}}
	m := New(Config{Workloads: f})
	for i := range g.evs {
		m.Apply(&g.evs[i])
	}
	s := m.Snapshot()

	want := map[By]string{
		ByPod: `pod "default/web-a" active=5 passive=0 tw=4/5 ns=default pod=web-a uid=uid-a ctr= cid= svc=
pod "uid-b" active=1 passive=0 tw=1/1 ns= pod= uid=uid-b ctr= cid= svc=
`,
		ByContainer: `container "default/web-a/sidecar" active=3 passive=0 tw=3/3 ns=default pod=web-a uid=uid-a ctr=sidecar cid=cccccccccccc svc=
container "default/web-a/nginx" active=2 passive=0 tw=1/2 ns=default pod=web-a uid=uid-a ctr=nginx cid=aaaaaaaaaaaa svc=
container "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" active=1 passive=0 tw=1/1 ns= pod= uid=uid-b ctr= cid=bbbbbbbbbbbb svc=
`,
		ByService: `service "nginx.service" active=0 passive=7 tw=0/0 ns= pod= uid= ctr= cid= svc=nginx.service
`,
	}
	for by, w := range want {
		if got := rowStrings(s.Closers[by]); got != w {
			t.Errorf("%s rows:\n%s\nwant:\n%s", by, got, w)
		}
	}
	// the late id: asked when first seen, not again within the second,
	// then once a second later; resolved ids once; the unnamed pod when
	// first seen, a second later and when the snapshot was taken
	if f.asks[cgWebSidecar] != 2 || f.asks[cgPodB] != 3 || f.asks[cgWebNginx] != 1 || f.asks[cgService] != 1 || f.asks[cgUser] != 1 {
		t.Errorf("asks %v, want 14:2 12:3 and every other id once", f.asks)
	}

	// the report's rows
	var b bytes.Buffer
	if err := s.Report(Meta{}).WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{
		`"by":"pod","key":"default/web-a"`, `"namespace":"default","pod":"web-a","pod_uid":"uid-a"`,
		`"by":"pod","key":"uid-b"`, `"by":"container","key":"default/web-a/nginx"`, `"container":"nginx"`,
		`"by":"service","key":"nginx.service"`, `"service":"nginx.service"`,
	} {
		if !strings.Contains(strings.ReplaceAll(strings.ReplaceAll(b.String(), " ", ""), "\n", ""), sub) {
			t.Errorf("report lacks %s:\n%s", sub, b.String())
		}
	}

	// without a resolver the rankings are empty, the others unchanged
	m = New(Config{})
	applyChecked(t, m, g.evs)
	s2 := m.Snapshot()
	for _, by := range []By{ByPod, ByContainer, ByService} {
		if len(s2.AllClosers[by]) != 0 {
			t.Errorf("%s rows without a resolver: %v", by, s2.AllClosers[by])
		}
	}
	for _, by := range []By{ByProcess, ByPort, ByPeer, ByNetns} {
		if a, b := rowStrings(s.AllClosers[by]), rowStrings(s2.AllClosers[by]); a != b {
			t.Errorf("%s rows differ with a resolver:\n%s\nwithout:\n%s", by, a, b)
		}
	}
}

// TestWorkloadNamesArriveLate: a pod first known by its UID gets its
// names when the resolver learns them, asked at most once a second.
func TestWorkloadNamesArriveLate(t *testing.T) {
	var g gen
	cli := cliAddr
	g.open(1, 2, cli)
	g.closeFirst(1, cli, srvAddr, clientPid, 2, serverPid, 0xa1)
	ownedBy(g.evs, map[uint64]uint64{1: cgPodB})
	ws := map[uint64]workload.Workload{cgPodB: testWLs[cgPodB]}
	f := &fakeWorkloads{ws: ws, asks: map[uint64]int{}}
	m := New(Config{Workloads: f})
	for i := range g.evs {
		m.Apply(&g.evs[i])
	}
	if got := rowStrings(m.Snapshot().Closers[ByPod]); !strings.HasPrefix(got, `pod "uid-b" active=1`) {
		t.Fatalf("before names: %s", got)
	}
	named := testWLs[cgPodB]
	named.Namespace, named.Pod, named.Container = "shop", "cart-1", "app"
	ws[cgPodB] = named
	g.evs = nil
	g.t += 2e9
	cli2 := netip.MustParseAddrPort("10.0.0.1:40001")
	g.open(3, 4, cli2)
	g.closeFirst(3, cli2, srvAddr, clientPid, 4, serverPid, 0xa2)
	ownedBy(g.evs, map[uint64]uint64{3: cgPodB})
	for i := range g.evs {
		m.Apply(&g.evs[i])
	}
	s := m.Snapshot()
	if got, want := rowStrings(s.Closers[ByPod]), `pod "shop/cart-1" active=2 passive=0 tw=2/2 ns=shop pod=cart-1 uid=uid-b ctr= cid= svc=
`; got != want {
		t.Errorf("pod rows:\n%s\nwant:\n%s", got, want)
	}
	if got := rowStrings(s.Closers[ByContainer]); !strings.HasPrefix(got, `container "shop/cart-1/app" active=2`) {
		t.Errorf("container rows:\n%s", got)
	}
	// when first seen, at the first snapshot, a second later: named
	if f.asks[cgPodB] != 3 {
		t.Errorf("asked %d times, want 3", f.asks[cgPodB])
	}
}
