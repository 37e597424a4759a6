package model

import (
	"net/netip"
	"testing"
)

func TestRecentClosed(t *testing.T) {
	key := func(i int) uint64 {
		return keyOf(1, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 40000), netip.MustParseAddrPort("10.9.0.1:80")).hash()
	}
	val := func(r role) closed { return closed{role: r} }
	t.Run("taken once", func(t *testing.T) {
		var r recentClosed
		r.add(key(1), val(roleClient))
		if c, ok := r.take(key(1)); !ok || c.role != roleClient {
			t.Fatalf("take = %v, %v", c, ok)
		}
		if _, ok := r.take(key(1)); ok {
			t.Fatal("taken twice")
		}
	})
	t.Run("the newer close of a tuple wins, across generations", func(t *testing.T) {
		var r recentClosed
		r.add(key(0), val(roleServer))
		for i := 1; i < recentMax/2; i++ {
			r.add(key(i), val(roleServer))
		}
		r.add(key(0), val(roleClient)) // the first of the next generation
		if c, ok := r.take(key(0)); !ok || c.role != roleClient {
			t.Fatalf("take = %v, %v, want the newer close", c, ok)
		}
		if _, ok := r.take(key(0)); ok {
			t.Fatal("the older close of the tuple was kept too")
		}
	})
	t.Run("kept for recentMax/2 closes, dropped by recentMax", func(t *testing.T) {
		var r recentClosed
		r.add(key(0), val(roleClient))
		for i := 1; i <= recentMax/2; i++ {
			r.add(key(i), val(roleServer))
		}
		if _, ok := r.take(key(0)); !ok {
			t.Fatalf("dropped after %d newer closes", recentMax/2)
		}
		r.add(key(0), val(roleClient))
		for i := 1; i <= recentMax; i++ {
			r.add(key(10000+i), val(roleServer))
		}
		if _, ok := r.take(key(0)); ok {
			t.Fatalf("kept after %d newer closes", recentMax)
		}
		if n := r.cur.Len() + r.prev.Len(); n > recentMax {
			t.Fatalf("%d closes kept", n)
		}
	})
}

// A tuple's hash is the same every time and tells the kinds of its
// addresses apart: 10.0.0.1 and ::ffff:10.0.0.1 write the same 16 bytes.
func TestTupleHash(t *testing.T) {
	dst := netip.MustParseAddrPort("10.9.0.1:80")
	v4 := keyOf(1, netip.MustParseAddrPort("10.0.0.1:40000"), dst)
	mapped := keyOf(1, netip.MustParseAddrPort("[::ffff:10.0.0.1]:40000"), dst)
	if v4.src != mapped.src {
		t.Fatal("As16 of 10.0.0.1 and ::ffff:10.0.0.1 differ: this test no longer checks the kinds")
	}
	if v4.hash() != keyOf(1, netip.MustParseAddrPort("10.0.0.1:40000"), dst).hash() {
		t.Error("one tuple, two hashes")
	}
	for name, k := range map[string]tupleKey{
		"IPv4-mapped source": mapped,
		"other netns":        keyOf(2, netip.MustParseAddrPort("10.0.0.1:40000"), dst),
		"other port":         keyOf(1, netip.MustParseAddrPort("10.0.0.1:40001"), dst),
		"ends swapped":       keyOf(1, dst, netip.MustParseAddrPort("10.0.0.1:40000")),
	} {
		if k.hash() == v4.hash() {
			t.Errorf("%s: same hash as the tuple", name)
		}
	}
}
