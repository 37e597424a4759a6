package pipeline

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/lifecycle"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
)

// churnSource yields the raw records of an endless client-closes-first
// churn, as the live reader hands them over: each connection to one of
// dests destinations connects, is established, closes first (FIN_WAIT1,
// FIN_WAIT2, a TIME_WAIT socket, CLOSE), and its TIME_WAIT socket expires
// once open more are open after it (none expire when open is 0).
type churnSource struct {
	dests int
	open  int
	conn  int
	step  int
	t     uint64
	seq   [2]uint32
	buf   [event.RecordSize]byte
	e     event.Event
}

var churnLocal = netip.MustParseAddr("10.0.0.1")

func (c *churnSource) dest(i int) netip.AddrPort {
	d := i % c.dests
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(d >> 8), byte(d)}), 443)
}

func (c *churnSource) src(i int) netip.AddrPort {
	return netip.AddrPortFrom(churnLocal, uint16(1024+(i/c.dests)%64000))
}

func twPtr(i int) uint64   { return 0xffff888200000000 + uint64(i)*0x100 }
func sockPtr(i int) uint64 { return 0xffff888100000000 + uint64(i%4096)*0x940 }

func (c *churnSource) Next() ([]byte, error) {
	i := c.conn
	e := &c.e
	*e = event.Event{Kind: event.KindState, Ptr: sockPtr(i), Netns: 4026531840, Family: event.AFInet,
		Src: c.src(i), Dst: c.dest(i)}
	switch c.step {
	case 0:
		e.OldState, e.NewState = event.Close, event.SynSent
		e.Pid, e.Tid, e.Flags = 4242, 4242, event.FlagOwner
		copy(e.Comm[:], "client")
	case 1:
		e.OldState, e.NewState = event.SynSent, event.Established
	case 2:
		e.OldState, e.NewState = event.Established, event.FinWait1
		e.Pid, e.Tid, e.Flags = 4242, 4242, event.FlagOwner
		copy(e.Comm[:], "client")
	case 3:
		e.OldState, e.NewState = event.FinWait1, event.FinWait2
	case 4:
		e.Kind, e.Ptr, e.NewState, e.Aux = event.KindTWCreate, twPtr(i), event.TimeWait, 15000
	case 5:
		e.OldState, e.NewState = event.FinWait2, event.Close
	case 6:
		old := i - c.open
		e.Kind, e.Ptr, e.NewState, e.Src, e.Dst = event.KindTWExpire, twPtr(old), event.TimeWait, c.src(old), c.dest(old)
	}
	c.step++
	if c.step == 6 && (c.open == 0 || i < c.open) || c.step == 7 {
		c.step = 0
		c.conn++
	}
	c.t += 2000
	e.Time = c.t
	e.CPU = uint16(c.t/2000) % 2
	c.seq[e.CPU]++
	e.Seq = c.seq[e.CPU]
	event.Encode(e, c.buf[:])
	return c.buf[:], nil
}

// pipe is the live path after the reader: decode, the Tracker and the
// model, one record at a time.
type pipe struct {
	src event.RawSource
	tk  *lifecycle.Tracker
	m   *model.Model
	e   event.Event
}

func newPipe(src event.RawSource) *pipe {
	return newPipeWith(src, model.Config{})
}

func newPipeWith(src event.RawSource, cfg model.Config) *pipe {
	return &pipe{src: src, tk: lifecycle.NewTracker(250), m: model.New(cfg)}
}

func (p *pipe) feed(n int) {
	for range n {
		raw, _ := p.src.Next()
		if err := event.Decode(raw, &p.e); err != nil {
			panic(err)
		}
		p.tk.Add(&p.e, p.m.Apply)
	}
}

// BenchmarkPipelineAllocs reports the heap allocations per record of
// decode, Tracker and model over a steady churn (10,000 TIME_WAIT sockets
// open, 1,024 destinations), once warm (goal: about 0).
func BenchmarkPipelineAllocs(b *testing.B) {
	benchAllocs(b, newPipe(&churnSource{dests: 1024, open: 10000}))
}

