package main

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/twtop/twtop/internal/netns/netnstest"
)

// A recording keeps the workloads of its owners: recorded on a host whose
// runtime names the pod and its container, it replays with the same pod
// and container rows as the live report, names included, with neither
// the runtime nor the cgroups at hand.
func TestRecordingKeepsWorkloads(t *testing.T) {
	netnstest.RequireRoot(t)
	uid, id, cri := runtimeWithPod(t, "shop", "web-1", "nginx")
	sock := cri.Serve(t, "containerd.sock")
	file := filepath.Join(t.TempDir(), "pods.twrec")
	const conns = 4

	pod, ctr := reportFromPod(t, uid, id, conns, "--cri-socket", sock, "--record", file)
	if pod.Pod != "web-1" || ctr.Container != "nginx" {
		t.Fatalf("live rows not named by the runtime: %+v, %+v", pod, ctr)
	}
	out, stderr, code := replayBinary(t, file, "--report", "json")
	if code != 0 {
		t.Fatalf("replay exited %d: %s", code, stderr)
	}
	var rep struct {
		TopClosers []closerRow `json:"top_closers"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("replay report: %v\n%s", err, out)
	}
	var rows []closerRow
	for _, row := range rep.TopClosers {
		if row.By == "pod" || row.By == "container" {
			rows = append(rows, row)
		}
	}
	if len(rows) != 2 || rows[0] != pod || rows[1] != ctr {
		t.Errorf("replayed workload rows\n got %+v\nwant %+v\n     %+v", rows, pod, ctr)
	}
}
