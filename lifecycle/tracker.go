package lifecycle

import (
	"cmp"
	"github.com/twtop/twtop/internal/compact"
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
	open compact.Map[twState] // open timewait sockets by ptr
	// births of open timewait sockets that existed before tracing,
	// learnt later (the others' birth is their creation record's time)
	births compact.Map[uint64]
	addrs  compact.Addrs // their IPv6 addresses

	cancels  []event.Event          // tracepoint tier: cancels awaiting a possible re-arm, one per CPU, by CPU
	synWait  []event.Event          // kills of unknown cause awaiting a SYN takeover, closed already
	scanSeen map[uint32]*scanBuf    // per netns: the scan in progress
	scanned  map[uint32]bool        // netns scanned at least once
	marks    map[uint32]uint16      // per netns: the mark its last scan left (scanBuf.mark)
	prev     map[uint32]*scanResult // per netns: the last complete scan, to settle one scan late
	owners   map[uint64]ownerInfo   // sockets' owners by address (owners.go)
	diag     *diagIndex             // nil until a record with a synthetic ptr came
	scanRoom int                    // records the buffers in scanSeen have room for

	// scratch events: what the Tracker emits is built here, not on the
	// heap (emit may keep none of them past the call)
	evIn, evEnd, evKill, evReuse, evSub, evScan event.Event

	// Untracked counts timewait sockets not tracked for lack of room.
	Untracked uint64
}

// twState is what the Tracker knows of an open timewait socket: its tuple,
// its substate, and the fields of the record that created it that its birth
// and an end inferred from the scan need. It holds no pointer.
type twState struct {
	born     uint64 // time of the record that created it (the scan's for one that existed)
	netns    uint32
	src, dst uint32 // addresses, of the kinds in kinds (compact.Addrs)
	sport    uint16
	dport    uint16
	oldState event.State // the creation record's
	substate event.State
	family   uint8
	kinds    uint8 // the source address's kind, the destination's << 2
	existing bool
	scanMark uint16 // the mark of the last scan of its netns that showed it open (scanBuf.mark)
}

type scanResult struct {
	time    uint64
	start   uint64        // when the scan began
	missing []uint64      // open but absent from the scan
	unknown []event.Event // present in the scan but not open, by ptr
}

// scanBuf holds what a scan in progress showed (addScan): the ptrs and
// records of the sockets that were not open; the open ones it showed carry
// its mark.
type scanBuf struct {
	mark  uint16 // left on the open sockets the scan shows (twState.scanMark); 0 until its first record
	recs  []event.Event
	at    compact.Map[int32]  // by ptr of a socket not open when shown: its last record in recs, or openWhenScanned once created
	synth map[tupleKey]uint64 // sock_diag scans: the synthetic ptr of each record kept, by tuple
	refs  []scanRef           // scratch for scanEnd
}

type scanRef struct {
	ptr uint64
	pos int32 // in recs
}

// scanBufKeep is how many records the scan buffers of all netns may have
// room for: past that, a buffer is dropped once its scan ended, not kept
// for the next one.
const scanBufKeep = 8192

// Only the records of sockets not open are kept: the scan's records come
// between the records before it and its end record, so a socket open when
// its record comes is open at the end (or ended by a record since, which
// the scan has nothing to add to). A socket open when shown only takes the
// scan's mark, so a full table's scan keeps neither a copy of 262,144
// records nor a table of their ptrs.
func (t *Tracker) addScan(b *scanBuf, e *event.Event) {
	if st := t.open.Ref(e.Ptr); st != nil {
		st.scanMark = b.mark
		return
	}
	b.at.Put(e.Ptr, int32(len(b.recs)))
	if event.IsSyntheticPtr(e.Ptr) {
		if b.synth == nil {
			b.synth = make(map[tupleKey]uint64)
		}
		b.synth[keyOf(e)] = e.Ptr
	}
	room := cap(b.recs)
	b.recs = append(b.recs, *e)
	t.scanRoom += cap(b.recs) - room
}

// openWhenScanned is the position in a scan's records of a socket that the
// scan showed before a record created it: its record is not kept.
const openWhenScanned = -1

// shown reports whether the scan b showed the socket at ptr, given st,
// the state of the socket open at ptr (nil: none): open, or not open when
// shown.
func shown(b *scanBuf, ptr uint64, st *twState) bool {
	if b == nil || b.mark == 0 {
		return false // no buffer, or one kept from an earlier scan: this one showed nothing
	}
	if st != nil && st.scanMark == b.mark {
		return true
	}
	return b.at.Has(ptr)
}

