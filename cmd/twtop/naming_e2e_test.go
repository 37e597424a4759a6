package main

import (
	"encoding/json"
	"io"
	"testing"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/workload/workloadtest"
)

// Processes in cgroups named the way Docker, Podman and systemd name them
// close their connections first, one after the other: the report ranks a
// container row for each container, by runtime and id (no runtime names
// them here), and a service row for the unit, each with exactly its
// process's closes and TIME_WAIT sockets.
func TestReportByContainerAndService(t *testing.T) {
	netnstest.RequireRoot(t)
	docker, podman := randomHex(t, 32), randomHex(t, 32)
	unit := "twtop-test-" + randomHex(t, 4) + ".service"
	workers := []struct {
		cgroup []string
		conns  int
		want   closerRow
	}{
		{[]string{"system.slice", "docker-" + docker + ".scope"}, 2,
			closerRow{By: "container", Key: docker, Active: 2, TimewaitCreated: 2, ContainerID: docker}},
		{[]string{"machine.slice", "libpod-" + podman + ".scope"}, 3,
			closerRow{By: "container", Key: podman, Active: 3, TimewaitCreated: 3, ContainerID: podman}},
		{[]string{"system.slice", unit}, 4,
			closerRow{By: "service", Key: unit, Active: 4, TimewaitCreated: 4}},
	}
	ns := netnstest.New(t)
	_, stdout, wait := startTwtop(t, "--report", "json", "--netns", ns.Path(), "--duration", "5s")
	for _, w := range workers {
		cg := workloadtest.Cgroup(t, w.cgroup...)
		runPodHelper(t, ns.Path(), cg, w.conns)
	}
	out, err := io.ReadAll(stdout)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatalf("twtop: %v", err)
	}
	var rep struct {
		TopClosers []closerRow `json:"top_closers"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	got := map[string]closerRow{}
	for _, row := range rep.TopClosers {
		if row.By == "container" || row.By == "service" || row.By == "pod" {
			got[row.By+" "+row.Key] = row
		}
	}
	for _, w := range workers {
		k := w.want.By + " " + w.want.Key
		if got[k] != w.want {
			t.Errorf("%s row\n got %+v\nwant %+v", k, got[k], w.want)
		}
		delete(got, k)
	}
	for k, row := range got {
		t.Errorf("unexpected row %s: %+v", k, row)
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}
