package model

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// Aggregate kinds: who closes, per process, per service port (server role)
// and per peer (client role).
const (
	aggProcess = iota
	aggPort
	aggPeer
	aggKinds
)

// aggregates are the three rankings.
type aggregates struct {
	process *aggregate[procKey]
	port    *aggregate[portKey]
	peer    *aggregate[netip.AddrPort]
}

func newAggregates(maxKeys int) aggregates {
	return aggregates{
		process: newAggregate(maxKeys, procKey.String),
		port:    newAggregate(maxKeys, portKey.String),
		peer:    newAggregate(maxKeys, peerLabel),
	}
}

func (a *aggregates) top(n int) [aggKinds][]Closer {
	return [aggKinds][]Closer{
		aggProcess: a.process.top(aggNames[aggProcess], n),
		aggPort:    a.port.top(aggNames[aggPort], n),
		aggPeer:    a.peer.top(aggNames[aggPeer], n),
	}
}

var aggNames = [aggKinds]string{"process", "port", "peer"}

// Closer is one row of a "who closes" ranking.
type Closer struct {
	By              string    `json:"by"`  // process, port or peer
	Key             string    `json:"key"` // "nginx[1234]", "netns 4026531840 :80", "10.0.0.7:8080"
	Closes          [5]uint64 `json:"-"`   // by Side
	TimewaitCreated uint64    `json:"timewait_created"`
	TimewaitOpen    int64     `json:"timewait_open"`
	ConnectErrors   uint64    `json:"connect_eaddrnotavail,omitempty"`
	BindErrors      uint64    `json:"bind_eaddrinuse,omitempty"`
}

// Total is the number of closes counted for the row.
func (c *Closer) Total() uint64 {
	var n uint64
	for _, v := range c.Closes[SideActive:] {
		n += v
	}
	return n
}

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
}

// aggregate is a bounded set of Closer rows keyed by K: past maxKeys
// distinct keys, new keys are counted under "other". The row's label is
// made once, when the row is.
type aggregate[K comparable] struct {
	rows    map[K]*Closer
	other   Closer
	maxKeys int
	label   func(K) string
}

const otherKey = "other"

func newAggregate[K comparable](maxKeys int, label func(K) string) *aggregate[K] {
	return &aggregate[K]{rows: make(map[K]*Closer), maxKeys: maxKeys, label: label, other: Closer{Key: otherKey}}
}

func (a *aggregate[K]) get(key K) *Closer {
	if c := a.rows[key]; c != nil {
		return c
	}
	if len(a.rows) >= a.maxKeys {
		return &a.other
	}
	c := &Closer{Key: a.label(key)}
	a.rows[key] = c
	return c
}

// top returns the n rows with the most closes (then most TIME_WAIT
// created, then key), the rest summed into a final "other" row.
func (a *aggregate[K]) top(by string, n int) []Closer {
	rows := make([]Closer, 0, len(a.rows))
	for _, c := range a.rows {
		r := *c
		r.By = by
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(x, y Closer) int {
		if c := cmp.Compare(y.Total(), x.Total()); c != 0 {
			return c
		}
		if c := cmp.Compare(y.TimewaitCreated, x.TimewaitCreated); c != 0 {
			return c
		}
		return cmp.Compare(x.Key, y.Key)
	})
	other := a.other
	other.By = by
	if len(rows) > n {
		for i := range rows[n:] {
			other.add(&rows[n+i])
		}
		rows = rows[:n]
	}
	if other.Total() > 0 || other.TimewaitCreated > 0 || other.ConnectErrors > 0 || other.BindErrors > 0 {
		rows = append(rows, other)
	}
	return rows
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

func peerLabel(dst netip.AddrPort) string { return dst.String() }
