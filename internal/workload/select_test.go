package workload

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/twtop/twtop/internal/workload/critest"
)

func TestSelect(t *testing.T) {
	h := newFakeHost(t)
	const (
		uid  = "6a1f2e3d-4c5b-4a69-8877-665544332211"
		ctr  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		ctr2 = "0123ffff89abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	)
	pod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
	h.mkdir(pod + "/cri-containerd-" + ctr + ".scope")
	h.mkdir(pod + "/cri-containerd-" + ctr + ".scope/init") // a runtime's own sub-cgroup
	h.mkdir("/system.slice/docker-" + ctr2 + ".scope")
	h.mkdir("/system.slice/nginx.service")
	cri := critest.New()
	cri.AddPod(uid, "shop", "cart-7d9f", "sb1")
	sock := cri.Serve(t, "containerd.sock")
	dir := func(cg string) string { return filepath.Join(h.cgroup, filepath.FromSlash(cg)) }

	for _, c := range []struct {
		name string
		sel  Selector
		want string // directory, or the start of the error
	}{
		{"cgroup path", Selector{Path: "/system.slice/nginx.service"}, dir("/system.slice/nginx.service")},
		{"cgroup directory", Selector{Path: dir("/system.slice/nginx.service")}, dir("/system.slice/nginx.service")},
		{"no such cgroup", Selector{Path: "/system.slice/none.service"}, "error: cgroup /system.slice/none.service: no such cgroup"},
		{"container id", Selector{Container: ctr}, dir(pod + "/cri-containerd-" + ctr + ".scope")},
		{"container prefix", Selector{Container: ctr[:12]}, dir(pod + "/cri-containerd-" + ctr + ".scope")},
		{"docker container", Selector{Container: ctr2[:8]}, dir("/system.slice/docker-" + ctr2 + ".scope")},
		{"ambiguous prefix", Selector{Container: "0123"}, "error: container 0123 is ambiguous: 0123456789ab, 0123ffff89ab"},
		{"too short", Selector{Container: "012"}, "error: container \"012\": give a container id"},
		{"no such container", Selector{Container: "feedbeef"}, "error: container feedbeef: no cgroup names it"},
		{"pod uid", Selector{Pod: uid}, dir(pod)},
		{"pod name", Selector{Pod: "shop/cart-7d9f", CRISocket: sock}, dir(pod)},
		{"no such pod name", Selector{Pod: "shop/none", CRISocket: sock}, "error: pod shop/none: the runtime at"},
		{"neither", Selector{Pod: "cart"}, "error: pod \"cart\": give NAMESPACE/NAME"},
	} {
		got, err := Select(h.proc, c.sel)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != c.want && !(strings.HasPrefix(c.want, "error: ") && strings.HasPrefix(got, c.want)) {
			t.Errorf("%s: Select(%+v) = %q, want %q", c.name, c.sel, got, c.want)
		}
	}
}

func TestTable(t *testing.T) {
	var tb Table
	if w, ok := tb.Lookup(7); ok || w.Kind != KindOther || w.CgroupID != 7 {
		t.Errorf("empty table: Lookup(7) = %+v, %v", w, ok)
	}
	tb.Add(map[string]Workload{"7": {Kind: KindService, Service: "nginx.service"}, "x": {Kind: KindPod}})
	if w, ok := tb.Lookup(7); !ok || w.Service != "nginx.service" || w.CgroupID != 7 {
		t.Errorf("Lookup(7) = %+v, %v", w, ok)
	}
	if _, ok := tb.Lookup(8); ok {
		t.Error("Lookup(8) answered without an entry")
	}

	// network namespaces are a table of their own: a cgroup id is no inode
	if w, ok := tb.LookupNetns(7); ok || w.Kind != KindOther {
		t.Errorf("LookupNetns(7) before AddNetns = %+v, %v", w, ok)
	}
	pod := Workload{Kind: KindPod, PodUID: "uid-a", Namespace: "shop", Pod: "web-1", CgroupID: 99}
	tb.AddNetns(map[string]Workload{"4026532999": pod, "netns": {Kind: KindPod}})
	want := pod
	want.CgroupID = 0
	if w, ok := tb.LookupNetns(4026532999); !ok || w != want {
		t.Errorf("LookupNetns(4026532999) = %+v, %v; want %+v", w, ok, want)
	}
	if _, ok := tb.LookupNetns(7); ok {
		t.Error("LookupNetns(7) answered without an entry")
	}
	if w, ok := tb.Lookup(4026532999); ok {
		t.Errorf("Lookup answers a namespace's entry: %+v", w)
	}
}
