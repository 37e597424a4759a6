package model

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// Events reach the model in ring buffer order: each socket's transitions
// in the order they happened (the socket lock orders them), but records of
// different sockets from different CPUs interleave, and a record's
// timestamp, read after its reservation, can be a few µs older than the
// record before it. None of that may change what the model counts.

// mixedConns makes n connections straddling the 2 s mark of event time:
// by turns the client closes first, the server closes first, both close
// at once, and the client resets. The client's TIME_WAIT sockets of every
// other connection (20 of 40) expire at the end. Connections are returned one stream each.
func mixedConns(n int) [][]event.Event {
	var out [][]event.Event
	var ends gen
	ends.t = 62e9
	for i := 0; i < n; i++ {
		g := gen{t: 1_999_800_000 + uint64(i)*20_000}
		cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(30000+i))
		c, s, twc, tws := uint64(100*i+1), uint64(100*i+2), uint64(0x10000+2*i), uint64(0x10000+2*i+1)
		g.open(c, s, cli)
		switch i % 4 {
		case 0:
			g.closeFirst(c, cli, srvAddr, clientPid, s, serverPid, twc)
		case 1:
			g.closeFirst(s, srvAddr, cli, serverPid, c, clientPid, tws)
		case 2:
			g.state(c, cli, srvAddr, event.Established, event.FinWait1, clientPid)
			g.state(s, srvAddr, cli, event.Established, event.FinWait1, serverPid)
			g.state(c, cli, srvAddr, event.FinWait1, event.Closing, 0)
			g.state(s, srvAddr, cli, event.FinWait1, event.Closing, 0)
			g.tw(event.KindTWCreate, twc, cli, srvAddr, 0, -1)
			g.state(c, cli, srvAddr, event.Closing, event.Close, 0)
			g.tw(event.KindTWCreate, tws, srvAddr, cli, 0, -1)
			g.state(s, srvAddr, cli, event.Closing, event.Close, 0)
		case 3:
			g.state(c, cli, srvAddr, event.Established, event.Close, clientPid)
			g.state(s, srvAddr, cli, event.Established, event.Close, 0)
		}
		out = append(out, g.evs)
		if i%2 == 0 {
			switch i % 4 {
			case 0, 2:
				ends.tw(event.KindTWExpire, twc, cli, srvAddr, event.CauseExpired, 60e9)
			}
		}
	}
	return append(out, ends.evs)
}

// reorder transformations of one connection's events.
func twAfterClose(evs []event.Event) []event.Event {
	// each TIME_WAIT creation delivered just after its socket's CLOSE,
	// keeping its (now older) timestamp
	out := slices.Clone(evs)
	for i := 0; i < len(out); i++ {
		if out[i].Kind != event.KindTWCreate {
			continue
		}
		for j := i + 1; j < len(out); j++ {
			if out[j].Kind == event.KindState && out[j].NewState == event.Close && out[j].Src == out[i].Src && out[j].Dst == out[i].Dst {
				tw := out[i]
				copy(out[i:j], out[i+1:j+1])
				out[j] = tw
				i = j
				break
			}
		}
	}
	return out
}

func twStampedAfterClose(evs []event.Event) []event.Event {
	// delivered before the CLOSE that follows it, stamped 2 µs after it
	out := slices.Clone(evs)
	for i := range out {
		if out[i].Kind == event.KindTWCreate && i+1 < len(out) {
			out[i].Time = out[i+1].Time + 2000
		}
	}
	return out
}

func unownedStampedEarlier(evs []event.Event) []event.Event {
	// every softirq transition stamped 3 µs before the record before it
	out := slices.Clone(evs)
	for i := 1; i < len(out); i++ {
		if out[i].Kind == event.KindState && !out[i].Owned() {
			out[i].Time = out[i-1].Time - 3000
		}
	}
	return out
}

func peerCloseFirst(evs []event.Event) []event.Event {
	// the passive side's LAST_ACK -> CLOSE (it got the closer's last ACK,
	// sent just before the closer's TIME_WAIT creation) delivered first
	out := slices.Clone(evs)
	for j := range out {
		if out[j].Kind != event.KindState || out[j].OldState != event.LastAck || out[j].NewState != event.Close {
			continue
		}
		for i := 0; i < j; i++ {
			if out[i].Kind == event.KindTWCreate {
				e := out[j]
				copy(out[i+1:j+1], out[i:j])
				out[i] = e
				break
			}
		}
	}
	return out
}

