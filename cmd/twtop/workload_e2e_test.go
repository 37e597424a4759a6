package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/internal/workload/critest"
	"github.com/twtop/twtop/internal/workload/workloadtest"
)

const (
	podHelperNetnsEnv  = "TWTOP_TEST_POD_NETNS"
	podHelperCgroupEnv = "TWTOP_TEST_POD_CGROUP"
	podHelperConnsEnv  = "TWTOP_TEST_POD_CONNS"
)

// TestPodHelperProcess is the pod's process of the by-pod tests: it joins
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

// runPodHelper runs TestPodHelperProcess in cgroup directory cg making
// conns connections in the namespace at path, and waits for it.
func runPodHelper(t *testing.T, path, cg string, conns int) {
	t.Helper()
	helper := exec.Command(os.Args[0], "-test.run=^TestPodHelperProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), podHelperNetnsEnv+"="+path, podHelperCgroupEnv+"="+cg,
		podHelperConnsEnv+"="+strconv.Itoa(conns))
	if out, err := helper.CombinedOutput(); err != nil {
		t.Fatalf("helper process in %s: %v\n%s", cg, err, out)
	}
}

// podConnections moves this process into the cgroup directory cg, then
// makes n client-closes-first connections in the namespace at path: n
// TIME_WAIT sockets, all made by the cgroup's process.
func podConnections(cg, path string, n int) error {
	if err := workloadtest.Join(cg); err != nil {
		return err
	}
	return scenario.ClientClosesFromHere(path, 5080, n, nil)
}

// podCgroup creates the cgroup of container id of pod uid as kubelet's
// systemd driver names it (workloadtest.PodCgroup), removed when t ends.
func podCgroup(t *testing.T, uid, id string) string {
	t.Helper()
	return workloadtest.PodCgroup(t, uid, id)
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// closerRow is a top_closers row as the by-pod tests read it.
type closerRow struct {
	By              string
	Key             string
	Active          uint64
	TimewaitCreated uint64 `json:"timewait_created"`
	Namespace       string
	Pod             string
	PodUID          string `json:"pod_uid"`
	Container       string
	ContainerID     string `json:"container_id"`
}

// reportFromPod runs twtop --report json (with args added) while a process
// in the cgroup of container id of pod uid (kubelet's systemd naming) makes
// conns connections it closes first, in a fresh network namespace. It
// checks the TIME_WAIT count and returns the pod and container rows,
// failing t unless there is exactly one of each.
func reportFromPod(t *testing.T, uid, id string, conns int, args ...string) (pod, ctr closerRow) {
	t.Helper()
	cg := podCgroup(t, uid, id)
	ns := netnstest.New(t)

	_, stdout, wait := startTwtop(t, append([]string{"--report", "json", "--netns", ns.Path(), "--duration", "4s"}, args...)...)
	runPodHelper(t, ns.Path(), cg, conns)
	out, err := io.ReadAll(stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("twtop: %v", err)
	}
	var rep struct {
		Timewait   struct{ Created uint64 }
		TopClosers []closerRow `json:"top_closers"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	if rep.Timewait.Created != uint64(conns) {
		t.Errorf("timewait.created %d, want %d", rep.Timewait.Created, conns)
	}
	var pods, ctrs []closerRow
	for _, row := range rep.TopClosers {
		switch row.By {
		case "pod":
			pods = append(pods, row)
		case "container":
			ctrs = append(ctrs, row)
		}
	}
	if len(pods) != 1 || len(ctrs) != 1 {
		t.Fatalf("%d pod rows and %d container rows, want one each:\n%s", len(pods), len(ctrs), out)
	}
	return pods[0], ctrs[0]
}

// A process in a pod's cgroup (kubelet's systemd naming) closes its
// connections first: the report ranks the pod, by its UID (no runtime
// names it here), with exactly its TIME_WAIT sockets, and its container
// by its id.
func TestReportByPod(t *testing.T) {
	netnstest.RequireRoot(t)
	uid, id := randomPodUID(t), randomHex(t, 32)
	const conns = 5
	pod, ctr := reportFromPod(t, uid, id, conns)
	if want := (closerRow{By: "pod", Key: uid, Active: conns, TimewaitCreated: conns, PodUID: uid}); pod != want {
		t.Errorf("pod row\n got %+v\nwant %+v", pod, want)
	}
	if want := (closerRow{By: "container", Key: id, Active: conns, TimewaitCreated: conns, PodUID: uid, ContainerID: id}); ctr != want {
		t.Errorf("container row\n got %+v\nwant %+v", ctr, want)
	}
}

// The same, with a container runtime that answers the CRI API on a unix
// socket given by --cri-socket: the rows carry the pod's namespace and
// name and the container's name, as the runtime lists them.
func TestReportByPodNamedByRuntime(t *testing.T) {
	netnstest.RequireRoot(t)
	uid, id, cri := runtimeWithPod(t, "shop", "web-7d9f", "nginx")
	// another pod the runtime lists, whose name must not leak into the rows
	other := randomHex(t, 32)
	cri.AddPod(randomPodUID(t), "kube-system", "coredns-5d78", other)
	cri.AddContainer(randomHex(t, 32), other, "coredns")
	sock := cri.Serve(t, "containerd.sock")
	const conns = 5

	pod, ctr := reportFromPod(t, uid, id, conns, "--cri-socket", sock)
	if want := (closerRow{By: "pod", Key: "shop/web-7d9f", Active: conns, TimewaitCreated: conns,
		Namespace: "shop", Pod: "web-7d9f", PodUID: uid}); pod != want {
		t.Errorf("pod row\n got %+v\nwant %+v", pod, want)
	}
	if want := (closerRow{By: "container", Key: "shop/web-7d9f/nginx", Active: conns, TimewaitCreated: conns,
		Namespace: "shop", Pod: "web-7d9f", PodUID: uid, Container: "nginx", ContainerID: id}); ctr != want {
		t.Errorf("container row\n got %+v\nwant %+v", ctr, want)
	}
	if cri.Calls() == 0 {
		t.Error("twtop never called the runtime")
	}
}

// randomPodUID is a random UID in the form Kubernetes gives pods.
// runtimeWithPod is a CRI runtime (not yet served) that lists one pod,
// NAMESPACE/POD with a random UID, running one container of a random id
// named container.
func runtimeWithPod(t *testing.T, namespace, pod, container string) (uid, id string, cri *critest.Server) {
	uid, id, sandbox := randomPodUID(t), randomHex(t, 32), randomHex(t, 32)
	cri = critest.New()
	cri.AddPod(uid, namespace, pod, sandbox)
	cri.AddContainer(id, sandbox, container)
	return uid, id, cri
}

func randomPodUID(t *testing.T) string {
	r := randomHex(t, 16)
	return r[:8] + "-" + r[8:12] + "-" + r[12:16] + "-" + r[16:20] + "-" + r[20:32]
}
