package tracer

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
)

// The report a user reads, over a mix of closes in one namespace: clients
// and servers closing first over IPv4 and IPv6, and SO_LINGER 0 resets.
// Its TIME_WAIT figures must equal the kernel's (sock_diag, and TcpExt.TW
// where the kernel counts creations), its resets the kernel's aborts.
func TestReportMix(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	w := traced(t, ns)
	before := netnstest.Counters(t, ns)
	var timewait []scenario.Tuple
	closers := 0
	for _, run := range []func() (*scenario.Result, error){
		func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 3, unix.AF_INET) },
		func() (*scenario.Result, error) { return scenario.ServerCloses(ns, 2, unix.AF_INET) },
		func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 2, unix.AF_INET6) },
		func() (*scenario.Result, error) { return scenario.ServerCloses(ns, 2, unix.AF_INET6) },
		func() (*scenario.Result, error) { return scenario.Linger0(ns, 2) },
	} {
		r := must[*scenario.Result](t)(run())
		closeResult(t, r)
		timewait = append(timewait, r.TimeWait...)
		closers += len(r.TimeWait)
	}
	n := len(timewait)
	w.until("timewait creations in TIME_WAIT", func(evs []event.Event) bool {
		return atLeast(n, created)(evs) && allInTimeWait(evs)
	})
	evs := w.settle()
	after := netnstest.Counters(t, ns)

	m := model.New(model.Config{})
	for i := range evs {
		m.Apply(&evs[i])
	}
	rep := m.Snapshot().Report(model.Meta{Tier: w.tier().String()})
	diag := len(diagTimewait(t, ns, unix.AF_INET)) + len(diagTimewait(t, ns, unix.AF_INET6))
	eq(t, "sock_diag TIME_WAIT vs the scenarios", diag, n)
	eq(t, "timewait.created", rep.Timewait.Created, uint64(diag))
	eq(t, "timewait.open_at_end", rep.Timewait.OpenAtEnd, diag)
	eq(t, "timewait.ended", rep.Timewait.Ended, model.EndedCounts{})
	eqTWCreated(t, before, after, n)
	eq(t, "closes.active", rep.Closes.Active, uint64(closers))
	aborts := netnstest.Delta(t, before, after, "TcpExt.TCPAbortOnData")
	eq(t, "TcpExt.TCPAbortOnData delta", aborts, 2)
	eq(t, "closes.reset", rep.Closes.Reset, uint64(2*aborts))
	eq(t, "closes.reset_received", rep.Closes.ResetReceived, uint64(aborts))
	t.Logf("report: closes %+v, timewait %+v", rep.Closes, rep.Timewait)
	requireNoLoss(t, w)
}