var reorders = map[string]func([]event.Event) []event.Event{
	"in order":                          func(e []event.Event) []event.Event { return e },
	"TIME_WAIT delivered after CLOSE":   twAfterClose,
	"TIME_WAIT stamped after CLOSE":     twStampedAfterClose,
	"softirq transitions stamped early": unownedStampedEarlier,
	"peer's close delivered first":      peerCloseFirst,
	"all of the above": func(e []event.Event) []event.Event {
		return unownedStampedEarlier(peerCloseFirst(twAfterClose(e)))
	},
}

// orderStream applies a reorder to every connection and interleaves
// connections pairwise when asked.
func orderStream(conns [][]event.Event, f func([]event.Event) []event.Event, mix bool) []event.Event {
	var out []event.Event
	for i := 0; i < len(conns); i++ {
		a := f(conns[i])
		if mix && i+1 < len(conns)-1 {
			b := f(conns[i+1])
			for len(a) > 0 || len(b) > 0 {
				if len(a) > 0 {
					out, a = append(out, a[0]), a[1:]
				}
				if len(b) > 0 {
					out, b = append(out, b[0]), b[1:]
				}
			}
			i++
			continue
		}
		out = append(out, a...)
	}
	return out
}

func orderStreams() map[string][]event.Event {
	conns := mixedConns(40)
	out := map[string][]event.Event{}
	for name, f := range reorders {
		out[name] = orderStream(conns, f, false)
		out[name+", two CPUs interleaved"] = orderStream(conns, f, true)
	}
	return out
}

// view is what must not depend on delivery order or timestamp jitter.
type view struct {
	Counters Counters
	Closers  [byKinds][]Closer
	Netns    []NetnsStats
	Ports    []PortPressure
	Open     int
}

func viewOf(s *Snapshot) view {
	v := view{Counters: s.Counters, Closers: s.AllClosers, Netns: s.Netns, Open: s.OpenNow}
	for _, p := range s.Ports {
		// rates and growth depend on the timestamps themselves
		v.Ports = append(v.Ports, PortPressure{Netns: p.Netns, Src: p.Src, Dst: p.Dst, Connecting: p.Connecting,
			Established: p.Established, Closing: p.Closing, TimeWait: p.TimeWait, Held: p.Held, Connections: p.Connections})
	}
	return v
}

func TestOutOfOrderEvents(t *testing.T) {
	conns := mixedConns(40)
	base := New(Config{})
	applyChecked(t, base, orderStream(conns, reorders["in order"], false))
	want := viewOf(base.Snapshot())
	// the baseline itself: 40 connections, 10 of each kind
	if want.Counters.Closes != [5]uint64{SideActive: 20, SidePassive: 20, SideSimultaneous: 20, SideReset: 20} ||
		want.Counters.Created != 40 || want.Counters.Ended[endExpired] != 20 || want.Open != 20 {
		t.Fatalf("baseline closes %v created %d expired %d open %d", want.Counters.Closes, want.Counters.Created,
			want.Counters.Ended[endExpired], want.Open)
	}
	for name, f := range reorders {
		for _, mix := range []bool{false, true} {
			t.Run(name+map[bool]string{true: ", two CPUs interleaved"}[mix], func(t *testing.T) {
				m := New(Config{})
				applyChecked(t, m, orderStream(conns, f, mix))
				s := m.Snapshot()
				if got := viewOf(s); !reflect.DeepEqual(got, want) {
					t.Fatalf("differs from the ordered stream:\n got %+v\nwant %+v", got, want)
				}
				// the connections straddle 2 s: every one counts in the rate
				// window however its records' timestamps jitter (checked
				// before the expiries a minute later empty the window)
				m = New(Config{})
				applyChecked(t, m, orderStream(conns[:len(conns)-1], f, mix))
				// (they take under a millisecond: the rate is over a second)
				if p := m.Snapshot().Ports[0]; p.NewPerSec != 40 || p.RateWindowS != 1 || p.Connections != 40 {
					t.Fatalf("rate %v over %v s, %d connections; want 40/s over 1 s, 40", p.NewPerSec, p.RateWindowS, p.Connections)
				}
			})
		}
	}
}
