package workload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twtop/twtop/internal/workload/critest"
)

func TestNewBadCgroupRoot(t *testing.T) {
	if _, err := New(Config{CgroupRoot: filepath.Join(t.TempDir(), "missing")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing root: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{CgroupRoot: file}); err == nil {
		t.Error("a file as root accepted")
	}
}

func TestLookup(t *testing.T) {
	h := newFakeHost(t)
	svc := h.mkdir("/system.slice/system-getty.slice/getty@tty1.service")
	r := newResolver(t, h.config()) // finds the fake mount in mountinfo
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	w, ok := r.Lookup(0)
	if !ok || w != (Workload{Kind: KindOther}) {
		t.Errorf("Lookup(0) = %+v, %v", w, ok)
	}
	// made after the first walk: found by the walk a miss triggers
	ctr := h.mkdir("/system.slice/docker-" + cid + ".scope")
	want := map[uint64]Workload{
		svc: {Kind: KindService, CgroupID: svc, Path: "/system.slice/system-getty.slice/getty@tty1.service", Service: "getty@tty1.service"},
		ctr: {Kind: KindContainer, CgroupID: ctr, Path: "/system.slice/docker-" + cid + ".scope", ContainerID: cid, Runtime: RuntimeDocker},
	}
	for id, want := range want {
		if w, ok := r.Lookup(id); ok {
			t.Logf("answered at once: %+v", w)
		} else if w != (Workload{Kind: KindOther, CgroupID: id}) {
			t.Errorf("placeholder %+v", w)
		}
		if got := eventually(t, func() (Workload, bool) { return r.Lookup(id) }, anyAnswer); got != want {
			t.Errorf("Lookup(%d)\n got %+v\nwant %+v", id, got, want)
		}
	}
	if id, err := r.CgroupID("/system.slice/docker-" + cid + ".scope"); err != nil || id != ctr {
		t.Errorf("CgroupID = %d, %v; want %d", id, err, ctr)
	}
	if _, err := r.CgroupID("/system.slice/missing.service"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CgroupID of a missing cgroup: %v", err)
	}
	h.process(77, "/system.slice/nginx.service", hostNS)
	if p, err := r.ProcCgroup(77); err != nil || p != "/system.slice/nginx.service" {
		t.Errorf("ProcCgroup = %q, %v", p, err)
	}
	if s := r.Stats(); s.Resolved != 2 || s.Cached != 2 || s.Walks < 1 || s.Dropped != 0 || s.NotFound != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestLookupPID resolves through /proc/PID/cgroup when the index does not
// know the id and no walk is allowed yet.
func TestLookupPID(t *testing.T) {
	h := newFakeHost(t)
	cfg := h.config()
	cfg.RewalkInterval = time.Hour
	r := newResolver(t, cfg)
	eventually(t, func() (Workload, bool) { return r.Lookup(h.id("/")) }, anyAnswer) // the first walk is done

	id := h.mkdir("/system.slice/nginx.service")
	h.process(42, "/system.slice/nginx.service", hostNS)
	w := eventually(t, func() (Workload, bool) { return r.LookupPID(id, 42) }, anyAnswer)
	if w.Kind != KindService || w.Service != "nginx.service" || w.CgroupID != id {
		t.Errorf("through the pid: %+v", w)
	}
	if s := r.Stats(); s.Walks != 1 {
		t.Errorf("%d walks, want 1", s.Walks)
	}
}

// TestLookupPIDGone: a process that exits, with its cgroup, before it is
// resolved keeps its cgroup id; one that moved does not lend its new path.
func TestLookupPIDGone(t *testing.T) {
	h := newFakeHost(t)
	r := newResolver(t, h.config())
	root := eventually(t, func() (Workload, bool) { return r.Lookup(h.id("/")) }, anyAnswer) // the first walk is done
	gone := h.mkdir("/system.slice/short.service")
	h.process(43, "/system.slice/short.service", hostNS)
	h.exit(43)
	h.rmdir("/system.slice/short.service")
	w := eventually(t, func() (Workload, bool) { return r.LookupPID(gone, 43) }, anyAnswer)
	if w != (Workload{Kind: KindOther, CgroupID: gone}) {
		t.Errorf("exited: %+v", w)
	}
	if s := r.Stats(); s.NotFound != 1 {
		t.Errorf("stats %+v", s)
	}
	if root.Path != "/" {
		t.Errorf("root: %+v", root)
	}

	// pid 44 now sits in b.service; the id looked up is a.service's
	a := h.mkdir("/system.slice/a.service")
	h.mkdir("/system.slice/b.service")
	h.process(44, "/system.slice/b.service", hostNS)
	w = eventually(t, func() (Workload, bool) { return r.LookupPID(a, 44) }, anyAnswer)
	if w.Service != "a.service" {
		t.Errorf("moved process: %+v", w)
	}
}

// TestNoCgroup2: without a cgroup2 mount only the pid resolves, unchecked.
func TestNoCgroup2(t *testing.T) {
	h := newFakeHost(t)
	h.write(filepath.Join(h.proc, "self", "mountinfo"), "25 1 8:1 / / rw - ext4 /dev/vda rw\n")
	h.write(filepath.Join(h.proc, "50", "cgroup"), "0::/system.slice/nginx.service\n")
	r := newResolver(t, h.config())
	if err := r.Err(); !errors.Is(err, ErrNoCgroup2) {
		t.Fatalf("Err = %v", err)
	}
	w := eventually(t, func() (Workload, bool) { return r.LookupPID(123456, 50) }, anyAnswer)
	if w.Service != "nginx.service" || w.CgroupID != 123456 {
		t.Errorf("through the pid: %+v", w)
	}
	w = eventually(t, func() (Workload, bool) { return r.Lookup(123457) }, anyAnswer)
	if w != (Workload{Kind: KindOther, CgroupID: 123457}) {
		t.Errorf("without a pid: %+v", w)
	}
	if _, err := r.CgroupID("/"); !errors.Is(err, ErrNoCgroup2) {
		t.Errorf("CgroupID: %v", err)
	}
}

func TestLookupNetns(t *testing.T) {
	h := newFakeHost(t)
	const uid3 = "33333333-3333-4333-8333-333333333333"
	cidE := "e" + cid[1:]
	cidF := "f" + cid[1:]
	h.mkdir(systemdPod(uid, cid))
	h.mkdir(systemdPod(uid, sandboxID))
	h.process(100, systemdPod(uid, cid), 5001)
	h.process(101, systemdPod(uid, sandboxID), 5001)
	h.mkdir("/kubepods/burstable/pod" + uid2 + "/" + cid2)
	h.process(200, "/kubepods/burstable/pod"+uid2+"/"+cid2, 5002)
	h.mkdir(systemdPod(uid3, cid2)) // host network
	h.process(300, systemdPod(uid3, cid2), hostNS)
	h.mkdir("/system.slice/docker-" + cid + ".scope")
	h.process(400, "/system.slice/docker-"+cid+".scope", 5004)
	h.mkdir("/system.slice/docker-" + cidE + ".scope") // E and F share a namespace
	h.process(500, "/system.slice/docker-"+cidE+".scope", 5005)
	h.mkdir("/system.slice/docker-" + cidF + ".scope")
	h.process(501, "/system.slice/docker-"+cidF+".scope", 5005)
	h.mkdir("/system.slice/nginx.service") // not a workload with a namespace of its own
	h.process(600, "/system.slice/nginx.service", 5006)

	cri := critest.New()
	cri.AddPod(uid, "shop", "web-7d9f", sandboxID)
	cri.AddContainer(cid, sandboxID, "nginx")
	cri.AddPod(uid2, "kube-system", "coredns-5d78", sandboxID2)
	cfg := h.config()
	cfg.NoCRI = false
	cfg.CRISocket = cri.Serve(t, "containerd.sock")
	r := newResolver(t, cfg)

	for ino, want := range map[uint64]Workload{
		5001:   {Kind: KindPod, Path: systemdPod(uid, ""), PodUID: uid, Runtime: RuntimeContainerd, Namespace: "shop", Pod: "web-7d9f"},
		5002:   {Kind: KindPod, Path: "/kubepods/burstable/pod" + uid2, PodUID: uid2, Namespace: "kube-system", Pod: "coredns-5d78"},
		5004:   {Kind: KindContainer, Path: "/system.slice/docker-" + cid + ".scope", ContainerID: cid, Runtime: RuntimeDocker},
		5005:   {Kind: KindOther},
		5006:   {Kind: KindOther},
		5999:   {Kind: KindOther},
		hostNS: {Kind: KindOther},
	} {
		if got := eventually(t, func() (Workload, bool) { return r.LookupNetns(ino) }, anyAnswer); got != want {
			t.Errorf("LookupNetns(%d)\n got %+v\nwant %+v", ino, got, want)
		}
	}
	if s := r.Stats(); s.CachedNetns != 7 || s.NotFound != 3 {
		t.Errorf("stats %+v", s)
	}
}

// TestLookupNetnsSandboxStatus finds pods whose cgroups show no process
// through the runtime's verbose sandbox status: the sandbox's pid, else the
// namespace's path (as in twtop's DaemonSet, which shares no pid namespace
// with the node: the sandbox's pid is not in its /proc); a host-network
// sandbox is no pod's namespace.
func TestLookupNetnsSandboxStatus(t *testing.T) {
	h := newFakeHost(t)
	const (
		sandboxID3 = "cccc0000cccc0000cccc0000cccc0000cccc0000cccc0000cccc0000cccc0000"
		sandboxID4 = "dddd0000dddd0000dddd0000dddd0000dddd0000dddd0000dddd0000dddd0000"
		uid4       = "44444444-4444-4444-8444-444444444444"
	)
	h.mkdir(systemdPod(uid, sandboxID)) // no process listed
	h.process(700, "/elsewhere", 6001)
	nsFile := filepath.Join(t.TempDir(), "cni-5e1f")
	h.write(nsFile, "")
	nsIno, _ := inode(nsFile)
	h.process(702, "/elsewhere", 6003)
	nsFile4 := filepath.Join(t.TempDir(), "cni-9a0b")
	h.write(nsFile4, "")
	nsIno4, _ := inode(nsFile4)

	cri := critest.New()
	cri.AddPod(uid, "shop", "web-7d9f", sandboxID)
	cri.SetSandboxProcess(sandboxID, 700, "")
	cri.AddPod(uid2, "shop", "api-5c8d", sandboxID2)
	cri.SetSandboxProcess(sandboxID2, 0, nsFile)
	cri.AddPod("33333333-3333-4333-8333-333333333333", "kube-system", "kube-proxy-x", sandboxID3)
	cri.SetSandboxProcess(sandboxID3, 702, "")
	cri.SetHostNetwork(sandboxID3)
	cri.AddPod(uid4, "shop", "cart-6b7c", sandboxID4)
	cri.SetSandboxProcess(sandboxID4, 704, nsFile4) // no /proc/704
	cfg := h.config()
	cfg.NoCRI = false
	cfg.CRISocket = cri.Serve(t, "crio.sock")
	r := newResolver(t, cfg)

	for ino, want := range map[uint64]Workload{
		6001:   {Kind: KindPod, Path: systemdPod(uid, ""), PodUID: uid, Runtime: RuntimeCRIO, Namespace: "shop", Pod: "web-7d9f"},
		nsIno:  {Kind: KindPod, PodUID: uid2, Runtime: RuntimeCRIO, Namespace: "shop", Pod: "api-5c8d"},
		6003:   {Kind: KindOther},
		nsIno4: {Kind: KindPod, PodUID: uid4, Runtime: RuntimeCRIO, Namespace: "shop", Pod: "cart-6b7c"},
	} {
		if got := eventually(t, func() (Workload, bool) { return r.LookupNetns(ino) }, anyAnswer); got != want {
			t.Errorf("LookupNetns(%d)\n got %+v\nwant %+v", ino, got, want)
		}
	}
	// four sandboxes, one status call each, however many lookups
	if n := cri.Calls(); n > 4+2*4 {
		t.Errorf("%d CRI calls", n)
	}
}

// TestCacheExpiry: entries unused for a TTL are dropped; used ones are
// served past their TTL while resolved again; a cgroup that is gone keeps
// its workload.
func TestCacheExpiry(t *testing.T) {
	h := newFakeHost(t)
	a := h.mkdir("/system.slice/a.service")
	b := h.mkdir("/system.slice/b.service")
	clock := newFakeClock()
	cfg := h.config()
	cfg.TTL = time.Minute
	cfg.Now = clock.Now
	r := newResolver(t, cfg)
	for _, id := range []uint64{a, b} {
		eventually(t, func() (Workload, bool) { return r.Lookup(id) }, anyAnswer)
	}
	clock.advance(45 * time.Second)
	r.Lookup(a)
	clock.advance(30 * time.Second)
	r.sweep()
	if s := r.Stats(); s.Cached != 1 || s.Expired != 1 {
		t.Errorf("after the sweep: %+v", s)
	}
	if _, ok := r.Lookup(b); ok {
		t.Error("b still cached")
	}
	eventually(t, func() (Workload, bool) { return r.Lookup(b) }, anyAnswer)

	// a resolved 75 s ago: served, and resolved again; its cgroup is gone,
	// so it keeps what it had
	h.rmdir("/system.slice/a.service")
	before := r.Stats().Resolved
	if w, ok := r.Lookup(a); !ok || w.Service != "a.service" {
		t.Fatalf("expired entry: %+v, %v", w, ok)
	}
	for r.Stats().Resolved == before {
		time.Sleep(time.Millisecond)
	}
	if w, ok := r.Lookup(a); !ok || w.Service != "a.service" || w.Path != "/system.slice/a.service" {
		t.Errorf("gone cgroup after its refresh: %+v, %v", w, ok)
	}
}

// TestNetnsReuse: a namespace inode reused by another pod after the first
// one died resolves to the new pod once the entry expires.
func TestNetnsReuse(t *testing.T) {
	h := newFakeHost(t)
	h.mkdir(systemdPod(uid, cid))
	h.process(100, systemdPod(uid, cid), 7001)
	clock := newFakeClock()
	cfg := h.config()
	cfg.TTL = time.Minute
	cfg.Now = clock.Now
	r := newResolver(t, cfg)
	if w := eventually(t, func() (Workload, bool) { return r.LookupNetns(7001) }, anyAnswer); w.PodUID != uid {
		t.Fatalf("first pod: %+v", w)
	}
	h.rmdir(systemdPod(uid, ""))
	h.exit(100)
	h.mkdir(systemdPod(uid2, cid2))
	h.process(200, systemdPod(uid2, cid2), 7001)

	clock.advance(30 * time.Second)
	resolved := r.Stats().Resolved
	if w, _ := r.LookupNetns(7001); w.PodUID != uid {
		t.Errorf("fresh entry: %+v", w)
	}
	time.Sleep(20 * time.Millisecond)
	if n := r.Stats().Resolved; n != resolved {
		t.Errorf("a fresh entry was resolved again")
	}
	clock.advance(31 * time.Second)
	if w, _ := r.LookupNetns(7001); w.PodUID != uid {
		t.Errorf("expired entry not served as it was: %+v", w)
	}
	eventually(t, func() (Workload, bool) { return r.LookupNetns(7001) }, func(w Workload) bool { return w.PodUID == uid2 })
}

// TestChurn resolves 1,000 pods that come and go, with names, through a
// cache of 64 entries.
func TestChurn(t *testing.T) {
	const (
		pods  = 1000
		live  = 10
		limit = 64
	)
	h := newFakeHost(t)
	cri := critest.New()
	cfg := h.config()
	cfg.NoCRI = false
	cfg.CRISocket = cri.Serve(t, "containerd.sock")
	cfg.CacheSize = limit
	r := newResolver(t, cfg)
	podUID := func(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }
	sandbox := func(i int) string { return fmt.Sprintf("%064x", 1<<32+i) }
	container := func(i int) string { return fmt.Sprintf("%064x", 1<<33+i) }
	ids := make([]uint64, pods)
	for i := range pods {
		cri.AddPod(podUID(i), fmt.Sprintf("ns%d", i%7), fmt.Sprintf("pod-%d", i), sandbox(i))
		cri.AddContainer(container(i), sandbox(i), "app")
		ids[i] = h.mkdir(systemdPod(podUID(i), container(i)))
		w := eventually(t, func() (Workload, bool) { return r.Lookup(ids[i]) }, anyAnswer)
		if w.Pod != fmt.Sprintf("pod-%d", i) || w.Container != "app" || w.PodUID != podUID(i) {
			t.Fatalf("pod %d: %+v", i, w)
		}
		for j := max(0, i-live); j < i; j++ {
			r.Lookup(ids[j])
		}
		if i >= live {
			h.rmdir(systemdPod(podUID(i-live), ""))
			cri.RemovePod(sandbox(i - live))
		}
		if s := r.Stats(); s.Cached > limit {
			t.Fatalf("pod %d: %d cached, cap %d", i, s.Cached, limit)
		}
	}
	s := r.Stats()
	t.Logf("stats %+v; %d CRI calls", s, cri.Calls())
	if s.Evicted < pods-limit || s.Dropped != 0 || s.CRIErrors != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestConcurrentLookups looks up from many goroutines while the resolver
// fills the cache (run with -race).
func TestConcurrentLookups(t *testing.T) {
	h := newFakeHost(t)
	var ids []uint64
	for i := range 50 {
		ids = append(ids, h.mkdir(fmt.Sprintf("/system.slice/s%d.service", i)))
	}
	r := newResolver(t, h.config())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				r.Lookup(ids[(g+i)%len(ids)])
				r.LookupNetns(uint64(9000 + i%5))
				if i%100 == 0 {
					r.Stats()
					_ = r.Err()
				}
			}
		})
	}
	wg.Wait()
	for i, id := range ids {
		w := eventually(t, func() (Workload, bool) { return r.Lookup(id) }, anyAnswer)
		if w.Service != fmt.Sprintf("s%d.service", i) {
			t.Errorf("id %d: %+v", id, w)
		}
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLRU(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newLRU(3)
	for k := uint64(1); k <= 3; k++ {
		c.put(k, Workload{CgroupID: k}, now, now.Add(time.Duration(k)*time.Second))
	}
	c.get(1, now.Add(4*time.Second)) // 1 is now the most recently used
	c.put(4, Workload{CgroupID: 4}, now, now.Add(5*time.Second))
	if _, ok := c.peek(2); ok || c.len() != 3 || c.evicted != 1 {
		t.Fatalf("2 should be evicted: len %d, evicted %d", c.len(), c.evicted)
	}
	c.put(3, Workload{CgroupID: 33}, now, now.Add(6*time.Second)) // update in place
	if e, _ := c.peek(3); e.w.CgroupID != 33 || c.len() != 3 {
		t.Errorf("update: %+v, len %d", e, c.len())
	}
	// used at 4 s (1), 5 s (4), 6 s (3): a cutoff of 5.5 s drops 1 and 4
	c.sweep(now.Add(5500 * time.Millisecond))
	if c.len() != 1 || c.expired != 2 {
		t.Errorf("sweep: len %d, expired %d", c.len(), c.expired)
	}
	if _, ok := c.get(3, now); !ok {
		t.Error("3 swept")
	}
}

// BenchmarkLookup measures a cached answer, the cost on the event path.
func BenchmarkLookup(b *testing.B) {
	h := newFakeHost(b)
	id := h.mkdir("/system.slice/nginx.service")
	r, err := New(h.config())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for _, ok := r.Lookup(id); !ok; _, ok = r.Lookup(id) {
		time.Sleep(time.Millisecond)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Lookup(id)
		}
	})
}
