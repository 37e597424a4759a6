package tracer

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/tracer/event"
)

// Under a sustained churn the periodic scan runs while TIME_WAIT sockets
// are being created: it must neither count one twice nor end one that is
// still there. Servers close first (their TIME_WAIT sockets are on the
// listening port), for a few seconds, with several scans in between.
func TestChurnWithScans(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	w := traced(t, ns)
	before := netnstest.Counters(t, ns)
	var (
		mu sync.Mutex
		n  int
		wg sync.WaitGroup
	)
	// each goroutine on a listener port of its own (below the ephemeral
	// range): one goroutine's connections never take over another's
	// TIME_WAIT socket before that one's scenario has seen it
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := time.Now(); time.Since(start) < 3*time.Second; {
				r, err := scenario.ServerClosesOn(ns, uint16(20001+g), 40, unix.AF_INET)
				if err != nil {
					t.Error(err)
					return
				}
				closeResult(t, r)
				mu.Lock()
				n += len(r.TimeWait)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	w.until("timewait creations", atLeast(n, created))
	time.Sleep(1100 * time.Millisecond) // two more scans settle the last ones
	evs := w.settle()
	after := netnstest.Counters(t, ns)
	diag := diagTimewait(t, ns, unix.AF_INET)
	// (a substate move the scan shows is reconciled by design on the
	// tracepoint tier: a FIN in the jiffy of the arm re-arms the timer to
	// the same expiry, which no timer record shows)
	reconciled := func(e *event.Event) bool {
		return e.Flags&event.FlagReconciled != 0 && e.Kind != event.KindTWSubstate
	}
	ends := func(e *event.Event) bool { return e.Kind == event.KindTWKill || e.Kind == event.KindTWExpire }
	for i := range evs {
		if e := &evs[i]; reconciled(e) || ends(e) {
			t.Logf("%s", describe(e))
		}
	}
	t.Logf("%d TIME_WAIT sockets made in 3 s, %d open", n, len(diag))
	// a client port that comes round again may meet its server-side
	// TIME_WAIT socket, which the SYN takes over: those end, nothing else
	eq(t, "tw_create events", count(evs, created), n)
	eq(t, "timewait ends vs sock_diag", count(evs, ends), n-len(diag))
	eq(t, "SYN takeovers", count(evs, ended(event.CauseSYN)), n-len(diag))
	eqTWCreated(t, before, after, n)
	eq(t, "reconciled creations and ends", count(evs, reconciled), 0)
	requireNoLoss(t, w)
}
