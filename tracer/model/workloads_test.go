package model

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/tracer/event"
)

// fakeWorkloads resolves cgroup ids from a table; an id in late is
// answered false until it has been asked that many times. Network
// namespaces resolve from netns the same way (nsLate, nsAsks); one not in
// it is the host's, no workload.
type fakeWorkloads struct {
	ws   map[uint64]workload.Workload
	late map[uint64]int
	asks map[uint64]int

	netns  map[uint64]workload.Workload
	nsLate map[uint64]int
	nsAsks map[uint64]int
}

func (f *fakeWorkloads) LookupNetns(inode uint64) (workload.Workload, bool) {
	if f.nsAsks == nil {
		f.nsAsks = map[uint64]int{}
	}
	f.nsAsks[inode]++
	if f.nsAsks[inode] < f.nsLate[inode] {
		return workload.Workload{Kind: workload.KindOther}, false
	}
	if w, ok := f.netns[inode]; ok {
		return w, true
	}
	return workload.Workload{Kind: workload.KindOther}, true
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

// Network namespaces of the ownerless TIME_WAIT tests.
const (
	nsHost    = 8  // the host's: no pod
	nsUnnamed = 9  // a pod the runtime has not named
	nsLate    = 10 // a pod resolved a second after it is first seen
	cgShopApp = 16 // pod shop/web-1 (whose namespace is nsA), container app
)

var nsWLs = map[uint64]workload.Workload{
	nsA:       {Kind: workload.KindPod, PodUID: "uid-w", Namespace: "shop", Pod: "web-1"},
	nsUnnamed: {Kind: workload.KindPod, PodUID: "uid-u"},
	nsLate:    {Kind: workload.KindPod, PodUID: "uid-l", Namespace: "batch", Pod: "job-1"},
}

// ownerlessStream has TIME_WAIT sockets no known owner closed (found at
// start, or created with no closing socket seen) in the namespaces of
// pods and the host's, one a pod's process closed in its pod's namespace,
// and ends of some of them.
func ownerlessStream() []event.Event {
	var g gen
	tw := func(ptr uint64, ns uint32, port uint16, existing bool) {
		g.tw(event.KindTWCreate, ptr, netip.AddrPortFrom(cliAddr.Addr(), port), srvAddr, 0, -1)
		g.evs[len(g.evs)-1].Netns = ns
		if existing {
			g.evs[len(g.evs)-1].Flags |= event.FlagExisting
		}
	}
	end := func(kind event.Kind, ptr uint64, ns uint32, port uint16) {
		g.tw(kind, ptr, netip.AddrPortFrom(cliAddr.Addr(), port), srvAddr, event.CauseExpired, 30e9)
		g.evs[len(g.evs)-1].Netns = ns
	}
	// found at start: 3 in the pod's namespace, 2 in the host's
	for i := range uint64(3) {
		tw(0x100+i, nsA, uint16(41000+i), true)
	}
	tw(0x200, nsHost, 41000, true)
	tw(0x201, nsHost, 41001, true)
	// created while tracing, no closing socket seen: 2 in the pod's, 1 in
	// the unnamed pod's, 1 in the late one's
	tw(0x110, nsA, 42000, false)
	tw(0x111, nsA, 42001, false)
	tw(0x300, nsUnnamed, 42000, false)
	tw(0x400, nsLate, 42000, false)
	// the pod's process closes a connection first, in its namespace: its
	// TIME_WAIT socket counts through the closer's cgroup, not again by
	// the namespace
	cli := netip.AddrPortFrom(cliAddr.Addr(), 43000)
	g.open(1, 2, cli)
	g.closeFirst(1, cli, srvAddr, clientPid, 2, serverPid, 0xa1)
	ownedBy(g.evs, map[uint64]uint64{1: cgShopApp})
	g.t += 2e9 // the late namespace is asked again
	// ends: one found at start, one created, one of the host's; a new
	// socket at the address of one still open ends it unseen; an end of a
	// socket never seen
	end(event.KindTWExpire, 0x100, nsA, 41000)
	end(event.KindTWKill, 0x110, nsA, 42000)
	end(event.KindTWExpire, 0x200, nsHost, 41000)
	tw(0x111, nsA, 42500, false)
	end(event.KindTWExpire, 0x999, nsA, 44000)
	return g.evs
}

func newOwnerlessModel() (*Model, *fakeWorkloads) {
	ws := map[uint64]workload.Workload{cgShopApp: {Kind: workload.KindPod, PodUID: "uid-w", ContainerID: strings.Repeat("d", 64),
		Namespace: "shop", Pod: "web-1", Container: "app"}}
	f := &fakeWorkloads{ws: ws, asks: map[uint64]int{}, netns: maps.Clone(nsWLs), nsLate: map[uint64]int{nsLate: 2}}
	return New(Config{Workloads: f}), f
}

// TIME_WAIT sockets whose closing socket's owner is not known count for
// the pod whose network namespace they are in, created and open exactly
// as some end; one a known owner closed counts once, through its cgroup;
// the host's namespace names no pod.
func TestOwnerlessTimewaitByNetns(t *testing.T) {
	evs := ownerlessStream()
	m, _ := newOwnerlessModel()
	applyChecked(t, m, evs) // the invariants, open <= created per row among them

	m, f := newOwnerlessModel()
	for i := range evs {
		m.Apply(&evs[i])
	}
	s := m.Snapshot()
	// shop/web-1: 3 found + 2 created + 1 at a reused address, by its
	// namespace, and 1 its process closed = 7 created; 1 found and 1
	// created ended, 1 ended unseen = 4 open. Closes stay the owner's.
	want := `pod "shop/web-1" active=1 passive=0 tw=4/7 ns=shop pod=web-1 uid=uid-w ctr= cid= svc=
pod "batch/job-1" active=0 passive=0 tw=1/1 ns=batch pod=job-1 uid=uid-l ctr= cid= svc=
pod "uid-u" active=0 passive=0 tw=1/1 ns= pod= uid=uid-u ctr= cid= svc=
`
	if got := rowStrings(s.AllClosers[ByPod]); got != want {
		t.Errorf("pod rows:\n%s\nwant:\n%s", got, want)
	}
	// the container row has its process's socket only
	if got, want := rowStrings(s.AllClosers[ByContainer]), `container "shop/web-1/app" active=1 passive=0 tw=1/1 ns=shop pod=web-1 uid=uid-w ctr=app cid=dddddddddddd svc=
`; got != want {
		t.Errorf("container rows:\n%s\nwant:\n%s", got, want)
	}
	// every open TIME_WAIT socket counts once: in a pod row, or in the
	// host's namespace (1 open there), or nowhere else
	var open int64
	for _, r := range s.AllClosers[ByPod] {
		open += r.TimewaitOpen
	}
	if open+1 != int64(s.OpenNow) {
		t.Errorf("pod rows hold %d open, the host's namespace 1, the model %d", open, s.OpenNow)
	}
	// the late namespace: asked when first seen, again a second later
	if f.nsAsks[nsLate] != 2 {
		t.Errorf("late namespace asked %d times, want 2", f.nsAsks[nsLate])
	}
	// the namespace rows are the closers' only, as without a resolver
	s2 := run(evs)
	if a, b := rowStrings(s.AllClosers[ByNetns]), rowStrings(s2.AllClosers[ByNetns]); a != b {
		t.Errorf("netns rows differ with a resolver:\n%s\nwithout:\n%s", a, b)
	}
	if len(s2.AllClosers[ByPod]) != 0 {
		t.Errorf("pod rows without a resolver: %s", rowStrings(s2.AllClosers[ByPod]))
	}

	// the unnamed pod's namespace goes away: it stays the pod's
	delete(f.netns, nsUnnamed)
	asked := f.nsAsks[nsUnnamed]
	s = m.Snapshot()
	if f.nsAsks[nsUnnamed] == asked {
		t.Error("the unnamed pod's namespace is not asked about again")
	}
	if got := rowStrings(s.AllClosers[ByPod][2:]); got != `pod "uid-u" active=0 passive=0 tw=1/1 ns= pod= uid=uid-u ctr= cid= svc=
` {
		t.Errorf("the unnamed pod's row once its namespace is gone: %s", got)
	}

	// after every socket ended, the pod rows keep what was created, none open
	var g gen
	g.t = m.now
	for i := range m.tws.Keys() {
		g.tw(event.KindTWExpire, m.tws.Keys()[i], srvAddr, srvAddr, event.CauseExpired, 1e9)
	}
	for i := range g.evs {
		m.Apply(&g.evs[i])
	}
	s = m.Snapshot()
	for _, r := range s.AllClosers[ByPod] {
		if r.TimewaitOpen != 0 {
			t.Errorf("%s: %d open after every TIME_WAIT socket ended", r.Key, r.TimewaitOpen)
		}
	}
	if got := rowStrings(s.AllClosers[ByPod][:1]); !strings.HasPrefix(got, `pod "shop/web-1" active=1 passive=0 tw=0/7`) {
		t.Errorf("pod row after the ends: %s", got)
	}
}

// The destinations name the pod whose namespace holds their ports: by
// namespace and name, by UID while the runtime has given none, none in
// the host's namespace.
func TestPortsNamePod(t *testing.T) {
	m, _ := newOwnerlessModel()
	evs := ownerlessStream()
	for i := range evs {
		m.Apply(&evs[i])
	}
	s := m.Snapshot()
	got := map[uint32]string{}
	for _, p := range s.AllPorts {
		if _, dup := got[p.Netns]; dup {
			t.Errorf("netns %d has two destinations", p.Netns)
		}
		got[p.Netns] = fmt.Sprintf("%s %s held=%d ns=%q pod=%q uid=%q name=%q", p.Src, p.Dst, p.Held, p.Namespace, p.Pod, p.PodUID, p.PodName())
	}
	want := map[uint32]string{
		nsA:       `10.0.0.1 10.0.0.2:80 held=4 ns="shop" pod="web-1" uid="" name="shop/web-1"`,
		nsHost:    `10.0.0.1 10.0.0.2:80 held=1 ns="" pod="" uid="" name=""`,
		nsUnnamed: `10.0.0.1 10.0.0.2:80 held=1 ns="" pod="" uid="uid-u" name="uid-u"`,
		nsLate:    `10.0.0.1 10.0.0.2:80 held=1 ns="batch" pod="job-1" uid="" name="batch/job-1"`,
	}
	for ns, w := range want {
		if got[ns] != w {
			t.Errorf("netns %d destination:\n got %s\nwant %s", ns, got[ns], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("destinations %v, want %v", got, want)
	}
	// the report: JSON fields, and a POD column in the text
	var j, txt bytes.Buffer
	r := s.Report(Meta{})
	if err := r.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	flat := strings.NewReplacer(" ", "", "\n", "").Replace(j.String())
	for _, sub := range []string{`"namespace":"shop","pod":"web-1"`, `"pod_uid":"uid-u"`} {
		if !strings.Contains(flat, sub) {
			t.Errorf("report JSON lacks %s:\n%s", sub, j.String())
		}
	}
	if err := r.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(txt.String(), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "DESTINATION") })
	if i < 0 || !strings.HasSuffix(lines[i], " POD") || !strings.HasSuffix(lines[i+1], " shop/web-1") {
		t.Errorf("text report's ports table has no POD column naming shop/web-1:\n%s", txt.String())
	}

	// without a resolver, no pod and no POD column
	s = run(evs)
	for _, p := range s.AllPorts {
		if p.PodName() != "" {
			t.Errorf("a destination names pod %s without a resolver", p.PodName())
		}
	}
	txt.Reset()
	if err := s.Report(Meta{}).WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(txt.String(), " POD") {
		t.Errorf("POD column without a pod:\n%s", txt.String())
	}
}
