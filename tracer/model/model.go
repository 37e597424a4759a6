// Package model aggregates twtop's events into the answers the UI, the
// reports and the exporters show: who closes first, how TIME_WAIT sockets
// live and end, reuse, overflows and errors.
//
// The model is deterministic: its only clock is the events' timestamps, so
// one event stream always gives the same answers, at any replay speed
// (the pod, container and service rankings and the pods named on
// destinations ask a resolver: live, one that answers in the background;
// on replay, the workloads the recording carries). It
// imports neither the tracer's loader nor any UI package. Apply is called
// from one goroutine; Snapshot returns a plain value other goroutines may
// read freely.
package model

import (
	"encoding/binary"
	"github.com/twtop/twtop/internal/compact"
	"net/netip"

	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/settings"
)

// Config bounds the model's memory.
type Config struct {
	// MaxSockets caps the table of live full sockets (default 1<<20).
	MaxSockets int
	// MaxTimewait caps the table of open TIME_WAIT sockets (default 1<<20).
	MaxTimewait int
	// TopN caps each aggregate ranking; the rest is folded into "other"
	// (default 20).
	TopN int
	// MaxKeys caps the distinct keys an aggregate tracks before new ones
	// fold into "other" (default 4096).
	MaxKeys int
	// Tier is the attach tier the events come from; every snapshot
	// carries it.
	Tier Tier
	// Workloads resolves owners' cgroup ids to pods, containers and
	// services for the pod, container and service rankings, and network
	// namespaces to pods for the TIME_WAIT sockets no known owner closed
	// and the destinations' ports; nil leaves those rankings empty and
	// the destinations unnamed (a replay answers from the workloads its
	// recording carries: the model stays a function of its input).
	Workloads Workloads
}

// Tier is the attach tier behind a model's events, as its snapshots carry
// it: the one place that says whether TIME_WAIT ends are exact or
// inferred. The pipeline fills it in from the tracer's tier (live) or the
// recording's header (replay).
type Tier struct {
	Name string // "fentry", "kprobe", "tracepoint"; "" when unknown
	// Exact is set when the tier sees TIME_WAIT ends and their causes
	// directly; otherwise (the tracepoint tier, or an unknown one) they
	// are inferred.
	Exact bool
}

// Tier is the attach tier the model was configured with.
func (m *Model) Tier() Tier { return m.cfg.Tier }

func (c Config) withDefaults() Config {
	if c.MaxSockets <= 0 {
		c.MaxSockets = 1 << 20
	}
	if c.MaxTimewait <= 0 {
		c.MaxTimewait = 1 << 20
	}
	if c.TopN <= 0 {
		c.TopN = 20
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 4096
	}
	return c
}

// Side says how a socket's connection closed, seen from that socket.
type Side uint8

// Sides.
const (
	SideNone         Side = iota
	SideActive            // sent the first FIN (ESTABLISHED -> FIN_WAIT1, then FIN_WAIT2)
	SidePassive           // received the first FIN (ESTABLISHED -> CLOSE_WAIT)
	SideSimultaneous      // both FINs crossed (FIN_WAIT1 -> CLOSING)
	SideReset             // ended without the FIN exchange (RST or abort)
)

// Closed is the number of closes in counts (indexed by Side) whose side
// was classified, SideNone left out.
func Closed(counts *[5]uint64) uint64 {
	var n uint64
	for _, v := range counts[SideActive:] {
		n += v
	}
	return n
}

func (s Side) String() string {
	return [...]string{"none", "active", "passive", "simultaneous", "reset"}[s]
}

type sock struct {
	netns    uint32
	src, dst netip.AddrPort
	side     Side
	owner    owner
	role     role // client, server, or not known yet
	// twTaken: a TIME_WAIT socket already took this socket's attribution
	// (reported before the CLOSE transition), so the close leaves none
	// behind for another one on the same tuple
	twTaken bool
	held    portGroup
	dest    destKey
	destp   *dest // m.dests[dest] once looked up, unless folded
	// indexed: byTuple maps the socket's tuple to it (as the last write
	// there left it), so the next transition need not write it again
	indexed bool
	// keys are closerOf's answer while keysOK (the fields it depends on
	// are unchanged since)
	keys   closerKeys
	keysOK bool
	// estab is the event time the socket became ESTABLISHED, 0 when not
	// seen (for the duration of the connections a service closes)
	estab uint64
}

