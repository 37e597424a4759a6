package lifecycle

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// Records of a sock_diag scan carry synthetic ptrs; the Tracker matches
// them to the kernel's records by tuple.

// tuple n: 127.0.0.1:40000+n -> 127.0.0.1:80
func tuple(n uint16) func(*event.Event) {
	return func(e *event.Event) { e.Src = netip.AddrPortFrom(cli.Addr(), 40000+n) }
}

// diagScan adds a sock_diag scan showing the sockets with the given cookies
// (socket n has tuple n), with mod applied to each scan record.
func (s *stream) diagScan(ts uint64, mod func(*event.Event), cookies ...uint16) {
	for _, c := range cookies {
		s.add(0, ts, event.KindScanTW, event.SyntheticPtr(uint64(c)), func(e *event.Event) {
			tuple(c)(e)
			if mod != nil {
				mod(e)
			}
		})
	}
	s.add(0, ts, event.KindScanEnd, 0, func(e *event.Event) {
		e.Family, e.Src, e.Dst, e.NewState = 0, netip.AddrPort{}, netip.AddrPort{}, 0
		e.Aux = uint32(len(cookies))
	})
}

func both(fs ...func(*event.Event)) func(*event.Event) {
	return func(e *event.Event) {
		for _, f := range fs {
			f(e)
		}
	}
}

