package main

import (
	"encoding/json"
	"io"
	"path"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/internal/workload/critest"
)

// --pod, --container and --cgroup keep a workload's connections only: a
// process in a pod's container cgroup makes connections beside this test's
// own, in one namespace, and twtop started with each of the filters (the
// pod by name through a CRI socket and by UID, the container by a prefix
// of its id, the pod's cgroup by path) reports exactly the pod's closes
// and TIME_WAIT sockets, matching the namespace's TcpExt.TW.
func TestFilterByWorkload(t *testing.T) {
	netnstest.RequireRoot(t)
	uid, id, sandbox := randomPodUID(t), randomHex(t, 32), randomHex(t, 32)
	cg := podCgroup(t, uid, id)
	cri := critest.New()
	cri.AddPod(uid, "shop", "cart-1", sandbox)
	sock := cri.Serve(t, "containerd.sock")
	ns := netnstest.New(t)
	const podConns, ownConns = 4, 3

	filters := [][]string{
		{"--pod", "shop/cart-1", "--cri-socket", sock},
		{"--pod", uid},
		{"--container", id[:12]},
		{"--cgroup", cgroupPath(t, filepath.Dir(cg))},
	}
	var outs []io.Reader
	var waits []func() error
	for _, f := range filters {
		_, stdout, wait := startTwtop(t, append([]string{"--report", "json", "--netns", ns.Path(), "--duration", "4s"}, f...)...)
		outs, waits = append(outs, stdout), append(waits, wait)
	}
	before := netnstest.Counters(t, ns)
	own, err := scenario.ClientCloses(ns, ownConns, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { own.Close() })
	runPodHelper(t, ns.Path(), cg, podConns)
	if tw := netnstest.Delta(t, before, netnstest.Counters(t, ns), "TcpExt.TW"); tw != 0 && tw != podConns+ownConns {
		// the kernel counts TW at creation since 5.19, at expiry before
		t.Fatalf("TcpExt.TW moved by %d, want %d", tw, podConns+ownConns)
	}
	for i, f := range filters {
		out, err := io.ReadAll(outs[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := waits[i](); err != nil {
			t.Fatalf("twtop %v: %v", f, err)
		}
		var rep struct {
			Closes   struct{ Active, Passive uint64 }
			Timewait struct{ Created uint64 }
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("twtop %v: report: %v\n%s", f, err, out)
		}
		// The pod's process closes its clients first. (Its listener's
		// side closes second, but an accepted socket's owner is learnt
		// at the owner's first transition, its close, after the passive
		// close's ESTABLISHED -> CLOSE_WAIT: owner filters, --pid too,
		// see the passive side from LAST_ACK on.)
		if rep.Timewait.Created != podConns || rep.Closes.Active != podConns {
			t.Errorf("twtop %v: timewait.created %d, closes.active %d; want the pod's %d each",
				f, rep.Timewait.Created, rep.Closes.Active, podConns)
		}
	}
}

// cgroupPath is the cgroup path of directory dir, as /proc/PID/cgroup
// shows it.
func cgroupPath(t *testing.T, dir string) string {
	m, err := workload.FindCgroup2("/proc")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(m.Dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	return path.Join(m.Root, filepath.ToSlash(rel))
}
