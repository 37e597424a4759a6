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

// aggregate is a bounded set of Closer rows: past maxKeys distinct keys,
// new keys are counted under "other".
type aggregate struct {
	rows    map[string]*Closer
	other   Closer
	maxKeys int
	folded  uint64 // keys folded into other
}

const otherKey = "other"

func newAggregate(maxKeys int) *aggregate {
	return &aggregate{rows: make(map[string]*Closer), maxKeys: maxKeys, other: Closer{Key: otherKey}}
}

func (a *aggregate) get(key string) *Closer {
	if c := a.rows[key]; c != nil {
		return c
	}
	if len(a.rows) >= a.maxKeys {
		a.folded++
		return &a.other
	}
	c := &Closer{Key: key}
	a.rows[key] = c
	return c
}

// top returns the n rows with the most closes (then most TIME_WAIT
// created, then key), the rest summed into a final "other" row.
func (a *aggregate) top(by string, n int) []Closer {
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

func processKey(pid uint32, comm [16]byte) string {
	n := 0
	for n < len(comm) && comm[n] != 0 {
		n++
	}
	if pid == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%s[%d]", comm[:n], pid)
}

func portKey(netns uint32, port uint16) string {
	return fmt.Sprintf("netns %d :%d", netns, port)
}

func peerKey(dst netip.AddrPort) string { return dst.String() }
