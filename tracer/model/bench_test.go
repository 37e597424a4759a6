package model

import (
	"net/netip"
	"runtime"
	"testing"

	"github.com/twtop/twtop/tracer/event"
)

// churn builds the events of n client-closes-first connections with their
// TIME_WAIT sockets, each ended after a lifetime: 13 events a connection,
// the stream twtop sees from a busy proxy.
func churn(n int) []event.Event {
	var g gen
	g.evs = make([]event.Event, 0, n*13)
	for i := 0; i < n; i++ {
		cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(1024+i%60000))
		c, s, tw := uint64(16*i+1), uint64(16*i+2), uint64(16*i+3)
		g.open(c, s, cli)
		g.closeFirst(c, cli, srvAddr, clientPid, s, serverPid, tw)
		if i >= 1000 { // keep about 1000 open
			old := uint64(16*(i-1000) + 3)
			g.tw(event.KindTWExpire, old, cli, srvAddr, event.CauseExpired, 60e9)
		}
	}
	return g.evs
}

// BenchmarkApply reports events/s on one core (target: 5M/s and more).
func BenchmarkApply(b *testing.B) {
	evs := churn(20000)
	m := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Apply(&evs[i%len(evs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkApplyOverflow is BenchmarkApply for a host at
// tcp_max_tw_buckets: every close that would leave a TIME_WAIT socket
// leaves none (the kernel counts an overflow), so each one's books wait
// for a TIME_WAIT socket that never comes until newer closes push them
// out.
func BenchmarkApplyOverflow(b *testing.B) {
	var g gen
	const n = 20000
	g.evs = make([]event.Event, 0, n*12)
	for i := 0; i < n; i++ {
		cli := netip.AddrPortFrom(cliAddr.Addr(), uint16(1024+i%60000))
		c, s := uint64(16*i+1), uint64(16*i+2)
		g.open(c, s, cli)
		g.state(c, cli, srvAddr, event.Established, event.FinWait1, clientPid)
		g.state(s, srvAddr, cli, event.Established, event.CloseWait, 0)
		g.state(s, srvAddr, cli, event.CloseWait, event.LastAck, serverPid)
		g.state(c, cli, srvAddr, event.FinWait1, event.FinWait2, 0)
		g.evs = append(g.evs, event.Event{Kind: event.KindTWOverflow, Time: g.next(), Ptr: c, Netns: nsA,
			Family: event.AFInet, Src: cli, Dst: srvAddr, Lifetime: -1})
		g.state(c, cli, srvAddr, event.FinWait2, event.Close, 0)
		g.state(s, srvAddr, cli, event.LastAck, event.Close, 0)
	}
	m := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Apply(&g.evs[i%len(g.evs)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkOpenTimewaitMemory tracks 262,144 open TIME_WAIT sockets and
// reports the heap they take (target: 64 MB in all, so about 256 bytes a
// socket at most).
func BenchmarkOpenTimewaitMemory(b *testing.B) {
	const open = 262144
	for i := 0; i < b.N; i++ {
		evs := make([]event.Event, 0, 1024)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		m := New(Config{})
		for j := 0; j < open; j++ {
			evs = evs[:0]
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}), uint16(j))
			evs = append(evs, event.Event{Kind: event.KindTWCreate, Time: uint64(j + 1), Ptr: uint64(j + 1),
				Netns: 1, Family: event.AFInet, Src: src, Dst: srvAddr, NewState: event.TimeWait, Lifetime: -1})
			m.Apply(&evs[0])
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if m.Snapshot().OpenNow != open {
			b.Fatalf("open %d", m.Snapshot().OpenNow)
		}
		heap := float64(after.HeapAlloc - before.HeapAlloc)
		b.ReportMetric(heap/open, "bytes/tw")
		b.ReportMetric(heap/(1<<20), "MiB")
		runtime.KeepAlive(m)
	}
}
