package model

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/twtop/twtop/tracer/event"
)

// Ephemeral port pressure: a client holds one local port per connection to
// a destination (same local address, same remote address and port) from
// connect() until its TIME_WAIT socket ends. When the ports held reach the
// size of ip_local_port_range, connect() fails with EADDRNOTAVAIL unless
// tcp_tw_reuse can take over TIME_WAIT tuples.

// destKey is one destination as the kernel's port allocation sees it.
type destKey struct {
	netns uint32
	src   netip.Addr
	dst   netip.AddrPort
}

// portGroup says what a held port is doing.
type portGroup uint8

const (
	heldNone portGroup = iota
	heldConnecting
	heldEstablished
	heldClosing
	heldTimewait
	heldGroups
)

func groupOf(st event.State) portGroup {
	switch st {
	case event.SynSent:
		return heldConnecting
	case event.Established:
		return heldEstablished
	case event.FinWait1, event.FinWait2, event.Closing, event.CloseWait, event.LastAck:
		return heldClosing
	}
	return heldNone
}

// rateWindow counts new connections per second of event time over the
// last rateSeconds seconds.
const rateSeconds = 10

type dest struct {
	held    [heldGroups]int64
	counts  [rateSeconds]uint64
	lastSec uint64
	total   uint64
}

func (d *dest) connected(now uint64) {
	sec := now / 1e9
	d.advance(sec)
	d.counts[sec%rateSeconds]++
	d.total++
}

// advance zeroes the seconds between the last count and sec.
func (d *dest) advance(sec uint64) {
	if sec <= d.lastSec {
		return
	}
	for s := d.lastSec + 1; s <= sec && s <= d.lastSec+rateSeconds; s++ {
		d.counts[s%rateSeconds] = 0
	}
	d.lastSec = sec
}

// rate is new connections per second over the window ending at now.
func (d *dest) rate(now uint64) float64 {
	sec := now / 1e9
	var lo uint64
	if sec+1 > rateSeconds {
		lo = sec + 1 - rateSeconds
	}
	var n uint64
	for s := lo; s <= d.lastSec; s++ {
		if s+rateSeconds > d.lastSec { // still in the ring
			n += d.counts[s%rateSeconds]
		}
	}
	return float64(n) / rateSeconds
}

// PortPressure is one row of the "ports" report: the local ports a client
// holds towards one destination.
type PortPressure struct {
	Netns       uint32  `json:"netns"`
	Src         string  `json:"src"`
	Dst         string  `json:"dst"`
	Connecting  int64   `json:"connecting"`
	Established int64   `json:"established"`
	Closing     int64   `json:"closing"`
	TimeWait    int64   `json:"time_wait"`
	Held        int64   `json:"held"`
	NewPerSec   float64 `json:"new_per_s"`
	Connections uint64  `json:"connections"`
	// RangeSize and Usage are set when the namespace's ip_local_port_range
	// is known.
	RangeSize int     `json:"range_size,omitempty"`
	Usage     float64 `json:"usage,omitempty"`
}

func (m *Model) destOf(k destKey) *dest {
	d := m.dests[k]
	if d == nil {
		if len(m.dests) >= m.cfg.MaxKeys {
			m.c.FoldedDestinations++
			k = destKey{} // folded: "other"
			if d = m.dests[k]; d != nil {
				return d
			}
		}
		d = &dest{}
		m.dests[k] = d
	}
	return d
}

// hold moves a client socket's held port to the group of its new state.
func (m *Model) hold(s *sock, st event.State, now uint64) {
	g := groupOf(st)
	if s.server || !s.src.Addr().IsValid() || s.src.Port() == 0 || !s.dst.IsValid() {
		g = heldNone
	}
	if g == s.held {
		return
	}
	if s.held != heldNone {
		m.destOf(s.dest).held[s.held]--
	}
	if g != heldNone {
		s.dest = destKey{s.netns, s.src.Addr(), s.dst}
		d := m.destOf(s.dest)
		d.held[g]++
		if g == heldEstablished && s.held != heldClosing {
			d.connected(now)
		}
	}
	s.held = g
}

// ports lists the destinations holding the most ports.
func (m *Model) ports() []PortPressure {
	out := make([]PortPressure, 0, len(m.dests))
	for k, d := range m.dests {
		var held int64
		for _, v := range d.held[heldConnecting:] {
			held += v
		}
		if held == 0 && d.total == 0 {
			continue
		}
		p := PortPressure{
			Netns: k.netns, Src: addrString(k.src), Dst: k.dst.String(),
			Connecting: d.held[heldConnecting], Established: d.held[heldEstablished],
			Closing: d.held[heldClosing], TimeWait: d.held[heldTimewait], Held: held,
			NewPerSec: round3(d.rate(m.now)), Connections: d.total,
		}
		if !k.dst.IsValid() {
			p.Src, p.Dst = otherKey, otherKey
		}
		if n := m.portRange[k.netns]; n > 0 {
			p.RangeSize = n
			p.Usage = round3(float64(held) / float64(n))
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b PortPressure) int {
		if c := cmp.Compare(b.Held, a.Held); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Connections, a.Connections); c != 0 {
			return c
		}
		return cmp.Compare(a.Src+a.Dst, b.Src+b.Dst)
	})
	if len(out) > m.cfg.TopN {
		out = out[:m.cfg.TopN]
	}
	return out
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// SetPortRange tells the model a namespace's ip_local_port_range size, for
// the usage figure of the ports report.
func (m *Model) SetPortRange(netns uint32, size int) {
	m.portRange[netns] = size
}
