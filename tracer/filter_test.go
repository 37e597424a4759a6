package tracer

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/tracer/event"
)

// drain reads a private tracer's events for d after traffic ran.
func drain(t *testing.T, tr *Tracer, d time.Duration) []event.Event {
	t.Helper()
	time.AfterFunc(d, func() { tr.Close() })
	st := event.NewStream(tr, tr.HZ())
	var evs []event.Event
	for {
		e, err := st.Next()
		if errors.Is(err, ErrClosed) {
			return evs
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, *e)
	}
}

// The filters run in the kernel: a tracer for one namespace and one family
// sees exactly that traffic. Not parallel: it opens tracers of its own.
func TestInKernelFilters(t *testing.T) {
	ns := netnstest.New(t)
	other := netnstest.New(t)
	base, err := envOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts := base
	opts.Netns, opts.Family, opts.ScanNetns = ns.Inode(), event.AFInet6, []string{ns.Path()}
	v6, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %+v", err)
	}
	defer v6.Close()
	opts = base
	opts.Netns, opts.Pid, opts.ScanNetns = ns.Inode(), uint32(os.Getpid())+1_000_000, []string{ns.Path()}
	nobody, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %+v", err)
	}
	defer nobody.Close()

	for _, run := range []func() (*scenario.Result, error){
		func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 2, unix.AF_INET) },
		func() (*scenario.Result, error) { return scenario.ClientCloses(ns, 3, unix.AF_INET6) },
		func() (*scenario.Result, error) { return scenario.ClientCloses(other, 4, unix.AF_INET6) },
	} {
		r, err := run()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
	}
	got := drain(t, v6, 2*time.Second)
	eq(t, "IPv6 tw_create in the namespace", count(got, created), 3)
	for i := range got {
		e := &got[i]
		if e.Kind == event.KindScanEnd {
			continue
		}
		if e.Family != event.AFInet6 || e.Netns != ns.Inode() {
			t.Errorf("filtered tracer let through %s (family %d, netns %d)", describe(e), e.Family, e.Netns)
		}
	}
	// the periodic scan is not filtered by pid (a timewait socket has no
	// owner), so only what it derives may appear
	got = drain(t, nobody, 1500*time.Millisecond)
	for i := range got {
		e := &got[i]
		fromScan := e.Kind == event.KindScanEnd || (created(e) && e.Flags&(event.FlagExisting|event.FlagReconciled) != 0)
		if !fromScan {
			t.Errorf("pid-filtered tracer let through %s", describe(e))
		}
	}
}
