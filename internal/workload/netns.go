package workload

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// nsInode returns the inode of a namespace file: the number in a
// /proc/PID/ns/* link ("net:[4026531840]"), else the inode of what the name
// leads to (a bind-mounted namespace such as /run/netns/NAME).
func nsInode(name string) (uint64, error) {
	if target, err := os.Readlink(name); err == nil {
		if _, rest, ok := strings.Cut(target, ":["); ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64); err == nil {
				return n, nil
			}
		}
	}
	return inode(name)
}

// maxProcsRead bounds how many pids of a cgroup are tried for its netns.
const maxProcsRead = 8

// cgroupNetns returns the network namespace inode of the first process
// listed in a cgroup's cgroup.procs that can be read, 0 if none.
func cgroupNetns(dir, procRoot string) uint64 {
	f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 0; n < maxProcsRead && sc.Scan(); n++ {
		pid := strings.TrimSpace(sc.Text())
		if pid == "" {
			continue
		}
		if ino, err := nsInode(filepath.Join(procRoot, pid, "ns", "net")); err == nil {
			return ino
		}
	}
	return 0
}

// netnsOwner is the workload found in a network namespace: a pod's own
// cgroup, or a container outside Kubernetes.
type netnsOwner struct {
	key string // pod UID or container id
	w   Workload
}

// netnsScan maps network namespaces to the pods and containers whose
// processes are in them, from the cgroups in an index. It is used by one
// goroutine at a time.
type netnsScan struct {
	byCgroup map[uint64]uint64     // cgroup id → netns inode, for cgroups with a process
	owners   map[uint64]netnsOwner // netns inode → owner, for namespaces of exactly one owner
}

func newNetnsScan() *netnsScan {
	return &netnsScan{byCgroup: map[uint64]uint64{}, owners: map[uint64]netnsOwner{}}
}

// scan rebuilds owners from the index. A cgroup's namespace is read once
// (a process's namespace is fixed for the cgroup's life in practice);
// namespaces shared by several owners, and host, are left out.
func (s *netnsScan) scan(x *index, procRoot string, host uint64) {
	byCgroup := make(map[uint64]uint64, len(s.byCgroup))
	owners := map[uint64]netnsOwner{}
	shared := map[uint64]bool{}
	for id, p := range x.paths {
		w := ParsePath(p)
		if w.Kind != KindPod && w.Kind != KindContainer {
			continue
		}
		ns, ok := s.byCgroup[id]
		if !ok {
			dir, visible := x.fsPath(p)
			if !visible {
				continue
			}
			if ns = cgroupNetns(dir, procRoot); ns == 0 {
				continue
			}
		}
		byCgroup[id] = ns
		if ns == host || shared[ns] {
			continue
		}
		o := netnsOwner{key: w.ContainerID, w: w}
		if w.Kind == KindPod {
			o.key = w.PodUID
			o.w = Workload{Kind: KindPod, Path: podDir(p), PodUID: w.PodUID, Runtime: w.Runtime}
		}
		if old, ok := owners[ns]; ok {
			if old.key != o.key {
				delete(owners, ns)
				shared[ns] = true
			} else if old.w.Runtime == "" {
				owners[ns] = o
			}
			continue
		}
		owners[ns] = o
	}
	s.byCgroup, s.owners = byCgroup, owners
}

// hostNetns returns the inode of the host's network namespace as seen in
// procRoot: pid 1's, else the calling thread's own, 0 if unknown. Not
// /proc/self's: that is the main thread's, which a goroutine locked to it
// may have moved into another namespace (twtop --netns does).
func hostNetns(procRoot string) uint64 {
	if ino, err := nsInode(filepath.Join(procRoot, "1", "ns", "net")); err == nil {
		return ino
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if ino, err := nsInode(filepath.Join(procRoot, "thread-self", "ns", "net")); err == nil {
		return ino
	}
	return 0
}
