package workload

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMountinfo(t *testing.T) {
	const (
		root   = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
		v2     = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
		hybrid = "30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n" +
			"31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate\n" +
			"33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory\n"
		bind = "40 22 0:30 /kubepods.slice /host/kubepods rw,relatime - cgroup2 cgroup2 rw\n"
		// a mount point with a space; optional fields before the separator
		spaced = "41 22 0:30 / /mnt/my\\040cgroup rw shared:3 master:1 - cgroup2 none rw\n"
		v1only = root + "33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
		// a container in a cgroup namespace of its own, with the node's
		// hierarchy mounted over its /sys/fs/cgroup (twtop's DaemonSet): the
		// mount's root reads relative to the namespace's
		nodeInPod = "620 600 0:30 /../../.. /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime master:9 - cgroup2 cgroup2 rw\n"
	)
	for _, tc := range []struct {
		name, mountinfo string
		want            Mount
		err             error
	}{
		{"unified", root + v2, Mount{Dir: "/sys/fs/cgroup", Root: "/"}, nil},
		{"hybrid", root + hybrid, Mount{Dir: "/sys/fs/cgroup/unified", Root: "/"}, nil},
		{"whole hierarchy over a bind mount of part", root + bind + v2, Mount{Dir: "/sys/fs/cgroup", Root: "/"}, nil},
		{"only part of it", root + bind, Mount{Dir: "/host/kubepods", Root: "/kubepods.slice"}, nil},
		{"escaped mount point", root + spaced, Mount{Dir: "/mnt/my cgroup", Root: "/"}, nil},
		{"the node's over a pod's own", root + nodeInPod, Mount{Dir: "/sys/fs/cgroup", Root: "/../../.."}, nil},
		{"cgroup v1 only", v1only, Mount{}, ErrNoCgroup2},
		{"empty", "", Mount{}, ErrNoCgroup2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := t.TempDir()
			if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte(tc.mountinfo), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := FindCgroup2(proc)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("FindCgroup2 = %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
	if _, err := FindCgroup2(t.TempDir()); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FindCgroup2 without mountinfo: %v", err)
	}
}

func TestReadProcCgroup(t *testing.T) {
	h := newFakeHost(t)
	h.write(filepath.Join(h.proc, "10", "cgroup"), "0::/system.slice/nginx.service\n")
	h.write(filepath.Join(h.proc, "11", "cgroup"), "12:memory:/system.slice/docker.service\n3:cpu,cpuacct:/\n0::/system.slice/docker.service\n")
	h.write(filepath.Join(h.proc, "12", "cgroup"), "12:memory:/legacy\n1:name=systemd:/legacy\n")
	for _, tc := range []struct {
		pid  int
		want string
		err  string
	}{
		{10, "/system.slice/nginx.service", ""},
		{11, "/system.slice/docker.service", ""},
		{12, "", "no cgroup v2 line"},
		{13, "", "no such file"},
	} {
		got, err := ReadProcCgroup(h.proc, tc.pid)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ReadProcCgroup(%d) = %q, %v; want %q, %q", tc.pid, got, err, tc.want, tc.err)
		}
	}
}

func TestIndexWalk(t *testing.T) {
	h := newFakeHost(t)
	root := h.id("/")
	svc := h.mkdir("/system.slice/nginx.service")
	pod := h.mkdir("/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope")
	x := newIndex(Mount{Dir: h.cgroup, Root: "/"}, time.Hour)
	if !x.nextWalk().IsZero() {
		t.Fatal("first walk not allowed at once")
	}
	if err := x.walk(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[uint64]string{
		root: "/",
		svc:  "/system.slice/nginx.service",
		pod:  "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope",
	} {
		if got, ok := x.lookup(id); !ok || got != want {
			t.Errorf("lookup(%d) = %q, %v; want %q", id, got, ok, want)
		}
	}
	if time.Until(x.nextWalk()) < 59*time.Minute {
		t.Errorf("next walk at %v, want in an hour", x.nextWalk())
	}
	late := h.mkdir("/system.slice/late.service")
	h.rmdir("/system.slice/nginx.service")
	if _, ok := x.lookup(late); ok {
		t.Fatal("found a cgroup made after the walk")
	}
	if err := x.walk(); err != nil {
		t.Fatal(err)
	}
	if p, ok := x.lookup(late); !ok || p != "/system.slice/late.service" {
		t.Errorf("after rewalk: %q, %v", p, ok)
	}
	if p, ok := x.lookup(svc); ok {
		t.Errorf("removed cgroup still indexed at %q", p)
	}

	gone := newIndex(Mount{Dir: filepath.Join(h.cgroup, "missing"), Root: "/"}, 0)
	if err := gone.walk(); err == nil {
		t.Error("walk of a missing root succeeded")
	}
}

func TestIndexMountRoot(t *testing.T) {
	h := newFakeHost(t)
	// The mount shows /kubepods.slice only, as a bind mount of it would.
	id := h.mkdir("/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope")
	x := newIndex(Mount{Dir: h.cgroup, Root: "/kubepods.slice"}, 0)
	if err := x.walk(); err != nil {
		t.Fatal(err)
	}
	want := "/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope"
	if p, ok := x.lookup(id); !ok || p != want {
		t.Errorf("lookup = %q, %v; want %q", p, ok, want)
	}
	if name, ok := x.fsPath(want); !ok || name != filepath.Join(h.cgroup, "kubepods-pod"+uidU+".slice", "cri-containerd-"+cid+".scope") {
		t.Errorf("fsPath = %q, %v", name, ok)
	}
	for _, p := range []string{"/system.slice/nginx.service", "/kubepods.slicex/a"} {
		if name, ok := x.fsPath(p); ok {
			t.Errorf("fsPath(%q) = %q outside the mount", p, name)
		}
	}
}

// TestIndexNamespacedRoot: the whole hierarchy seen from a cgroup namespace
// below its root (a mount root of "/../../..") reads as the node's paths.
func TestIndexNamespacedRoot(t *testing.T) {
	h := newFakeHost(t)
	p := systemdPod(uid, cid)
	id := h.mkdir(p)
	x := newIndex(Mount{Dir: h.cgroup, Root: "/../../.."}, 0)
	if err := x.walk(); err != nil {
		t.Fatal(err)
	}
	if got, ok := x.lookup(id); !ok || got != p {
		t.Errorf("lookup = %q, %v; want %q", got, ok, p)
	}
	if name, ok := x.fsPath(p); !ok || name != filepath.Join(h.cgroup, filepath.FromSlash(p)) {
		t.Errorf("fsPath = %q, %v", name, ok)
	}
}

func TestIndexVerify(t *testing.T) {
	h := newFakeHost(t)
	a := h.mkdir("/system.slice/a.service")
	b := h.mkdir("/system.slice/b.service")
	x := newIndex(Mount{Dir: h.cgroup, Root: "/"}, 0)
	if !x.verify(a, "/system.slice/a.service") {
		t.Error("right path refused")
	}
	if p, _ := x.lookup(a); p != "/system.slice/a.service" {
		t.Errorf("verified path not indexed: %q", p)
	}
	if x.verify(b, "/system.slice/a.service") {
		t.Error("path of another cgroup accepted (the process moved)")
	}
	if x.verify(b, "/system.slice/gone.service") {
		t.Error("missing path accepted")
	}
}

func TestNsInode(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("net:[4026532315]", filepath.Join(dir, "net")); err != nil {
		t.Fatal(err)
	}
	if ino, err := nsInode(filepath.Join(dir, "net")); err != nil || ino != 4026532315 {
		t.Errorf("nsInode(link) = %d, %v", ino, err)
	}
	// a bind-mounted namespace is a file whose inode is the namespace's
	file := filepath.Join(dir, "cni-1234")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want, _ := inode(file)
	if ino, err := nsInode(file); err != nil || ino != want {
		t.Errorf("nsInode(file) = %d, %v; want %d", ino, err, want)
	}
	if _, err := nsInode(filepath.Join(dir, "missing")); err == nil {
		t.Error("nsInode of a missing file succeeded")
	}
	// the real thing, when this process may read it
	if ino, err := nsInode("/proc/self/ns/net"); err == nil {
		fi, err := os.Stat("/proc/self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := inodeOf(fi); st != ino {
			t.Errorf("/proc/self/ns/net: link says %d, stat says %d", ino, st)
		}
	}
}

// TestRealCgroup2 resolves this test's own cgroup on the machine's cgroup2
// hierarchy, when it has one (no root needed: the hierarchy is readable).
func TestRealCgroup2(t *testing.T) {
	m, err := FindCgroup2("/proc")
	if err != nil {
		t.Skipf("no cgroup2 here: %v", err)
	}
	self, err := ReadProcCgroup("/proc", os.Getpid())
	if err != nil {
		t.Skipf("no cgroup v2 line: %v", err)
	}
	r := newResolver(t, Config{NoCRI: true})
	id, err := r.CgroupID(self)
	if err != nil {
		t.Skipf("own cgroup %s not visible under %+v: %v", self, m, err)
	}
	w := eventually(t, func() (Workload, bool) { return r.LookupPID(id, os.Getpid()) }, anyAnswer)
	if w.Path != self || w.CgroupID != id {
		t.Errorf("own cgroup %d at %s resolved to %+v", id, self, w)
	}
	if want := ParsePath(self); w.Kind != want.Kind {
		t.Errorf("kind %q, want %q", w.Kind, want.Kind)
	}
	t.Logf("cgroup2 at %s: own cgroup %d is %s (%s)", m.Dir, id, self, w)
}
