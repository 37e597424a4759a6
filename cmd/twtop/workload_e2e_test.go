package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/internal/workload"
)

const (
	podHelperNetnsEnv  = "TWTOP_TEST_POD_NETNS"
	podHelperCgroupEnv = "TWTOP_TEST_POD_CGROUP"
	podHelperConnsEnv  = "TWTOP_TEST_POD_CONNS"
)

// TestPodHelperProcess is the pod's process of TestReportByPod: it joins
// the cgroup and the namespace it is given and makes connections whose
// client closes first.
func TestPodHelperProcess(t *testing.T) {
	path := os.Getenv(podHelperNetnsEnv)
	if path == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv(podHelperConnsEnv))
	if err := podConnections(os.Getenv(podHelperCgroupEnv), path, n); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// podConnections moves this process into the cgroup directory cg, then
// makes n client-closes-first connections in the namespace at path: n
// TIME_WAIT sockets, all made by the cgroup's process.
func podConnections(cg, path string, n int) error {
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("join the cgroup: %w", err)
	}
	return scenario.ClientClosesFromHere(path, 5080, n, nil)
}

// podCgroup creates a container's cgroup as kubelet's systemd driver names
// it (kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<UID,
// dashes as underscores>.slice/cri-containerd-<ID>.scope) in the cgroup2
// mount, and removes what it created when t ends, moving any process left
// in it to the mount's root first. It skips t (fails it under CI=true)
// when there is no cgroup2 mount or it cannot be written.
func podCgroup(t *testing.T, uid, id string) string {
	t.Helper()
	m, err := workload.FindCgroup2("/proc")
	if err != nil {
		netnstest.Unprivileged(t, "no cgroup2 hierarchy to make a pod's cgroup in: "+err.Error())
	}
	dir := m.Dir
	var made []string
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			removeCgroup(t, made[i], m.Dir)
		}
	})
	for _, name := range []string{"kubepods.slice", "kubepods-burstable.slice",
		"kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice", "cri-containerd-" + id + ".scope"} {
		dir = filepath.Join(dir, name)
		err := os.Mkdir(dir, 0o755)
		switch {
		case err == nil:
			made = append(made, dir)
		case errors.Is(err, fs.ErrExist):
		case errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EROFS):
			netnstest.Unprivileged(t, fmt.Sprintf("cannot create a cgroup in %s: %v", m.Dir, err))
		default:
			t.Fatalf("create cgroup: %v", err)
		}
	}
	return dir
}

// removeCgroup moves the processes left in a cgroup to root and removes it,
// waiting a little for exited ones to leave it.
func removeCgroup(t *testing.T, dir, root string) {
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
		if time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// A process in a pod's cgroup (kubelet's systemd naming) closes its
// connections first: the report ranks the pod, by its UID (no runtime
// names it here), with exactly its TIME_WAIT sockets, and its container
// by its id.
func TestReportByPod(t *testing.T) {
	netnstest.RequireRoot(t)
	r := randomHex(t, 16)
	uid := r[:8] + "-" + r[8:12] + "-" + r[12:16] + "-" + r[16:20] + "-" + r[20:32]
	id := randomHex(t, 32)
	cg := podCgroup(t, uid, id)
	ns := netnstest.New(t)
	const conns = 5

	_, stdout, wait := startTwtop(t, "--report", "json", "--netns", ns.Path(), "--duration", "4s")
	helper := exec.Command(os.Args[0], "-test.run=^TestPodHelperProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), podHelperNetnsEnv+"="+ns.Path(), podHelperCgroupEnv+"="+cg,
		podHelperConnsEnv+"="+strconv.Itoa(conns))
	if out, err := helper.CombinedOutput(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	out, err := io.ReadAll(stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("twtop: %v", err)
	}
	var rep struct {
		Timewait   struct{ Created uint64 }
		TopClosers []struct {
			By              string
			Key             string
			Active          uint64
			TimewaitCreated uint64 `json:"timewait_created"`
			PodUID          string `json:"pod_uid"`
			ContainerID     string `json:"container_id"`
		} `json:"top_closers"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if rep.Timewait.Created != conns {
		t.Errorf("timewait.created %d, want %d", rep.Timewait.Created, conns)
	}
	var pods, ctrs int
	for _, row := range rep.TopClosers {
		switch row.By {
		case "pod":
			pods++
			if row.PodUID != uid || row.Key != uid || row.TimewaitCreated != conns || row.Active != conns {
				t.Errorf("pod row %+v, want pod_uid and key %s, %d active closes and TIME_WAIT sockets", row, uid, conns)
			}
		case "container":
			ctrs++
			if row.ContainerID != id || row.PodUID != uid || row.TimewaitCreated != conns {
				t.Errorf("container row %+v, want container_id %s of pod %s, %d TIME_WAIT sockets", row, id, uid, conns)
			}
		}
	}
	if pods != 1 || ctrs != 1 {
		t.Errorf("%d pod rows and %d container rows, want one each:\n%s", pods, ctrs, out)
	}
}
