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
	id    uint32  // 1 + its position in Model.destByID
	key   destKey // its key in Model.dests (destKey{} for "other")
	other bool    // the destinations folded into "other" (destKey{})
	held  [heldGroups]int64
	// per second of the window: connections established, and client
	// TIME_WAIT sockets created while tracing
	counts  [rateSeconds]uint64
	twNew   [rateSeconds]uint64
	lastSec uint64
	// since is the event time of the first connection or TIME_WAIT
	// socket created towards it (0 before): its rates are over the time
	// since then, within the window
	since uint64
	// lastConn is the event time of the last connection towards it
	lastConn uint64
	total    uint64
	reused   uint64 // TIME_WAIT tuples taken over by connect()
	errors   uint64 // connect() calls that failed with EADDRNOTAVAIL
	// exhausted: the last connect() towards it failed with EADDRNOTAVAIL,
	// and no port towards it has been freed nor connection made since
	exhausted bool
	ring      growthRing
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

// connected counts a connection established towards it at event time now:
// connect() found a local port.
func (d *dest) connected(now uint64) {
	sec := now / 1e9
	d.advance(sec, now)
	d.counts[sec%rateSeconds]++
	d.total++
	d.lastConn = now
	d.exhausted = false
}

// timewaitCreated counts a client TIME_WAIT socket created towards it.
func (d *dest) timewaitCreated(now uint64) {
	sec := now / 1e9
	d.advance(sec, now)
	d.twNew[sec%rateSeconds]++
}

// addrNotAvail counts a connect() towards it that found no free local port.
func (d *dest) addrNotAvail() {
	d.errors++
	d.exhausted = true
}

// freed notes that a port held towards it was let go.
func (d *dest) freed() { d.exhausted = false }

// advance zeroes the seconds between the last count and sec, and notes
// the first count's time.
func (d *dest) advance(sec, now uint64) {
	if d.since == 0 {
		d.since = now
	}
	if sec <= d.lastSec {
		return
	}
	for s := d.lastSec + 1; s <= sec && s <= d.lastSec+rateSeconds; s++ {
		d.counts[s%rateSeconds] = 0
		d.twNew[s%rateSeconds] = 0
	}
	d.lastSec = sec
}

