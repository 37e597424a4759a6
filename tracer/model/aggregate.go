package model

import (
	"cmp"
	"fmt"
	"slices"
)

// By names a "who closes" ranking: what its rows are keyed by.
type By int

// Rankings. Their String is the row's "by" in reports and a label a CLI
// or UI can show and parse back (ParseBy).
const (
	ByProcess By = iota // the socket's owner: "nginx[1234]"
	ByPort              // the service port of a server-side socket: "netns 4026531840 :80"
	ByPeer              // the remote end of a client socket: "10.0.0.7:8080"
	ByNetns             // the network namespace: "netns 4026531840"
	// ByPod is the owner's Kubernetes pod: "ns/pod", or its UID while its
	// names are unknown. A pod's row also counts the TIME_WAIT sockets in
	// its network namespace whose closing socket's owner is not known.
	// Only with a Config.Workloads resolver.
	ByPod
	// ByContainer is the owner's container: "ns/pod/container" in a pod,
	// the container's name or id outside Kubernetes, or its id while its
	// names are unknown. Only with a Config.Workloads resolver.
	ByContainer
	// ByService is the owner's systemd service: "nginx.service". Only with
	// a Config.Workloads resolver.
	ByService
	byKinds
)

var byNames = [byKinds]string{"process", "port", "peer", "netns", "pod", "container", "service"}

func (b By) String() string {
	if b < 0 || b >= byKinds {
		return fmt.Sprintf("By(%d)", int(b))
	}
	return byNames[b]
}

// ParseBy returns the ranking a name (as By.String gives it) stands for.
func ParseBy(name string) (By, error) {
	for b, n := range byNames {
		if n == name {
			return By(b), nil
		}
	}
	return 0, fmt.Errorf("unknown ranking %q (want process, port, peer, netns, pod, container or service)", name)
}

// Rankings lists every ranking, in report order. The workload rankings
// (pod, container, service) have rows only when the model was given a
// resolver (Config.Workloads).
func Rankings() []By { return []By{ByProcess, ByPort, ByPeer, ByNetns, ByPod, ByContainer, ByService} }

// Workload reports whether b is a ranking by workload (pod, container,
// service), which has rows only when the model resolves cgroups.
func (b By) Workload() bool { return b == ByPod || b == ByContainer || b == ByService }

// aggregates are the rankings.
type aggregates struct {
	process *aggregate[procKey]
	port    *aggregate[portKey]
	peer    *aggregate[peerKey]
	netns   *aggregate[uint32]
	// by the owner's cgroup id, with a resolver (Config.Workloads): the
	// pod, container and service rankings are made from these rows when a
	// snapshot is taken, so closes made before an id was resolved count
	// once it is
	cgroup *aggregate[uint64]
}

// byCgroup is the index of the cgroup rows in closerKeys; they are no
// ranking of their own.
const byCgroup = byKinds

func newAggregates(maxKeys int) aggregates {
	return aggregates{
		process: newAggregate(maxKeys, procKey.row),
		port:    newAggregate(maxKeys, portKey.row),
		peer:    newAggregate(maxKeys, peerRow),
		netns:   newAggregate(maxKeys, netnsRow),
		cgroup:  newAggregate(maxKeys, func(uint64) Closer { return Closer{} }),
	}
}

// all returns every row of every ranking in the default order, each
// ranking's "other" row last.
func (a *aggregates) all() [byKinds][]Closer {
	return [byKinds][]Closer{
		ByProcess: a.process.all(ByProcess.String()),
		ByPort:    a.port.all(ByPort.String()),
		ByPeer:    a.peer.all(ByPeer.String()),
		ByNetns:   a.netns.all(ByNetns.String()),
	}
}

