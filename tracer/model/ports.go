package model

import (
	"cmp"
	"math"
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

// rateSeconds is the window, in seconds of event time, of the connection
// rate and of the growth of the ports held.
const rateSeconds = 10

type dest struct {
	held    [heldGroups]int64
	counts  [rateSeconds]uint64
	lastSec uint64
	total   uint64
	ring    growthRing
}

// heldCount is a destination's held ports: all of them, and those outside
// TIME_WAIT (what connect() cannot take over even when tcp_tw_reuse
// applies).
type heldCount struct{ all, live int64 }

func (d *dest) count() heldCount {
	var all int64
	for _, v := range d.held[heldConnecting:] {
		all += v
	}
	return heldCount{all: all, live: all - d.held[heldTimewait]}
}

// change moves a group's gauge at event time now; the growth ring notes the
// count before the change, so it knows what each second started with.
func (d *dest) change(g portGroup, delta int64, now uint64) {
	d.ring.mark(now/1e9, d.count())
	d.held[g] += delta
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
	lo := windowStart(now / 1e9)
	var n uint64
	for s := lo; s <= d.lastSec; s++ {
		if s+rateSeconds > d.lastSec { // still in the ring
			n += d.counts[s%rateSeconds]
		}
	}
	return float64(n) / rateSeconds
}

// windowStart is the first second of the window ending in second sec.
func windowStart(sec uint64) uint64 {
	if sec+1 > rateSeconds {
		return sec + 1 - rateSeconds
	}
	return 0
}

// growthRing keeps, for each of the last rateSeconds seconds of event time,
// the held count the second started with.
type growthRing struct {
	start    [rateSeconds]heldCount
	first    uint64 // the second of the first change: nothing was held before
	last     uint64 // the second of the last change
	recorded bool
}

// mark notes that the count is cur just before a change in second sec.
// Seconds without a change started with the count the last change left,
// which is cur.
func (r *growthRing) mark(sec uint64, cur heldCount) {
	if !r.recorded {
		r.recorded, r.first, r.last = true, sec, sec
		r.start[sec%rateSeconds] = cur
		return
	}
	if sec <= r.last {
		return
	}
	for s := r.last + 1; s <= sec && s <= r.last+rateSeconds; s++ {
		r.start[s%rateSeconds] = cur
	}
	r.last = sec
}

// at is the count second sec started with, for sec within rateSeconds of
// the last change or after it; cur is the count now.
func (r *growthRing) at(sec uint64, cur heldCount) heldCount {
	switch {
	case !r.recorded || sec < r.first:
		return heldCount{}
	case sec > r.last:
		return cur
	}
	return r.start[sec%rateSeconds]
}

// growth is the change of the held counts per second over the window
// ending at now: from the start of its first second (or of the trace, at
// first) to now. The span counts as a second at least, so that a trace's
// first few milliseconds do not extrapolate to thousands of ports a second.
func (d *dest) growth(now, first uint64) (all, live float64) {
	lo := windowStart(now / 1e9)
	from := max(lo*1e9, first)
	if now < from {
		return 0, 0
	}
	span := max(float64(now-from)/1e9, 1)
	cur := d.count()
	was := d.ring.at(lo, cur)
	return float64(cur.all-was.all) / span, float64(cur.live-was.live) / span
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
	// GrowthPerS is the net change of Held per second over the last 10 s of
	// event time.
	GrowthPerS float64 `json:"growth_per_s"`
	// NeededAtRate is NewPerSec × 60 s (TCP_TIMEWAIT_LEN): the ports the
	// current connection rate keeps in TIME_WAIT when none is reused.
	NeededAtRate int64 `json:"needed_at_rate"`
	// ReuseApplies and ReuseNote say whether connect() towards Dst can take
	// over TIME_WAIT tuples (tcp_tw_reuse), when the namespace's settings
	// are known.
	ReuseApplies *bool  `json:"reuse_applies,omitempty"`
	ReuseNote    string `json:"reuse_note,omitempty"`
	// ExhaustionS is the time, in seconds, until the held ports reach the
	// range at the current growth: set when the range is known and the
	// ports held grow, 0 when they fill it already. When tcp_tw_reuse
	// applies, TIME_WAIT ports do not count (connect() can take them over):
	// the forecast is on the ports held outside TIME_WAIT and their growth.
	ExhaustionS *float64 `json:"exhaustion_s,omitempty"`

	// the count and growth the forecast used, for the advisor's evidence
	forecastHeld   int64
	forecastGrowth float64
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
// The rings run on the model's clock (the latest event time), so an event
// stamped a little earlier than the one before it, from another CPU, is
// counted in the current second rather than rewriting a past one.
func (m *Model) hold(s *sock, st event.State) {
	g := groupOf(st)
	if s.server || !s.src.Addr().IsValid() || s.src.Port() == 0 || !s.dst.IsValid() {
		g = heldNone
	}
	if g == s.held {
		return
	}
	if s.held != heldNone {
		m.destOf(s.dest).change(s.held, -1, m.now)
	}
	if g != heldNone {
		s.dest = destKey{s.netns, s.src.Addr(), s.dst}
		d := m.destOf(s.dest)
		d.change(g, 1, m.now)
		if g == heldEstablished && s.held != heldClosing {
			d.connected(m.now)
		}
	}
	s.held = g
}

// ports lists every destination (at most MaxKeys, then "other"), those
// holding the most ports first.
func (m *Model) ports() []PortPressure {
	out := make([]PortPressure, 0, len(m.dests))
	for k, d := range m.dests {
		cur := d.count()
		if cur.all == 0 && d.total == 0 {
			continue
		}
		rate := d.rate(m.now)
		all, live := d.growth(m.now, m.first)
		p := PortPressure{
			Netns: k.netns, Src: addrString(k.src), Dst: k.dst.String(),
			Connecting: d.held[heldConnecting], Established: d.held[heldEstablished],
			Closing: d.held[heldClosing], TimeWait: d.held[heldTimewait], Held: cur.all,
			NewPerSec: round3(rate), Connections: d.total,
			GrowthPerS:   round3(all),
			NeededAtRate: int64(math.Round(rate * timewaitSeconds)),
		}
		if !k.dst.IsValid() {
			p.Src, p.Dst = otherKey, otherKey
		}
		reuse := false
		if st, ok := m.settings[k.netns]; ok && k.dst.IsValid() {
			applies, why := st.ReuseApplies(k.dst.Addr())
			reuse = applies
			p.ReuseApplies, p.ReuseNote = &applies, why
		}
		if n := m.portRange[k.netns]; n > 0 {
			p.RangeSize = n
			p.Usage = round3(float64(cur.all) / float64(n))
			p.forecastHeld, p.forecastGrowth = cur.all, all
			if reuse {
				p.forecastHeld, p.forecastGrowth = cur.live, live
			}
			switch {
			case p.forecastHeld >= int64(n):
				zero := 0.0
				p.ExhaustionS = &zero
			case p.forecastGrowth > 0:
				s := round3(float64(int64(n)-p.forecastHeld) / p.forecastGrowth)
				p.ExhaustionS = &s
			}
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
