package ui

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/model/modeltest"
)

// twoPods names cgroup 1 pod shop/cart and cgroup 2 pod shop/web.
type twoPods struct{}

func (twoPods) Lookup(id uint64) (workload.Workload, bool) {
	name := map[uint64]string{1: "cart", 2: "web"}[id]
	if name == "" {
		return workload.Workload{Kind: workload.KindOther, CgroupID: id}, true
	}
	return workload.Workload{Kind: workload.KindPod, CgroupID: id, PodUID: "uid-" + name,
		ContainerID: strings.Repeat(name[:1], 64), Namespace: "shop", Pod: name, Container: "app"}, true
}

// LookupNetns: the connections are in the host's namespace, no pod's.
func (twoPods) LookupNetns(uint64) (workload.Workload, bool) {
	return workload.Workload{Kind: workload.KindOther}, true
}

// Enter on a pod row shows the events of its processes' connections: the
// closes its cgroups own and the TIME_WAIT sockets they left, none of the
// other pod's.
func TestPodRowEvents(t *testing.T) {
	m := model.New(model.Config{Workloads: twoPods{}})
	var tm uint64 = 1e9
	for i, pod := range []struct {
		cgroup uint64
		src    string
		conns  int
	}{{1, "10.0.1.1", 3}, {2, "10.0.2.2", 1}} {
		for c := range pod.conns {
			modeltest.ClientCloses(m, &tm, modeltest.Conn{Ptr: uint64(100*i + c + 1), Netns: 4026531840,
				Src: netip.AddrPortFrom(netip.MustParseAddr(pod.src), uint16(40000+c)), Dst: netip.MustParseAddrPort("10.0.0.1:80"),
				Pid: uint32(1000 + i), Cgroup: pod.cgroup})
		}
	}
	src := &fakeSource{snap: m.Snapshot(), st: Status{Live: true, Tier: "tracepoint"}}
	a, scr := newTestApp(t, src, 160, 40, true)
	a.handleKey(ch('2'))
	for a.cl.by != model.ByPod {
		a.handleKey(ch('b'))
	}
	a.draw()
	a.handleKey(key(tcell.KeyEnter)) // the first row: shop/cart, 3 closes
	a.draw()
	text := screenText(scr)
	if !a.drill || !strings.Contains(text, "pod shop/cart") {
		t.Fatalf("Enter does not show the pod's events:\n%s", text)
	}
	if !strings.Contains(text, "3 TIME_WAIT made (3 still open)") {
		t.Errorf("the pod's TIME_WAIT sockets are not counted among its events:\n%s", text)
	}
	if strings.Contains(text, "10.0.2.2") || !strings.Contains(text, "10.0.1.1") {
		t.Errorf("the events shown are not the pod's:\n%s", text)
	}
}
