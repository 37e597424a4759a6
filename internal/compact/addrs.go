package compact

import (
	"encoding/binary"
	"net/netip"
)

// The kinds of an encoded address: Addrs keeps an address in 4 bytes and
// one of these 2-bit kinds.
const (
	AddrNone   = iota // the zero Addr
	Addr4             // an IPv4 address, as itself
	AddrHandle        // any other (IPv6), as a handle shared by its users
)

// Addrs encodes addresses in 4 bytes and a kind, interning those that do
// not fit (IPv6): a handle lives while sockets use it.
type Addrs struct {
	in Interned[netip.Addr]
}

// Enc encodes a, counting one more user of its handle if it takes one.
func (t *Addrs) Enc(a netip.Addr) (uint32, uint8) {
	switch {
	case !a.IsValid():
		return 0, AddrNone
	case a.Is4():
		b := a.As4()
		return binary.BigEndian.Uint32(b[:]), Addr4
	}
	return t.in.Ref(a), AddrHandle
}

// Dec is the address v, k encode.
func (t *Addrs) Dec(v uint32, k uint8) netip.Addr {
	switch k {
	case Addr4:
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	case AddrHandle:
		return *t.in.Get(v)
	}
	return netip.Addr{}
}

// Drop counts one user less of the handle v, k may be.
func (t *Addrs) Drop(v uint32, k uint8) {
	if k == AddrHandle {
		t.in.Unref(v)
	}
}

// Is reports whether v, k encode a.
func (t *Addrs) Is(v uint32, k uint8, a netip.Addr) bool {
	switch k {
	case Addr4:
		if !a.Is4() {
			return false
		}
		b := a.As4()
		return binary.BigEndian.Uint32(b[:]) == v
	case AddrHandle:
		return *t.in.Get(v) == a
	}
	return !a.IsValid()
}

// Len is the number of interned addresses with users.
func (t *Addrs) Len() int { return t.in.Len() }

// Refs is the number of users of the handle v.
func (t *Addrs) Refs(v uint32) uint32 { return t.in.Refs(v) }
