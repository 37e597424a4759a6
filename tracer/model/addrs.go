package model

import (
	"encoding/binary"
	"net/netip"
)

// An address of an open TIME_WAIT socket is kept in 4 bytes and a 2-bit
// kind: an IPv4 address as itself, any other (IPv6) as a handle in
// Model.addrs, shared by the sockets that use it.
const (
	addrNone = iota // the zero Addr
	addr4
	addrHandle
)

// encAddr encodes a, counting one more user of its handle if it takes one.
func (m *Model) encAddr(a netip.Addr) (uint32, uint8) {
	switch {
	case !a.IsValid():
		return 0, addrNone
	case a.Is4():
		b := a.As4()
		return binary.BigEndian.Uint32(b[:]), addr4
	}
	return m.addrs.ref(a), addrHandle
}

// decAddr is the address v, k encode.
func (m *Model) decAddr(v uint32, k uint8) netip.Addr {
	switch k {
	case addr4:
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		return netip.AddrFrom4(b)
	case addrHandle:
		return *m.addrs.get(v)
	}
	return netip.Addr{}
}

// dropAddr counts one user less of the handle v, k may be.
func (m *Model) dropAddr(v uint32, k uint8) {
	if k == addrHandle {
		m.addrs.unref(v)
	}
}

// isAddr reports whether v, k encode a.
func (m *Model) isAddr(v uint32, k uint8, a netip.Addr) bool {
	switch k {
	case addr4:
		if !a.Is4() {
			return false
		}
		b := a.As4()
		return binary.BigEndian.Uint32(b[:]) == v
	case addrHandle:
		return *m.addrs.get(v) == a
	}
	return !a.IsValid()
}
