// Package compact holds the pointer-free tables in which the lifecycle
// Tracker and the model keep state for hundreds of thousands of open
// TIME_WAIT sockets: Map, a hash map from kernel addresses to values kept
// by value in dense slices; Interned, small reference-counted handles for
// values many sockets share; and Addrs, which keeps an IP address in 4
// bytes and 2 bits.
//
// None of them is safe for concurrent use.
package compact

// Map maps kernel addresses to values of V without a pointer per entry:
// keys and values sit in two dense slices, and an open-addressing index of
// 4-byte slots (linear probing, at most 3/4 full) points into them. An
// entry costs its key, its value and 4 to 10 bytes of index.
//
// A pointer returned by ref is valid until the next put or del.
type Map[V any] struct {
	keys  []uint64
	vals  []V
	index []uint32 // 0: empty; otherwise 1 + the entry's position in keys
	shift uint8    // 64 - log2(len(index))
}

const minIndex = 16

func (m *Map[V]) Len() int { return len(m.keys) }

// Keys are the keys, in no particular order; Keys()[i]'s value is At(i).
// Both are valid until the next Put or Del.
func (m *Map[V]) Keys() []uint64 { return m.keys }

// At is the value of the i-th key of Keys.
func (m *Map[V]) At(i int) *V { return &m.vals[i] }

func (m *Map[V]) slot(k uint64) int {
	return int((k * 0x9e3779b97f4a7c15) >> m.shift)
}

// find is the index slot holding k, or -1.
func (m *Map[V]) find(k uint64) int {
	if len(m.index) == 0 {
		return -1
	}
	mask := len(m.index) - 1
	for i := m.slot(k); ; i = (i + 1) & mask {
		p := m.index[i]
		if p == 0 {
			return -1
		}
		if m.keys[p-1] == k {
			return i
		}
	}
}

// Ref is the value under k, nil when absent.
func (m *Map[V]) Ref(k uint64) *V {
	i := m.find(k)
	if i < 0 {
		return nil
	}
	return &m.vals[m.index[i]-1]
}

// Has reports whether k is present.
func (m *Map[V]) Has(k uint64) bool { return m.find(k) >= 0 }

// Put sets the value under k.
func (m *Map[V]) Put(k uint64, v V) {
	if i := m.find(k); i >= 0 {
		m.vals[m.index[i]-1] = v
		return
	}
	if (len(m.keys)+1)*4 > len(m.index)*3 {
		m.grow()
	}
	m.keys = append(m.keys, k)
	m.vals = append(m.vals, v)
	m.place(k, uint32(len(m.keys)))
}

func (m *Map[V]) place(k uint64, p uint32) {
	mask := len(m.index) - 1
	i := m.slot(k)
	for m.index[i] != 0 {
		i = (i + 1) & mask
	}
	m.index[i] = p
}

func (m *Map[V]) grow() {
	n := max(minIndex, 2*len(m.index))
	m.index = make([]uint32, n)
	m.shift = uint8(64 - log2(n))
	for p, k := range m.keys {
		m.place(k, uint32(p+1))
	}
}

func log2(n int) int {
	b := 0
	for n > 1 {
		n >>= 1
		b++
	}
	return b
}

// Reset removes every entry, keeping the memory.
func (m *Map[V]) Reset() {
	clear(m.index)
	clear(m.vals)
	m.keys, m.vals = m.keys[:0], m.vals[:0]
}

// Del removes k; the last entry moves into its place.
func (m *Map[V]) Del(k uint64) {
	i := m.find(k)
	if i < 0 {
		return
	}
	p := int(m.index[i] - 1)
	m.unindex(i)
	last := len(m.keys) - 1
	if p != last {
		lk := m.keys[last]
		m.index[m.find(lk)] = uint32(p + 1)
		m.keys[p], m.vals[p] = lk, m.vals[last]
	}
	var zero V
	m.vals[last] = zero
	m.keys, m.vals = m.keys[:last], m.vals[:last]
}

// unindex empties index slot i, shifting back the entries that probed past
// it so that every entry stays reachable from its home slot.
func (m *Map[V]) unindex(i int) {
	mask := len(m.index) - 1
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		p := m.index[j]
		if p == 0 {
			break
		}
		home := m.slot(m.keys[p-1])
		// move the entry at j back to i unless its home lies cyclically
		// in (i, j]
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			m.index[i] = p
			i = j
		}
	}
	m.index[i] = 0
}