// BenchmarkPipelineAllocsWorkloads is BenchmarkPipelineAllocs with the
// workloads a replay has (the churn's namespace is a pod's): its TIME_WAIT
// sockets, which no owner's cgroup counts, count by namespace (goal: about
// 0 allocations too).
func BenchmarkPipelineAllocsWorkloads(b *testing.B) {
	var names workload.Table
	names.AddNetns(map[string]workload.Workload{"4026531840": {Kind: workload.KindPod, PodUID: "uid-a", Namespace: "shop", Pod: "web-1"}})
	p := newPipeWith(&churnSource{dests: 1024, open: 10000}, model.Config{Workloads: &names})
	benchAllocs(b, p)
	// 10,000 open, or 10,001 when the feed stopped between a creation
	// and the expiry it brings: what the Tracker holds open
	snap := p.m.Snapshot()
	if rows := snap.AllClosers[model.ByPod]; len(rows) != 1 || rows[0].Key != "shop/web-1" ||
		rows[0].TimewaitOpen != int64(p.tk.Open()) || snap.OpenNow != p.tk.Open() {
		b.Fatalf("pod rows %+v, %d open in the model: want shop/web-1 with the %d the Tracker holds open", rows, snap.OpenNow, p.tk.Open())
	}
}

func benchAllocs(b *testing.B, p *pipe) {
	p.feed(500_000)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	p.feed(b.N)
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/record")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N), "B/record")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPipelineOpenTimewait opens 262,144 TIME_WAIT sockets, the
// connections of one client towards 1,024 destinations closed first and
// none ended, through decode, Tracker and model, and reports the heap the
// whole pipeline holds: per TIME_WAIT socket (goal: at most 64 bytes) and
// in all (goal: 64 MB). A scan that shows every one of them then comes
// through the Tracker; scan-MiB is the heap it holds before its end
// record, which must find every socket open and change nothing, and
// scan-ns/tw the Tracker's time per socket for the scan.
func BenchmarkPipelineOpenTimewait(b *testing.B) {
	const open = 262144
	for b.Loop() {
		runtime.GC()
		var before, after, scanning runtime.MemStats
		runtime.ReadMemStats(&before)
		src := &churnSource{dests: 1024}
		p := newPipe(src)
		for src.conn < open {
			p.feed(1)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if n := p.m.Snapshot().OpenNow; n != open || p.tk.Open() != open {
			b.Fatalf("open %d in the model, %d in the Tracker", n, p.tk.Open())
		}
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(heap/open, "bytes/tw")
		b.ReportMetric(heap/(1<<20), "MiB")

		var emitted int
		count := func(e *event.Event) {
			if e.Kind != event.KindScanTW {
				emitted++
			}
		}
		e := &p.e
		start := time.Now()
		for i := range open {
			src.t += 100
			*e = event.Event{Kind: event.KindScanTW, Time: src.t, Ptr: twPtr(i), Netns: 4026531840, Family: event.AFInet,
				Src: src.src(i), Dst: src.dest(i), NewState: event.TimeWait, Aux: 15000}
			p.tk.Add(e, count)
		}
		took := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&scanning)
		*e = event.Event{Kind: event.KindScanEnd, Time: src.t + 100, Netns: 4026531840, Lifetime: -1}
		start = time.Now()
		p.tk.Add(e, count)
		took += time.Since(start)
		if emitted != 1 || p.tk.Open() != open {
			b.Fatalf("the scan of the open sockets emitted %d records (want its end alone) and left %d open", emitted, p.tk.Open())
		}
		b.ReportMetric((float64(scanning.HeapAlloc)-float64(after.HeapAlloc))/(1<<20), "scan-MiB")
		b.ReportMetric(float64(took.Nanoseconds())/open, "scan-ns/tw")
		runtime.KeepAlive(p)
	}
}
