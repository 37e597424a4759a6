package main

import (
	"fmt"
	"os"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/tracer/event"
)

// workloads is a live run's cgroup resolver, for the pod, container and
// service rankings; r is nil when it could not start.
type workloads struct {
	r *workload.Resolver
}

// startWorkloads starts the resolver; on an error the run goes on without
// it, saying why in one line.
func startWorkloads(cfg *config) *workloads {
	r, err := workload.New(workload.Config{CRISocket: cfg.criSocket})
	if err != nil {
		fmt.Fprintf(os.Stderr, "twtop: no pod, container or service rankings: %v\n", err)
		return &workloads{}
	}
	return &workloads{r: r}
}

// close stops the resolver and says, in one line, why resolution was
// degraded if it was (no cgroup2 hierarchy, no reachable runtime).
func (w *workloads) close() {
	if w.r == nil {
		return
	}
	err := w.r.Err()
	w.r.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "twtop: note: %v\n", err)
	}
}

// of names the workload of an event, as far as it is known yet (names
// arrive late rather than hold the event up): an owned event's by the
// owner's cgroup, any other's by its network namespace, which a pod's
// containers share (the host's namespace names nothing). An answer
// "unknown" is kept for the resolver's retry time (15 s by default), so a
// namespace whose pod has no process yet when first seen is named that
// much later.
func (w *workloads) of(e *event.Event) (workload.Workload, bool) {
	switch {
	case w.r == nil:
		return workload.Workload{}, false
	case e.Owned():
		return w.r.LookupPID(e.Cgroup, int(e.Pid))
	case e.Kind == event.KindScanEnd:
		// a scan's end marker is no socket's: looking its namespace up
		// before the namespace's pod has a process would cache "unknown"
	case e.Netns != 0:
		return w.r.LookupNetns(uint64(e.Netns))
	}
	return workload.Workload{}, false
}
