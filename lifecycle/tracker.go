package lifecycle

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/twtop/twtop/tracer/event"
)

// Timing of the tracepoint tier's inferences, in event time (nanoseconds).
const (
	// a timer cancel not followed at once by a re-arm on the same CPU is a
	// kill; after this much stream time it certainly was not a re-arm
	rearmWindow = 1_000_000
	// a kill of unknown cause followed by a new connection on the same
	// tuple within this window was a SYN takeover
	synWindow = 1_000_000_000
	// open timewait sockets tracked at most; more are counted, not tracked
	maxTracked = 1 << 21
)

// Tracker turns the raw record stream into the events twtop reports, the
// same way live and on replay. Its clock is the records' timestamps only.
//
//   - It follows every timewait socket from creation to end and puts its
//     lifetime on the end event (Lifetime) and its age on reuse (Lifetime).
//   - On the tracepoint tier it turns timer records into creations and ends:
//     an arm of an unknown timewait socket is a creation; a cancel followed
//     at once by an arm of the same timer on the same CPU is a re-arm (the
//     kernel's mod_timer), one followed at once by its expiry is the timer
//     wheel detaching the timer it is about to run, any other cancel is an
//     early kill, and a kill of
//     unknown cause followed by a new connection on the tuple is a SYN
//     takeover (inferred).
//   - It reconciles with the periodic scan: timewait sockets found by the
//     first scan existed before tracing (FlagExisting); later, one the scan
//     shows but no record created, or one the scan no longer shows but no
//     record ended, is created or ended with FlagReconciled, one scan late
//     so that records racing the scan have arrived.
//   - It matches the records of a scan through sock_diag, which carry
//     synthetic ptrs (IsSyntheticPtr), to the kernel's records by tuple:
//     see resolve.
type Tracker struct {
	hz   uint32
	now  uint64
	open map[uint64]*twState

	cancels  map[uint16]*event.Event            // tracepoint tier: cancel awaiting a possible re-arm, per CPU
	synWait  []*event.Event                     // kills of unknown cause awaiting a SYN takeover
	scanSeen map[uint32]map[uint64]*event.Event // per netns: the scan in progress
	scanned  map[uint32]bool                    // netns scanned at least once
	prev     map[uint32]*scanResult             // per netns: the last complete scan, to settle one scan late
	owners   map[uint64]ownerInfo               // sockets' owners by address (owners.go)
	diag     *diagIndex                         // nil until a record with a synthetic ptr came

	// Untracked counts timewait sockets not tracked for lack of room.
	Untracked uint64
}

type twState struct {
	created  uint64      // 0 when unknown
	ev       event.Event // the creation record (tuple, netns, substate)
	existing bool
}

type scanResult struct {
	time    uint64
	start   uint64         // when the scan began
	missing []uint64       // open but absent from the scan
	unknown []*event.Event // present in the scan but not open
}

// NewTracker returns a Tracker for a kernel with the given HZ.
func NewTracker(hz uint32) *Tracker {
	return &Tracker{
		hz:       hz,
		open:     make(map[uint64]*twState),
		cancels:  make(map[uint16]*event.Event),
		scanSeen: make(map[uint32]map[uint64]*event.Event),
		scanned:  make(map[uint32]bool),
		prev:     make(map[uint32]*scanResult),
		owners:   make(map[uint64]ownerInfo),
	}
}

// Open is the number of timewait sockets tracked as open now.
func (t *Tracker) Open() int { return len(t.open) }

