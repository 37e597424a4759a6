package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/internal/workload/workloadtest"
)

const eventsHelperEnv = "TWTOP_TEST_EVENTS_POD" // cgroup dir, netns path, connections

// TestEventsPodHelperProcess is the pod's process of TestEventsNamePod: in
// the cgroup and namespace it is given, one connection, a pause in which
// twtop resolves the cgroup, then the connections the test checks.
func TestEventsPodHelperProcess(t *testing.T) {
	var cfg struct {
		Cgroup, Netns string
		Conns         int
	}
	v := os.Getenv(eventsHelperEnv)
	if v == "" {
		return
	}
	err := json.Unmarshal([]byte(v), &cfg)
	if err == nil {
		err = os.WriteFile(filepath.Join(cfg.Cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
	}
	if err == nil {
		err = scenario.ClientClosesFromHere(cfg.Netns, 5081, 1, nil)
	}
	if err == nil {
		time.Sleep(2 * time.Second)
		err = scenario.ClientClosesFromHere(cfg.Netns, 5080, cfg.Conns, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// --events json names the pod and container of the process that closes
// (kubelet's systemd naming; no runtime here, so by UID and container id)
// on every close it makes once the cgroup is resolved, and the pod of the
// TIME_WAIT sockets, which have no owner, by their network namespace:
// names arrive late, never holding an event up.
func TestEventsNamePod(t *testing.T) {
	netnstest.RequireRoot(t)
	r := randomHex(t, 16)
	uid := r[:8] + "-" + r[8:12] + "-" + r[12:16] + "-" + r[16:20] + "-" + r[20:32]
	id := randomHex(t, 32)
	cg := workloadtest.PodCgroup(t, uid, id)
	ns := netnstest.New(t)
	const conns = 4

	_, stdout, wait := startTwtop(t, "--events", "json", "--netns", ns.Path(), "--duration", "6s")
	cfg, _ := json.Marshal(map[string]any{"Cgroup": cg, "Netns": ns.Path(), "Conns": conns})
	// the whole process in the namespace, as a pod's are: a namespace is
	// told by the processes in a pod's cgroups
	helper := exec.Command("nsenter", "--net="+ns.Path(), os.Args[0], "-test.run=^TestEventsPodHelperProcess$", "-test.count=1")
	helper.Env = append(os.Environ(), eventsHelperEnv+"="+string(cfg))
	if out, err := helper.CombinedOutput(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	type ev struct {
		Kind, New, Dst          string
		Pid                     int
		PodUID                  string `json:"pod_uid"`
		ContainerID             string `json:"container_id"`
		Workload                string
		Namespace, Pod, Service string
	}
	var closes []ev    // the helper's FIN_WAIT1s to the port of the checked connections
	var creations []ev // their TIME_WAIT sockets, which have no owner
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var e ev
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		if e.Kind == "tw_create" && e.Dst == "127.0.0.1:5080" {
			creations = append(creations, e)
		}
		if e.Kind == "state" && e.New == "FIN_WAIT1" && e.Pid == helper.Process.Pid && e.Dst == "127.0.0.1:5080" {
			closes = append(closes, e)
		}
	}
	if err := wait(); err != nil {
		t.Fatalf("twtop: %v", err)
	}
	if len(closes) != conns {
		t.Fatalf("%d closes by the helper to :5080, want %d", len(closes), conns)
	}
	for i, e := range closes {
		if e.PodUID != uid || e.ContainerID != id || e.Workload != "pod "+uid+" "+id[:12] {
			t.Errorf("close %d names pod_uid %q container_id %q workload %q, want %s, %s, %q",
				i, e.PodUID, e.ContainerID, e.Workload, uid, id, "pod "+uid+" "+id[:12])
		}
	}
	if len(creations) != conns {
		t.Fatalf("%d TIME_WAIT sockets towards :5080, want %d", len(creations), conns)
	}
	for i, e := range creations {
		if e.PodUID != uid || e.ContainerID != "" || e.Workload != "pod "+uid {
			t.Errorf("TIME_WAIT socket %d names pod_uid %q container_id %q workload %q, want the pod by its network namespace: %s, no container, %q",
				i, e.PodUID, e.ContainerID, e.Workload, uid, "pod "+uid)
		}
	}
}
