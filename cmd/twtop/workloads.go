package main

import (
	"fmt"
	"os"

	"github.com/twtop/twtop/internal/workload"
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
