package lifecycle

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// synthetic record builders

var (
	cli = netip.MustParseAddrPort("127.0.0.1:40000")
	srv = netip.MustParseAddrPort("127.0.0.1:80")
)

type stream struct {
	seq map[uint16]uint32
	out []event.Event
}

func (s *stream) add(cpu uint16, ts uint64, kind event.Kind, ptr uint64, mod func(*event.Event)) {
	if s.seq == nil {
		s.seq = map[uint16]uint32{}
	}
	e := event.Event{Kind: kind, Time: ts, CPU: cpu, Seq: s.seq[cpu], Ptr: ptr, Netns: 1,
		Family: event.AFInet, Src: cli, Dst: srv, NewState: event.TimeWait, Lifetime: -1}
	s.seq[cpu]++
	if mod != nil {
		mod(&e)
	}
	s.out = append(s.out, e)
}

// run feeds the stream and returns one line per emitted event:
// "kind cause lifetime_ms flags".
func (s *stream) run() []string {
	tk := NewTracker(250)
	var lines []string
	emit := func(e *event.Event) {
		l := fmt.Sprintf("%s %x", e.Kind, e.Ptr)
		if e.Kind == event.KindTWKill || e.Kind == event.KindTWExpire {
			l += " " + map[bool]string{true: event.CauseExpired.String(), false: e.Cause.String()}[e.Kind == event.KindTWExpire]
		}
		if e.Lifetime >= 0 {
			l += fmt.Sprintf(" %dms", e.Lifetime/1e6)
		}
		if e.Flags&event.FlagInferred != 0 {
			l += " inferred"
		}
		if e.Flags&event.FlagExisting != 0 {
			l += " existing"
		}
		if e.Flags&event.FlagReconciled != 0 {
			l += " reconciled"
		}
		lines = append(lines, l)
	}
	for i := range s.out {
		tk.Add(&s.out[i], emit)
	}
	tk.Flush(emit)
	return lines
}

const ms = uint64(1e6)