// role says which end of its connection a socket is.
type role uint8

const (
	roleUnknown role = iota
	// roleClient: it called connect() (CLOSE -> SYN_SENT), or, first seen
	// with its connection open, its local port is in the namespace's
	// ephemeral range and the remote one is not
	roleClient
	// roleServer: a child of a listener (SYN_RECV), or, first seen with
	// its connection open, the remote port is in the ephemeral range and
	// the local one is not
	roleServer
)

type owner struct {
	pid    uint32
	comm   [16]byte
	cgroup uint64 // cgroup v2 id, 0 when not known
}

// tw is what the model keeps of an open TIME_WAIT socket: the books it
// is charged to, the destination whose port it holds (a client's) and a
// fingerprint of its tuple (to tell a new socket at its address from a
// repeat). Its birth, substate, tuple and the inference of its end are
// the lifecycle Tracker's, which puts its lifetime on the end event. It
// holds no pointer.
type tw struct {
	books uint32 // handle in Model.books
	dest  uint32 // the destination's id (dest.id) when the books say client
	fp    uint32 // tupleFP of its tuple
}

// twIs reports whether the socket has e's tuple (or one of the same
// fingerprint: one in 2^32 of the new sockets at an address that held
// another counts as the same).
func (m *Model) twIs(t *tw, e *event.Event) bool {
	return m.books.Get(t.books).netns == e.Netns && t.fp == tupleFP(e)
}

// tupleFP is a 32-bit fingerprint of e's two ends.
func tupleFP(e *event.Event) uint32 {
	s, d := e.Src.Addr().As16(), e.Dst.Addr().As16()
	h := uint64(e.Src.Port())<<16 | uint64(e.Dst.Port())
	for _, w := range [...]uint64{
		binary.LittleEndian.Uint64(s[:8]), binary.LittleEndian.Uint64(s[8:]),
		binary.LittleEndian.Uint64(d[:8]), binary.LittleEndian.Uint64(d[8:]),
	} {
		h = (h ^ w) * 0x9e3779b97f4a7c15
		h ^= h >> 29
	}
	return uint32(h ^ h>>32)
}

// closerKeys are the aggregate entries one closing socket counts under, by
// ranking; nil where the socket has no key of that ranking.
type closerKeys [byKinds + 1]*Closer // byCgroup last

// Model is the aggregator. The zero value is not usable; call New.
type Model struct {
	cfg   Config
	first uint64
	now   uint64

	socks     map[uint64]*sock
	freeSocks []*sock             // sockets closed, for reuse
	byTuple   compact.Map[uint64] // ptr of the socket by its tuple's hash (tupleKey.hash)
	recent    recentClosed
	tws       compact.Map[tw]           // open TIME_WAIT sockets by address
	books     compact.Interned[twBooks] // what they are charged to

	c         Counters
	life      Histogram
	reuseAge  Histogram // age of TIME_WAIT sockets taken over by connect() or a SYN
	tail      *recentRing
	aggs      aggregates
	netns     map[uint32]*NetnsStats
	dests     map[destMapKey]*dest
	destByID  []*dest // dests by id - 1
	portRange map[uint32]int
	ephemeral map[uint32]portBounds  // ip_local_port_range by netns, from the settings
	served    map[portKey]*durations // how long the connections a service closed first lasted
	settings  map[uint32]settings.Settings
	kernel    map[uint32]*kernelReading
	openTW    series              // TIME_WAIT sockets open, per second
	wl        map[uint64]*wlEntry // owners' workloads by cgroup id (Config.Workloads)
	wlPending map[uint64]struct{} // ids in wl whose answer may still change
	wlAsked   uint64              // event time the pending ids (and namespaces) were last asked about
	nsWL      map[uint32]*netnsWL // network namespaces' workloads and ownerless TIME_WAIT sockets (Config.Workloads)
	nsPending map[uint32]struct{} // namespaces in nsWL whose answer may still change
}

// closed is what a just-closed socket leaves for its TIME_WAIT socket.
type closed struct {
	keys closerKeys
	role role
}

