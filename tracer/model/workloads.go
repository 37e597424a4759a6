package model

import (
	"slices"

	"github.com/twtop/twtop/internal/workload"
)

// Workloads resolves a cgroup v2 id, and a network namespace's inode, to
// the workload that owns it, without blocking: an id it has not resolved
// yet is answered false, and true on a later call once it is
// (*workload.Resolver does this). LookupNetns answers a pod (its own
// cgroup, no container) for the namespace its containers share; the
// host's namespace is no pod.
type Workloads interface {
	Lookup(cgroupID uint64) (workload.Workload, bool)
	LookupNetns(inode uint64) (workload.Workload, bool)
}

// wlEntry is the model's answer for one cgroup id.
type wlEntry struct {
	w  workload.Workload
	ok bool
}

// pending: the answer may still change (not resolved yet, or a pod the
// runtime has not named yet).
func (e *wlEntry) pending() bool {
	return !e.ok || (e.w.Kind == workload.KindPod && e.w.Pod == "")
}

// wlRetry is the least event time between two rounds of questions about
// the ids whose answer is pending.
const wlRetry = 1e9

// netnsWL is what the model keeps of a network namespace, with a
// resolver: its TIME_WAIT sockets that no cgroup row counts (no owner of
// their closing socket is known: they existed before tracing, the scan
// found them, or their socket closed in softirq without an owner seen),
// and the answer about the namespace's workload. A pod's containers share
// its namespace, so these sockets are the pod's.
type netnsWL struct {
	created uint64 // created while tracing or found at start
	open    int64
	e       wlEntry
}

// pending: the answer may still change. Unlike a cgroup id's, a
// namespace answered "no workload" is asked again: its pod's processes
// may not be in it yet when it is first seen.
func (n *netnsWL) pending() bool {
	return n.e.pending() || n.e.w.Kind == workload.KindOther
}

// netnsOf is a namespace's entry, made, and its workload asked about,
// the first time it is seen; nil without a resolver or a namespace.
func (m *Model) netnsOf(inode uint32) *netnsWL {
	if m.cfg.Workloads == nil || inode == 0 {
		return nil
	}
	n := m.nsWL[inode]
	if n == nil {
		n = &netnsWL{}
		m.nsWL[inode] = n
		m.askNetns(inode, n)
	}
	return n
}

// askNetns asks about a namespace's workload. Once a pod, it stays that
// pod (asked again only for its names): the pod's rows and series keep
// what they counted when the namespace is gone, or the answer changes.
func (m *Model) askNetns(inode uint32, n *netnsWL) {
	w, ok := m.cfg.Workloads.LookupNetns(uint64(inode))
	if was := n.e.w; !n.e.ok || was.Kind != workload.KindPod || ok && w.Kind == workload.KindPod && w.PodUID == was.PodUID {
		n.e.w, n.e.ok = w, ok
	}
	if n.pending() {
		m.nsPending[inode] = struct{}{}
	} else {
		delete(m.nsPending, inode)
	}
}

// netnsPod is the pod whose network namespace inode is, as far as it is
// known yet: false for the host's, a container's outside Kubernetes, and
// one not resolved.
func (m *Model) netnsPod(inode uint32) (workload.Workload, bool) {
	n := m.netnsOf(inode)
	if n == nil || !n.e.ok || n.e.w.Kind != workload.KindPod || n.e.w.PodUID == "" {
		return workload.Workload{}, false
	}
	return n.e.w, true
}

// ownerless counts a TIME_WAIT socket charged to books b under its
// namespace when no cgroup row counts it (delta 1 when it is created, -1
// when it ends). It does nothing without a resolver.
func (m *Model) ownerless(b *twBooks, delta int64) {
	if m.cfg.Workloads == nil || b.closer[byCgroup] != nil {
		return
	}
	if n := m.netnsOf(b.netns); n != nil {
		if delta > 0 {
			n.created++
		}
		n.open += delta
	}
}

// cgroupRow is the cgroup row an owner's closes count under; nil without
// a resolver or a cgroup id.
func (m *Model) cgroupRow(cgroup uint64) *Closer {
	if m.cfg.Workloads == nil || cgroup == 0 {
		return nil
	}
	return m.aggs.cgroup.get(cgroup)
}

// workloadOf asks the resolver about an owner's cgroup id the first time
// it is seen and keeps the answer; reaskWorkloads asks again while it is
// pending. It never blocks.
func (m *Model) workloadOf(cgroup uint64) (workload.Workload, bool) {
	if m.cfg.Workloads == nil || cgroup == 0 {
		return workload.Workload{}, false
	}
	e := m.wl[cgroup]
	if e == nil {
		if len(m.wl) >= 4*m.cfg.MaxKeys {
			// the resolver keeps its own cache: the ids still in a row
			// are asked again when a snapshot is taken
			clear(m.wl)
			clear(m.wlPending)
		}
		e = &wlEntry{}
		m.wl[cgroup] = e
		m.ask(cgroup, e)
	}
	return e.w, e.ok
}

func (m *Model) ask(cgroup uint64, e *wlEntry) {
	e.w, e.ok = m.cfg.Workloads.Lookup(cgroup)
	if e.pending() {
		m.wlPending[cgroup] = struct{}{}
	} else {
		delete(m.wlPending, cgroup)
	}
}

