package lifecycle

import (
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// The owner seen on a transition in the owner's context (connect, close)
// goes on the socket's later transitions in softirq context, up to its
// CLOSE; a new socket at the same address starts with none.
func TestTrackerCarriesOwner(t *testing.T) {
	type step struct {
		ptr           uint64
		old, new      event.State
		pid           uint32 // 0: the record carries no owner
		wantPid       uint32
		wantOwnerFlag bool
	}
	steps := []step{
		{0xa, event.Close, event.SynSent, 42, 42, true},
		{0xa, event.SynSent, event.Established, 0, 42, true},
		{0xb, event.SynRecv, event.Established, 0, 0, false}, // accepted: owner unknown until close
		{0xa, event.Established, event.FinWait1, 42, 42, true},
		{0xb, event.Established, event.CloseWait, 0, 0, false},
		{0xb, event.CloseWait, event.LastAck, 7, 7, true},
		{0xa, event.FinWait1, event.FinWait2, 0, 42, true},
		{0xb, event.LastAck, event.Close, 0, 7, true},
		{0xa, event.FinWait2, event.Close, 0, 42, true},
		{0xa, event.SynRecv, event.Established, 0, 0, false}, // the address reused by a new socket
		{0xb, event.SynRecv, event.Established, 0, 0, false},
	}
	tk := NewTracker(250)
	for i, s := range steps {
		e := event.Event{Kind: event.KindState, Time: uint64(i+1) * 1000, Ptr: s.ptr, OldState: s.old, NewState: s.new, Lifetime: -1}
		if s.pid != 0 {
			e.Pid, e.Tid, e.Comm, e.Flags = s.pid, s.pid+1, [16]byte{'c'}, event.FlagOwner
		}
		var got *event.Event
		tk.Add(&e, func(o *event.Event) {
			if o.Kind == event.KindState {
				c := *o
				got = &c
			}
		})
		if got == nil {
			t.Fatalf("step %d: no state event", i)
		}
		if got.Owned() != s.wantOwnerFlag || got.Pid != s.wantPid {
			t.Errorf("step %d (%x %v->%v): owned %v pid %d, want %v %d", i, s.ptr, s.old, s.new, got.Owned(), got.Pid, s.wantOwnerFlag, s.wantPid)
		}
		if s.wantOwnerFlag && (got.Tid != s.wantPid+1 || got.Comm[0] != 'c') {
			t.Errorf("step %d: tid %d comm %q, want the owner's", i, got.Tid, got.Comm[:1])
		}
	}
	if n := len(tk.owners); n != 0 {
		t.Errorf("%d owners remembered after every socket closed, want 0", n)
	}
}
