package workload

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/twtop/twtop/internal/workload/critest"
)

const (
	sandboxID  = "aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000"
	sandboxID2 = "bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000bbbb0000"
	uid2       = "7c1d2e3f-0a1b-4c2d-8e3f-9a0b1c2d3e4f"
)

// systemdPod is a burstable pod's cgroup path under kubelet's systemd
// driver, with a container when id is not empty.
func systemdPod(uid, id string) string {
	p := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + underscores(uid) + ".slice"
	if id != "" {
		p += "/cri-containerd-" + id + ".scope"
	}
	return p
}

func underscores(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

func TestCRINames(t *testing.T) {
	h := newFakeHost(t)
	cri := critest.New()
	cri.AddPod(uid, "shop", "web-7d9f", sandboxID)
	cri.AddContainer(cid, sandboxID, "nginx")
	cri.AddPod(uid2, "kube-system", "coredns-5d78", sandboxID2)
	cri.AddContainer(cid2, sandboxID2, "coredns")
	sock := cri.Serve(t, "containerd.sock")

	ctrID := h.mkdir(systemdPod(uid, cid))
	sbID := h.mkdir(systemdPod(uid, sandboxID))
	podID := h.id(systemdPod(uid, ""))
	// kubelet's cgroupfs driver: the path does not name the runtime
	fsID := h.mkdir("/kubepods/besteffort/pod" + uid2 + "/" + cid2)
	unknown := h.mkdir(systemdPod("11111111-2222-3333-4444-555555555555", cid2[:63]+"0"))
	svc := h.mkdir("/system.slice/nginx.service")

	cfg := h.config()
	cfg.NoCRI = false
	cfg.CRISocket = sock
	r := newResolver(t, cfg)
	for _, tc := range []struct {
		id   uint64
		want Workload
	}{
		{ctrID, Workload{Kind: KindPod, CgroupID: ctrID, Path: systemdPod(uid, cid), PodUID: uid, ContainerID: cid,
			Runtime: RuntimeContainerd, Namespace: "shop", Pod: "web-7d9f", Container: "nginx"}},
		{sbID, Workload{Kind: KindPod, CgroupID: sbID, Path: systemdPod(uid, sandboxID), PodUID: uid, ContainerID: sandboxID,
			Runtime: RuntimeContainerd, Namespace: "shop", Pod: "web-7d9f"}},
		{podID, Workload{Kind: KindPod, CgroupID: podID, Path: systemdPod(uid, ""), PodUID: uid, Namespace: "shop", Pod: "web-7d9f"}},
		{fsID, Workload{Kind: KindPod, CgroupID: fsID, Path: "/kubepods/besteffort/pod" + uid2 + "/" + cid2, PodUID: uid2, ContainerID: cid2,
			Runtime: RuntimeContainerd, Namespace: "kube-system", Pod: "coredns-5d78", Container: "coredns"}},
		{svc, Workload{Kind: KindService, CgroupID: svc, Path: "/system.slice/nginx.service", Service: "nginx.service"}},
	} {
		got := eventually(t, func() (Workload, bool) { return r.Lookup(tc.id) }, anyAnswer)
		if got != tc.want {
			t.Errorf("Lookup(%d)\n got %+v\nwant %+v", tc.id, got, tc.want)
		}
	}
	// A pod the runtime does not know keeps its ids, and the runtime is
	// not blamed for it.
	got := eventually(t, func() (Workload, bool) { return r.Lookup(unknown) }, anyAnswer)
	if got.Kind != KindPod || got.PodUID != "11111111-2222-3333-4444-555555555555" || got.Pod != "" {
		t.Errorf("unknown pod: %+v", got)
	}
	if err := r.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	// The lists are fetched when an id is missing, not per lookup.
	if n := cri.Calls(); n > 8 {
		t.Errorf("%d CRI calls for 6 cgroups", n)
	}
	if s := r.Stats(); s.CRICalls != uint64(cri.Calls()) || s.CRIErrors != 0 {
		t.Errorf("stats %+v, server saw %d calls", s, cri.Calls())
	}
}

func TestFindCRISocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := critest.New().Serve(t, "crio.sock")
	missing := filepath.Join(dir, "missing.sock")
	if got, err := FindCRISocket([]string{missing, file, sock}); err != nil || got != sock {
		t.Errorf("FindCRISocket = %q, %v; want %q", got, err, sock)
	}
	_, err := FindCRISocket([]string{missing, file})
	if !errors.Is(err, ErrNoRuntime) {
		t.Errorf("FindCRISocket without a socket: %v", err)
	}
	if len(DefaultCRISockets) != 4 {
		t.Errorf("DefaultCRISockets = %v", DefaultCRISockets)
	}
	for s, want := range map[string]Runtime{
		"/run/containerd/containerd.sock":     RuntimeContainerd,
		"/run/k3s/containerd/containerd.sock": RuntimeContainerd,
		"/run/crio/crio.sock":                 RuntimeCRIO,
		"/var/run/cri-dockerd.sock":           RuntimeDocker,
		"/run/other.sock":                     "",
	} {
		if got := socketRuntime(s); got != want {
			t.Errorf("socketRuntime(%s) = %q, want %q", s, got, want)
		}
	}
}

