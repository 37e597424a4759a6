package tracer

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twtop/twtop/internal/netns"
	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/lifecycle"
	"github.com/twtop/twtop/tracer/event"
)

// The privileged tests share one tracer (loading and attaching is the slow
// part, especially in an emulated VM). Each test runs its traffic in a
// fresh network namespace and sees only the events of that namespace, as
// the tracer stamps every event with its netns inode.
//
// TWTOP_TIER forces a tier (fentry, kprobe, tracepoint); by default the
// best one the kernel allows is used. A forced tier that fails to attach
// fails every test: the VM matrix forces tiers that its kernels support.

var (
	sharedOnce sync.Once
	shared     *sharedTracer
	sharedErr  error
)

type sharedTracer struct {
	tr *Tracer

	mu      sync.Mutex
	watches map[uint32]*watch
	loopErr error
}

// watch collects the events of one network namespace.
type watch struct {
	t    *testing.T
	st   *sharedTracer
	ns   *netns.NS
	mu   sync.Mutex
	cond *sync.Cond
	evs  []event.Event
	tws  map[uint64]bool // timewait sockets created while watched
	// since is when the watch began (CLOCK_MONOTONIC ns, the records'
	// clock), after its namespace was made
	since uint64
}

// owns filters out what an earlier namespace under the same inode left:
// network namespace inodes are reused, so the records of a namespace
// closed by an earlier test, read after the reader's lag, come under the
// inode a new namespace may already have, and one closed is purged
// asynchronously. So events stamped before the watch began, and those of
// timewait sockets it did not see created, are not the watch's. Called
// with w.mu held.
func (w *watch) owns(e *event.Event) bool {
	if e.Time < w.since {
		return false
	}
	switch e.Kind {
	case event.KindTWCreate:
		w.tws[e.Ptr] = true
	case event.KindTWExpire, event.KindTWKill, event.KindTWReuse, event.KindTWRx:
		return w.tws[e.Ptr]
	}
	return true
}

func tierFromEnv() (Tier, error) {
	s := os.Getenv("TWTOP_TIER")
	if s == "" {
		return Auto, nil
	}
	return ParseTier(s)
}

// envOptions are the options the environment asks the tests for:
// TWTOP_TIER, and TWTOP_FALLBACK to force older kernels' ways (with
// no-kernel-btf, the kernel's own BTF is copied to a file and passed as
// Options.BTF, as a user would pass a BTFHub file).
func envOptions() (Options, error) {
	tier, err := tierFromEnv()
	if err != nil {
		return Options{}, err
	}
	force, err := ParseFallbacks(os.Getenv("TWTOP_FALLBACK"))
	if err != nil {
		return Options{}, err
	}
	opts := Options{Tier: tier, Force: force}
	if force.NoKernelBTF {
		opts.BTF, err = btfFileCopy()
	}
	return opts, err
}

var btfCopy = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(kernelBTFPath)
	if err != nil {
		return "", fmt.Errorf("copy the kernel's BTF: %w", err)
	}
	f, err := os.CreateTemp("", "twtop-btf-*")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return "", err
	}
	return f.Name(), nil
})

func btfFileCopy() (string, error) { return btfCopy() }

func openShared() (*sharedTracer, error) {
	opts, err := envOptions()
	if err != nil {
		return nil, err
	}
	opts.ScanInterval = 500 * time.Millisecond
	tr, err := Open(opts)
	if err != nil {
		return nil, err
	}
	st := &sharedTracer{tr: tr, watches: make(map[uint32]*watch)}
	go st.loop()
	return st, nil
}

func (st *sharedTracer) loop() {
	stream := lifecycle.NewStream(st.tr, st.tr.HZ())
	for {
		e, err := stream.Next()
		if err != nil {
			st.mu.Lock()
			st.loopErr = err
			ws := st.watches
			st.mu.Unlock()
			for _, w := range ws {
				w.mu.Lock()
				w.cond.Broadcast()
				w.mu.Unlock()
			}
			return
		}
		st.mu.Lock()
		w := st.watches[e.Netns]
		st.mu.Unlock()
		if w == nil {
			continue
		}
		w.mu.Lock()
		if w.owns(e) {
			w.evs = append(w.evs, *e)
			w.cond.Broadcast()
		}
		w.mu.Unlock()
	}
}

