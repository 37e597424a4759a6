package model

import (
	"net/netip"
	"testing"
	"unsafe"
)

func TestFlatKeys(t *testing.T) {
	v4 := netip.MustParseAddrPort("10.0.0.1:40000")
	mapped := netip.MustParseAddrPort("[::ffff:10.0.0.1]:40000")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:40000")
	dst := netip.MustParseAddrPort("10.0.0.2:80")
	var none netip.AddrPort
	unspec := netip.AddrPortFrom(netip.IPv6Unspecified(), 0)

	t.Run("tuples", func(t *testing.T) {
		keys := map[tupleKey]string{}
		for name, k := range map[string]tupleKey{
			"v4":               keyOf(1, v4, dst),
			"v4 mapped":        keyOf(1, mapped, dst),
			"v6":               keyOf(1, v6, dst),
			"other netns":      keyOf(2, v4, dst),
			"swapped":          keyOf(1, dst, v4),
			"no addresses":     keyOf(1, none, none),
			"unspecified IPv6": keyOf(1, unspec, unspec),
		} {
			if other, ok := keys[k]; ok {
				t.Errorf("%s and %s have the same key", name, other)
			}
			keys[k] = name
		}
		if keyOf(1, v4, dst) != keyOf(1, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, 1}), 40000), dst) {
			t.Error("equal tuples have different keys")
		}
	})
	t.Run("destinations", func(t *testing.T) {
		a := destKey{1, v4.Addr(), dst}.mapKey()
		if b := (destKey{1, mapped.Addr(), dst}).mapKey(); a == b {
			t.Error("an IPv4 source and its IPv4-mapped form have the same key")
		}
		if b := (destKey{}).mapKey(); a == b || b != (destMapKey{}) {
			t.Errorf("the key of \"other\" is %+v", b)
		}
	})
	t.Run("peers", func(t *testing.T) {
		for _, p := range []netip.AddrPort{v4, mapped, v6, none, unspec} {
			if got := peerOf(p).addrPort(); got != p {
				t.Errorf("peer %v comes back as %v", p, got)
			}
		}
		if peerOf(v4) == peerOf(mapped) {
			t.Error("an IPv4 peer and its IPv4-mapped form have the same key")
		}
	})
	t.Run("no padding", func(t *testing.T) {
		// the runtime hashes a key as one block only when its fields
		// fill it; these sums are the fields' sizes
		for name, got := range map[string][2]uintptr{
			"tupleKey":   {unsafe.Sizeof(tupleKey{}), 16 + 16 + 2 + 2 + 4 + 4},
			"destMapKey": {unsafe.Sizeof(destMapKey{}), 16 + 16 + 2 + 2 + 4},
			"peerKey":    {unsafe.Sizeof(peerKey{}), 16 + 2 + 2},
			"twBooks":    {unsafe.Sizeof(twBooks{}), unsafe.Sizeof(closerKeys{}) + 4 + 4},
		} {
			if got[0] != got[1] {
				t.Errorf("%s takes %d bytes, its fields %d", name, got[0], got[1])
			}
		}
	})
}
