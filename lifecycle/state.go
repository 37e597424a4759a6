package lifecycle

import (
	"net/netip"

	"github.com/twtop/twtop/tracer/event"
)

// The kinds of the addresses in a twState (compact.Addrs): the source's
// in the low two bits of kinds, the destination's in the next two.
func (st *twState) srcKind() uint8 { return st.kinds & 3 }
func (st *twState) dstKind() uint8 { return st.kinds >> 2 }

// sameTuple reports whether the socket in st has e's tuple (netns and
// both ends; the family follows from the addresses).
func (t *Tracker) sameTuple(st *twState, e *event.Event) bool {
	return st.netns == e.Netns && st.sport == e.Src.Port() && st.dport == e.Dst.Port() &&
		t.addrs.Is(st.src, st.srcKind(), e.Src.Addr()) && t.addrs.Is(st.dst, st.dstKind(), e.Dst.Addr())
}

// keyOfState is the tuple of the socket in st.
func (t *Tracker) keyOfState(st *twState) tupleKey {
	return tupleKey{st.netns,
		netip.AddrPortFrom(t.addrs.Dec(st.src, st.srcKind()), st.sport),
		netip.AddrPortFrom(t.addrs.Dec(st.dst, st.dstKind()), st.dport)}
}

// fillTuple puts the tuple of the socket in st on e.
func (t *Tracker) fillTuple(st *twState, e *event.Event) {
	k := t.keyOfState(st)
	e.Family, e.Netns, e.Src, e.Dst = st.family, k.netns, k.src, k.dst
}

// newState is the state of a timewait socket created by e.
func (t *Tracker) newState(e *event.Event) twState {
	st := twState{
		born:     e.Time,
		netns:    e.Netns,
		sport:    e.Src.Port(),
		dport:    e.Dst.Port(),
		oldState: e.OldState,
		substate: e.NewState,
		family:   e.Family,
		existing: e.Flags&event.FlagExisting != 0,
	}
	var sk, dk uint8
	st.src, sk = t.addrs.Enc(e.Src.Addr())
	st.dst, dk = t.addrs.Enc(e.Dst.Addr())
	st.kinds = sk | dk<<2
	return st
}

// forgetState drops what the socket st open at ptr holds besides its
// entry in open.
func (t *Tracker) forgetState(ptr uint64, st *twState) {
	if st.existing {
		t.births.Del(ptr)
	}
	t.addrs.Drop(st.src, st.srcKind())
	t.addrs.Drop(st.dst, st.dstKind())
}

// creationRecord is the record that created the socket at ptr, with the
// substate it shows now, without its owner, and without the fields that
// only describe that record (its CPU, sequence number and timer).
func (t *Tracker) creationRecord(ptr uint64, st *twState, e *event.Event) {
	*e = event.Event{
		Time:     st.born,
		Ptr:      ptr,
		OldState: st.oldState,
		NewState: st.substate,
		Lifetime: -1,
	}
	t.fillTuple(st, e)
}
