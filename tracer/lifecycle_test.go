package tracer

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/twtop/twtop/internal/netns/netnstest"
)

func programIDs(t *testing.T) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return ids
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, next)
		id = next
	}
}

func linkIDs(t *testing.T) []link.ID {
	t.Helper()
	var ids []link.ID
	it := new(link.Iterator)
	for it.Next() {
		ids = append(ids, it.ID)
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// present counts how many of want are among ids.
func present[T ~uint32](ids, want []T) int {
	n := 0
	for _, id := range want {
		if slices.Contains(ids, id) {
			n++
		}
	}
	return n
}

// ownIDs are the IDs of the programs and links of tr. Other tracers (the
// CLI's tests run twtop in parallel packages) may load theirs meanwhile,
// so the test counts only these. Attachments through a perf event (kprobes
// and classic tracepoints before 5.15) are not BPF links and have no ID:
// they are counted in perfLinks.
func ownIDs(t *testing.T, tr *Tracer) (progs []ebpf.ProgramID, links []link.ID, perfLinks int) {
	t.Helper()
	for name, p := range tr.coll.Programs {
		info, err := p.Info()
		if err != nil {
			t.Fatalf("program %s: %v", name, err)
		}
		id, ok := info.ID()
		if !ok {
			t.Fatalf("program %s: kernel gives no ID", name)
		}
		progs = append(progs, id)
	}
	all := slices.Clone(tr.links)
	if tr.iter != nil {
		all = append(all, tr.iter)
	}
	for _, l := range all {
		info, err := l.Info()
		if errors.Is(err, ebpf.ErrNotSupported) {
			perfLinks++
			continue
		}
		if err != nil {
			t.Fatalf("link: %v", err)
		}
		links = append(links, info.ID)
	}
	return progs, links, perfLinks
}

// Not parallel: it runs before the parallel tests open the shared tracer.
func TestOpenCloseLeavesNothing(t *testing.T) {
	netnstest.RequireRoot(t)
	opts, err := envOptions()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(opts)
	if err != nil {
		t.Fatalf("open: %+v", err)
	}
	if opts.Tier != Auto && tr.Tier() != opts.Tier {
		t.Fatalf("forced tier %s, got %s", opts.Tier, tr.Tier())
	}
	if got := tr.Fallbacks().With(opts.Force); got != tr.Fallbacks() {
		t.Fatalf("forced fallbacks %s, in use %s", opts.Force, tr.Fallbacks())
	}
	t.Logf("kernel %s: tier %s, HZ %d, fallbacks %q; tiers skipped: %q; hooks skipped: %q",
		tr.KernelRelease(), tr.Tier(), tr.HZ(), tr.Fallbacks(), tr.Rejected(), tr.SkippedHooks())
	// what was attached: the tier's hooks for this kernel less the optional
	// ones that failed to attach, and the scan iterator unless sock_diag
	// scans instead
	// (the tracer lets the kernel's types go once loaded: read them again)
	types, _, err := kernelTypes(opts.BTF, opts.Force)
	if err != nil {
		t.Fatal(err)
	}
	tr.types = types
	selected, unhooked := tr.selectHooks(tr.Tier())
	hooks := len(selected) - (len(tr.SkippedHooks()) - len(unhooked))
	iters := 1
	if tr.Fallbacks().SockDiag {
		iters = 0
	}
	progs, links, perfLinks := ownIDs(t, tr)
	if got := present(programIDs(t), progs); got < hooks {
		t.Fatalf("%d programs loaded, want at least %d", got, hooks)
	}
	if got := present(linkIDs(t), links) + perfLinks; got != hooks+iters {
		t.Fatalf("%d links (%d through perf events), want %d (hooks and %d scan iterator)", got, perfLinks, hooks+iters, iters)
	}
	if tr.HZ() == 0 {
		t.Fatal("HZ not measured")
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Next(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
	// the kernel releases links and their programs from a workqueue
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, l := present(programIDs(t), progs), present(linkIDs(t), links)
		if p == 0 && l == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left after Close: %d programs, %d links", p, l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// On kernels known to support them, the exact tiers must work: auto must
// not fall back silently. TWTOP_EXPECT_TIER names the tier auto must pick.
func TestAutoPicksExpectedTier(t *testing.T) {
	want := os.Getenv("TWTOP_EXPECT_TIER")
	if want == "" {
		t.Skip("TWTOP_EXPECT_TIER not set: nothing known about this kernel")
	}
	netnstest.RequireRoot(t)
	tr, err := Open(Options{Tier: Auto})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer tr.Close()
	if tr.Tier().String() != want {
		t.Fatalf("auto picked %s, want %s (skipped: %q)", tr.Tier(), want, tr.Rejected())
	}
}