// Add feeds one decoded record and calls emit for every event it yields
// (zero or more; the *Event is valid only during the call).
func (t *Tracker) Add(e *event.Event, emit func(*event.Event)) {
	if t.diag == nil && e.Kind == event.KindScanTW && event.IsSyntheticPtr(e.Ptr) {
		t.startDiag()
	}
	if t.diag != nil {
		e = t.resolve(e)
	}
	if e.Time > t.now {
		t.now = e.Time
	}
	t.settleCancels(e, emit)
	t.settleSyn(e, emit)

	switch e.Kind {
	case event.KindTWCreate:
		t.create(e, emit)
	case event.KindTWArm:
		c := t.cancels[e.CPU]
		if c != nil && c.Ptr == e.Ptr && e.Seq == c.Seq+1 {
			delete(t.cancels, e.CPU) // mod_timer: a re-arm, not an end
			t.substate(e, emit)
			return
		}
		if st, ok := t.open[e.Ptr]; ok {
			if st.existing && st.created == 0 && e.Time < st.ev.Time {
				// armed before the first scan saw it, but read after that
				// scan (the reader was behind): the arm is its birth, as
				// in create
				st.created = e.Time
			}
			t.substate(e, emit) // re-armed without a visible cancel
			return
		}
		out := *e
		out.Kind = event.KindTWCreate
		t.create(&out, emit)
	case event.KindTWCancel:
		c := *e
		t.cancels[e.CPU] = &c
	case event.KindTWExpire:
		if c := t.cancels[e.CPU]; c != nil && c.Ptr == e.Ptr && e.Seq == c.Seq+1 {
			delete(t.cancels, e.CPU) // the timer wheel detaches a timer before running it
		}
		out := *e
		out.Cause = event.CauseExpired
		t.end(&out, emit)
	case event.KindTWKill:
		t.end(e, emit)
	case event.KindTWReuse:
		out := *e
		out.Lifetime = t.age(e.Ptr, e.Time)
		emit(&out)
	case event.KindScanTW:
		seen := t.scanSeen[e.Netns]
		if seen == nil {
			seen = make(map[uint64]*event.Event)
			t.scanSeen[e.Netns] = seen
		}
		c := *e
		seen[e.Ptr] = &c
		// A substate change no other record showed (on the tracepoint
		// tier, a peer's FIN within the same jiffy re-arms the timer to
		// the same expiry, which traces nothing) shows up here.
		t.substate(e, emit)
	case event.KindScanEnd:
		t.scanEnd(e, emit)
	case event.KindTWRx:
		emit(e)
		t.substate(e, emit)
	case event.KindState:
		t.fillOwner(e)
		t.matchSyn(e, emit)
		emit(e)
	default:
		emit(e)
	}
}

// Flush settles everything still pending at the end of the stream.
func (t *Tracker) Flush(emit func(*event.Event)) {
	for _, cpu := range sortedCPUs(t.cancels) {
		c := t.cancels[cpu]
		delete(t.cancels, cpu)
		t.kill(c, emit)
	}
	for _, k := range t.synWait {
		t.end(k, emit)
	}
	t.synWait = nil
}

func (t *Tracker) create(e *event.Event, emit func(*event.Event)) {
	if st, ok := t.open[e.Ptr]; ok && st.ev.Src == e.Src && st.ev.Dst == e.Dst && st.ev.Netns == e.Netns {
		if st.existing && e.Flags&event.FlagExisting == 0 && st.created == 0 {
			st.created = e.Time // the scan saw it first; now we know its birth
		}
		return
	}
	if len(t.open) >= maxTracked {
		t.Untracked++
		emit(e)
		return
	}
	st := &twState{ev: *e, existing: e.Flags&event.FlagExisting != 0}
	if !st.existing {
		st.created = e.Time
	}
	if t.diag != nil {
		if old, ok := t.open[e.Ptr]; ok {
			t.diag.forget(e.Ptr, old)
		}
		t.diag.add(e.Ptr, st)
	}
	t.open[e.Ptr] = st
	emit(e)
}

