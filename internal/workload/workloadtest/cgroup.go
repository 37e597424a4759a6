// Package workloadtest makes the cgroups that kubelet and a container
// runtime would, on the machine's real cgroup2 hierarchy, for end-to-end
// tests of workload attribution.
package workloadtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/workload"
)

// Cgroup creates the cgroup at the path of names under the root of the
// cgroup2 mount, creating the missing ones, and returns its directory. When
// tb ends it removes what it created, moving any process left in it to the
// mount's root first. It skips tb (fails it under CI=true) when there is no
// cgroup2 mount or it cannot be written.
func Cgroup(tb testing.TB, names ...string) string {
	tb.Helper()
	m, err := workload.FindCgroup2("/proc")
	if err != nil {
		netnstest.Unprivileged(tb, "no cgroup2 hierarchy to make a cgroup in: "+err.Error())
	}
	dir := m.Dir
	var made []string
	tb.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			removeCgroup(tb, made[i], m.Dir)
		}
	})
	for _, name := range names {
		dir = filepath.Join(dir, name)
		err := os.Mkdir(dir, 0o755)
		switch {
		case err == nil:
			made = append(made, dir)
		case errors.Is(err, fs.ErrExist):
		case errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS):
			netnstest.Unprivileged(tb, fmt.Sprintf("cannot create a cgroup in %s: %v", m.Dir, err))
		default:
			tb.Fatalf("create cgroup: %v", err)
		}
	}
	return dir
}

// PodCgroup creates a container's cgroup as kubelet's systemd driver names
// it (kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID,
// dashes as underscores>.slice/cri-containerd-<ID>.scope), as Cgroup does.
func PodCgroup(tb testing.TB, uid, id string) string {
	tb.Helper()
	return Cgroup(tb, "kubepods.slice", "kubepods-burstable.slice",
		"kubepods-burstable-pod"+strings.ReplaceAll(uid, "-", "_")+".slice", "cri-containerd-"+id+".scope")
}

// Join moves the calling process into the cgroup directory dir.
func Join(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(os.Getpid())), 0); err != nil {
		return fmt.Errorf("join cgroup %s: %w", dir, err)
	}
	return nil
}

// removeCgroup moves the processes left in a cgroup to root and removes it,
// waiting a little for exited ones to leave it. A cgroup that another
// test's cgroups sit below (tests of other packages run at the same time
// and share kubepods.slice) is left to the last one out.
func removeCgroup(tb testing.TB, dir, root string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(procs)) {
				os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0)
			}
		}
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return
		}
		if errors.Is(err, unix.EBUSY) && hasChildren(dir) {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hasChildren reports whether the cgroup directory dir has cgroups below.
func hasChildren(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.IsDir() {
			return true
		}
	}
	return false
}