// reaskWorkloads asks again about the pending ids, at most once per second
// of event time.
func (m *Model) reaskWorkloads() {
	if len(m.wlPending) == 0 && len(m.nsPending) == 0 || m.now < m.wlAsked+wlRetry {
		return
	}
	m.wlAsked = m.now
	m.reaskPending()
}

func (m *Model) reaskPending() {
	for id := range m.wlPending {
		m.ask(id, m.wl[id])
	}
	for inode := range m.nsPending {
		m.askNetns(inode, m.nsWL[inode])
	}
}

// workloadRankings makes the pod, container and service rankings from the
// cgroup rows and the answers about their ids, asking once more about
// those still pending: a snapshot shows what has been resolved by then,
// closes made before an id was resolved included. Rows whose cgroup is not
// resolved (or is no workload) are left out, as is the cgroup rows'
// "other". A pod's row also counts the TIME_WAIT sockets of its network
// namespace that no cgroup row counts (created and open; closes stay its
// owners'), once the namespace is resolved to it.
func (m *Model) workloadRankings(s *Snapshot) {
	if m.cfg.Workloads == nil {
		return
	}
	m.reaskPending()
	s.WorkloadCgroups = [byKinds]map[string][]uint64{}
	pods := map[string]*Closer{}
	ctrs := map[string]*Closer{}
	svcs := map[string]*Closer{}
	for id, c := range m.aggs.cgroup.rows {
		if m.wl[id] == nil {
			m.workloadOf(id) // dropped from the answers kept: ask again
		}
		w, ok := m.wl[id].w, m.wl[id].ok
		if !ok {
			continue
		}
		s.addWorkloadCgroup(w, id)
		switch w.Kind {
		case workload.KindPod:
			if w.PodUID != "" {
				labelPod(row(pods, w.PodUID, ByPod), w).add(c)
			}
			if w.ContainerID != "" {
				labelContainer(row(ctrs, w.ContainerID, ByContainer), w).add(c)
			}
		case workload.KindContainer:
			if w.ContainerID != "" {
				labelContainer(row(ctrs, w.ContainerID, ByContainer), w).add(c)
			}
		case workload.KindService:
			if w.Service != "" {
				r := row(svcs, w.Service, ByService)
				r.Key, r.Service = w.Service, w.Service
				r.add(c)
			}
		}
	}
	for inode, n := range m.nsWL {
		if n.created == 0 {
			continue
		}
		if w, ok := m.netnsPod(inode); ok {
			r := labelPod(row(pods, w.PodUID, ByPod), w)
			r.TimewaitCreated += n.created
			r.TimewaitOpen += n.open
		}
	}
	for by, rows := range map[By]map[string]*Closer{ByPod: pods, ByContainer: ctrs, ByService: svcs} {
		all := make([]Closer, 0, len(rows))
		for _, r := range rows {
			all = append(all, *r)
		}
		slices.SortFunc(all, defaultOrder)
		s.AllClosers[by] = all
	}
}

// addWorkloadCgroup notes that cgroup id belongs to the rows of w.
func (s *Snapshot) addWorkloadCgroup(w workload.Workload, id uint64) {
	add := func(by By, key string) {
		if key == "" {
			return
		}
		if s.WorkloadCgroups[by] == nil {
			s.WorkloadCgroups[by] = map[string][]uint64{}
		}
		s.WorkloadCgroups[by][key] = append(s.WorkloadCgroups[by][key], id)
	}
	switch w.Kind {
	case workload.KindPod:
		add(ByPod, w.PodUID)
		add(ByContainer, w.ContainerID)
	case workload.KindContainer:
		add(ByContainer, w.ContainerID)
	case workload.KindService:
		add(ByService, w.Service)
	}
}

// RowCgroups are the owner cgroup ids whose closes a workload row (pod,
// container, service) sums; nil for other rows.
func (s *Snapshot) RowCgroups(by By, row *Closer) []uint64 {
	if by < 0 || by >= byKinds {
		return nil
	}
	switch by {
	case ByPod:
		return s.WorkloadCgroups[by][row.PodUID]
	case ByContainer:
		return s.WorkloadCgroups[by][row.ContainerID]
	case ByService:
		return s.WorkloadCgroups[by][row.Service]
	}
	return nil
}

func row(rows map[string]*Closer, id string, by By) *Closer {
	r := rows[id]
	if r == nil {
		r = &Closer{By: by.String(), Key: id}
		rows[id] = r
	}
	return r
}

// labelPod names a pod row: "ns/pod", or its UID while the runtime has not
// named it.
func labelPod(c *Closer, w workload.Workload) *Closer {
	c.PodUID = w.PodUID
	if w.Pod != "" {
		c.Namespace, c.Pod = w.Namespace, w.Pod
		c.Key = w.Namespace + "/" + w.Pod
	}
	return c
}

// labelContainer names a container row: "ns/pod/container" in a named pod
// (the id's first 12 characters for its sandbox, which has no name), the
// container's name outside Kubernetes, else its id.
func labelContainer(c *Closer, w workload.Workload) *Closer {
	c.ContainerID, c.PodUID = w.ContainerID, w.PodUID
	switch {
	case w.Kind == workload.KindPod && w.Pod != "":
		c.Namespace, c.Pod, c.Container = w.Namespace, w.Pod, w.Container
		name := w.Container
		if name == "" {
			name = shortID(w.ContainerID)
		}
		c.Key = w.Namespace + "/" + w.Pod + "/" + name
	case w.Kind == workload.KindContainer && w.Container != "":
		c.Container = w.Container
		c.Key = w.Container
	}
	return c
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