// substate notes the substate a timewait socket shows now (in a timer,
// reception or scan record); a change (the peer's FIN reached a
// FIN_WAIT2-substate socket) yields KindTWSubstate.
func (t *Tracker) substate(e *event.Event, emit func(*event.Event)) {
	st, ok := t.open[e.Ptr]
	if !ok || e.NewState == 0 || st.ev.NewState == e.NewState {
		return
	}
	st.ev.NewState = e.NewState
	out := *e
	out.Kind = event.KindTWSubstate
	out.Lifetime = t.age(e.Ptr, e.Time)
	switch e.Kind {
	case event.KindTWRx:
		out.Aux = 0 // the timer is not in a reception record
	case event.KindScanTW:
		out.Flags |= event.FlagReconciled // seen by the scan, up to a scan period late
	}
	emit(&out)
}

// end emits an end event (expire or kill) with the lifetime when known.
func (t *Tracker) end(e *event.Event, emit func(*event.Event)) {
	out := *e
	out.Lifetime = t.age(e.Ptr, e.Time)
	if st, ok := t.open[e.Ptr]; ok {
		if out.Family == 0 {
			out.Family, out.Src, out.Dst, out.Netns = st.ev.Family, st.ev.Src, st.ev.Dst, st.ev.Netns
		}
		if t.diag != nil {
			t.diag.forget(e.Ptr, st)
		}
		delete(t.open, e.Ptr)
	}
	emit(&out)
}

// age is how long the timewait socket at ptr has existed, -1 when unknown.
func (t *Tracker) age(ptr, now uint64) int64 {
	st, ok := t.open[ptr]
	if !ok || st.created == 0 || now < st.created {
		return -1
	}
	return int64(now - st.created)
}

// settleCancels turns pending cancels into kills once they can no longer be
// re-arms: another record from their CPU, or enough stream time, came by.
func (t *Tracker) settleCancels(e *event.Event, emit func(*event.Event)) {
	for _, cpu := range sortedCPUs(t.cancels) {
		c := t.cancels[cpu]
		follows := (e.Kind == event.KindTWArm || e.Kind == event.KindTWExpire) && e.Ptr == c.Ptr && e.Seq == c.Seq+1
		sameCPUNext := cpu == e.CPU && e.Seq != c.Seq && !follows
		if sameCPUNext || t.now > c.Time+rearmWindow {
			delete(t.cancels, cpu)
			t.kill(c, emit)
		}
	}
}

func (t *Tracker) kill(c *event.Event, emit func(*event.Event)) {
	k := *c
	k.Kind = event.KindTWKill
	if k.Cause == event.CauseConnectReuse && k.Flags&event.FlagInConnect != 0 {
		// tracepoint tier: no tcp_twsk_unique hook, so the reuse itself is
		// known from the kill inside connect()
		r := k
		r.Kind = event.KindTWReuse
		r.Lifetime = t.age(k.Ptr, k.Time)
		emit(&r)
	}
	if k.Cause == event.CauseUnknown {
		// maybe a SYN takeover: wait for a new connection on the tuple
		t.synWait = append(t.synWait, &k)
		return
	}
	t.end(&k, emit)
}

func (t *Tracker) settleSyn(e *event.Event, emit func(*event.Event)) {
	n := 0
	for _, k := range t.synWait {
		if t.now > k.Time+synWindow {
			t.end(k, emit)
			continue
		}
		t.synWait[n] = k
		n++
	}
	clear(t.synWait[n:])
	t.synWait = t.synWait[:n]
}

// matchSyn: a server socket born on the tuple of a timewait socket killed
// just before took it over with its SYN.
//
// The new socket's tuple is read at its SYN_RECV, or where that record does
// not carry the peer yet (5.10 traces the child socket's SYN_RECV before
// its addresses are set), at its move to ESTABLISHED.
func (t *Tracker) matchSyn(e *event.Event, emit func(*event.Event)) {
	if (e.NewState != event.SynRecv && e.OldState != event.SynRecv) || len(t.synWait) == 0 {
		return
	}
	for i, k := range t.synWait {
		if k.Netns == e.Netns && k.Src == e.Src && k.Dst == e.Dst {
			k.Cause = event.CauseSYN
			t.synWait = append(t.synWait[:i], t.synWait[i+1:]...)
			t.end(k, emit)
			return
		}
	}
}

