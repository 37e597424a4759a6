package tracer

import (
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/internal/workload/workloadtest"
)

// The cgroup id on the owner's records is the one of the cgroup its
// process is in, which the workload resolver names: a helper process in a
// cgroup named as Docker names a container's makes connections, and each
// of its close records names that container.
func TestOwnerCgroupNamesContainer(t *testing.T) {
	ns := netnstest.New(t)
	id := "d0c4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4"
	cg := workloadtest.Cgroup(t, "system.slice", "docker-"+id+".scope")
	const port, conns = 5005, 2
	helper, start, out := startHelper(t, ns, port, conns, cg)

	tr := openIn(t, ns, func(*Options) {})
	if _, err := io.WriteString(start, "go\n"); err != nil {
		t.Fatal(err)
	}
	if err := helper.Wait(); err != nil {
		t.Fatalf("helper process: %v\n%s", err, out.String())
	}
	helperTimewait(t, ns, port, conns)
	got := drain(t, tr, 500*time.Millisecond)

	r, err := workload.New(workload.Config{NoCRI: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	closes := 0
	for i := range got {
		e := &got[i]
		if !finWait1(e) || e.Pid != uint32(helper.Process.Pid) {
			continue
		}
		closes++
		w, ok := r.Lookup(e.Cgroup)
		for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			w, ok = r.Lookup(e.Cgroup)
		}
		if w.Kind != workload.KindContainer || w.ContainerID != id || w.Runtime != workload.RuntimeDocker {
			t.Errorf("%s: cgroup %d names %+v, want docker container %s", describe(e), e.Cgroup, w, id)
		}
	}
	eq(t, "the helper's ESTABLISHED->FIN_WAIT1", closes, conns)
	var st unix.Stat_t
	if err := unix.Stat(cg, &st); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if e := &got[i]; e.Owned() && e.Pid == uint32(helper.Process.Pid) && e.Cgroup != st.Ino {
			t.Errorf("%s: cgroup id %d, the directory's inode is %d", describe(e), e.Cgroup, st.Ino)
		}
	}
}