// New returns an empty model.
func New(cfg Config) *Model {
	cfg = cfg.withDefaults()
	m := &Model{
		cfg:       cfg,
		socks:     make(map[uint64]*sock),
		netns:     make(map[uint32]*NetnsStats),
		dests:     make(map[destMapKey]*dest),
		portRange: make(map[uint32]int),
		ephemeral: make(map[uint32]portBounds),
		served:    make(map[portKey]*durations),
		settings:  make(map[uint32]settings.Settings),
		kernel:    make(map[uint32]*kernelReading),
		wl:        make(map[uint64]*wlEntry),
		wlPending: make(map[uint64]struct{}),
		nsWL:      make(map[uint32]*netnsWL),
		nsPending: make(map[uint32]struct{}),
	}
	m.tail = new(recentRing)
	m.aggs = newAggregates(cfg.MaxKeys)
	return m
}

// Apply folds one event (as the lifecycle.Tracker yields them) into the model.
func (m *Model) Apply(e *event.Event) {
	if m.first == 0 || e.Time < m.first {
		m.first = e.Time
	}
	if e.Time > m.now {
		m.now = e.Time
	}
	m.c.Events++
	m.tail.add(e)
	m.reaskWorkloads()
	switch e.Kind {
	case event.KindState:
		m.state(e)
	case event.KindTWCreate:
		m.twCreate(e)
	case event.KindTWExpire, event.KindTWKill:
		m.twEnd(e)
	case event.KindTWSubstate:
		// the Tracker follows the substate; nothing here depends on it
	case event.KindTWReuse:
		m.c.ReuseConnect++
		// connect() took over a client TIME_WAIT tuple: the port stays
		// held towards the same destination, by the new connection
		m.destOf(destKey{e.Netns, e.Src.Addr(), e.Dst}).reused++
		m.markInferred(e, &m.c.Inferred.Reuse)
		if e.Lifetime >= 0 {
			m.reuseAge.Record(uint64(e.Lifetime))
		}
	case event.KindTWRx:
		if e.RxOutcome() == event.RxSYN {
			m.c.SynTakeoverAttempts++
		}
	case event.KindTWOverflow:
		m.c.Overflow++
		m.ns(e.Netns).Overflow++
		if e.Aux2 > 0 {
			m.ns(e.Netns).MaxBuckets = e.Aux2
		}
		m.markInferred(e, &m.c.Inferred.Overflow)
	case event.KindConnectErr:
		m.c.ConnectAddrNotAvail++
		if p := m.processOf(e); p != nil {
			p.ConnectErrors++
		}
		m.aggs.peer.get(peerOf(e.Dst)).ConnectErrors++
		m.workloadErr(e, func(c *Closer) { c.ConnectErrors++ })
		m.aggs.netns.get(e.Netns).ConnectErrors++
		// the kernel found no free local port towards this destination
		// (its source address is set before the port is picked)
		m.destOf(destKey{e.Netns, e.Src.Addr(), e.Dst}).addrNotAvail()
	case event.KindBindErr:
		m.c.BindAddrInUse++
		if p := m.processOf(e); p != nil {
			p.BindErrors++
		}
		m.workloadErr(e, func(c *Closer) { c.BindErrors++ })
		m.aggs.netns.get(e.Netns).BindErrors++
	}
	m.openTW.set(m.now, int64(m.tws.Len()))
}

// processOf is the process row of an event that ran in its owner's
// context; nil when the event does not say who that is (softirq, pid 0).
func (m *Model) processOf(e *event.Event) *Closer {
	if !e.Owned() || e.Pid == 0 {
		return nil
	}
	return m.aggs.process.get(procKey{e.Pid, e.Comm})
}

// workloadErr counts an error under the cgroup row of an event that ran
// in its owner's context.
func (m *Model) workloadErr(e *event.Event, count func(*Closer)) {
	if !e.Owned() {
		return
	}
	if c := m.cgroupRow(e.Cgroup); c != nil {
		m.workloadOf(e.Cgroup)
		count(c)
	}
}

func (m *Model) markInferred(e *event.Event, flag *bool) {
	if e.Inferred() {
		*flag = true
	}
}

func (m *Model) ns(inode uint32) *NetnsStats {
	n := m.netns[inode]
	if n == nil {
		n = &NetnsStats{Netns: inode}
		m.netns[inode] = n
	}
	return n
}