// TestCRIDiscovery finds the runtime among candidate sockets.
func TestCRIDiscovery(t *testing.T) {
	h := newFakeHost(t)
	cri := critest.New()
	cri.AddPod(uid, "shop", "web-7d9f", sandboxID)
	cri.AddContainer(cid, sandboxID, "nginx")
	sock := cri.Serve(t, "crio.sock")
	id := h.mkdir(systemdPod(uid, cid))
	cfg := h.config()
	cfg.NoCRI = false
	cfg.CRISockets = []string{filepath.Join(t.TempDir(), "containerd.sock"), sock}
	r := newResolver(t, cfg)
	w := eventually(t, func() (Workload, bool) { return r.Lookup(id) }, anyAnswer)
	if w.String() != "shop/web-7d9f/nginx" {
		t.Errorf("resolved %+v", w)
	}
}

// TestNoRuntime keeps the ids when no runtime socket exists, and says why
// once.
func TestNoRuntime(t *testing.T) {
	h := newFakeHost(t)
	svc := h.mkdir("/system.slice/nginx.service")
	a := h.mkdir(systemdPod(uid, cid))
	b := h.mkdir(systemdPod(uid2, cid2))
	cfg := h.config()
	cfg.NoCRI = false
	missing := filepath.Join(t.TempDir(), "containerd.sock")
	cfg.CRISockets = []string{missing}
	cfg.CRIBackoff = time.Millisecond
	r := newResolver(t, cfg)

	eventually(t, func() (Workload, bool) { return r.Lookup(svc) }, anyAnswer)
	if err := r.Err(); err != nil {
		t.Fatalf("Err before any pod was seen: %v", err)
	}
	w := eventually(t, func() (Workload, bool) { return r.Lookup(a) }, anyAnswer)
	if w.Kind != KindPod || w.PodUID != uid || w.ContainerID != cid || w.Pod != "" {
		t.Errorf("without a runtime: %+v", w)
	}
	first := r.Err()
	if !errors.Is(first, ErrNoRuntime) {
		t.Fatalf("Err = %v, want ErrNoRuntime", first)
	}
	t.Logf("Err: %v", first)
	time.Sleep(5 * time.Millisecond)
	eventually(t, func() (Workload, bool) { return r.Lookup(b) }, anyAnswer)
	if again := r.Err(); again.Error() != first.Error() {
		t.Errorf("Err changed from %q to %q", first, again)
	}
}

// TestUnreachableRuntime keeps the ids when the socket does not answer.
func TestUnreachableRuntime(t *testing.T) {
	h := newFakeHost(t)
	id := h.mkdir(systemdPod(uid, cid))
	cfg := h.config()
	cfg.NoCRI = false
	cfg.CRISocket = filepath.Join(t.TempDir(), "containerd.sock") // nobody listens
	cfg.CallTimeout = time.Second
	r := newResolver(t, cfg)
	w := eventually(t, func() (Workload, bool) { return r.Lookup(id) }, anyAnswer)
	if w.Kind != KindPod || w.PodUID != uid || w.Pod != "" {
		t.Errorf("unreachable runtime: %+v", w)
	}
	if code := status.Code(r.Err()); code != codes.Unavailable {
		t.Errorf("Err = %v (code %v), want Unavailable", r.Err(), code)
	}
}

