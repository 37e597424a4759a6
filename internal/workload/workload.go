// Package workload resolves a cgroup v2 id or a network namespace to the
// workload that owns it: a Kubernetes pod (and which of its containers), a
// Docker or Podman container, or a systemd service, behind a bounded cache
// that never blocks its caller.
//
// It combines three sources:
//   - cgroup2fs, where a cgroup's id (bpf_get_current_cgroup_id) is the inode
//     number of the cgroup's directory: the hierarchy, found through
//     /proc/self/mountinfo, is walked into an inode → path index, and
//     /proc/PID/cgroup gives a process's path;
//   - the path's layout, which names the workload (ParsePath);
//   - the container runtime's CRI API (gRPC on its unix socket), which names
//     a pod's namespace and name and a container's name from their ids.
//
// A Resolver answers Lookup, LookupPID and LookupNetns from its cache and
// resolves what it does not know on one background goroutine.
package workload

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind says what owns a cgroup.
type Kind string

const (
	// KindOther is anything else, and an id that could not be resolved.
	KindOther Kind = "other"
	// KindPod is a Kubernetes pod: PodUID is set, and ContainerID when the
	// cgroup is one of the pod's containers (or its sandbox).
	KindPod Kind = "pod"
	// KindContainer is a container outside Kubernetes (Docker, Podman).
	KindContainer Kind = "container"
	// KindService is a systemd service.
	KindService Kind = "service"
)

// Runtime names a container runtime.
type Runtime string

const (
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "crio"
	RuntimeDocker     Runtime = "docker"
	RuntimePodman     Runtime = "podman"
)

// Workload is what owns a cgroup or a network namespace. Ids come from the
// cgroup path; Namespace, Pod and Container come from the CRI API and stay
// empty without a reachable runtime. The JSON keys are meant for recordings.
type Workload struct {
	Kind Kind `json:"kind"`
	// CgroupID is the cgroup id looked up (0 for a network namespace).
	CgroupID uint64 `json:"cgroup_id,omitempty"`
	// Path is the cgroup path, "" when the id was not found.
	Path string `json:"path,omitempty"`
	// PodUID is the Kubernetes pod's UID, with dashes.
	PodUID string `json:"pod_uid,omitempty"`
	// ContainerID is the runtime's container id; in a pod it may be the
	// sandbox's id, whose Container name stays empty.
	ContainerID string  `json:"container_id,omitempty"`
	Runtime     Runtime `json:"runtime,omitempty"`
	// Service is the systemd unit, such as "nginx.service".
	Service   string `json:"service,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
}

// String names the workload for display: "ns/pod/container", "ns/pod",
// "pod <uid>", "docker abcdef012345", "nginx.service", the path, or
// "cgroup <id>".
func (w Workload) String() string {
	switch w.Kind {
	case KindPod:
		if w.Pod != "" {
			s := w.Namespace + "/" + w.Pod
			if w.Container != "" {
				s += "/" + w.Container
			}
			return s
		}
		s := "pod " + w.PodUID
		if w.ContainerID != "" {
			s += " " + shortID(w.ContainerID)
		}
		return s
	case KindContainer:
		rt := string(w.Runtime)
		if rt == "" {
			rt = "container"
		}
		return rt + " " + shortID(w.ContainerID)
	case KindService:
		return w.Service
	}
	if w.Path != "" {
		return w.Path
	}
	return fmt.Sprintf("cgroup %d", w.CgroupID)
}

// shortID is the 12-character form Docker prints.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// trimScope removes a systemd unit suffix.
func trimScope(c string) string {
	return strings.TrimSuffix(c, ".scope")
}

// Table answers Lookup and LookupNetns from workloads resolved earlier,
// such as those a recording carries: an id (a cgroup id, a network
// namespace's inode) is answered true once its entry was added, and
// KindOther, false until then. It is not safe for concurrent use.
type Table struct {
	m  map[uint64]Workload
	ns map[uint64]Workload
}

// Add adds the entries of ws, cgroup ids in decimal; it ignores keys that
// are not.
func (t *Table) Add(ws map[string]Workload) {
	if t.m == nil {
		t.m = make(map[uint64]Workload, len(ws))
	}
	for k, w := range ws {
		if id, err := strconv.ParseUint(k, 10, 64); err == nil {
			w.CgroupID = id
			t.m[id] = w
		}
	}
}

// AddNetns adds the entries of ws, network namespace inodes in decimal;
// it ignores keys that are not.
func (t *Table) AddNetns(ws map[string]Workload) {
	if t.ns == nil {
		t.ns = make(map[uint64]Workload, len(ws))
	}
	for k, w := range ws {
		if ino, err := strconv.ParseUint(k, 10, 64); err == nil {
			w.CgroupID = 0
			t.ns[ino] = w
		}
	}
}

// Lookup is the workload of cgroup id, when added.
func (t *Table) Lookup(id uint64) (Workload, bool) {
	if w, ok := t.m[id]; ok {
		return w, true
	}
	return Workload{Kind: KindOther, CgroupID: id}, false
}

// LookupNetns is the workload of the network namespace inode, when added.
func (t *Table) LookupNetns(inode uint64) (Workload, bool) {
	if w, ok := t.ns[inode]; ok {
		return w, true
	}
	return Workload{Kind: KindOther}, false
}