func (m *Model) state(e *event.Event) {
	s := m.socks[e.Ptr]
	if s == nil {
		if e.NewState == event.Close {
			return // a socket we never saw opening closes: nothing to learn
		}
		if len(m.socks) >= m.cfg.MaxSockets {
			m.c.EvictedSockets++
			return
		}
		s = m.newSock()
		s.netns = e.Netns
		m.socks[e.Ptr] = s
	}
	if e.Src.Port() != 0 && (s.src != e.Src || s.dst != e.Dst) {
		s.src, s.dst = e.Src, e.Dst
		s.indexed, s.keysOK = false, false
	}
	// pid/comm only from events that carry the owner (process context)
	if e.Owned() && e.Pid != 0 {
		if o := (owner{pid: e.Pid, comm: e.Comm, cgroup: e.Cgroup}); o != s.owner {
			s.owner, s.keysOK = o, false
		}
		m.workloadOf(e.Cgroup) // ask early: the answer comes in the background
	}
	r := s.role
	if e.OldState == event.Close && e.NewState == event.SynSent {
		m.c.Connects++ // a connect(): the base of the share that reused a tuple
		r = roleClient
	}
	if e.NewState == event.SynRecv {
		r = roleServer // a child of a listener: its local port is a service
	}
	if r == roleUnknown && s.src.Port() != 0 && s.dst.Port() != 0 {
		// first seen with its connection open (before tracing began, or
		// its first transitions were lost): no history says which end
		// it is, the ports may
		r = m.roleByPorts(s.netns, s.src.Port(), s.dst.Port())
	}
	if r != s.role {
		s.role, s.keysOK = r, false
	}
	if e.NewState == event.Established && s.estab == 0 {
		s.estab = e.Time
	}
	wasHeld := s.held
	m.hold(s, e.NewState)
	if e.Src.Port() != 0 && e.Dst.Port() != 0 && !s.indexed {
		m.index(s, e.Ptr)
	}

	switch {
	case e.OldState == event.Established && e.NewState == event.FinWait1:
		s.side = SideActive
		if s.role == roleServer && s.estab != 0 && e.Time >= s.estab {
			m.servedBy(portKey{s.netns, s.src.Port()}).record(e.Time - s.estab)
		}
	case e.OldState == event.Established && e.NewState == event.CloseWait:
		s.side = SidePassive
	case e.OldState == event.FinWait1 && e.NewState == event.Closing:
		s.side = SideSimultaneous
	case e.NewState == event.Close && s.side == SideNone && wasOpen(e.OldState):
		s.side = SideReset
	case e.NewState == event.Close && e.OldState == event.FinWait1 && s.side == SideActive:
		// an abort while our FIN was unacknowledged: the connection was
		// reset, not closed
		s.side = SideReset
	}
	if e.NewState == event.Close {
		// the TIME_WAIT socket may be reported just after this close
		pending := !s.twTaken && (e.OldState == event.FinWait2 || e.OldState == event.Closing || e.OldState == event.FinWait1)
		var keys closerKeys
		if s.side != SideNone || pending {
			keys = m.closerOf(s) // only then: looking a key up makes its row
		}
		m.countClose(s, &keys, e.Flags&event.FlagRSTRx != 0)
		k := keyOf(s.netns, s.src, s.dst).hash()
		if p := m.byTuple.Ref(k); p != nil && *p == e.Ptr {
			m.byTuple.Del(k)
		}
		if pending {
			m.recent.add(k, m.leftBy(s, keys))
		} else if wasHeld != heldNone && !s.twTaken {
			m.sockDest(s).freed() // closed without TIME_WAIT: its port is free
		}
		delete(m.socks, e.Ptr)
		m.freeSocks = append(m.freeSocks, s)
	}
}

// newSock returns a zero sock, reusing a closed one's memory.
func (m *Model) newSock() *sock {
	if n := len(m.freeSocks); n > 0 {
		s := m.freeSocks[n-1]
		m.freeSocks = m.freeSocks[:n-1]
		*s = sock{}
		return s
	}
	return new(sock)
}

// index maps the socket s at ptr's tuple to it in byTuple.
func (m *Model) index(s *sock, ptr uint64) {
	k := keyOf(s.netns, s.src, s.dst).hash()
	if old := m.byTuple.Ref(k); old != nil && *old != ptr {
		if o := m.socks[*old]; o != nil {
			o.indexed = false // its tuple maps to s now
		}
	}
	m.byTuple.Put(k, ptr)
	s.indexed = true
}

