// Package modeltest feeds a model the events of whole connections, for
// the tests of what reads the model (metrics, the UI).
package modeltest

import (
	"net/netip"

	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
)

// Conn is one client connection that closes first.
type Conn struct {
	Ptr      uint64 // the socket's address; its TIME_WAIT socket's is 1<<40 + Ptr
	Netns    uint32
	Src, Dst netip.AddrPort
	Pid      uint32 // the owner, whose connect() and close() it shows
	Cgroup   uint64
}

// ClientCloses applies c's life to m at *now (nanoseconds, advanced by 1 µs
// a step): CLOSE -> SYN_SENT -> ESTABLISHED -> FIN_WAIT1 -> FIN_WAIT2, its
// TIME_WAIT socket, and CLOSE; the owner on the transitions made in its
// context (connect, close), as the kernel programs put it.
func ClientCloses(m *model.Model, now *uint64, c Conn) {
	ev := event.Event{Kind: event.KindState, Ptr: c.Ptr, Netns: c.Netns, Family: event.AFInet,
		Src: c.Src, Dst: c.Dst, OldState: event.Close, Lifetime: -1, Pid: c.Pid, Cgroup: c.Cgroup}
	if c.Src.Addr().Is6() {
		ev.Family = event.AFInet6
	}
	for _, st := range []event.State{event.SynSent, event.Established, event.FinWait1, event.FinWait2} {
		*now += 1000
		ev.Time, ev.NewState, ev.Flags = *now, st, 0
		if st == event.SynSent || st == event.FinWait1 {
			ev.Flags = event.FlagOwner
		}
		m.Apply(&ev)
		ev.OldState = st
	}
	tw := ev
	tw.Kind, tw.Ptr, tw.Time, tw.NewState, tw.Flags = event.KindTWCreate, 1<<40+c.Ptr, *now+500, event.TimeWait, 0
	m.Apply(&tw)
	*now += 1000
	ev.Time, ev.NewState, ev.Flags = *now, event.Close, 0
	m.Apply(&ev)
}