// rates are the new connections and the new client TIME_WAIT sockets per
// second over the window ending at now, and the seconds they are over:
// from the start of the window's first second, or from the first count
// when it came later (before it nothing went towards the destination), or
// from first, the trace's start, when nothing was counted; a second at
// least.
//
// active is the connections per second between the window's first
// connection (or the start of the window) and the last one: the pace while
// connections were made, which conns understates once a load has stopped.
func (d *dest) rates(now, first uint64) (conns, timewait, span, active float64) {
	lo := windowStart(now / 1e9)
	from := max(lo*1e9, first)
	if d.since != 0 {
		from = max(lo*1e9, d.since)
	}
	span = 1
	if now > from {
		span = max(float64(now-from)/1e9, 1)
	}
	var n, tw uint64
	for s := lo; s <= d.lastSec; s++ {
		if s+rateSeconds > d.lastSec { // still in the ring
			n += d.counts[s%rateSeconds]
			tw += d.twNew[s%rateSeconds]
		}
	}
	activeSpan := 1.0
	if d.lastConn > from {
		activeSpan = max(float64(d.lastConn-from)/1e9, 1)
	}
	return float64(n) / span, float64(tw) / span, span, float64(n) / activeSpan
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
	Netns       uint32 `json:"netns"`
	Src         string `json:"src"`
	Dst         string `json:"dst"`
	Connecting  int64  `json:"connecting"`
	Established int64  `json:"established"`
	Closing     int64  `json:"closing"`
	// TimeWait counts every client TIME_WAIT socket towards Dst the model
	// knows of: created while tracing, found by the scan, or existing
	// before tracing began.
	TimeWait int64 `json:"time_wait"`
	Held     int64 `json:"held"`
	// NewPerSec is the connections established towards Dst per second
	// over RateWindowS.
	NewPerSec   float64 `json:"new_per_s"`
	Connections uint64  `json:"connections"`
	// RangeSize and Usage are set when the namespace's ip_local_port_range
	// is known. Usage is Held / RangeSize, or 1 while connect() towards
	// Dst fails with EADDRNOTAVAIL (the kernel found no free port).
	RangeSize int     `json:"range_size,omitempty"`
	Usage     float64 `json:"usage,omitempty"`
	// GrowthPerS is the net change of Held per second over the last 10 s of
	// event time.
	GrowthPerS float64 `json:"growth_per_s"`
	// NeededAtRate is NewPerSec × 60 s (TCP_TIMEWAIT_LEN): a projection of
	// the ports the connection rate would keep in TIME_WAIT if every
	// connection left a TIME_WAIT socket on this side and none was reused.
	NeededAtRate int64 `json:"needed_at_rate"`
	// ReuseApplies and ReuseNote say whether connect() towards Dst can take
	// over TIME_WAIT tuples (tcp_tw_reuse), when the namespace's settings
	// are known.
	ReuseApplies *bool  `json:"reuse_applies,omitempty"`
	ReuseNote    string `json:"reuse_note,omitempty"`
	// ExhaustionS is the time, in seconds, until the held ports reach the
	// range: set when the range is known and SteadyHeld exceeds it, 0
	// when the ports fill it already or connect() towards Dst fails with
	// EADDRNOTAVAIL. The ports held approach SteadyHeld within a
	// TIME_WAIT period (60 s), as the TIME_WAIT sockets held now expire
	// and the current rate's replace them: taking the ones held now as
	// evenly aged, Held grows by (SteadyHeld - Held) / 60 s a second.
	ExhaustionS *float64 `json:"exhaustion_s,omitempty"`

	// RateWindowS is the span of event time, in seconds, NewPerSec and
	// TimewaitPerS are over: the last 10 s, or since the first connection
	// towards Dst when that is later, 1 s at least.
	RateWindowS float64 `json:"rate_window_s"`
	// TimewaitPerS is the client TIME_WAIT sockets created towards Dst per
	// second over RateWindowS.
	TimewaitPerS float64 `json:"timewait_per_s"`
	// ActivePerS is the connections towards Dst per second of the window
	// from its first connection to its last: the pace of a load, which
	// NewPerSec understates once the load has stopped (a report's tail).
	ActivePerS float64 `json:"active_per_s"`
	// SteadyHeld is the ports the current rate holds once TIME_WAIT has
	// saturated: those held outside TIME_WAIT plus TimewaitPerS × 60 s;
	// when tcp_tw_reuse applies, those held outside TIME_WAIT only
	// (connect() can take the others over).
	SteadyHeld int64 `json:"steady_held"`
	// ConnectReuse is the TIME_WAIT tuples towards Dst that connect() took
	// over (tcp_tw_reuse at work).
	ConnectReuse uint64 `json:"connect_reuse"`
	// ConnectEAddrNotAvail is the connect() calls towards Dst that failed
	// with EADDRNOTAVAIL.
	ConnectEAddrNotAvail uint64 `json:"connect_eaddrnotavail"`

	// Namespace and Pod name the Kubernetes pod that holds the ports: the
	// one whose network namespace is Netns (with a resolver, once it is
	// resolved; none for the host's namespace). PodUID is the pod's UID
	// while the runtime has given no name.
	Namespace string `json:"namespace,omitempty"`
	Pod       string `json:"pod,omitempty"`
	PodUID    string `json:"pod_uid,omitempty"`

	// the count the forecast started from, for the advisor's evidence
	forecastHeld int64
}

func (m *Model) destOf(k destKey) *dest {
	mk := k.mapKey()
	d := m.dests[mk]
	if d == nil {
		if len(m.dests) >= m.cfg.MaxKeys {
			m.c.FoldedDestinations++
			k, mk = destKey{}, destMapKey{} // folded: "other"
			if d = m.dests[mk]; d != nil {
				return d
			}
		}
		d = &dest{id: uint32(len(m.destByID)) + 1, key: k, other: k == destKey{}}
		m.dests[mk] = d
		m.destByID = append(m.destByID, d)
	}
	return d
}

// sockDest is destOf(s.dest), kept on the socket unless folded into
// "other" (each fold is counted, as every lookup of a folded key is).
func (m *Model) sockDest(s *sock) *dest {
	if s.destp != nil {
		return s.destp
	}
	d := m.dests[s.dest.mapKey()]
	if d == nil {
		d = m.destOf(s.dest)
		if d.key != s.dest {
			return d // folded
		}
	}
	s.destp = d
	return d
}

