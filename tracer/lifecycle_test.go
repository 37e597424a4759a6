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
// so the test counts only these.
func ownIDs(t *testing.T, tr *Tracer) ([]ebpf.ProgramID, []link.ID) {
	t.Helper()
	var progs []ebpf.ProgramID
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
	var links []link.ID
	for _, l := range append(slices.Clone(tr.links), tr.iter) {
		info, err := l.Info()
		if err != nil {
			t.Fatalf("link: %v", err)
		}
		links = append(links, info.ID)
	}
	return progs, links
}

// Not parallel: it runs before the parallel tests open the shared tracer.
func TestOpenCloseLeavesNothing(t *testing.T) {
	netnstest.RequireRoot(t)
	tier, err := tierFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(Options{Tier: tier})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if tier != Auto && tr.Tier() != tier {
		t.Fatalf("forced tier %s, got %s", tier, tr.Tier())
	}
	t.Logf("kernel %s: tier %s, HZ %d; tiers skipped: %q; hooks skipped: %q", tr.KernelRelease(), tr.Tier(), tr.HZ(), tr.Fallbacks(), tr.SkippedHooks())
	hooks := len(hooksFor(tr.Tier())) - len(tr.SkippedHooks())
	progs, links := ownIDs(t, tr)
	if got := present(programIDs(t), progs); got < hooks {
		t.Fatalf("%d programs loaded, want at least %d", got, hooks)
	}
	if got := present(linkIDs(t), links); got != hooks+1 {
		t.Fatalf("%d links, want %d (hooks and the scan iterator)", got, hooks+1)
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
		t.Fatalf("auto picked %s, want %s (skipped: %q)", tr.Tier(), want, tr.Fallbacks())
	}
}