// Closer is one row of a "who closes" ranking.
type Closer struct {
	By              string    `json:"by"`  // process, port, peer, netns, pod, container or service
	Key             string    `json:"key"` // "nginx[1234]", "netns 4026531840 :80", "10.0.0.7:8080", "netns 4026531840", "ns/pod", "ns/pod/container", "nginx.service"; "other" for folded rows
	Closes          [5]uint64 `json:"-"`   // by Side
	TimewaitCreated uint64    `json:"timewait_created"`
	TimewaitOpen    int64     `json:"timewait_open"`
	ConnectErrors   uint64    `json:"connect_eaddrnotavail,omitempty"`
	BindErrors      uint64    `json:"bind_eaddrinuse,omitempty"`
	// ResetReceived counts the reset closes where the RST came from the
	// peer; the others were resets this host sent (SO_LINGER 0,
	// tcp_abort, a timeout).
	ResetReceived uint64 `json:"reset_received"`

	// What the key names, for filters (--check selectors, the UI).
	Netns uint32 `json:"netns,omitempty"` // port and netns rows
	Port  uint16 `json:"port,omitempty"`  // port rows: the service port; peer rows: the peer's port
	Peer  string `json:"peer,omitempty"`  // peer rows
	Pid   uint32 `json:"pid,omitempty"`   // process rows
	Comm  string `json:"comm,omitempty"`  // process rows

	// Workload rows (pod, container, service): the names the runtime gave,
	// and the ids while it gave none.
	Namespace   string `json:"namespace,omitempty"`
	Pod         string `json:"pod,omitempty"`
	PodUID      string `json:"pod_uid,omitempty"`
	Container   string `json:"container,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	Service     string `json:"service,omitempty"`
}

// Total is the number of closes counted for the row.
func (c *Closer) Total() uint64 { return Closed(&c.Closes) }

// ActiveShare is the share of closes where this row's side sent the first
// FIN (0 when it closed nothing).
func (c *Closer) ActiveShare() float64 {
	if t := c.Total(); t > 0 {
		return float64(c.Closes[SideActive]) / float64(t)
	}
	return 0
}

func (c *Closer) add(o *Closer) {
	for i := range c.Closes {
		c.Closes[i] += o.Closes[i]
	}
	c.TimewaitCreated += o.TimewaitCreated
	c.TimewaitOpen += o.TimewaitOpen
	c.ConnectErrors += o.ConnectErrors
	c.BindErrors += o.BindErrors
	c.ResetReceived += o.ResetReceived
}

// counted: the row has something to show.
func (c *Closer) counted() bool {
	return c.Total() > 0 || c.TimewaitCreated > 0 || c.ConnectErrors > 0 || c.BindErrors > 0
}

// aggregate is a bounded set of Closer rows keyed by K: past maxKeys
// distinct keys, new keys are counted under "other". The row's label is
// made once, when the row is.
type aggregate[K comparable] struct {
	rows    map[K]*Closer
	other   Closer
	maxKeys int
	row     func(K) Closer // a new row: its key and identifying fields
}

const otherKey = "other"

func newAggregate[K comparable](maxKeys int, row func(K) Closer) *aggregate[K] {
	return &aggregate[K]{rows: make(map[K]*Closer), maxKeys: maxKeys, row: row, other: Closer{Key: otherKey}}
}

func (a *aggregate[K]) get(key K) *Closer {
	if c := a.rows[key]; c != nil {
		return c
	}
	if len(a.rows) >= a.maxKeys {
		return &a.other
	}
	r := a.row(key)
	c := &r
	a.rows[key] = c
	return c
}

// all returns a copy of every row in the default order, then the "other"
// row when it counted anything.
func (a *aggregate[K]) all(by string) []Closer {
	rows := make([]Closer, 0, len(a.rows)+1)
	for _, c := range a.rows {
		r := *c
		r.By = by
		rows = append(rows, r)
	}
	slices.SortFunc(rows, defaultOrder)
	if a.other.counted() {
		o := a.other
		o.By = by
		rows = append(rows, o)
	}
	return rows
}

// defaultOrder ranks rows by the most closes, then the most TIME_WAIT
// sockets created, then key.
func defaultOrder(x, y Closer) int {
	if c := cmp.Compare(y.Total(), x.Total()); c != 0 {
		return c
	}
	if c := cmp.Compare(y.TimewaitCreated, x.TimewaitCreated); c != 0 {
		return c
	}
	return cmp.Compare(x.Key, y.Key)
}

// splitOther separates a ranking's rows from its "other" row (zero with
// Key "other" when there is none).
func splitOther(rows []Closer) ([]Closer, Closer) {
	if n := len(rows); n > 0 && rows[n-1].Key == otherKey {
		return rows[:n-1], rows[n-1]
	}
	return rows, Closer{Key: otherKey}
}

// foldTop returns a new slice with the first n of sorted (n <= 0: all of
// them) and everything after them summed into other, which comes last
// when it counted anything.
func foldTop(sorted []Closer, other Closer, by string, n int) []Closer {
	if n <= 0 || n > len(sorted) {
		n = len(sorted)
	}
	out := make([]Closer, n, n+1)
	copy(out, sorted[:n])
	for i := range sorted[n:] {
		other.add(&sorted[n+i])
	}
	if other.counted() {
		other.By, other.Key = by, otherKey
		out = append(out, other)
	}
	return out
}

type procKey struct {
	pid  uint32
	comm [16]byte
}

func (k procKey) String() string {
	n := 0
	for n < len(k.comm) && k.comm[n] != 0 {
		n++
	}
	if k.pid == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%s[%d]", k.comm[:n], k.pid)
}

type portKey struct {
	netns uint32
	port  uint16
}

func (k portKey) String() string { return fmt.Sprintf("netns %d :%d", k.netns, k.port) }

func (k procKey) row() Closer {
	c := Closer{Key: k.String(), Pid: k.pid}
	if k.pid != 0 {
		c.Comm = cString(k.comm[:])
	}
	return c
}

func (k portKey) row() Closer { return Closer{Key: k.String(), Netns: k.netns, Port: k.port} }

func peerRow(k peerKey) Closer {
	dst := k.addrPort()
	return Closer{Key: dst.String(), Peer: dst.String(), Port: dst.Port()}
}

func netnsRow(inode uint32) Closer { return Closer{Key: fmt.Sprintf("netns %d", inode), Netns: inode} }

func cString(b []byte) string {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	return string(b[:n])
}