func TestTrackerDiagScan(t *testing.T) {
	tests := []struct {
		name  string
		build func(s *stream)
		want  []string
	}{{
		name: "scan records of sockets the kernel's records created are theirs",
		build: func(s *stream) {
			s.add(1, 1000*ms, event.KindTWCreate, 0xa0, tuple(1))
			s.add(1, 1100*ms, event.KindTWCreate, 0xb0, tuple(2))
			s.diagScan(1500*ms, nil, 1, 2) // first scan
			s.diagScan(2500*ms, nil, 1, 2)
			s.diagScan(3500*ms, nil, 1, 2)
			s.add(1, 61000*ms, event.KindTWExpire, 0xa0, tuple(1))
			s.add(1, 61100*ms, event.KindTWExpire, 0xb0, tuple(2))
			s.diagScan(62000*ms, nil)
			s.diagScan(63000*ms, nil)
		},
		want: []string{
			"tw_create a0", "tw_create b0",
			"scan_end 0", "scan_end 0", "scan_end 0",
			"tw_expire a0 expired 60000ms", "tw_expire b0 expired 60000ms",
			"scan_end 0", "scan_end 0",
		},
	}, {
		name: "a substate move only a scan shows is the kernel socket's",
		build: func(s *stream) {
			s.add(1, 1000*ms, event.KindTWCreate, 0xa0, both(tuple(1), func(e *event.Event) { e.NewState = event.FinWait2 }))
			s.diagScan(1500*ms, func(e *event.Event) { e.NewState = event.FinWait2 }, 1)
			s.diagScan(2500*ms, nil, 1)
		},
		want: []string{"tw_create a0", "scan_end 0", "tw_substate a0 1500ms reconciled", "scan_end 0"},
	}, {
		name: "a socket from before tracing ends once, by the kernel's record",
		build: func(s *stream) {
			s.diagScan(1000*ms, nil, 1)
			s.diagScan(2000*ms, nil, 1)
			s.add(1, 3000*ms, event.KindTWExpire, 0xa0, tuple(1))
			s.diagScan(4000*ms, nil)
			s.diagScan(5000*ms, nil)
		},
		want: []string{
			"tw_create 8000000000000003 existing", "scan_end 0", "scan_end 0",
			"tw_expire 8000000000000003 expired",
			"scan_end 0", "scan_end 0",
		},
	}, {
		name: "tracepoint tier: re-arm, reception and the timer wheel's detach of a socket from before tracing",
		build: func(s *stream) {
			s.diagScan(1000*ms, func(e *event.Event) { e.NewState = event.FinWait2 }, 1)
			s.add(1, 1500*ms, event.KindTWCancel, 0xa0, both(tuple(1), func(e *event.Event) { e.NewState = event.FinWait2; e.Flags |= event.FlagInferred }))
			s.add(1, 1500*ms+5, event.KindTWArm, 0xa0, both(tuple(1), func(e *event.Event) { e.NewState = event.FinWait2 }))
			s.add(0, 1600*ms, event.KindTWRx, 0xa0, tuple(1)) // the peer's FIN
			s.diagScan(2000*ms, nil, 1)
			s.add(1, 61600*ms, event.KindTWCancel, 0xa0, both(tuple(1), func(e *event.Event) { e.Flags |= event.FlagInferred }))
			s.add(1, 61600*ms+5, event.KindTWExpire, 0xa0, tuple(1))
			s.diagScan(62000*ms, nil)
			s.diagScan(63000*ms, nil)
		},
		want: []string{
			"tw_create 8000000000000003 existing", "scan_end 0",
			"tw_rx 8000000000000003", "tw_substate 8000000000000003",
			"scan_end 0",
			"tw_expire 8000000000000003 expired",
			"scan_end 0", "scan_end 0",
		},
	}, {
		name: "a creation read after the first scan that saw the socket gives its birth",
		build: func(s *stream) {
			s.diagScan(1000*ms, nil, 1)
			s.add(1, 999*ms, event.KindTWCreate, 0xa0, tuple(1))
			s.diagScan(2000*ms, nil, 1)
			s.add(1, 3000*ms, event.KindTWKill, 0xa0, both(tuple(1), func(e *event.Event) { e.Cause = event.CauseRSTReceived }))
			s.diagScan(4000*ms, nil)
			s.diagScan(5000*ms, nil)
		},
		want: []string{
			"tw_create 8000000000000003 existing", "scan_end 0", "scan_end 0",
			"tw_kill 8000000000000003 rst_received 2001ms",
			"scan_end 0", "scan_end 0",
		},
	}, {
		name: "creations drained before the first scan's end are the sockets it showed, neither doubled nor existing",
		build: func(s *stream) {
			for _, c := range []uint16{1, 2} {
				s.add(0, 1000*ms, event.KindScanTW, event.SyntheticPtr(uint64(c)), tuple(c))
			}
			s.add(1, 995*ms, event.KindTWCreate, 0xa0, tuple(1))
			s.add(1, 996*ms, event.KindTWCreate, 0xb0, tuple(2))
			s.add(1, 998*ms, event.KindTWKill, 0xb0, both(tuple(2), func(e *event.Event) { e.Cause = event.CauseRSTSent }))
			s.add(0, 1000*ms, event.KindScanEnd, 0, func(e *event.Event) {
				e.Family, e.Src, e.Dst, e.NewState = 0, netip.AddrPort{}, netip.AddrPort{}, 0
				e.Aux = 2
			})
			s.diagScan(2000*ms, nil, 1)
			s.diagScan(3000*ms, nil, 1)
			s.add(1, 60995*ms, event.KindTWExpire, 0xa0, tuple(1))
		},
		want: []string{
			"tw_create a0", "tw_create b0", "tw_kill b0 rst_sent 2ms",
			"scan_end 0", "scan_end 0", "scan_end 0",
			"tw_expire a0 expired 60000ms",
		},
	}, {
		name: "a creation read after a later scan that saw the socket is not doubled",
		build: func(s *stream) {
			s.diagScan(1000*ms, nil)
			s.diagScan(2000*ms, nil, 1) // unknown: the creation is still in the ring
			s.add(1, 1999*ms, event.KindTWCreate, 0xa0, tuple(1))
			s.diagScan(3000*ms, nil, 1)
			s.diagScan(4000*ms, nil, 1)
			s.add(1, 61999*ms, event.KindTWExpire, 0xa0, tuple(1))
		},
		want: []string{
			"scan_end 0", "scan_end 0",
			"tw_create a0",
			"scan_end 0", "scan_end 0",
			"tw_expire a0 expired 60000ms",
		},
	}, {
		name: "sockets only the scans ever saw end once, as vanished",
		build: func(s *stream) {
			s.diagScan(1000*ms, nil, 1)
			s.diagScan(2000*ms, nil, 1, 2)
			s.diagScan(3000*ms, nil, 2)
			s.diagScan(4000*ms, nil)
			s.diagScan(5000*ms, nil)
			s.diagScan(6000*ms, nil)
		},
		want: []string{
			"tw_create 8000000000000003 existing", "scan_end 0",
			"scan_end 0",
			"tw_create 8000000000000005 inferred reconciled", "scan_end 0",
			"tw_kill 8000000000000003 vanished inferred reconciled", "scan_end 0",
			"tw_kill 8000000000000005 vanished 2000ms inferred reconciled", "scan_end 0",
			"scan_end 0",
		},
	}, {
		name: "an address that shows another tuple holds another socket",
		build: func(s *stream) {
			s.diagScan(1000*ms, nil, 1)
			s.add(0, 1500*ms, event.KindTWRx, 0xa0, tuple(1)) // 0xa0 is socket 1's address
			// socket 1 ended unseen; a new socket took its memory
			s.add(1, 2000*ms, event.KindTWCreate, 0xa0, tuple(3))
			s.diagScan(2500*ms, nil, 3)
			s.diagScan(3500*ms, nil, 3)
			s.add(1, 4000*ms, event.KindTWExpire, 0xa0, tuple(3))
		},
		want: []string{
			"tw_create 8000000000000003 existing", "scan_end 0",
			"tw_rx 8000000000000003",
			"tw_create a0", "scan_end 0",
			"tw_kill 8000000000000003 vanished inferred reconciled", "scan_end 0",
			"tw_expire a0 expired 2000ms",
		},
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

// A stream of kernel addresses only, odd test numbers included, never
// builds the tuple index.
func TestTrackerNoDiagIndexWithoutSyntheticPtrs(t *testing.T) {
	var s stream
	s.add(0, 1000*ms, event.KindScanTW, 0x1, nil)
	s.add(0, 1000*ms, event.KindScanEnd, 0, nil)
	s.add(1, 1500*ms, event.KindTWCreate, 0x3, tuple(2))
	s.add(1, 1600*ms, event.KindTWExpire, 0x3, tuple(2))
	tk := NewTracker(250)
	for i := range s.out {
		tk.Add(&s.out[i], func(*event.Event) {})
	}
	if tk.diag != nil {
		t.Fatal("tuple index built for a stream without synthetic ptrs")
	}
}

// simSock is a timewait socket of the simulated kernel below.
type simSock struct {
	id       uint16 // its tuple (tuple(id)) and cookie
	addr     uint64
	lostEnd  bool // its end left no record
	existing bool // it existed before tracing
}

// A simulated kernel whose timewait sockets are scanned over sock_diag:
// some exist before tracing, some creations reach the stream only after
// the scan that saw the socket, some ends leave no record, and addresses
// are reused. Every socket must be created once and ended once, all its
// events under one ptr, and only the ends that left no record vanish.
func TestTrackerDiagInvariants(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var s stream
		var live []*simSock
		var raced []*simSock // created, their creation record held back until after the next scan
		var free []uint64
		nextAddr := uint64(0x1000)
		nextID := uint16(1)
		newSock := func() *simSock {
			k := &simSock{id: nextID}
			nextID++
			if len(free) > 0 && rng.IntN(2) == 0 {
				k.addr, free = free[0], free[1:]
			} else {
				k.addr = nextAddr
				nextAddr += 0x40
			}
			return k
		}
		create := func(ts uint64, k *simSock) {
			s.add(uint16(k.id%4), ts, event.KindTWCreate, k.addr, tuple(k.id))
		}
		scan := func(ts uint64) {
			var ids []uint16
			for _, k := range live {
				ids = append(ids, k.id)
			}
			rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			s.diagScan(ts, nil, ids...)
			for _, k := range raced {
				create(ts-ms, k)
			}
			raced = nil
		}
		all := map[uint16]*simSock{}
		for range 5 {
			k := newSock()
			k.existing = true
			live = append(live, k)
			all[k.id] = k
		}
		ts := uint64(1000 * ms)
		scan(ts)
		for tick := range 400 {
			ts += 10 * ms
			if tick < 300 && rng.IntN(3) == 0 {
				k := newSock()
				live = append(live, k)
				all[k.id] = k
				if rng.IntN(4) == 0 {
					raced = append(raced, k)
				} else {
					create(ts, k)
				}
			}
			if len(live) > 0 && rng.IntN(3) == 0 {
				i := rng.IntN(len(live))
				k := live[i]
				if !containsSock(raced, k) {
					live = append(live[:i], live[i+1:]...)
					switch rng.IntN(6) {
					case 0:
						k.lostEnd = true // its address is not reused: the kernel would show a new socket there
					case 1:
						s.add(uint16(k.id%4), ts, event.KindTWKill, k.addr, both(tuple(k.id), func(e *event.Event) { e.Cause = event.CauseRSTReceived }))
						free = append(free, k.addr)
					default:
						s.add(uint16(k.id%4), ts, event.KindTWExpire, k.addr, tuple(k.id))
						free = append(free, k.addr)
					}
				}
			}
			if tick%10 == 9 {
				scan(ts)
			}
		}
		for _, k := range live {
			s.add(uint16(k.id%4), ts, event.KindTWExpire, k.addr, tuple(k.id))
		}
		live = nil
		scan(ts + 1000*ms)
		scan(ts + 2000*ms)
		scan(ts + 3000*ms)

		tk := NewTracker(250)
		createdAs := map[uint16]uint64{}
		ended := map[uint16]bool{}
		open := map[uint64]bool{}
		emit := func(e *event.Event) {
			id := e.Src.Port() - 40000
			k := all[id]
			switch e.Kind {
			case event.KindTWCreate:
				if _, dup := createdAs[id]; dup || open[e.Ptr] {
					t.Fatalf("seed %d: socket %d created again as %x", seed, id, e.Ptr)
				}
				if (e.Flags&event.FlagExisting != 0) != k.existing {
					t.Fatalf("seed %d: socket %d existing flag %v", seed, id, e.Flags&event.FlagExisting != 0)
				}
				createdAs[id] = e.Ptr
				open[e.Ptr] = true
			case event.KindTWExpire, event.KindTWKill:
				p, ok := createdAs[id]
				if !ok || ended[id] || p != e.Ptr || !open[e.Ptr] {
					t.Fatalf("seed %d: socket %d ended as %x: created as %x (%v), ended before %v", seed, id, e.Ptr, p, ok, ended[id])
				}
				if (e.Cause == event.CauseVanished) != k.lostEnd {
					t.Fatalf("seed %d: socket %d ended %s, its end record lost: %v", seed, id, e.Cause, k.lostEnd)
				}
				ended[id] = true
				delete(open, e.Ptr)
			}
		}
		for i := range s.out {
			tk.Add(&s.out[i], emit)
		}
		tk.Flush(emit)
		if len(createdAs) != len(all) || len(ended) != len(all) || tk.Open() != 0 {
			t.Fatalf("seed %d: %d sockets, %d created, %d ended, %d open", seed, len(all), len(createdAs), len(ended), tk.Open())
		}
		if d := tk.diag; len(d.real)+len(d.synth)+len(d.alias)+len(d.back) != 0 {
			t.Fatalf("seed %d: index left with %d real, %d synthetic, %d aliases, %d back", seed, len(d.real), len(d.synth), len(d.alias), len(d.back))
		}
	}
}

func containsSock(ks []*simSock, k *simSock) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}