// hold moves a client socket's held port to the group of its new state.
// The rings run on the model's clock (the latest event time), so an event
// stamped a little earlier than the one before it, from another CPU, is
// counted in the current second rather than rewriting a past one.
func (m *Model) hold(s *sock, st event.State) {
	g := groupOf(st)
	if s.role != roleClient || !s.src.Addr().IsValid() || s.src.Port() == 0 || !s.dst.IsValid() {
		g = heldNone
	}
	if g == s.held {
		return
	}
	if s.held != heldNone {
		m.sockDest(s).change(s.held, -1, m.now)
	}
	if g != heldNone {
		if k := (destKey{s.netns, s.src.Addr(), s.dst}); k != s.dest {
			s.dest, s.destp = k, nil
		}
		d := m.sockDest(s)
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
	for _, d := range m.dests {
		k := d.key
		cur := d.count()
		if cur.all == 0 && d.total == 0 && d.errors == 0 {
			continue
		}
		conns, timewait, span, active := d.rates(m.now, m.first)
		all, _ := d.growth(m.now, m.first)
		p := PortPressure{
			Netns: k.netns, Src: addrString(k.src), Dst: k.dst.String(),
			Connecting: d.held[heldConnecting], Established: d.held[heldEstablished],
			Closing: d.held[heldClosing], TimeWait: d.held[heldTimewait], Held: cur.all,
			NewPerSec: round3(conns), Connections: d.total,
			GrowthPerS:   round3(all),
			NeededAtRate: int64(math.Round(conns * timewaitSeconds)),
			RateWindowS:  round3(span), TimewaitPerS: round3(timewait), ActivePerS: round3(active),
			ConnectReuse: d.reused, ConnectEAddrNotAvail: d.errors,
		}
		if !k.dst.IsValid() {
			p.Src, p.Dst = otherKey, otherKey
		} else if w, ok := m.netnsPod(k.netns); ok {
			if w.Pod != "" {
				p.Namespace, p.Pod = w.Namespace, w.Pod
			} else {
				p.PodUID = w.PodUID
			}
		}
		reuse := false
		if st, ok := m.settings[k.netns]; ok && k.dst.IsValid() {
			applies, why := st.ReuseApplies(k.dst.Addr())
			reuse = applies
			p.ReuseApplies, p.ReuseNote = &applies, why
		}
		// TIME_WAIT sockets live 60 s: at a steady rate the ports they
		// hold level off at rate × 60 s
		p.forecastHeld, p.SteadyHeld = cur.all, cur.live+int64(math.Round(timewait*timewaitSeconds))
		if reuse {
			p.forecastHeld, p.SteadyHeld = cur.live, cur.live
		}
		if n := int64(m.portRange[k.netns]); n > 0 {
			p.RangeSize = int(n)
			p.Usage = round3(float64(cur.all) / float64(n))
			switch {
			case d.exhausted:
				p.Usage = max(p.Usage, 1)
				zero := 0.0
				p.ExhaustionS = &zero
			case p.forecastHeld >= n:
				zero := 0.0
				p.ExhaustionS = &zero
			case p.SteadyHeld > n:
				s := round3(timewaitSeconds * float64(n-p.forecastHeld) / float64(p.SteadyHeld-p.forecastHeld))
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

// PodName names the pod that holds the ports: "ns/pod", its UID while it
// has no name, "" when no pod is known.
func (p *PortPressure) PodName() string {
	if p.Pod != "" {
		return p.Namespace + "/" + p.Pod
	}
	return p.PodUID
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

// portBounds is a namespace's ip_local_port_range, inclusive.
type portBounds struct{ lo, hi uint16 }

// defaultEphemeral is Linux's default ip_local_port_range, for the
// namespaces whose settings twtop does not read (with --netns, the
// kernel's hooks still see every namespace).
var defaultEphemeral = portBounds{32768, 60999}

func (b portBounds) has(port uint16) bool { return port >= b.lo && port <= b.hi }

// roleByPorts says which end of a connection a socket with these ports is
// when nothing else does (a socket or a TIME_WAIT socket that existed
// before tracing): a local port in the namespace's ephemeral range and a
// remote one outside it mark the client, the reverse the server; anything
// else is not known.
func (m *Model) roleByPorts(netns uint32, local, remote uint16) role {
	b, ok := m.ephemeral[netns]
	if !ok {
		b = defaultEphemeral
	}
	switch l, r := b.has(local), b.has(remote); {
	case l && !r:
		return roleClient
	case r && !l:
		return roleServer
	}
	return roleUnknown
}