// traced returns a watch on ns's events: the namespace is added to the
// periodic scan, and the watch is dropped when the test ends.
func traced(t *testing.T, ns *netns.NS) *watch {
	t.Helper()
	netnstest.RequireRoot(t)
	sharedOnce.Do(func() { shared, sharedErr = openShared() })
	if sharedErr != nil {
		t.Fatalf("open tracer: %+v", sharedErr)
	}
	w := &watch{t: t, st: shared, ns: ns, tws: make(map[uint64]bool), since: monotonicNow()}
	w.cond = sync.NewCond(&w.mu)
	shared.mu.Lock()
	shared.watches[ns.Inode()] = w
	shared.mu.Unlock()
	shared.tr.AddScanNetns(ns.Path())
	t.Cleanup(func() {
		shared.tr.RemoveScanNetns(ns.Path())
		shared.mu.Lock()
		delete(shared.watches, ns.Inode())
		shared.mu.Unlock()
	})
	return w
}

func (w *watch) tier() Tier { return w.st.tr.Tier() }

// waitTimeout bounds every wait for events; generous because the VM tests
// run under emulation.
const waitTimeout = 30 * time.Second

// until waits until cond holds for the events seen so far, then returns
// them; it fails the test on timeout with what was seen.
func (w *watch) until(what string, cond func([]event.Event) bool) []event.Event {
	w.t.Helper()
	return w.untilWithin(waitTimeout, what, cond)
}

func (w *watch) untilWithin(timeout time.Duration, what string, cond func([]event.Event) bool) []event.Event {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if cond(w.evs) {
			return append([]event.Event(nil), w.evs...)
		}
		w.st.mu.Lock()
		err := w.st.loopErr
		w.st.mu.Unlock()
		if err != nil {
			w.t.Fatalf("tracer stopped while waiting for %s: %v", what, err)
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s (the tracer, shared by the tests, so far: %s); events seen:\n%s", what, w.lossSoFar(), dump(w.evs))
		}
		w.cond.Wait()
	}
}

// settle waits one more second-and-a-half so that nothing unexpected
// arrives late (two scan periods), then returns all events.
func (w *watch) settle() []event.Event {
	time.Sleep(1500 * time.Millisecond)
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]event.Event(nil), w.evs...)
}

func dump(evs []event.Event) string {
	var b strings.Builder
	for i := range evs {
		if evs[i].Kind == event.KindScanEnd {
			continue
		}
		b.Write(event.AppendJSON(nil, &evs[i], 0))
		b.WriteByte('\n')
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return b.String()
}

// count returns the events for which match holds.
func count(evs []event.Event, match func(*event.Event) bool) int {
	n := 0
	for i := range evs {
		if match(&evs[i]) {
			n++
		}
	}
	return n
}

func kind(k event.Kind) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Kind == k }
}

func ended(c event.Cause) func(*event.Event) bool {
	return func(e *event.Event) bool {
		if e.Kind == event.KindTWExpire {
			return c == event.CauseExpired
		}
		return e.Kind == event.KindTWKill && e.Cause == c
	}
}

func atLeast(n int, match func(*event.Event) bool) func([]event.Event) bool {
	return func(evs []event.Event) bool { return count(evs, match) >= n }
}

// stats reads the shared tracer's counters.
func stats(t *testing.T, w *watch) Stats {
	t.Helper()
	s, err := w.st.tr.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lossSoFar says what the tracer has lost so far, in all the tests: a
// record the kernel dropped (a full ring, or a program skipped by the
// recursion guard) is one reason for a record that never comes.
func (w *watch) lossSoFar() string {
	s, err := w.st.tr.Stats()
	if err != nil {
		return fmt.Sprintf("no stats: %v", err)
	}
	return fmt.Sprintf("%d lost, %d missed by the recursion guard, %d owners unknown", s.TotalLost(), s.TotalRecursionMisses(), s.OwnersUnknown)
}

// requireNoLoss fails if the tracer lost records, or a record its owner:
// every figure below is asserted exactly, so a loss would make them
// meaningless.
func requireNoLoss(t *testing.T, w *watch) {
	t.Helper()
	s, err := w.st.tr.Stats()
	if err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if n := s.TotalLost(); n != 0 {
		t.Fatalf("tracer lost %d records", n)
	}
	eq(t, "records whose owner the kernel left out and the reader did not know", s.OwnersUnknown, 0)
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func describe(e *event.Event) string {
	return fmt.Sprintf("%s %s->%s", e.Kind, e.Src, e.Dst)
}