// scanBuf returns the buffer of the scan of ns in progress, starting one
// with a new mark.
func (t *Tracker) scanBuf(ns uint32) *scanBuf {
	b := t.scanSeen[ns]
	if b == nil {
		b = &scanBuf{}
		t.scanSeen[ns] = b
	}
	if b.mark == 0 {
		m := t.marks[ns] + 1
		if m == 0 {
			m = 1 // after 65,535 scans of ns; 0 is a new socket's mark
		}
		t.marks[ns] = m
		b.mark = m
	}
	return b
}

// created notes that a record created the timewait socket of e while the
// scan was being read: the records the ring buffer got while a scan ran
// come before its end record, so one the scan showed may be created (and
// even ended) by a record after its scan record. The scan has nothing to
// add about it.
func (b *scanBuf) created(e *event.Event) {
	if pos := b.at.Ref(e.Ptr); pos != nil {
		*pos = openWhenScanned
	}
	if p, ok := b.synth[keyOf(e)]; ok {
		if pos := b.at.Ref(p); pos != nil {
			*pos = openWhenScanned
		}
	}
}

// notOpen is the last record of each ptr the scan showed that is not open,
// by ptr.
func (t *Tracker) notOpen(b *scanBuf) []scanRef {
	if b == nil {
		return nil
	}
	b.refs = b.refs[:0]
	for i, ptr := range b.at.Keys() {
		if pos := *b.at.At(i); pos != openWhenScanned && !t.open.Has(ptr) {
			b.refs = append(b.refs, scanRef{ptr, pos})
		}
	}
	slices.SortFunc(b.refs, func(x, y scanRef) int { return cmp.Compare(x.ptr, y.ptr) })
	return b.refs
}

// NewTracker returns a Tracker for a kernel with the given HZ.
func NewTracker(hz uint32) *Tracker {
	return &Tracker{
		hz:       hz,
		scanSeen: make(map[uint32]*scanBuf),
		scanned:  make(map[uint32]bool),
		marks:    make(map[uint32]uint16),
		prev:     make(map[uint32]*scanResult),
		owners:   make(map[uint64]ownerInfo),
	}
}

