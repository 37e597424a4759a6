package workload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Config configures a Resolver. Zero fields take the defaults given.
type Config struct {
	// CgroupRoot is a directory showing the whole cgroup2 hierarchy; ""
	// finds the cgroup2 mount in ProcRoot/self/mountinfo.
	CgroupRoot string
	// ProcRoot is procfs, "/proc".
	ProcRoot string
	// CRISocket is the runtime's CRI socket; "" uses the first of
	// CRISockets (DefaultCRISockets) that exists.
	CRISocket  string
	CRISockets []string
	// NoCRI leaves names out: workloads keep their ids.
	NoCRI bool
	// QueueSize bounds the ids waiting to be resolved, 1024; a lookup that
	// finds it full is dropped and counted (Stats.Dropped).
	QueueSize int
	// CacheSize bounds each cache (cgroups, network namespaces), 16384
	// entries, the least recently used dropped first.
	CacheSize int
	// TTL is how long a resolution is served before it is resolved again,
	// and how long an entry nobody looks up is kept, 10 minutes.
	TTL time.Duration
	// RetryTTL replaces TTL for an id not found and for a pod whose names
	// are missing, 15 seconds.
	RetryTTL time.Duration
	// CallTimeout bounds each CRI call, 2 seconds.
	CallTimeout time.Duration
	// RewalkInterval is the least time between two walks of the cgroup
	// hierarchy, and between two CRI list refreshes, 1 second.
	RewalkInterval time.Duration
	// CRIBackoff is how long no CRI call is made after one failed, 10
	// seconds.
	CRIBackoff time.Duration
	// Now is the clock of the cache's TTLs, time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.CRISockets == nil {
		c.CRISockets = DefaultCRISockets
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 16384
	}
	if c.TTL <= 0 {
		c.TTL = 10 * time.Minute
	}
	if c.RetryTTL <= 0 {
		c.RetryTTL = 15 * time.Second
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 2 * time.Second
	}
	if c.RewalkInterval <= 0 {
		c.RewalkInterval = time.Second
	}
	if c.CRIBackoff <= 0 {
		c.CRIBackoff = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Stats counts what a Resolver did.
type Stats struct {
	Queued      int    // ids queued or being resolved now
	Dropped     uint64 // lookups not queued because the queue was full
	Resolved    uint64 // resolutions stored (cgroups and network namespaces)
	NotFound    uint64 // of which the id was not found (KindOther, no path)
	Cached      int    // cgroup entries held
	CachedNetns int    // network namespace entries held
	Evicted     uint64 // entries dropped by the size cap
	Expired     uint64 // entries dropped after TTL without a lookup
	Walks       uint64 // walks of the cgroup hierarchy
	CRICalls    uint64 // CRI calls made
	CRIErrors   uint64 // CRI calls or connections that failed
}

type reqKind uint8

const (
	reqCgroup reqKind = iota
	reqNetns
)

type request struct {
	kind    reqKind
	id      uint64
	pid     int
	refresh bool // the cached entry expired
}

type reqKey struct {
	kind reqKind
	id   uint64
}

// Resolver resolves cgroup ids and network namespaces to workloads in the
// background and serves what it has resolved from a cache.
//
// Concurrency: Lookup, LookupPID, LookupNetns, Stats, Err, CgroupID and
// ProcCgroup are safe for concurrent use. The lookups never do I/O and never
// wait for the resolver's goroutine: they hold a mutex only for a map access
// and a non-blocking queue send. All file system walks and CRI calls happen
// on one goroutine, each CRI call bounded by Config.CallTimeout, so a slow or
// hung runtime delays names but no caller. Close stops that goroutine; after
// it the lookups still answer from the cache but queue nothing.
type Resolver struct {
	cfg    Config
	index  *index // nil without a cgroup2 hierarchy
	host   uint64 // host network namespace inode
	queue  chan request
	stop   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// Used by the resolver's goroutine only.
	netns   *netnsScan
	cri     *criClient
	criDown time.Time // no CRI call before this

	mu        sync.Mutex
	cgroups   *lru
	netnsC    *lru
	pending   map[reqKey]struct{}
	closed    bool
	stats     Stats
	cgroupErr error
	criErr    error
}

// New starts a Resolver. It fails only on a CgroupRoot that is not a
// directory; a missing cgroup2 hierarchy or runtime is reported by Err.
func New(cfg Config) (*Resolver, error) {
	cfg = cfg.withDefaults()
	r := &Resolver{
		cfg:     cfg,
		queue:   make(chan request, cfg.QueueSize),
		stop:    make(chan struct{}),
		netns:   newNetnsScan(),
		cgroups: newLRU(cfg.CacheSize),
		netnsC:  newLRU(cfg.CacheSize),
		pending: map[reqKey]struct{}{},
	}
	if cfg.CgroupRoot != "" {
		fi, err := os.Stat(cfg.CgroupRoot)
		if err != nil {
			return nil, fmt.Errorf("workload: cgroup root: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("workload: cgroup root %s: not a directory", cfg.CgroupRoot)
		}
		r.index = newIndex(Mount{Dir: cfg.CgroupRoot, Root: "/"}, cfg.RewalkInterval)
	} else if m, err := FindCgroup2(cfg.ProcRoot); err == nil {
		r.index = newIndex(m, cfg.RewalkInterval)
	} else {
		r.cgroupErr = fmt.Errorf("workload: %w", err)
	}
	r.host = hostNetns(cfg.ProcRoot)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// Lookup returns the workload of a cgroup id if it has been resolved. When
// it has not, it queues the id and returns false with a KindOther workload
// holding the id; the answer is there on a later call. An entry older than
// Config.TTL is still returned, and resolved again in the background. An id
// that cannot be resolved (its cgroup is gone) is answered true with
// KindOther and no path. Id 0 is no cgroup: KindOther, true.
func (r *Resolver) Lookup(cgroupID uint64) (Workload, bool) {
	return r.lookup(request{kind: reqCgroup, id: cgroupID})
}

// LookupPID is Lookup with a process of the cgroup, whose /proc/PID/cgroup
// is read when the hierarchy does not show the id (the path is kept only if
// its directory still has that id). A process that exits first leaves the
// id as it is.
func (r *Resolver) LookupPID(cgroupID uint64, pid int) (Workload, bool) {
	return r.lookup(request{kind: reqCgroup, id: cgroupID, pid: pid})
}

// LookupNetns returns the workload whose processes are in a network
// namespace, as Lookup does: a pod (its own cgroup's path, no container) or a
// container outside Kubernetes, found through the processes in their
// cgroups, else through the runtime's pod sandbox status. The host's
// namespace, one shared by several workloads and an unknown one are
// KindOther.
func (r *Resolver) LookupNetns(inode uint64) (Workload, bool) {
	return r.lookup(request{kind: reqNetns, id: inode})
}

func (r *Resolver) lookup(q request) (Workload, bool) {
	none := Workload{Kind: KindOther}
	if q.kind == reqCgroup {
		none.CgroupID = q.id
	}
	if q.id == 0 {
		return none, true
	}
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.cache(q.kind).get(q.id, now); ok {
		if now.After(e.expires) {
			q.refresh = true
			r.enqueueLocked(q)
		}
		return e.w, true
	}
	r.enqueueLocked(q)
	return none, false
}

func (r *Resolver) cache(k reqKind) *lru {
	if k == reqNetns {
		return r.netnsC
	}
	return r.cgroups
}

func (r *Resolver) enqueueLocked(q request) {
	key := reqKey{q.kind, q.id}
	if _, ok := r.pending[key]; ok || r.closed {
		return
	}
	select {
	case r.queue <- q:
		r.pending[key] = struct{}{}
	default:
		r.stats.Dropped++
	}
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Queued = len(r.pending)
	s.Cached = r.cgroups.len()
	s.CachedNetns = r.netnsC.len()
	s.Evicted = r.cgroups.evicted + r.netnsC.evicted
	s.Expired = r.cgroups.expired + r.netnsC.expired
	return s
}

// Err reports why resolution is degraded, nil while it is not: no cgroup2
// hierarchy (ids resolve only through LookupPID), or no reachable runtime
// (pods keep their ids, no names; the error says why, wrapping ErrNoRuntime
// when no socket was found). Each reason is the first one met and is kept;
// a caller shows Err once when it changes.
func (r *Resolver) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.cgroupErr, r.criErr)
}

// CgroupID returns the id of the cgroup at a cgroup path (the inode of its
// directory). It reads the file system.
func (r *Resolver) CgroupID(cgroupPath string) (uint64, error) {
	if r.index == nil {
		return 0, r.Err()
	}
	name, ok := r.index.fsPath(cgroupPath)
	if !ok {
		return 0, fmt.Errorf("cgroup %s: outside the cgroup2 mount at %s", cgroupPath, r.index.mount.Dir)
	}
	id, err := inode(name)
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: %w", cgroupPath, err)
	}
	return id, nil
}