// TestHungRuntime checks that a runtime that never answers delays names but
// no lookup, that each call times out, and that the names arrive once it
// answers again.
func TestHungRuntime(t *testing.T) {
	h := newFakeHost(t)
	cri := critest.New()
	cri.AddPod(uid, "shop", "web-7d9f", sandboxID)
	cri.AddContainer(cid, sandboxID, "nginx")
	cri.SetHang(true)
	sock := cri.Serve(t, "containerd.sock")
	id := h.mkdir(systemdPod(uid, cid))
	svc := h.mkdir("/system.slice/nginx.service")

	clock := newFakeClock()
	cfg := h.config()
	cfg.NoCRI = false
	cfg.CRISocket = sock
	cfg.CallTimeout = time.Second
	cfg.CRIBackoff = 10 * time.Millisecond
	cfg.Now = clock.Now
	r := newResolver(t, cfg)

	start := time.Now()
	var slowest time.Duration
	var w Workload
	for ok := false; !ok; {
		t0 := time.Now()
		w, ok = r.Lookup(id)
		r.Lookup(svc)
		slowest = max(slowest, time.Since(t0))
		if time.Since(start) > 10*time.Second {
			t.Fatal("never resolved")
		}
		time.Sleep(100 * time.Microsecond)
	}
	waited := time.Since(start)
	t.Logf("resolved after %v; slowest lookup %v", waited, slowest)
	if slowest > cfg.CallTimeout/4 {
		t.Errorf("a lookup took %v while the runtime hung", slowest)
	}
	if waited < cfg.CallTimeout {
		t.Errorf("resolved after %v, before the call timed out", waited)
	}
	if w.Kind != KindPod || w.PodUID != uid || w.ContainerID != cid || w.Pod != "" {
		t.Errorf("resolved while hung: %+v", w)
	}
	if code := status.Code(r.Err()); code != codes.DeadlineExceeded {
		t.Errorf("Err = %v, want a deadline", r.Err())
	}

	// The runtime answers again: after RetryTTL the entry is served as it is
	// while it is resolved again, and the names arrive.
	cri.SetHang(false)
	time.Sleep(2 * cfg.CRIBackoff)
	clock.advance(cfg.withDefaults().RetryTTL + time.Second)
	if w, ok := r.Lookup(id); !ok || w.PodUID != uid {
		t.Errorf("expired entry not served: %+v, %v", w, ok)
	}
	w = eventually(t, func() (Workload, bool) { return r.Lookup(id) }, func(w Workload) bool { return w.Pod != "" })
	if w.String() != "shop/web-7d9f/nginx" {
		t.Errorf("after the runtime recovered: %+v", w)
	}
}

// TestQueueBound fills the queue while the resolver is stuck in a hung CRI
// call: lookups beyond the bound are dropped and counted, none blocks, and
// Close does not wait for the call.
func TestQueueBound(t *testing.T) {
	h := newFakeHost(t)
	cri := critest.New()
	cri.SetHang(true)
	sock := cri.Serve(t, "containerd.sock")
	id := h.mkdir(systemdPod(uid, cid))
	cfg := h.config()
	cfg.NoCRI = false
	cfg.CRISocket = sock
	cfg.CallTimeout = time.Hour
	cfg.QueueSize = 8
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	r.Lookup(id)
	select {
	case <-cri.Entered():
	case <-time.After(10 * time.Second):
		t.Fatal("no CRI call")
	}
	start := time.Now()
	for i := range 20 {
		if _, ok := r.Lookup(uint64(1<<40 + i)); ok {
			t.Fatal("unknown id answered")
		}
	}
	// the same id again is already queued, not dropped
	r.Lookup(1 << 40)
	if d := time.Since(start); d > time.Second {
		t.Errorf("21 lookups took %v", d)
	}
	s := r.Stats()
	if s.Dropped != 12 || s.Queued != 9 {
		t.Errorf("stats %+v; want 12 dropped, 8 queued and 1 in progress", s)
	}
	start = time.Now()
	if err := r.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a hung call", d)
	}
	if err := r.Err(); err != nil {
		t.Errorf("Close's cancellation recorded as %v", err)
	}
	// after Close: answers from the cache, queues nothing
	if _, ok := r.Lookup(1<<41 + 1); ok {
		t.Error("unknown id answered after Close")
	}
	if s2 := r.Stats(); s2.Dropped != s.Dropped {
		t.Errorf("lookup after Close counted: %+v", s2)
	}
}

// TestNamesKept: a pod that the runtime no longer lists keeps the names it
// was resolved with when its entry is resolved again.
func TestNamesKept(t *testing.T) {
	h := newFakeHost(t)
	cri := critest.New()
	cri.AddPod(uid, "shop", "web-7d9f", sandboxID)
	cri.AddContainer(cid, sandboxID, "nginx")
	id := h.mkdir(systemdPod(uid, cid))
	other := h.mkdir(systemdPod(uid2, cid2))
	clock := newFakeClock()
	cfg := h.config()
	cfg.NoCRI = false
	cfg.CRISocket = cri.Serve(t, "containerd.sock")
	cfg.Now = clock.Now
	r := newResolver(t, cfg)
	eventually(t, func() (Workload, bool) { return r.Lookup(id) }, func(w Workload) bool { return w.Pod != "" })

	cri.RemovePod(sandboxID)
	time.Sleep(5 * time.Millisecond)
	eventually(t, func() (Workload, bool) { return r.Lookup(other) }, anyAnswer) // refreshes the lists
	clock.advance(cfg.withDefaults().TTL + time.Second)
	before := r.Stats().Resolved
	r.Lookup(id)
	for r.Stats().Resolved == before {
		time.Sleep(time.Millisecond)
	}
	if w, _ := r.Lookup(id); w.String() != "shop/web-7d9f/nginx" {
		t.Errorf("names lost: %+v", w)
	}
}