// awaitingSyn reports whether the timewait socket at ptr was killed and
// waits in synWait for a SYN takeover to settle its cause.
func (t *Tracker) awaitingSyn(ptr uint64) bool {
	for _, k := range t.synWait {
		if k.Ptr == ptr {
			return true
		}
	}
	return false
}

// scanEnd settles the previous scan of this netns and records this one.
func (t *Tracker) scanEnd(e *event.Event, emit func(*event.Event)) {
	ns := e.Netns
	seen := t.scanSeen[ns]
	delete(t.scanSeen, ns)

	if !t.scanned[ns] {
		// first scan: what it shows existed before tracing started
		t.scanned[ns] = true
		for _, s := range sortedByPtr(seen) {
			if _, ok := t.open[s.Ptr]; ok {
				continue
			}
			c := *s
			c.Kind = event.KindTWCreate
			c.Flags |= event.FlagExisting
			t.create(&c, emit)
		}
		t.prev[ns] = &scanResult{time: e.Time, start: e.ScanStart()}
		emit(e)
		return
	}

	if p := t.prev[ns]; p != nil {
		for _, ptr := range p.missing {
			if t.awaitingSyn(ptr) {
				continue // its kill is known; its cause is being settled
			}
			// gone from two scans in a row (a walk of a changing table
			// skips a socket now and then), and the socket open at ptr
			// now is the one the scan missed, not one created since at
			// its address
			if _, back := seen[ptr]; back {
				continue
			}
			if st, ok := t.open[ptr]; ok && st.created <= p.start {
				end := st.ev
				end.Kind = event.KindTWKill
				end.Cause = event.CauseVanished
				end.Time = p.time
				end.Flags = event.FlagInferred | event.FlagReconciled
				end.Pid, end.Tid, end.Cgroup, end.Comm = 0, 0, 0, [16]byte{}
				t.end(&end, emit)
			}
		}
		for _, u := range p.unknown {
			if _, ok := t.open[u.Ptr]; ok {
				continue
			}
			if _, still := seen[u.Ptr]; !still {
				continue // gone again; nothing certain to say
			}
			c := *u
			c.Kind = event.KindTWCreate
			c.Time = p.time
			c.Flags |= event.FlagInferred | event.FlagReconciled
			t.create(&c, emit)
		}
	}

	// a socket created after the scan began may sit in a part of the
	// table the walk had passed: only older ones are missing
	r := &scanResult{time: e.Time, start: e.ScanStart()}
	for ptr, st := range t.open {
		if st.ev.Netns != ns || st.created > r.start {
			continue
		}
		if _, ok := seen[ptr]; !ok {
			r.missing = append(r.missing, ptr)
		}
	}
	sortU64(r.missing)
	for _, s := range sortedByPtr(seen) {
		if _, ok := t.open[s.Ptr]; !ok {
			r.unknown = append(r.unknown, s)
		}
	}
	t.prev[ns] = r
	emit(e)
}

// tupleKey identifies a connection in a network namespace; the family is
// implied by the addresses.
type tupleKey struct {
	netns    uint32
	src, dst netip.AddrPort
}

func keyOf(e *event.Event) tupleKey { return tupleKey{e.Netns, e.Src, e.Dst} }

// diagIndex matches synthetic-ptr scan records and kernel records by tuple.
// The Tracker builds it at the first synthetic ptr and keeps it in step
// with open from then on; a stream of kernel addresses only never has one.
//
// A timewait socket keeps the ptr it was created under, so that every event
// about it carries the same Ptr: one the scan found first stays under its
// synthetic ptr, and the kernel's records about it are translated to that
// (alias).
type diagIndex struct {
	real  map[tupleKey]uint64 // open sockets keyed by kernel address, by tuple
	synth map[tupleKey]uint64 // open sockets keyed by synthetic ptr, by tuple
	alias map[uint64]uint64   // kernel address -> the synthetic ptr it is open under
	back  map[uint64]uint64   // the reverse of alias
	ev    event.Event         // a record with its ptr rewritten, valid during Add
}

