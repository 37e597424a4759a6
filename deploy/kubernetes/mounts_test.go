package kubernetes

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/internal/workload/critest"
	"github.com/twtop/twtop/internal/workload/workloadtest"
)

// podHelperEnv holds the pod process's orders (podOrders as JSON).
const podHelperEnv = "TWTOP_DEPLOY_TEST_POD"

type podOrders struct {
	Cgroup, Netns string
	Conns         int
}

// TestPodHelperProcess is the pod's process of TestDaemonSetNamesPods: it
// joins the pod's cgroup and makes connections whose client closes first
// in the namespace it is given.
func TestPodHelperProcess(t *testing.T) {
	env := os.Getenv(podHelperEnv)
	if env == "" {
		return
	}
	var o podOrders
	err := json.Unmarshal([]byte(env), &o)
	if err == nil {
		err = workloadtest.Join(o.Cgroup)
	}
	if err == nil {
		err = scenario.ClientClosesFromHere(o.Netns, 5080, o.Conns, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// twtop run as the DaemonSet runs it names the pod whose process closes
// first, and its container: in a cgroup of its own and a cgroup namespace
// rooted there, in a mount namespace where each of the manifest's host
// paths is mounted read-only at its mountPath, and with the manifest's
// capabilities only. The node runs CRI-O (a CRI server of the test's):
// containerd's socket is missing, so the runtime would have made an empty
// directory in its place. Only the arguments differ: --report json instead
// of the metrics. twtop traces the whole node, as it does there (--netns
// of a pod's namespace would take CAP_SYS_ADMIN, to scan it), so the rows
// checked are those of the test's pod.
func TestDaemonSetNamesPods(t *testing.T) {
	requireRoot(t)
	for _, tool := range []string{"setpriv", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s (util-linux) is needed: %v", tool, err)
		}
	}
	ds := &decode(t).daemonSets[0]
	c := twtopContainer(t, ds)
	caps := manifestCaps(t)

	uid, id, sandbox := randomPodUID(t), randomHex(t, 32), randomHex(t, 32)
	cri := critest.New()
	cri.AddPod(uid, "shop", "web-7d9f", sandbox)
	cri.AddContainer(id, sandbox, "nginx")
	// the node's host paths that this machine has not: the test's stand-ins
	stand := map[string]string{
		"/run/crio/crio.sock":             cri.Serve(t, "crio.sock"),
		"/run/containerd/containerd.sock": t.TempDir(),
	}
	if _, err := os.Stat("/var/run/netns"); err != nil {
		stand["/var/run/netns"] = t.TempDir() // DirectoryOrCreate
	}

	// The container's mounts: a tmpfs on /run first, so that mount points
	// under it are made in the mount namespace only.
	script := []string{"set -e", "mount -t tmpfs -o mode=0755 tmpfs /run"}
	for _, v := range ds.Spec.Template.Spec.Volumes {
		var dst string
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				dst = m.MountPath
			}
		}
		src := v.HostPath.Path
		if s, ok := stand[src]; ok {
			src = s
		}
		fi, err := os.Stat(src)
		if err != nil {
			t.Fatalf("host path of volume %s: %v", v.Name, err)
		}
		if fi.IsDir() {
			script = append(script, "mkdir -p "+dst)
		} else {
			script = append(script, "mkdir -p "+filepath.Dir(dst), "touch "+dst)
		}
		script = append(script, "mount --rbind "+src+" "+dst, "mount -o remount,bind,ro "+dst)
	}
	// what twtop will see of the cgroup hierarchy, for the test's log
	script = append(script, "grep ' - cgroup2 ' /proc/self/mountinfo | sed 's/^/view: /' >&2")

	bin := buildTwtop(t)
	pod := workloadtest.PodCgroup(t, uid, id)
	own := workloadtest.Cgroup(t, "twtop-daemonset-test-"+randomHex(t, 4))
	ns := netnstest.New(t)
	const conns = 5
	set := "-all"
	for _, c := range caps {
		set += ",+" + c
	}
	inner := strings.Join(script, "\n") + "\nexec setpriv --bounding-set=" + set + " --inh-caps=" + set + ` -- "$@"`
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && shift && exec unshare --cgroup --mount --propagation private sh -c "$0" "$@"`,
		inner, own, "twtop", bin, "--report", "json", "--duration", "4s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var views []string
	tracing := false
	lines := bufio.NewScanner(stderr)
	for !tracing && lines.Scan() {
		t.Logf("%s", lines.Text())
		if v, ok := strings.CutPrefix(lines.Text(), "view: "); ok {
			views = append(views, v)
		}
		tracing = strings.Contains(lines.Text(), "tracing on")
	}
	if !tracing {
		cmd.Wait()
		t.Fatalf("twtop did not start tracing: %v", cmd.ProcessState)
	}
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		for lines.Scan() {
			t.Logf("%s", lines.Text())
		}
	}()
	// the hierarchy twtop reads is the node's, seen from its own namespace
	for _, v := range views {
		if f := strings.Fields(v); len(f) < 5 || !strings.HasPrefix(f[3], "/..") {
			t.Errorf("cgroup2 mount %q: not seen from a cgroup namespace below the root", v)
		}
	}
	if len(views) == 0 {
		t.Error("no cgroup2 mount in twtop's mount namespace")
	}

	orders, _ := json.Marshal(podOrders{Cgroup: pod, Netns: ns.Path(), Conns: conns})
	helper := exec.Command(os.Args[0], "-test.run=^TestPodHelperProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), podHelperEnv+"="+string(orders))
	if out, err := helper.CombinedOutput(); err != nil {
		t.Fatalf("pod process: %v\n%s", err, out)
	}
	out, err := io.ReadAll(stdout)
	if err != nil {
		t.Fatal(err)
	}
	<-stderrDone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("twtop: %v", err)
	}
	var rep struct {
		TopClosers []struct {
			By, Key                   string
			Namespace, Pod, Container string
			PodUID                    string `json:"pod_uid"`
			ContainerID               string `json:"container_id"`
			TimewaitCreated           uint64 `json:"timewait_created"`
		} `json:"top_closers"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	var pods, ctrs int
	for _, r := range rep.TopClosers {
		switch {
		case r.By == "pod" && r.PodUID == uid:
			pods++
			if r.Key != "shop/web-7d9f" || r.Namespace != "shop" || r.Pod != "web-7d9f" || r.TimewaitCreated != conns {
				t.Errorf("pod row %+v, want shop/web-7d9f with %d TIME_WAIT sockets", r, conns)
			}
		case r.By == "container" && r.ContainerID == id:
			ctrs++
			if r.Key != "shop/web-7d9f/nginx" || r.Container != "nginx" || r.PodUID != uid || r.TimewaitCreated != conns {
				t.Errorf("container row %+v, want shop/web-7d9f/nginx with %d TIME_WAIT sockets", r, conns)
			}
		}
	}
	if pods != 1 || ctrs != 1 {
		t.Errorf("%d rows of the pod and %d of its container, want one each:\n%s", pods, ctrs, out)
	}
	if cri.Calls() == 0 {
		t.Error("twtop never called the runtime")
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// randomPodUID is a random UID in the form Kubernetes gives pods.
func randomPodUID(t *testing.T) string {
	r := randomHex(t, 16)
	return r[:8] + "-" + r[8:12] + "-" + r[12:16] + "-" + r[16:20] + "-" + r[20:32]
}
