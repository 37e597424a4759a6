package compact

import (
	"math/rand/v2"
	"testing"
)

// The flat map holds what a Go map holds under any mix of puts and
// deletes, including keys that collide in its index.
func TestFlatMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var m Map[uint32]
	want := map[uint64]uint32{}
	for i := range 200_000 {
		k := 0xffff888100000000 + uint64(rng.IntN(5000))*0x40
		switch rng.IntN(3) {
		case 0, 1:
			m.Put(k, uint32(i))
			want[k] = uint32(i)
		case 2:
			m.Del(k)
			delete(want, k)
		}
		if i%1000 == 0 {
			if m.Len() != len(want) {
				t.Fatalf("step %d: len %d, want %d", i, m.Len(), len(want))
			}
			for k, v := range want {
				if p := m.Ref(k); p == nil || *p != v {
					t.Fatalf("step %d: %#x = %v, want %d", i, k, p, v)
				}
			}
			for j, k := range m.keys {
				if want[k] != m.vals[j] {
					t.Fatalf("step %d: stray %#x", i, k)
				}
			}
		}
	}
}