// startDiag builds the index from the open sockets, in creation order so
// that a tuple held twice (an end that no record showed) maps to the newer.
func (t *Tracker) startDiag() {
	d := &diagIndex{
		real:  make(map[tupleKey]uint64),
		synth: make(map[tupleKey]uint64),
		alias: make(map[uint64]uint64),
		back:  make(map[uint64]uint64),
	}
	ptrs := make([]uint64, 0, len(t.open))
	for p := range t.open {
		ptrs = append(ptrs, p)
	}
	slices.SortFunc(ptrs, func(a, b uint64) int {
		return cmp.Or(cmp.Compare(t.open[a].ev.Time, t.open[b].ev.Time), cmp.Compare(a, b))
	})
	for _, p := range ptrs {
		d.add(p, t.open[p])
	}
	t.diag = d
}

// add indexes the socket opened under ptr.
func (d *diagIndex) add(ptr uint64, st *twState) {
	if event.IsSyntheticPtr(ptr) {
		d.synth[keyOf(&st.ev)] = ptr
	} else {
		d.real[keyOf(&st.ev)] = ptr
	}
}

// forget drops the socket open under ptr from the index.
func (d *diagIndex) forget(ptr uint64, st *twState) {
	m := d.real
	if event.IsSyntheticPtr(ptr) {
		m = d.synth
		if a, ok := d.back[ptr]; ok {
			delete(d.alias, a)
			delete(d.back, ptr)
		}
	}
	if k := keyOf(&st.ev); m[k] == ptr {
		delete(m, k)
	}
}

// with is e under ptr.
func (d *diagIndex) with(e *event.Event, ptr uint64) *event.Event {
	d.ev = *e
	d.ev.Ptr = ptr
	return &d.ev
}

// resolve puts e under the ptr its timewait socket is open under:
//
//   - a scan record with a synthetic ptr whose tuple is open under a kernel
//     address is that socket's; with none, the synthetic ptr stands (the
//     first scan: a socket from before tracing; later: reconciled);
//   - a kernel record whose address is not open, while a socket with its
//     tuple is open under a synthetic ptr, is about that socket (found by
//     the scan before any record showed it): the address becomes an alias
//     of the synthetic ptr until the socket ends, so that it ends once,
//     by this record or a later one, and not also as vanished.
func (t *Tracker) resolve(e *event.Event) *event.Event {
	d := t.diag
	switch e.Kind {
	case event.KindScanTW:
		if !event.IsSyntheticPtr(e.Ptr) {
			return e
		}
		if _, ok := t.open[e.Ptr]; ok {
			return e
		}
		if p, ok := d.real[keyOf(e)]; ok {
			return d.with(e, p)
		}
	case event.KindTWCreate, event.KindTWArm, event.KindTWCancel, event.KindTWExpire, event.KindTWKill, event.KindTWRx, event.KindTWReuse:
		if event.IsSyntheticPtr(e.Ptr) {
			return e
		}
		if s, ok := d.alias[e.Ptr]; ok {
			if st := t.open[s]; st != nil && keyOf(&st.ev) == keyOf(e) {
				return d.with(e, s)
			}
			// the address holds another socket now
			delete(d.alias, e.Ptr)
			delete(d.back, s)
		}
		if _, ok := t.open[e.Ptr]; ok {
			return e
		}
		if s, ok := d.synth[keyOf(e)]; ok {
			if old, ok := d.back[s]; ok {
				delete(d.alias, old) // the socket's record came from another address
			}
			d.alias[e.Ptr] = s
			d.back[s] = e.Ptr
			return d.with(e, s)
		}
	}
	return e
}
