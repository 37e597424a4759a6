package model

import (
	"slices"
	"strings"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// Transitions in softirq context report whatever task the interrupt
// found running (or pid 0); only events flagged with the owner name a
// process. Neither may make a process row.

func withComm(e *event.Event, pid uint32, comm string) {
	e.Pid = pid
	e.Comm = [16]byte{}
	copy(e.Comm[:], comm)
}

// oneConnection: the client closes first; TIME_WAIT on the client.
func oneConnection() []event.Event {
	var g gen
	g.t = 3e9
	g.open(1, 2, cliAddr)
	g.closeFirst(1, cliAddr, srvAddr, clientPid, 2, serverPid, 0xa)
	return g.evs
}

func mapEvents(evs []event.Event, f func(*event.Event)) []event.Event {
	out := slices.Clone(evs)
	for i := range out {
		f(&out[i])
	}
	return out
}

func TestSoftirqMakesNoProcessRows(t *testing.T) {
	var resets gen
	resets.t = 3e9
	resets.open(1, 2, cliAddr)
	resets.state(1, cliAddr, srvAddr, event.Established, event.Close, 0) // RST received, in softirq
	resets.state(2, srvAddr, cliAddr, event.Established, event.Close, 0)
	tests := []struct {
		name     string
		evs      []event.Event
		procs    string // process rows, by key
		closes   [5]uint64
		connErrs uint64
		bindErrs uint64
	}{{
		name: "softirq transitions carry the interrupted task",
		evs: mapEvents(oneConnection(), func(e *event.Event) {
			if e.Kind == event.KindState && !e.Owned() {
				withComm(e, 999, "ksoftirqd/0")
			}
		}),
		procs: "client[100],server[200]", closes: [5]uint64{SideActive: 1, SidePassive: 1},
	}, {
		name: "no event names the owner",
		evs: mapEvents(oneConnection(), func(e *event.Event) {
			e.Flags &^= event.FlagOwner
		}),
		procs: "", closes: [5]uint64{SideActive: 1, SidePassive: 1},
	}, {
		name: "owner flag with pid 0",
		evs: mapEvents(oneConnection(), func(e *event.Event) {
			if e.Owned() {
				withComm(e, 0, "swapper/1")
			}
		}),
		procs: "", closes: [5]uint64{SideActive: 1, SidePassive: 1},
	}, {
		name: "resets received in softirq",
		evs: mapEvents(resets.evs, func(e *event.Event) {
			if e.NewState == event.Close {
				withComm(e, 999, "ksoftirqd/0")
			}
		}),
		procs: "client[100]", closes: [5]uint64{SideReset: 2}, // client[100] from its connect()
	}, {
		name: "errors without an owner",
		evs: []event.Event{
			{Kind: event.KindConnectErr, Time: 1e9, Netns: nsA, Dst: srvAddr, Flags: event.FlagOwner, Lifetime: -1},
			{Kind: event.KindBindErr, Time: 2e9, Netns: nsA, Src: srvAddr, Pid: 999, Lifetime: -1},
		},
		procs: "", connErrs: 1, bindErrs: 1,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Config{})
			applyChecked(t, m, tc.evs)
			s := m.Snapshot()
			var keys []string
			for _, r := range s.AllClosers[ByProcess] {
				keys = append(keys, r.Key)
			}
			slices.Sort(keys)
			if got := strings.Join(keys, ","); got != tc.procs {
				t.Errorf("process rows %q, want %q", got, tc.procs)
			}
			if s.Counters.Closes != tc.closes || s.Counters.ConnectAddrNotAvail != tc.connErrs || s.Counters.BindAddrInUse != tc.bindErrs {
				t.Errorf("closes %v errors %d/%d; want %v %d/%d", s.Counters.Closes, s.Counters.ConnectAddrNotAvail,
					s.Counters.BindAddrInUse, tc.closes, tc.connErrs, tc.bindErrs)
			}
			// what the process rows miss, the namespace row has
			ns := closers(s, ByNetns)["netns 7"]
			if ns.Closes != tc.closes || ns.ConnectErrors != tc.connErrs || ns.BindErrors != tc.bindErrs {
				t.Errorf("netns row %+v", ns)
			}
		})
	}
}
