package model

import (
	"cmp"
	"slices"

	"github.com/twtop/twtop/tracer/settings"
)

// The kernel's own TIME_WAIT counters (/proc/net/netstat, per network
// namespace) are an independent view to check twtop's figures against:
// TcpExt.TW counts timewait sockets armed (from 5.19; expired up to 5.17),
// TWKilled those with a timeout of 4 s or less, TWRecycled connect()
// reuses, TCPTimeWaitOverflow closes without TIME_WAIT.

// kernelFields are the counters the report carries, in the order of a
// kernelReading's values.
var kernelFields = [...]string{"TcpExt.TW", "TcpExt.TWKilled", "TcpExt.TWRecycled", "TcpExt.TCPTimeWaitOverflow"}

type kernelValues [len(kernelFields)]int64

// kernelReading is the first and the latest reading of a namespace.
type kernelReading struct {
	first, latest kernelValues
}

// KernelCounters is how much the kernel's TIME_WAIT counters of one
// network namespace moved between the first and the latest reading.
type KernelCounters struct {
	Netns            uint32 `json:"netns"`
	TW               int64  `json:"tw"`
	TWKilled         int64  `json:"tw_killed"`
	TWRecycled       int64  `json:"tw_recycled"`
	TimewaitOverflow int64  `json:"timewait_overflow"`
}

// SetCounters gives the model a reading of a namespace's SNMP counters
// (read at start and periodically; a recording carries them). The model
// keeps the first reading and the latest. A reading without any of the
// TIME_WAIT counters (no TcpExt section) is ignored. Counters never go back
// while a namespace lives, so a reading below the first means the inode
// now names a new namespace: its counts start from that reading. Call it
// from the goroutine that calls Apply.
func (m *Model) SetCounters(netns uint32, c settings.Counters) {
	var v kernelValues
	found := false
	for i, k := range kernelFields {
		if x, ok := c[k]; ok {
			v[i], found = x, true
		}
	}
	if !found {
		return
	}
	r := m.kernel[netns]
	if r == nil {
		m.kernel[netns] = &kernelReading{first: v, latest: v}
		return
	}
	for i := range v {
		if v[i] < r.first[i] {
			r.first = v
			break
		}
	}
	r.latest = v
}

// kernelCounters lists every namespace's deltas, by netns.
func (m *Model) kernelCounters() []KernelCounters {
	out := make([]KernelCounters, 0, len(m.kernel))
	for ns, r := range m.kernel {
		d := func(i int) int64 { return r.latest[i] - r.first[i] }
		out = append(out, KernelCounters{Netns: ns, TW: d(0), TWKilled: d(1), TWRecycled: d(2), TimewaitOverflow: d(3)})
	}
	slices.SortFunc(out, func(a, b KernelCounters) int { return cmp.Compare(a.Netns, b.Netns) })
	return out
}