// ProcCgroup returns a process's cgroup v2 path from ProcRoot/PID/cgroup.
// It reads the file system.
func (r *Resolver) ProcCgroup(pid int) (string, error) {
	return ReadProcCgroup(r.cfg.ProcRoot, pid)
}

// Close stops the resolver's goroutine, cancelling a CRI call in flight, and
// closes the CRI connection.
func (r *Resolver) Close() error {
	var err error
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		close(r.stop)
		r.cancel()
		r.wg.Wait()
		if r.cri != nil {
			err = r.cri.close()
		}
	})
	return err
}

// run is the resolver's goroutine.
func (r *Resolver) run() {
	defer r.wg.Done()
	if r.index != nil {
		r.walk()
	}
	every := min(max(r.cfg.TTL/4, time.Second), time.Minute)
	sweep := time.NewTicker(every)
	defer sweep.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-sweep.C:
			r.sweep()
		case q := <-r.queue:
			batch := []request{q}
		drain:
			for len(batch) < r.cfg.QueueSize {
				select {
				case q := <-r.queue:
					batch = append(batch, q)
				default:
					break drain
				}
			}
			r.resolve(batch)
		}
	}
}

// sweep drops the entries nobody looked up for a TTL.
func (r *Resolver) sweep() {
	r.mu.Lock()
	defer r.mu.Unlock()
	cutoff := r.cfg.Now().Add(-r.cfg.TTL)
	r.cgroups.sweep(cutoff)
	r.netnsC.sweep(cutoff)
}

