package lifecycle

import (
	"encoding/binary"
	"net/netip"

	"github.com/twtop/twtop/tracer/event"
)

// An address is kept in 4 bytes and a 2-bit kind: an IPv4 address as
// itself, any other (IPv6) as a handle in an addrTable, shared by the
// sockets that use it.
const (
	addrNone = iota // the zero Addr
	addr4
	addrHandle
)

// addrTable interns the addresses that do not fit in 4 bytes. A handle
// lives while sockets use it.
type addrTable struct {
	ids   map[netip.Addr]uint32
	addrs []netip.Addr
	refs  []uint32
	free  []uint32
}

// enc encodes a, counting one more user of its handle if it takes one.
func (t *addrTable) enc(a netip.Addr) (uint32, uint8) {
	switch {
	case !a.IsValid():
		return 0, addrNone
	case a.Is4():
		b := a.As4()
		return binary.BigEndian.Uint32(b[:]), addr4
	}
	if t.ids == nil {
		t.ids = make(map[netip.Addr]uint32)
	}
	if id, ok := t.ids[a]; ok {
		t.refs[id]++
		return id, addrHandle
	}
	var id uint32
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
		t.addrs[id], t.refs[id] = a, 1
	} else {
		id = uint32(len(t.addrs))
		t.addrs = append(t.addrs, a)
		t.refs = append(t.refs, 1)
	}
	t.ids[a] = id
	return id, addrHandle
}

// dec is the address v, k encode.
func (t *addrTable) dec(v uint32, k uint8) netip.Addr {
	switch k {
	case addr4:
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	case addrHandle:
		return t.addrs[v]
	}
	return netip.Addr{}
}

// drop counts one user less of the handle v, k may be.
func (t *addrTable) drop(v uint32, k uint8) {
	if k != addrHandle {
		return
	}
	if t.refs[v]--; t.refs[v] == 0 {
		delete(t.ids, t.addrs[v])
		t.addrs[v] = netip.Addr{}
		t.free = append(t.free, v)
	}
}

// is reports whether v, k encode a.
func (t *addrTable) is(v uint32, k uint8, a netip.Addr) bool {
	switch k {
	case addr4:
		if !a.Is4() {
			return false
		}
		b := a.As4()
		return binary.BigEndian.Uint32(b[:]) == v
	case addrHandle:
		return t.addrs[v] == a
	}
	return !a.IsValid()
}

func (st *twState) srcKind() uint8 { return st.kinds & 3 }
func (st *twState) dstKind() uint8 { return st.kinds >> 2 }

// sameTuple reports whether the socket in st has e's tuple (netns and
// both ends; the family follows from the addresses).
func (t *Tracker) sameTuple(st *twState, e *event.Event) bool {
	return st.netns == e.Netns && st.sport == e.Src.Port() && st.dport == e.Dst.Port() &&
		t.addrs.is(st.src, st.srcKind(), e.Src.Addr()) && t.addrs.is(st.dst, st.dstKind(), e.Dst.Addr())
}

// keyOfState is the tuple of the socket in st.
func (t *Tracker) keyOfState(st *twState) tupleKey {
	return tupleKey{st.netns,
		netip.AddrPortFrom(t.addrs.dec(st.src, st.srcKind()), st.sport),
		netip.AddrPortFrom(t.addrs.dec(st.dst, st.dstKind()), st.dport)}
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
		aux:      e.Aux,
		aux2:     e.Aux2,
		seq:      e.Seq,
		cpu:      e.CPU,
		oldState: e.OldState,
		substate: e.NewState,
		family:   e.Family,
		existing: e.Flags&event.FlagExisting != 0,
	}
	var sk, dk uint8
	st.src, sk = t.addrs.enc(e.Src.Addr())
	st.dst, dk = t.addrs.enc(e.Dst.Addr())
	st.kinds = sk | dk<<2
	return st
}

// forgetState drops what the socket st open at ptr holds besides its
// entry in open.
func (t *Tracker) forgetState(ptr uint64, st *twState) {
	if st.existing {
		t.births.Del(ptr)
	}
	t.addrs.drop(st.src, st.srcKind())
	t.addrs.drop(st.dst, st.dstKind())
}

// creationRecord is the record that created the socket at ptr, with the
// substate it shows now and without its owner.
func (t *Tracker) creationRecord(ptr uint64, st *twState, e *event.Event) {
	*e = event.Event{
		Time:     st.born,
		CPU:      st.cpu,
		Seq:      st.seq,
		Ptr:      ptr,
		OldState: st.oldState,
		NewState: st.substate,
		Aux:      st.aux,
		Aux2:     st.aux2,
		Lifetime: -1,
	}
	t.fillTuple(st, e)
}
