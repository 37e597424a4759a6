package model

// twBooks is what open TIME_WAIT sockets are charged to, shared by all
// those with the same: their namespace, the aggregates of the socket whose
// close created them (zero when none was seen), and whether they are a
// connection's client side (which holds its local port towards the
// destination until it ends).
type twBooks struct {
	netns  uint32
	closer closerKeys
	client bool
}

// interned hands out small handles for equal values, counting their users
// so that a handle and its value are dropped with their last user.
type interned[K comparable] struct {
	ids  map[K]uint32
	vals []K
	refs []uint32
	free []uint32
	last uint32 // the handle handed out last
}

// ref returns the handle of k and counts one more user.
func (in *interned[K]) ref(k K) uint32 {
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

// unref counts one user less of the handle.
func (in *interned[K]) unref(id uint32) {
	if in.refs[id]--; in.refs[id] == 0 {
		delete(in.ids, in.vals[id])
		var zero K
		in.vals[id] = zero
		in.free = append(in.free, id)
	}
}

// get is the value behind a handle.
func (in *interned[K]) get(id uint32) *K { return &in.vals[id] }