// resolve resolves a batch: what the index and the network namespace map
// know at once, the rest after one more walk of the hierarchy.
func (r *Resolver) resolve(batch []request) {
	var misses []request
	netns := false
	for _, q := range batch {
		if r.ctx.Err() != nil {
			return
		}
		if !r.resolveOne(q, false) {
			misses = append(misses, q)
			netns = netns || q.kind == reqNetns
		}
	}
	if len(misses) == 0 {
		return
	}
	if r.index != nil {
		if !r.waitWalk() {
			return
		}
		r.walk()
		if netns {
			r.netns.scan(r.index, r.cfg.ProcRoot, r.host)
		}
	}
	for _, q := range misses {
		if r.ctx.Err() != nil {
			return
		}
		r.resolveOne(q, true)
	}
}

// resolveOne resolves and stores q; unless last, it stores nothing and
// returns false when q is not found.
func (r *Resolver) resolveOne(q request, last bool) bool {
	if q.kind == reqNetns {
		return r.resolveNetns(q, last)
	}
	p, found := r.cgroupPath(q)
	if !found && !last {
		return false
	}
	w := Workload{Kind: KindOther, CgroupID: q.id}
	complete := true
	if found {
		w = ParsePath(p)
		w.CgroupID = q.id
		complete = r.name(&w)
	}
	r.store(q, w, found, complete)
	return true
}

// cgroupPath finds a cgroup id's path in the index, else through the pid.
func (r *Resolver) cgroupPath(q request) (string, bool) {
	if r.index != nil {
		if p, ok := r.index.lookup(q.id); ok {
			return p, true
		}
	}
	if q.pid <= 0 {
		return "", false
	}
	p, err := ReadProcCgroup(r.cfg.ProcRoot, q.pid)
	if err != nil {
		return "", false
	}
	if r.index == nil {
		return p, true
	}
	return p, r.index.verify(q.id, p)
}

// resolveNetns resolves a network namespace. Unlike cgroup ids, namespace
// inodes are reused, so an expired entry is looked up afresh, after a scan.
func (r *Resolver) resolveNetns(q request, last bool) bool {
	ino := q.id
	if ino == r.host {
		r.store(q, Workload{Kind: KindOther}, true, true)
		return true
	}
	o, found := r.netns.owners[ino]
	if (!found || q.refresh) && !last {
		return false
	}
	if !found {
		o, found = r.sandboxOwner(ino)
	}
	w, complete := Workload{Kind: KindOther}, true
	if found {
		w = o.w
		complete = r.name(&w)
	}
	r.store(q, w, found, complete)
	return true
}

