package tracer

import (
	"errors"
	"testing"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/lifecycle"
	"github.com/twtop/twtop/tracer/event"
)

// With a namespace filter, the resets another namespace receives must not
// mark this one's sockets: the kernel reuses a socket's memory, and a mark
// left on a filtered socket (whose CLOSE is never traced, so never clears
// it) would flag the next socket at that address as having received an
// RST. Both namespaces abort connections with SO_LINGER 0 in turns; in the
// traced one, exactly the servers receive the RSTs the clients send.
func TestResetDirectionWithNetnsFilter(t *testing.T) {
	traced, other := netnstest.New(t), netnstest.New(t)
	tr := openIn(t, traced, nil)
	got := make(chan []event.Event, 1)
	go func() {
		var evs []event.Event
		st := lifecycle.NewStream(tr, tr.HZ())
		for {
			e, err := st.Next()
			if err != nil {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("stream: %v", err)
				}
				got <- evs
				return
			}
			evs = append(evs, *e)
		}
	}()

	before := netnstest.Counters(t, traced)
	const rounds = 60
	var clients, servers []scenario.Tuple
	for range rounds {
		for _, ns := range []*netns.NS{other, traced} {
			r, err := scenario.Linger0(ns, 1)
			if err != nil {
				t.Fatal(err)
			}
			if ns == traced {
				for _, c := range r.Conns {
					clients = append(clients, c.ClientSide())
					servers = append(servers, c.ServerSide())
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	after := netnstest.Counters(t, traced)
	time.Sleep(300 * time.Millisecond) // the reader's poll period
	tr.Close()
	evs := <-got

	abort := func(e *event.Event) bool {
		return e.Kind == event.KindState && e.OldState == event.Established && e.NewState == event.Close
	}
	received := func(e *event.Event) bool { return abort(e) && e.Flags&event.FlagRSTRx != 0 }
	sent := func(e *event.Event) bool { return abort(e) && e.Flags&event.FlagRSTRx == 0 }
	eq(t, "TcpExt.TCPAbortOnData delta (resets sent)", netnstest.Delta(t, before, after, "TcpExt.TCPAbortOnData"), rounds)
	eq(t, "aborts", count(evs, abort), 2*rounds)
	sameTuples(t, "sockets that sent the RST", tuplesOf(evs, sent), clients)
	sameTuples(t, "sockets that received the RST", tuplesOf(evs, received), servers)
	for i := range evs {
		if evs[i].Netns != traced.Inode() {
			t.Fatalf("event of namespace %d passed the filter: %s", evs[i].Netns, describe(&evs[i]))
		}
	}
}