// recentClosed keeps, by tuple, what the sockets that closed while their
// TIME_WAIT socket may still be reported (the exact tiers report it right
// after the CLOSE transition) left for it, for the latest recentMax/2 to
// recentMax such closes. On a host at tcp_max_tw_buckets none of them is
// ever taken. It keeps two generations of maps and drops the older one
// whole when the newer one has taken recentMax/2 closes: deleting the
// oldest entry on every close, from a map that took and lost as many
// keys as it held, over and over, took 15% of the model's time on such a
// host (BenchmarkApplyOverflow).
type recentClosed struct {
	cur, prev compact.Map[closed] // by tupleKey.hash
	n         int                 // closes added to cur
}

const recentMax = 4096

// add keeps c for k, in place of anything kept for k before.
func (r *recentClosed) add(k uint64, c closed) {
	if r.n >= recentMax/2 {
		r.cur, r.prev = r.prev, r.cur
		r.cur.Reset()
		r.n = 0
	}
	r.prev.Del(k)
	r.cur.Put(k, c)
	r.n++
}

// take returns and forgets what is kept for k.
func (r *recentClosed) take(k uint64) (closed, bool) {
	for _, g := range [...]*compact.Map[closed]{&r.cur, &r.prev} {
		if p := g.Ref(k); p != nil {
			c := *p
			g.Del(k)
			return c, true
		}
	}
	return closed{}, false
}

// wasOpen: a socket in this state had a connection to close. A socket in
// SYN_SENT or SYN_RECV had none yet: a connect() that failed (refused,
// timed out, no local port) or a handshake that did not complete is not a
// closed connection.
func wasOpen(st event.State) bool {
	switch st {
	case event.Established, event.FinWait1, event.FinWait2,
		event.CloseWait, event.LastAck, event.Closing:
		return true
	}
	return false
}

// countClose counts a socket's close under its side and its aggregates.
// rstRx says the close came from an RST the socket received.
func (m *Model) countClose(s *sock, keys *closerKeys, rstRx bool) {
	if s.side == SideNone {
		return
	}
	rstRx = rstRx && s.side == SideReset
	m.c.Closes[s.side]++
	m.ns(s.netns).Closes[s.side]++
	if rstRx {
		m.c.ResetReceived++
	}
	for _, c := range keys {
		if c != nil {
			c.Closes[s.side]++
			if rstRx {
				c.ResetReceived++
			}
		}
	}
}

// closerOf returns the aggregate entries a socket counts under: its
// process when an event in its context named it, its service port when it
// is a server-side socket, its peer when it is a client (neither when
// which end it is is not known), its network namespace, and its owner's
// pod, container or service when the owner's cgroup is resolved.
func (m *Model) closerOf(s *sock) closerKeys {
	if s.keysOK {
		// the same as looking them up again: rows are never dropped,
		// and a key folded into "other" stays folded
		return s.keys
	}
	var out closerKeys
	if s.owner.pid != 0 {
		out[ByProcess] = m.aggs.process.get(procKey{s.owner.pid, s.owner.comm})
	}
	switch s.role {
	case roleServer:
		out[ByPort] = m.aggs.port.get(portKey{s.netns, s.src.Port()})
	case roleClient:
		if s.dst.IsValid() {
			out[ByPeer] = m.aggs.peer.get(peerOf(s.dst))
		}
	}
	out[ByNetns] = m.aggs.netns.get(s.netns)
	out[byCgroup] = m.cgroupRow(s.owner.cgroup)
	s.keys, s.keysOK = out, true
	return out
}

// closerFor returns the aggregates of the socket whose close created a
// TIME_WAIT socket with this tuple: still live (tracepoint tier: the timer
// is armed before the CLOSE transition) or just closed (exact tiers).
func (m *Model) closerFor(k uint64) (closed, bool) {
	if ptr := m.byTuple.Ref(k); ptr != nil {
		if s := m.socks[*ptr]; s != nil && !s.twTaken {
			s.twTaken = true
			return m.leftBy(s, m.closerOf(s)), true
		}
	}
	return m.recent.take(k)
}

// leftBy is what a closing socket passes on to its TIME_WAIT socket.
func (m *Model) leftBy(s *sock, keys closerKeys) closed {
	return closed{keys: keys, role: s.role}
}

