package workload

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeHost is a cgroup2 hierarchy and a procfs made of plain files in a
// temporary directory: cgroup ids are the directories' real inodes, and a
// process's ns/net is a link reading "net:[INODE]" as in procfs.
type fakeHost struct {
	t      testing.TB
	cgroup string // the hierarchy's root directory
	proc   string
	attic  string // removed cgroups go here, so their inodes are not reused
	gone   int
}

func newFakeHost(t testing.TB) *fakeHost {
	t.Helper()
	dir := t.TempDir()
	h := &fakeHost{t: t, cgroup: filepath.Join(dir, "cgroup"), proc: filepath.Join(dir, "proc"), attic: filepath.Join(dir, "attic")}
	for _, d := range []string{h.cgroup, filepath.Join(h.proc, "self"), h.attic} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mountinfo := "25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n" +
		"30 25 0:26 / " + strings.ReplaceAll(h.cgroup, " ", `\040`) + " rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
	h.write(filepath.Join(h.proc, "self", "mountinfo"), mountinfo)
	h.process(1, "/init.scope", hostNS)
	return h
}

// hostNS is the fake host network namespace's inode.
const hostNS = 4026531840

func (h *fakeHost) write(name, data string) {
	h.t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// mkdir creates a cgroup and returns its id.
func (h *fakeHost) mkdir(cgPath string) uint64 {
	h.t.Helper()
	dir := filepath.Join(h.cgroup, filepath.FromSlash(cgPath))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	h.write(filepath.Join(dir, "cgroup.procs"), "")
	return h.id(cgPath)
}

// id returns a cgroup's id.
func (h *fakeHost) id(cgPath string) uint64 {
	h.t.Helper()
	ino, err := inode(filepath.Join(h.cgroup, filepath.FromSlash(cgPath)))
	if err != nil {
		h.t.Fatal(err)
	}
	return ino
}

// rmdir removes a cgroup (into the attic).
func (h *fakeHost) rmdir(cgPath string) {
	h.t.Helper()
	h.gone++
	if err := os.Rename(filepath.Join(h.cgroup, filepath.FromSlash(cgPath)), filepath.Join(h.attic, strconv.Itoa(h.gone))); err != nil {
		h.t.Fatal(err)
	}
}

// process creates /proc/PID for a process in a cgroup and a network
// namespace, and lists it in the cgroup's cgroup.procs when that exists.
func (h *fakeHost) process(pid int, cgPath string, netns uint64) {
	h.t.Helper()
	dir := filepath.Join(h.proc, strconv.Itoa(pid))
	h.write(filepath.Join(dir, "cgroup"), "0::"+cgPath+"\n")
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.Symlink(fmt.Sprintf("net:[%d]", netns), filepath.Join(dir, "ns", "net")); err != nil {
		h.t.Fatal(err)
	}
	procs := filepath.Join(h.cgroup, filepath.FromSlash(cgPath), "cgroup.procs")
	if data, err := os.ReadFile(procs); err == nil {
		h.write(procs, string(data)+strconv.Itoa(pid)+"\n")
	}
}

// exit removes /proc/PID.
func (h *fakeHost) exit(pid int) {
	h.t.Helper()
	if err := os.RemoveAll(filepath.Join(h.proc, strconv.Itoa(pid))); err != nil {
		h.t.Fatal(err)
	}
}

// config is a resolver configuration on the fake host, without CRI and
// with fast rewalks.
func (h *fakeHost) config() Config {
	return Config{
		ProcRoot:       h.proc,
		NoCRI:          true,
		RewalkInterval: time.Millisecond,
	}
}

func newResolver(t *testing.T, cfg Config) *Resolver {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// eventually polls lookup until it answers ok and done accepts the answer.
func eventually(t *testing.T, lookup func() (Workload, bool), done func(Workload) bool) Workload {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, ok := lookup()
		if ok && done(w) {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("not resolved: last answer %+v, %v", w, ok)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func anyAnswer(Workload) bool { return true }

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