func TestTrackerTracepointTier(t *testing.T) {
	inferred := func(c event.Cause) func(*event.Event) {
		return func(e *event.Event) { e.Cause = c; e.Flags |= event.FlagInferred }
	}
	tests := []struct {
		name  string
		build func(s *stream)
		want  []string
	}{{
		name: "arm creates, expiry ends with lifetime",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 61000*ms, event.KindTWCancel, 0xa, inferred(event.CauseUnknown)) // timer wheel detach
			s.add(1, 61000*ms+10, event.KindTWExpire, 0xa, nil)
		},
		want: []string{"tw_create a", "tw_expire a expired 60000ms"},
	}, {
		name: "cancel then arm on the same CPU is a re-arm",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 2000*ms, event.KindTWCancel, 0xa, inferred(event.CauseUnknown))
			s.add(1, 2000*ms+5, event.KindTWArm, 0xa, nil)
			s.add(0, 62000*ms, event.KindTWExpire, 0xa, nil)
		},
		want: []string{"tw_create a", "tw_expire a expired 61000ms"},
	}, {
		name: "a re-arm that moves FIN_WAIT2 to TIME_WAIT is a substate change",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, func(e *event.Event) { e.NewState = event.FinWait2 })
			s.add(1, 1200*ms, event.KindTWCancel, 0xa, inferred(event.CauseUnknown))
			s.add(1, 1200*ms+5, event.KindTWArm, 0xa, nil)
		},
		want: []string{"tw_create a", "tw_substate a 200ms"},
	}, {
		name: "cancel inside connect is a reuse and its kill",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 2500*ms+1, event.KindTWCancel, 0xa, func(e *event.Event) {
				e.Cause = event.CauseConnectReuse
				e.Flags |= event.FlagInferred | event.FlagInConnect
			})
			s.add(1, 2500*ms+2, event.KindState, 0xb, func(e *event.Event) { e.OldState, e.NewState = event.SynSent, event.Established })
		},
		want: []string{"tw_create a", "tw_reuse a 1500ms inferred", "tw_kill a connect_reuse 1500ms inferred", "state b"},
	}, {
		name: "an arm written before the first scan but read after it is the birth",
		build: func(s *stream) {
			// the scan ran while the arm was still in the ring buffer: it
			// takes the socket for one that existed before tracing
			s.add(1, 1100*ms, event.KindScanTW, 0xa, nil)
			s.add(1, 1100*ms+1, event.KindScanEnd, 0, nil)
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 2500*ms+1, event.KindTWCancel, 0xa, func(e *event.Event) {
				e.Cause = event.CauseConnectReuse
				e.Flags |= event.FlagInferred | event.FlagInConnect
			})
			s.add(1, 2500*ms+2, event.KindState, 0xb, func(e *event.Event) { e.OldState, e.NewState = event.SynSent, event.Established })
		},
		want: []string{"tw_create a existing", "scan_end 0", "tw_reuse a 1500ms inferred", "tw_kill a connect_reuse 1500ms inferred", "state b"},
	}, {
		name: "an arm after the first scan saw the socket stays a re-arm",
		build: func(s *stream) {
			s.add(1, 1100*ms, event.KindScanTW, 0xa, nil)
			s.add(1, 1100*ms+1, event.KindScanEnd, 0, nil)
			s.add(0, 1200*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 2500*ms+1, event.KindTWCancel, 0xa, func(e *event.Event) {
				e.Cause = event.CauseConnectReuse
				e.Flags |= event.FlagInferred | event.FlagInConnect
			})
			s.add(1, 2500*ms+2, event.KindState, 0xb, func(e *event.Event) { e.OldState, e.NewState = event.SynSent, event.Established })
		},
		want: []string{"tw_create a existing", "scan_end 0", "tw_reuse a inferred", "tw_kill a connect_reuse inferred", "state b"},
	}, {
		name: "unknown kill followed by a server socket on the tuple is a SYN takeover",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 3000*ms, event.KindTWCancel, 0xa, inferred(event.CauseUnknown))
			s.add(1, 3000*ms+100, event.KindState, 0xb, func(e *event.Event) { e.OldState, e.NewState = event.Listen, event.SynRecv })
		},
		want: []string{"tw_create a", "tw_kill a syn 2000ms inferred", "state b"},
	}, {
		name: "a SYN takeover matches at ESTABLISHED where SYN_RECV lacks the peer (5.10)",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 3000*ms, event.KindTWCancel, 0xa, inferred(event.CauseUnknown))
			s.add(1, 3000*ms+100, event.KindState, 0xb, func(e *event.Event) {
				e.OldState, e.NewState = event.Listen, event.SynRecv
				e.Dst = netip.MustParseAddrPort("0.0.0.0:0")
			})
			s.add(1, 3000*ms+200, event.KindState, 0xb, func(e *event.Event) { e.OldState, e.NewState = event.SynRecv, event.Established })
		},
		want: []string{"tw_create a", "state b", "tw_kill a syn 2000ms inferred", "state b"},
	}, {
		name: "a scan that misses a socket whose kill awaits a SYN does not end it again",
		build: func(s *stream) {
			scanEnd := func(e *event.Event) { e.Family = 0; e.Src, e.Dst = netip.AddrPort{}, netip.AddrPort{} }
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(0, 1500*ms, event.KindScanTW, 0xa, nil)
			s.add(0, 1500*ms, event.KindScanEnd, 0, scanEnd)
			s.add(1, 3000*ms, event.KindTWCancel, 0xa, inferred(event.CauseUnknown))
			s.add(0, 3000*ms+2*ms, event.KindScanEnd, 0, scanEnd) // 0xa missing
			s.add(0, 3500*ms, event.KindScanEnd, 0, scanEnd)      // settles it
			s.add(1, 3600*ms, event.KindState, 0xb, func(e *event.Event) { e.OldState, e.NewState = event.SynRecv, event.Established })
		},
		want: []string{"tw_create a", "scan_end 0", "scan_end 0", "scan_end 0", "tw_kill a syn 2000ms inferred", "state b"},
	}, {
		name: "unknown kill without a new connection stays unknown after the window",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 3000*ms, event.KindTWCancel, 0xa, inferred(event.CauseUnknown))
			s.add(0, 5000*ms, event.KindState, 0xb, func(e *event.Event) { e.Src = netip.MustParseAddrPort("127.0.0.1:1") })
		},
		want: []string{"tw_create a", "tw_kill a unknown 2000ms inferred", "state b"},
	}, {
		name: "a cancel read after later records and followed by its expiry is the wheel's detach",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			// the scan's records are stamped later than the ring's records
			// of the time its walk took, and handed out before them
			s.add(0, 61005*ms, event.KindScanTW, 0xc, func(e *event.Event) { e.Seq = 0 })
			s.add(1, 61000*ms, event.KindTWCancel, 0xa, inferred(event.CauseUnknown))
			s.add(0, 61000*ms+5, event.KindState, 0xb, nil)
			s.add(1, 61000*ms+10, event.KindTWExpire, 0xa, nil)
			// its memory holds a new timewait socket, which nothing ends
			s.add(0, 61200*ms, event.KindTWArm, 0xa, func(e *event.Event) { e.Src = netip.MustParseAddrPort("127.0.0.1:40001") })
			s.add(0, 62500*ms, event.KindState, 0xb, nil)
		},
		want: []string{"tw_create a", "state b", "tw_expire a expired 60000ms", "tw_create a", "state b"},
	}, {
		name: "a scan record on a cancel's CPU does not settle it",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 2000*ms, event.KindTWCancel, 0xa, func(e *event.Event) { e.Seq = 5 })
			s.add(1, 2000*ms, event.KindScanTW, 0xa, func(e *event.Event) { e.Seq = 0 }) // not in the CPU's sequence
			s.add(1, 2000*ms+5, event.KindTWArm, 0xa, func(e *event.Event) { e.Seq = 6 })
			s.add(0, 62000*ms, event.KindTWExpire, 0xa, nil)
		},
		want: []string{"tw_create a", "tw_expire a expired 61000ms"},
	}, {
		name: "an arm of a new socket at the address of one whose kill is read late",
		build: func(s *stream) {
			other := netip.MustParseAddrPort("127.0.0.1:40001")
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			// the kill's record overtaken by the new socket's arm
			s.add(0, 3000*ms, event.KindTWArm, 0xa, func(e *event.Event) { e.Src = other })
			s.add(1, 2999*ms, event.KindTWKill, 0xa, func(e *event.Event) { e.Cause = event.CauseRSTSent })
			s.add(0, 63000*ms, event.KindTWExpire, 0xa, func(e *event.Event) { e.Src = other })
		},
		// the kill, read after the new socket took the address over, ended
		// nothing tracked: the creation replaced the socket it ends
		want: []string{"tw_create a", "tw_create a", "tw_expire a expired 60000ms"},
	}, {
		name: "an arm on another CPU at the address of a pending cancel makes the cancel a kill",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 3000*ms, event.KindTWCancel, 0xa, inferred(event.CauseRSTSent))
			s.add(0, 3000*ms+100, event.KindTWArm, 0xa, func(e *event.Event) { e.Src = netip.MustParseAddrPort("127.0.0.1:40001") })
			s.add(0, 63000*ms+100, event.KindTWExpire, 0xa, func(e *event.Event) { e.Src = netip.MustParseAddrPort("127.0.0.1:40001") })
		},
		want: []string{"tw_create a", "tw_kill a rst_sent 2000ms inferred", "tw_create a", "tw_expire a expired 60000ms"},
	}, {
		name: "a cancel on an idle CPU settles by stream time",
		build: func(s *stream) {
			s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
			s.add(1, 3000*ms, event.KindTWCancel, 0xa, inferred(event.CauseRSTSent))
			s.add(0, 3000*ms+2*ms, event.KindState, 0xb, nil)
		},
		want: []string{"tw_create a", "tw_kill a rst_sent 2000ms inferred", "state b"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s stream
			tc.build(&s)
			got := s.run()
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestTrackerExactTier(t *testing.T) {
	var s stream
	s.add(0, 1000*ms, event.KindTWCreate, 0xa, nil)
	s.add(0, 1000*ms, event.KindTWCreate, 0xc, func(e *event.Event) { e.NewState = event.FinWait2 })
	s.add(1, 1500*ms, event.KindTWRx, 0xc, func(e *event.Event) { e.Aux = uint32(event.RxACK) }) // the peer's FIN
	s.add(1, 2000*ms, event.KindTWKill, 0xa, func(e *event.Event) { e.Cause = event.CauseSYN })
	s.add(1, 3000*ms, event.KindTWExpire, 0xc, nil)
	s.add(1, 4000*ms, event.KindTWExpire, 0xd, nil) // never seen created
	want := []string{"tw_create a", "tw_create c", "tw_rx c", "tw_substate c 500ms", "tw_kill a syn 1000ms", "tw_expire c expired 2000ms", "tw_expire d expired"}
	if got := s.run(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestTrackerScanReconcile(t *testing.T) {
	scan := func(s *stream, ts uint64, ptrs ...uint64) {
		for _, p := range ptrs {
			s.add(0, ts, event.KindScanTW, p, nil)
		}
		s.add(0, ts, event.KindScanEnd, 0, func(e *event.Event) { e.Family = 0; e.Src, e.Dst = netip.AddrPort{}, netip.AddrPort{} })
	}
	var s stream
	scan(&s, 1000*ms, 0x1)                          // existing at start
	s.add(1, 1500*ms, event.KindTWCreate, 0x2, nil) // seen created
	s.add(1, 1600*ms, event.KindTWCreate, 0x3, nil) // seen created, end missed
	scan(&s, 2000*ms, 0x1, 0x2, 0x4)                // 0x3 missing, 0x4 unknown
	scan(&s, 3000*ms, 0x1, 0x2, 0x4)                // settles the previous scan
	s.add(1, 3500*ms, event.KindTWExpire, 0x1, nil) // existing: lifetime unknown
	want := []string{
		"tw_create 1 existing", "scan_end 0",
		"tw_create 2", "tw_create 3",
		"scan_end 0",
		"tw_kill 3 vanished 400ms inferred reconciled",
		"tw_create 4 inferred reconciled",
		"scan_end 0",
		"tw_expire 1 expired",
	}
	got := s.run()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// A scan of a changing table may skip a socket that is there, and an
// address may hold a new timewait socket by the time a scan is settled:
// neither is an end.
func TestTrackerScanRaces(t *testing.T) {
	scanEnd := func(s *stream, ts, start uint64, ptrs ...uint64) {
		for _, p := range ptrs {
			s.add(0, ts-1, event.KindScanTW, p, nil)
		}
		s.add(0, ts, event.KindScanEnd, 0, func(e *event.Event) {
			e.Family = 0
			e.Src, e.Dst = netip.AddrPort{}, netip.AddrPort{}
			e.Aux2 = uint32((ts - start) / 1000)
		})
	}
	other := func(e *event.Event) { e.Src = netip.MustParseAddrPort("127.0.0.1:40001") }
	tests := []struct {
		name  string
		build func(s *stream)
		want  []string
	}{{
		name: "a socket one scan skips and the next shows is not an end",
		build: func(s *stream) {
			s.add(1, 1000*ms, event.KindTWCreate, 0xa, nil)
			scanEnd(s, 1500*ms, 1490*ms, 0xa)
			scanEnd(s, 2500*ms, 2490*ms)      // the walk skipped it
			scanEnd(s, 3500*ms, 3490*ms, 0xa) // there it is
			scanEnd(s, 4500*ms, 4490*ms, 0xa)
			s.add(1, 61000*ms, event.KindTWExpire, 0xa, nil)
		},
		want: []string{"tw_create a", "scan_end 0", "scan_end 0", "scan_end 0", "scan_end 0", "tw_expire a expired 60000ms"},
	}, {
		name: "an address taken by a new socket before the settling scan",
		build: func(s *stream) {
			s.add(1, 1000*ms, event.KindTWCreate, 0xa, nil)
			scanEnd(s, 1500*ms, 1490*ms, 0xa)
			scanEnd(s, 2000*ms, 1990*ms) // 0xa ended during the walk...
			s.add(1, 1995*ms, event.KindTWKill, 0xa, func(e *event.Event) { e.Cause = event.CauseRSTSent })
			s.add(1, 2500*ms, event.KindTWCreate, 0xa, other) // ...and its memory holds a new one
			scanEnd(s, 3000*ms, 2990*ms, 0xa)
			scanEnd(s, 4000*ms, 3990*ms, 0xa)
		},
		want: []string{"tw_create a", "scan_end 0", "scan_end 0", "tw_kill a rst_sent 995ms", "tw_create a", "scan_end 0", "scan_end 0"},
	}, {
		name: "a socket created while the scan walked, ended before the next, ends once by its record",
		build: func(s *stream) {
			scanEnd(s, 1000*ms, 990*ms)
			s.add(1, 1995*ms, event.KindTWCreate, 0xa, nil) // read before the scan's end
			scanEnd(s, 2000*ms, 1990*ms)                    // the walk had passed its bucket
			s.add(1, 2200*ms, event.KindTWKill, 0xa, func(e *event.Event) { e.Cause = event.CauseRSTSent })
			scanEnd(s, 3000*ms, 2990*ms)
			scanEnd(s, 4000*ms, 3990*ms)
		},
		want: []string{"scan_end 0", "tw_create a", "scan_end 0", "tw_kill a rst_sent 205ms", "scan_end 0", "scan_end 0"},
	}, {
		name: "a first scan shows a socket whose creation the ring had not handed out yet: created, not existing",
		build: func(s *stream) {
			s.add(0, 999*ms, event.KindScanTW, 0xa, nil)
			s.add(0, 999*ms, event.KindScanTW, 0xb, nil)
			s.add(1, 995*ms, event.KindTWCreate, 0xa, nil) // drained after the walk, before its end
			s.add(1, 996*ms, event.KindTWCreate, 0xb, nil)
			s.add(1, 998*ms, event.KindTWKill, 0xb, func(e *event.Event) { e.Cause = event.CauseRSTSent })
			scanEnd(s, 1000*ms, 990*ms)
			scanEnd(s, 2000*ms, 1990*ms, 0xa)
			scanEnd(s, 3000*ms, 2990*ms, 0xa)
		},
		want: []string{"tw_create a", "tw_create b", "tw_kill b rst_sent 2ms", "scan_end 0", "scan_end 0", "scan_end 0"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s stream
			tc.build(&s)
			got := s.run()
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// Invariant on a long random-ish stream: every created socket is ended or
// still open, never both, and no end is emitted twice.
func TestTrackerInvariants(t *testing.T) {
	var s stream
	ts := uint64(1)
	for i := uint64(0); i < 2000; i++ {
		ptr := 0x1000 + i%300 // addresses are reused
		ts += 7 * ms
		s.add(uint16(i%2), ts, event.KindTWArm, ptr, nil)
		ts += 3 * ms
		switch i % 3 {
		case 0:
			s.add(uint16(i%2), ts, event.KindTWCancel, ptr, func(e *event.Event) { e.Flags |= event.FlagInferred })
			s.add(uint16(i%2), ts+1, event.KindTWExpire, ptr, nil)
		case 1:
			s.add(uint16((i+1)%2), ts, event.KindTWCancel, ptr, func(e *event.Event) { e.Cause = event.CauseConnectReuse; e.Flags |= event.FlagInferred })
		}
	}
	tk := NewTracker(250)
	created, ended := 0, 0
	open := map[uint64]bool{}
	emit := func(e *event.Event) {
		switch e.Kind {
		case event.KindTWCreate:
			if open[e.Ptr] {
				t.Fatalf("created %x twice", e.Ptr)
			}
			open[e.Ptr] = true
			created++
		case event.KindTWExpire, event.KindTWKill:
			if !open[e.Ptr] {
				t.Fatalf("ended %x that is not open", e.Ptr)
			}
			delete(open, e.Ptr)
			ended++
		}
	}
	for i := range s.out {
		tk.Add(&s.out[i], emit)
	}
	tk.Flush(emit)
	if created != ended+tk.Open() || tk.Open() != len(open) {
		t.Fatalf("created %d != ended %d + open %d (%d)", created, ended, tk.Open(), len(open))
	}
}

type sliceSource struct {
	recs [][]byte
	err  error
}

func (s *sliceSource) Next() ([]byte, error) {
	if len(s.recs) == 0 {
		return nil, s.err
	}
	r := s.recs[0]
	s.recs = s.recs[1:]
	return r, nil
}

// A Stream yields what Add and Flush emit, then the source's error.
func TestStreamFlushesThenFails(t *testing.T) {
	var s stream
	s.add(0, 1000*ms, event.KindTWArm, 0xa, nil)
	s.add(1, 2000*ms, event.KindTWCancel, 0xa, func(e *event.Event) { e.Cause = event.CauseRSTSent; e.Flags |= event.FlagInferred })
	src := &sliceSource{err: errTest}
	for i := range s.out {
		b := make([]byte, event.RecordSize)
		event.Encode(&s.out[i], b)
		src.recs = append(src.recs, b)
	}
	st := NewStream(src, 250)
	var kinds []string
	for {
		e, err := st.Next()
		if err != nil {
			if err != errTest {
				t.Fatalf("err = %v", err)
			}
			break
		}
		kinds = append(kinds, e.Kind.String()+" "+e.Cause.String())
	}
	want := "tw_create unknown|tw_kill rst_sent"
	if strings.Join(kinds, "|") != want {
		t.Fatalf("got %q want %q", strings.Join(kinds, "|"), want)
	}
}

var errTest = fmt.Errorf("end of test records")

// A substate move that left no timer record (on the tracepoint tier, the
// peer's FIN in the same jiffy re-arms the timer to the same expiry) is
// reported when the scan shows the socket in its new substate.
func TestScanShowsSubstateMove(t *testing.T) {
	tk := NewTracker(250)
	var out []event.Event
	emit := func(e *event.Event) { out = append(out, *e) }
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	dst := netip.MustParseAddrPort("127.0.0.1:80")
	tw := event.Event{Kind: event.KindTWCreate, Time: 1e9, Ptr: 0xa0, Netns: 7, Family: event.AFInet, Src: src, Dst: dst, NewState: event.FinWait2}
	tk.Add(&tw, emit)
	scan := func(at uint64, st event.State) {
		tk.Add(&event.Event{Kind: event.KindScanTW, Time: at, Ptr: 0xa0, Netns: 7, Family: event.AFInet, Src: src, Dst: dst, NewState: st}, emit)
		tk.Add(&event.Event{Kind: event.KindScanEnd, Time: at, Netns: 7}, emit)
	}
	scan(1.5e9, event.FinWait2) // first scan: still FIN_WAIT2, nothing to say
	scan(2.5e9, event.TimeWait)
	scan(3.5e9, event.TimeWait) // no second move
	var moves []event.Event
	for _, e := range out {
		if e.Kind == event.KindTWSubstate {
			moves = append(moves, e)
		}
	}
	if len(moves) != 1 || moves[0].NewState != event.TimeWait || moves[0].Time != 2.5e9 ||
		moves[0].Flags&event.FlagReconciled == 0 || moves[0].Lifetime != 1.5e9 {
		t.Fatalf("substate moves %+v, want one move to TIME_WAIT at 2.5 s, reconciled, 1.5 s old", moves)
	}
}