// sandboxOwner looks for a pod sandbox in network namespace ino through the
// runtime.
func (r *Resolver) sandboxOwner(ino uint64) (netnsOwner, bool) {
	c := r.criClient()
	if c == nil {
		return netnsOwner{}, false
	}
	if time.Since(c.listed) >= c.interval {
		if err := c.refresh(r.ctx); err != nil {
			r.criFailed(err)
			return netnsOwner{}, false
		}
	}
	netns, err := c.sandboxNetns(r.ctx, r.cfg.ProcRoot)
	r.countCalls()
	if err != nil {
		r.criFailed(err)
	}
	for id, ns := range netns {
		if ns != ino {
			continue
		}
		m := c.sandboxes[id]
		w := Workload{Kind: KindPod, PodUID: m.uid, Runtime: c.runtime}
		if r.index != nil {
			for _, p := range r.index.paths {
				if pw := ParsePath(p); pw.PodUID == m.uid {
					w.Path = podDir(p)
					break
				}
			}
		}
		return netnsOwner{key: m.uid, w: w}, true
	}
	return netnsOwner{}, false
}

// waitWalk waits until a walk is allowed; false if the resolver stops.
func (r *Resolver) waitWalk() bool {
	d := time.Until(r.index.nextWalk())
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.stop:
		return false
	case <-t.C:
		return true
	}
}

func (r *Resolver) walk() {
	err := r.index.walk()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Walks++
	if err != nil && r.cgroupErr == nil {
		r.cgroupErr = fmt.Errorf("workload: %w", err)
	}
}

// name fills a pod's names through the runtime; it reports whether w has
// all the names it can get.
func (r *Resolver) name(w *Workload) bool {
	if w.Kind != KindPod || r.cfg.NoCRI {
		return true
	}
	c := r.criClient()
	if c == nil {
		return false
	}
	complete, err := c.name(r.ctx, w)
	r.countCalls()
	if err != nil {
		r.criFailed(err)
		return false
	}
	return complete
}

// criClient returns the CRI client, nil while the runtime is unavailable.
func (r *Resolver) criClient() *criClient {
	if time.Now().Before(r.criDown) {
		return nil
	}
	if r.cri != nil {
		return r.cri
	}
	socket := r.cfg.CRISocket
	if socket == "" {
		s, err := FindCRISocket(r.cfg.CRISockets)
		if err != nil {
			r.criFailed(err)
			return nil
		}
		socket = s
	}
	c, err := dialCRI(socket, r.cfg.CallTimeout, r.cfg.RewalkInterval)
	if err != nil {
		r.criFailed(err)
		return nil
	}
	r.cri = c
	return c
}

// criFailed records a CRI failure and holds CRI calls off for CRIBackoff.
func (r *Resolver) criFailed(err error) {
	if r.ctx.Err() != nil {
		return
	}
	r.criDown = time.Now().Add(r.cfg.CRIBackoff)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.CRIErrors++
	if r.criErr == nil {
		r.criErr = fmt.Errorf("workload: names unavailable: %w", err)
	}
}

func (r *Resolver) countCalls() {
	if r.cri == nil {
		return
	}
	n := r.cri.calls
	r.cri.calls = 0
	r.mu.Lock()
	r.stats.CRICalls += n
	r.mu.Unlock()
}

// store caches a resolution. A cgroup's known workload is kept when its id
// is no longer found (the cgroup is gone; cgroup ids are not reused), and a
// workload's names when the runtime does not answer this time.
func (r *Resolver) store(q request, w Workload, found, complete bool) {
	now := r.cfg.Now()
	ttl := r.cfg.TTL
	if !found || !complete {
		ttl = r.cfg.RetryTTL
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cache(q.kind)
	if old, ok := c.peek(q.id); ok {
		switch {
		case !found && q.kind == reqCgroup && old.w.Path != "":
			w, ttl = old.w, r.cfg.TTL
		case !complete && old.w.PodUID == w.PodUID && old.w.ContainerID == w.ContainerID:
			if w.Pod == "" {
				w.Namespace, w.Pod = old.w.Namespace, old.w.Pod
			}
			if w.Container == "" {
				w.Container = old.w.Container
			}
		}
	}
	c.put(q.id, w, now.Add(ttl), now)
	delete(r.pending, reqKey{q.kind, q.id})
	r.stats.Resolved++
	if !found {
		r.stats.NotFound++
	}
}
