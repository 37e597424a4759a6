package lifecycle

import "github.com/twtop/twtop/tracer/event"

// The kernel programs put the owner (pid, tid, cgroup, comm) only on the
// transitions made in the owner's context: connect(), listen() and close().
// The others (a FIN or an RST arriving, the handshake completing) run in
// softirq context. The Tracker carries the owner from the first kind to
// the second by socket address, as the kernel did with a map before, so
// that every transition of a socket whose owner was seen names it.

// maxOwners bounds the sockets whose owner the Tracker remembers.
const maxOwners = 1 << 20

type ownerInfo struct {
	pid, tid uint32
	cgroup   uint64
	comm     [16]byte
}

// fillOwner remembers the owner of a transition that carries one, and puts
// the remembered owner on one that does not. A socket's last transition
// (to CLOSE) forgets it.
func (t *Tracker) fillOwner(e *event.Event) {
	if e.Owned() {
		if e.NewState != event.Close && (len(t.owners) < maxOwners || t.hasOwner(e.Ptr)) {
			t.owners[e.Ptr] = ownerInfo{e.Pid, e.Tid, e.Cgroup, e.Comm}
		} else if e.NewState == event.Close {
			delete(t.owners, e.Ptr)
		}
		return
	}
	o, ok := t.owners[e.Ptr]
	if !ok {
		return
	}
	e.Pid, e.Tid, e.Cgroup, e.Comm = o.pid, o.tid, o.cgroup, o.comm
	e.Flags |= event.FlagOwner
	if e.NewState == event.Close {
		delete(t.owners, e.Ptr)
	}
}

func (t *Tracker) hasOwner(ptr uint64) bool {
	_, ok := t.owners[ptr]
	return ok
}
