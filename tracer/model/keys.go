package model

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// The maps the model looks up on every event are keyed by flat values
// without pointers or padding, which the runtime hashes and compares as
// one block of memory. A key of netip values (each holds a pointer and
// leaves padding) takes a hash call per field and gives the collector
// pointers to scan. As16 writes IPv4 and IPv4-mapped IPv6 addresses as
// the same bytes, so each key also says which kind every address is. The
// tuple tables are keyed by a hash of a tupleKey instead (tupleKey.hash),
// computed once per event.

// tupleKey is a connection's two ends in its network namespace.
type tupleKey struct {
	src, dst     [16]byte // As16 of the addresses
	sport, dport uint16
	netns        uint32
	kinds        uint32 // addrKind of the source, the destination's << 2
}

func keyOf(netns uint32, src, dst netip.AddrPort) tupleKey {
	return tupleKey{
		src: src.Addr().As16(), dst: dst.Addr().As16(),
		sport: src.Port(), dport: dst.Port(), netns: netns,
		kinds: addrKind(src.Addr()) | addrKind(dst.Addr())<<2,
	}
}

// tupleSeed seeds tupleKey.hash, anew in every process.
var tupleSeed = func() (s [6]uint64) {
	for i := range s {
		s[i] = rand.Uint64()
	}
	return s
}()

// hash is the key the tuple tables (Model.byTuple, recentClosed) keep k
// under: a seeded 64-bit hash of its bytes (multiply-and-fold rounds, as
// in wyhash), computed once per event instead of once per map operation.
// Two tuples held at once share one with a chance of about n²/2⁶⁵ for n
// tuples held (the tables hold the open connections and the last few
// thousand closes): the TIME_WAIT socket of one would then be counted to
// the other's closer.
func (k tupleKey) hash() uint64 {
	le, s := binary.LittleEndian, &tupleSeed
	h := mum(le.Uint64(k.src[:8])^s[0], le.Uint64(k.src[8:])^s[1]) ^
		mum(le.Uint64(k.dst[:8])^s[2], le.Uint64(k.dst[8:])^s[3])
	ends := uint64(k.sport) | uint64(k.dport)<<16 | uint64(k.netns)<<32
	return mum(h^uint64(k.kinds)^s[4], ends^s[5])
}

// mum folds the 128-bit product of a and b to 64 bits.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// Address kinds, as the keys carry them.
const (
	kindNone = 0
	kindIPv6 = 1 // an IPv4-mapped one included
	kindIPv4 = 2
)

// addrKind is the kind of an address.
func addrKind(a netip.Addr) uint32 {
	switch {
	case a.Is4():
		return kindIPv4
	case a.IsValid():
		return kindIPv6
	}
	return kindNone
}

// destMapKey is a destKey as Model.dests is keyed (the dest keeps its
// destKey).
type destMapKey struct {
	src, dst [16]byte // As16 of the addresses
	dport    uint16
	kinds    uint16 // addrKind of the source, the destination's << 2
	netns    uint32
}

func (k destKey) mapKey() destMapKey {
	return destMapKey{
		src: k.src.As16(), dst: k.dst.Addr().As16(), dport: k.dst.Port(),
		kinds: uint16(addrKind(k.src) | addrKind(k.dst.Addr())<<2), netns: k.netns,
	}
}

// peerKey is a peer's address and port, the key of the peer ranking.
type peerKey struct {
	addr [16]byte // As16
	port uint16
	kind uint16 // addrKind
}

func peerOf(dst netip.AddrPort) peerKey {
	return peerKey{addr: dst.Addr().As16(), port: dst.Port(), kind: uint16(addrKind(dst.Addr()))}
}

// addrPort is the address and port the key was made of.
func (k peerKey) addrPort() netip.AddrPort {
	var a netip.Addr
	switch k.kind {
	case kindIPv4:
		a = netip.AddrFrom16(k.addr).Unmap()
	case kindIPv6:
		a = netip.AddrFrom16(k.addr)
	}
	return netip.AddrPortFrom(a, k.port)
}