// Open is the number of timewait sockets tracked as open now.
func (t *Tracker) Open() int { return t.open.Len() }

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
	if len(t.cancels) > 0 {
		t.settleCancels(e, emit)
	}
	if len(t.synWait) > 0 {
		t.settleSyn(emit)
	}

	switch e.Kind {
	case event.KindTWCreate:
		t.create(e, emit)
	case event.KindTWArm:
		if i := t.cancelFollowedBy(e); i >= 0 {
			t.dropCancel(i) // mod_timer: a re-arm, not an end
			t.substate(e, emit)
			return
		}
		t.killCancelled(e.Ptr, emit)
		// an arm at the address of an open socket of another tuple is a
		// new socket's, whose creation replaces the old one (create)
		if st := t.open.Ref(e.Ptr); st != nil && t.sameTuple(st, e) {
			if st.existing && t.created(e.Ptr, st) == 0 && e.Time < st.born {
				// armed before the first scan saw it, but read after that
				// scan (the reader was behind): the arm is its birth, as
				// in create
				t.births.Put(e.Ptr, e.Time)
			}
			t.substate(e, emit) // re-armed without a visible cancel
			return
		}
		t.evIn = *e
		t.evIn.Kind = event.KindTWCreate
		t.create(&t.evIn, emit)
	case event.KindTWCancel:
		t.setCancel(e)
	case event.KindTWExpire:
		if i := t.cancelFollowedBy(e); i >= 0 {
			t.dropCancel(i) // the timer wheel detaches a timer before running it
		}
		t.evIn = *e
		t.evIn.Cause = event.CauseExpired
		t.end(&t.evIn, emit)
	case event.KindTWKill:
		t.end(e, emit)
	case event.KindTWReuse:
		t.evIn = *e
		t.evIn.Lifetime = t.age(e.Ptr, e.Time)
		emit(&t.evIn)
	case event.KindScanTW:
		t.addScan(t.scanBuf(e.Netns), e)
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

// cancelOn is the position in cancels of the cancel pending on cpu, or -1.
func (t *Tracker) cancelOn(cpu uint16) int {
	for i := range t.cancels {
		if t.cancels[i].CPU == cpu {
			return i
		}
	}
	return -1
}

// follows reports whether e is the next record of c's CPU and of the same
// timer: the re-arm or expiry that makes the cancel c no end.
func follows(e, c *event.Event) bool { return e.Ptr == c.Ptr && e.Seq == c.Seq+1 }

// cancelFollowedBy is the index of the cancel pending on e's CPU when e
// follows it, -1 when none does.
func (t *Tracker) cancelFollowedBy(e *event.Event) int {
	if i := t.cancelOn(e.CPU); i >= 0 && follows(e, &t.cancels[i]) {
		return i
	}
	return -1
}

// setCancel makes e the cancel pending on its CPU, keeping cancels sorted
// by CPU.
func (t *Tracker) setCancel(e *event.Event) {
	if i := t.cancelOn(e.CPU); i >= 0 {
		t.cancels[i] = *e
		return
	}
	i := 0
	for i < len(t.cancels) && t.cancels[i].CPU < e.CPU {
		i++
	}
	t.cancels = slices.Insert(t.cancels, i, *e)
}

func (t *Tracker) dropCancel(i int) { t.cancels = slices.Delete(t.cancels, i, i+1) }

// Flush settles everything still pending at the end of the stream.
func (t *Tracker) Flush(emit func(*event.Event)) {
	for len(t.cancels) > 0 {
		t.evKill = t.cancels[0]
		t.dropCancel(0)
		t.kill(&t.evKill, emit)
	}
	for i := range t.synWait {
		emit(&t.synWait[i])
	}
	t.synWait = t.synWait[:0]
}

func (t *Tracker) create(e *event.Event, emit func(*event.Event)) {
	if e.Flags&(event.FlagExisting|event.FlagReconciled) == 0 {
		if b := t.scanSeen[e.Netns]; b != nil {
			b.created(e)
		}
	}
	if st := t.open.Ref(e.Ptr); st != nil && t.sameTuple(st, e) {
		if st.existing && e.Flags&event.FlagExisting == 0 && t.created(e.Ptr, st) == 0 {
			t.births.Put(e.Ptr, e.Time) // the scan saw it first; now we know its birth
		}
		return
	}
	if t.open.Len() >= maxTracked {
		t.Untracked++
		emit(e)
		return
	}
	st := t.newState(e)
	if old := t.open.Ref(e.Ptr); old != nil {
		if t.diag != nil {
			t.diag.forget(e.Ptr, t.keyOfState(old))
		}
		t.forgetState(e.Ptr, old)
	}
	if t.diag != nil {
		t.diag.add(e.Ptr, t.keyOfState(&st))
	}
	t.open.Put(e.Ptr, st)
	emit(e)
}

// substate notes the substate a timewait socket shows now (in a timer,
// reception or scan record); a change (the peer's FIN reached a
// FIN_WAIT2-substate socket) yields KindTWSubstate.
func (t *Tracker) substate(e *event.Event, emit func(*event.Event)) {
	if e.NewState == 0 {
		return
	}
	st := t.open.Ref(e.Ptr)
	if st == nil || st.substate == e.NewState {
		return
	}
	st.substate = e.NewState
	out := &t.evSub
	*out = *e
	out.Kind = event.KindTWSubstate
	out.Lifetime = t.ageOf(e.Ptr, st, e.Time)
	switch e.Kind {
	case event.KindTWRx:
		out.Aux = 0 // the timer is not in a reception record
	case event.KindScanTW:
		out.Flags |= event.FlagReconciled // seen by the scan, up to a scan period late
	}
	emit(out)
}

// end emits an end event (expire or kill) with the lifetime when known.
func (t *Tracker) end(e *event.Event, emit func(*event.Event)) {
	out := &t.evEnd
	*out = *e
	if t.close(out) {
		emit(out)
	}
}

// close ends the timewait socket that the end e is about: it puts the
// socket's lifetime on e (-1 when unknown) and its tuple where e has none,
// and forgets it. It reports false, and leaves all as it was, when e comes
// too late (replaced).
func (t *Tracker) close(e *event.Event) bool {
	e.Lifetime = -1
	st := t.open.Ref(e.Ptr)
	if st == nil {
		return true
	}
	if t.replacedBy(st, e) {
		return false
	}
	e.Lifetime = t.ageOf(e.Ptr, st, e.Time)
	if e.Family == 0 {
		t.fillTuple(st, e)
	}
	if t.diag != nil {
		t.diag.forget(e.Ptr, t.keyOfState(st))
	}
	t.forgetState(e.Ptr, st)
	t.open.Del(e.Ptr)
	return true
}

// replaced reports whether the end e is of a timewait socket whose address
// a later socket of another tuple holds: e was read after that socket's
// creation (the merge lets a record committed late overtake), which took
// the address over and ended the earlier socket unseen, as the model does
// too. Its end has been counted then; e would end the later socket.
func (t *Tracker) replaced(e *event.Event) bool {
	st := t.open.Ref(e.Ptr)
	return st != nil && t.replacedBy(st, e)
}

// replacedBy reports whether st, the socket open at e's address, replaced
// the one the end e is about (replaced).
func (t *Tracker) replacedBy(st *twState, e *event.Event) bool {
	return e.Family != 0 && !t.sameTuple(st, e)
}

// killCancelled turns the pending cancels of the timer at ptr into kills:
// an arm of that timer that does not follow its cancel on the same CPU is a
// new timewait socket's, in the memory of the one the cancel ended.
func (t *Tracker) killCancelled(ptr uint64, emit func(*event.Event)) {
	for i := 0; i < len(t.cancels); {
		if t.cancels[i].Ptr != ptr {
			i++
			continue
		}
		t.evKill = t.cancels[i]
		t.dropCancel(i)
		t.kill(&t.evKill, emit)
	}
}

// age is how long the timewait socket at ptr has existed, -1 when unknown.
func (t *Tracker) age(ptr, now uint64) int64 {
	st := t.open.Ref(ptr)
	if st == nil {
		return -1
	}
	return t.ageOf(ptr, st, now)
}

func (t *Tracker) ageOf(ptr uint64, st *twState, now uint64) int64 {
	c := t.created(ptr, st)
	if c == 0 || now < c {
		return -1
	}
	return int64(now - c)
}

// created is the birth of the timewait socket st open at ptr, 0 when
// unknown.
func (t *Tracker) created(ptr uint64, st *twState) uint64 {
	if !st.existing {
		return st.born
	}
	if c := t.births.Ref(ptr); c != nil {
		return *c
	}
	return 0
}

// settleCancels turns pending cancels into kills once they can no longer be
// re-arms: another record of their CPU came by, or a record stamped
// rearmWindow after them (records are read in the order of their time, so
// a re-arm or expiry would have come first). The record that follows a
// cancel settles it in Add. The scan's records settle nothing by their
// CPU: they are not in a CPU's sequence. A scan's records of sockets come
// before the ring's records of the time its walk took (the tracer hands a
// ring record out before a scan record only when it is 20 ms older), so
// they do not settle by time either; its end record comes after those, and
// does.
func (t *Tracker) settleCancels(e *event.Event, emit func(*event.Event)) {
	if e.Kind == event.KindScanTW {
		return
	}
	for i := 0; i < len(t.cancels); {
		c := &t.cancels[i]
		if (e.Kind == event.KindTWArm || e.Kind == event.KindTWExpire) && follows(e, c) {
			i++ // its re-arm or expiry
			continue
		}
		sameCPUNext := e.Kind != event.KindScanEnd && c.CPU == e.CPU && e.Seq != c.Seq
		if sameCPUNext || e.Time > c.Time+rearmWindow {
			t.evKill = *c
			t.dropCancel(i)
			t.kill(&t.evKill, emit)
			continue
		}
		i++
	}
}

// kill turns the cancel k (a scratch event it may change) into a kill.
func (t *Tracker) kill(k *event.Event, emit func(*event.Event)) {
	k.Kind = event.KindTWKill
	if t.replaced(k) {
		return
	}
	if k.Cause == event.CauseConnectReuse && k.Flags&event.FlagInConnect != 0 {
		// tracepoint tier: no tcp_twsk_unique hook, so the reuse itself is
		// known from the kill inside connect()
		r := &t.evReuse
		*r = *k
		r.Kind = event.KindTWReuse
		r.Lifetime = t.age(k.Ptr, k.Time)
		emit(r)
	}
	if k.Cause == event.CauseUnknown {
		// maybe a SYN takeover: wait for a new connection on the tuple.
		// The socket is gone whatever the cause: it is closed now, so
		// that a new socket at its address is not taken for it.
		if t.close(k) {
			t.synWait = append(t.synWait, *k)
		}
		return
	}
	t.end(k, emit)
}

func (t *Tracker) settleSyn(emit func(*event.Event)) {
	n := 0
	for i := range t.synWait {
		if t.now > t.synWait[i].Time+synWindow {
			emit(&t.synWait[i])
			continue
		}
		if n != i {
			t.synWait[n] = t.synWait[i]
		}
		n++
	}
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
	for i := range t.synWait {
		k := &t.synWait[i]
		if k.Netns == e.Netns && k.Src == e.Src && k.Dst == e.Dst {
			t.evKill = *k
			t.evKill.Cause = event.CauseSYN
			t.synWait = slices.Delete(t.synWait, i, i+1)
			emit(&t.evKill)
			return
		}
	}
}

// scanEnd settles the previous scan of this netns and records this one.
func (t *Tracker) scanEnd(e *event.Event, emit func(*event.Event)) {
	ns := e.Netns
	seen := t.scanSeen[ns]
	defer t.doneScan(ns, seen)

	if !t.scanned[ns] {
		// first scan: what it shows existed before tracing started
		t.scanned[ns] = true
		for _, r := range t.notOpen(seen) {
			c := &t.evScan
			*c = seen.recs[r.pos]
			c.Kind = event.KindTWCreate
			c.Flags |= event.FlagExisting
			t.create(c, emit)
		}
		t.prev[ns] = &scanResult{time: e.Time, start: e.ScanStart()}
		emit(e)
		return
	}

	if p := t.prev[ns]; p != nil {
		for _, ptr := range p.missing {
			// gone from two scans in a row (a walk of a changing table
			// skips a socket now and then), and the socket open at ptr
			// now is the one the scan missed, not one created since at
			// its address
			st := t.open.Ref(ptr)
			if shown(seen, ptr, st) {
				continue
			}
			if st != nil && t.created(ptr, st) <= p.start {
				end := &t.evScan
				t.creationRecord(ptr, st, end)
				end.Kind = event.KindTWKill
				end.Cause = event.CauseVanished
				end.Time = p.time
				end.Flags = event.FlagInferred | event.FlagReconciled
				t.end(end, emit)
			}
		}
		for i := range p.unknown {
			u := &p.unknown[i]
			if t.open.Has(u.Ptr) {
				continue
			}
			if !shown(seen, u.Ptr, nil) {
				continue // gone again; nothing certain to say
			}
			c := &t.evScan
			*c = *u
			c.Kind = event.KindTWCreate
			c.Time = p.time
			c.Flags |= event.FlagInferred | event.FlagReconciled
			t.create(c, emit)
		}
	}

	// a socket created after the scan began may sit in a part of the
	// table the walk had passed: only older ones are missing
	r := &scanResult{time: e.Time, start: e.ScanStart()}
	for i, ptr := range t.open.Keys() {
		st := t.open.At(i)
		if st.netns != ns || t.created(ptr, st) > r.start {
			continue
		}
		if !shown(seen, ptr, st) {
			r.missing = append(r.missing, ptr)
		}
	}
	sortU64(r.missing)
	for _, o := range t.notOpen(seen) {
		r.unknown = append(r.unknown, seen.recs[o.pos])
	}
	t.prev[ns] = r
	emit(e)
}

// doneScan empties the buffer of a scan of ns that ended, keeping it while
// the buffers kept are small.
func (t *Tracker) doneScan(ns uint32, b *scanBuf) {
	if b == nil {
		return
	}
	if t.scanRoom > scanBufKeep {
		t.scanRoom -= cap(b.recs)
		delete(t.scanSeen, ns)
		return
	}
	clear(b.recs)
	b.recs = b.recs[:0]
	b.at.Reset()
	clear(b.synth)
	b.mark = 0 // the next scan takes a new one
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
	ptrs := slices.Clone(t.open.Keys())
	slices.SortFunc(ptrs, func(a, b uint64) int {
		return cmp.Or(cmp.Compare(t.open.Ref(a).born, t.open.Ref(b).born), cmp.Compare(a, b))
	})
	for _, p := range ptrs {
		d.add(p, t.keyOfState(t.open.Ref(p)))
	}
	t.diag = d
}

// add indexes the socket with tuple k opened under ptr.
func (d *diagIndex) add(ptr uint64, k tupleKey) {
	if event.IsSyntheticPtr(ptr) {
		d.synth[k] = ptr
	} else {
		d.real[k] = ptr
	}
}

// forget drops the socket with tuple k open under ptr from the index.
func (d *diagIndex) forget(ptr uint64, k tupleKey) {
	m := d.real
	if event.IsSyntheticPtr(ptr) {
		m = d.synth
		if a, ok := d.back[ptr]; ok {
			delete(d.alias, a)
			delete(d.back, ptr)
		}
	}
	if m[k] == ptr {
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
		if t.open.Has(e.Ptr) {
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
			if st := t.open.Ref(s); st != nil && t.keyOfState(st) == keyOf(e) {
				return d.with(e, s)
			}
			// the address holds another socket now
			delete(d.alias, e.Ptr)
			delete(d.back, s)
		}
		if t.open.Has(e.Ptr) {
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