func (m *Model) twCreate(e *event.Event) {
	if t := m.tws.Ref(e.Ptr); t != nil {
		if m.twIs(t, e) {
			return // the same socket, reported again
		}
		// A new socket at the address of one still open here: the kernel
		// freed and reused the memory, so the old one ended without an
		// end we saw. Close its books before opening the new one's.
		m.c.Ended[endUnknown]++
		m.c.EndedUnseen++
		m.c.Inferred.Ended = true
		m.release(e.Ptr, *t)
	}
	existing := e.Flags&event.FlagExisting != 0
	if !existing {
		m.c.Created++
		m.ns(e.Netns).Created++
		if e.NewState == event.FinWait2 {
			m.c.CreatedFinWait2++
		}
	} else {
		m.c.Existing++
	}
	if m.tws.Len() >= m.cfg.MaxTimewait {
		m.c.EvictedTimewait++
		return
	}
	b := twBooks{netns: e.Netns}
	r := roleUnknown
	if left, ok := m.closerFor(keyOf(e.Netns, e.Src, e.Dst).hash()); ok {
		r = left.role
		b.closer = left.keys
		for _, c := range b.closer {
			if c != nil {
				c.TimewaitCreated++
				c.TimewaitOpen++
			}
		}
	}
	if r == roleUnknown && e.Src.Port() != 0 && e.Dst.Port() != 0 {
		// no closing socket says which end it is (it existed before
		// tracing, the scan found it, or its socket was not tracked)
		r = m.roleByPorts(e.Netns, e.Src.Port(), e.Dst.Port())
	}
	t := tw{fp: tupleFP(e)}
	if r == roleClient && e.Src.Addr().IsValid() && e.Src.Port() != 0 && e.Dst.IsValid() {
		// the client's TIME_WAIT socket keeps its local port towards the
		// destination until it ends
		b.client = 1
		d := m.destOf(destKey{e.Netns, e.Src.Addr(), e.Dst})
		t.dest = d.id
		d.change(heldTimewait, 1, m.now)
		if !existing {
			d.timewaitCreated(m.now)
		}
	}
	m.ownerless(&b, 1)
	t.books = m.books.Ref(b)
	m.tws.Put(e.Ptr, t)
	m.ns(e.Netns).Open++
}

func (m *Model) twEnd(e *event.Event) {
	cause := e.Cause
	if e.Kind == event.KindTWExpire {
		cause = event.CauseExpired
	}
	m.c.Ended[endBucket(cause)]++
	if e.Inferred() {
		m.c.Inferred.Ended = true
	}
	if cause == event.CauseSYN {
		m.c.ReuseSyn++
		if e.Lifetime >= 0 {
			m.reuseAge.Record(uint64(e.Lifetime))
		}
	}
	if e.Lifetime >= 0 {
		m.life.Record(uint64(e.Lifetime))
	}
	t := m.tws.Ref(e.Ptr)
	if t == nil {
		m.c.EndedUntracked++ // created before tracing and never scanned, or evicted
		return
	}
	m.release(e.Ptr, *t)
}

// release forgets an open TIME_WAIT socket and takes it off the gauges it
// was counted in.
func (m *Model) release(ptr uint64, t tw) {
	m.tws.Del(ptr)
	b := m.books.Get(t.books)
	m.ns(b.netns).Open--
	if b.client != 0 {
		d := m.destByID[t.dest-1]
		if d.other {
			m.c.FoldedDestinations++
		}
		d.change(heldTimewait, -1, m.now)
		d.freed()
	}
	for _, c := range b.closer {
		if c != nil {
			c.TimewaitOpen--
		}
	}
	m.ownerless(b, -1)
	m.books.Unref(t.books)
}

// End buckets of the report (timewait.ended).
const (
	endExpired = iota
	endReused
	endSyn
	endRST
	endPurged
	endUnknown
	endBuckets
)

func endBucket(c event.Cause) int {
	switch c {
	case event.CauseExpired:
		return endExpired
	case event.CauseConnectReuse:
		return endReused
	case event.CauseSYN:
		return endSyn
	case event.CauseRSTReceived, event.CauseRSTSent:
		return endRST
	case event.CausePurge:
		return endPurged
	}
	return endUnknown
}
