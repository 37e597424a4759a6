package compact

// Interned hands out small handles for equal values, counting their users
// so that a handle and its value are dropped with their last user.
type Interned[K comparable] struct {
	ids  map[K]uint32
	vals []K
	refs []uint32
	free []uint32
	last uint32 // the handle handed out last
}

// Ref returns the handle of k and counts one more user.
func (in *Interned[K]) Ref(k K) uint32 {
	if l := in.last; int(l) < len(in.vals) && in.refs[l] > 0 && in.vals[l] == k {
		in.refs[l]++ // the same as the last one: no hashing
		return l
	}
	if in.ids == nil {
		in.ids = make(map[K]uint32)
	}
	if id, ok := in.ids[k]; ok {
		in.refs[id]++
		in.last = id
		return id
	}
	var id uint32
	if n := len(in.free); n > 0 {
		id = in.free[n-1]
		in.free = in.free[:n-1]
		in.vals[id], in.refs[id] = k, 1
	} else {
		id = uint32(len(in.vals))
		in.vals = append(in.vals, k)
		in.refs = append(in.refs, 1)
	}
	in.ids[k] = id
	in.last = id
	return id
}

// Unref counts one user less of the handle.
func (in *Interned[K]) Unref(id uint32) {
	if in.refs[id]--; in.refs[id] == 0 {
		delete(in.ids, in.vals[id])
		var zero K
		in.vals[id] = zero
		in.free = append(in.free, id)
	}
}

// Get is the value behind a handle.
func (in *Interned[K]) Get(id uint32) *K { return &in.vals[id] }

// Len is the number of values with users.
func (in *Interned[K]) Len() int { return len(in.ids) }

// Refs is the number of users of the handle.
func (in *Interned[K]) Refs(id uint32) uint32 { return in.refs[id] }
