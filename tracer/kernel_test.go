package tracer

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/twtop/twtop/internal/netns/netnstest"
)

// kallsym finds a symbol's exact name only: not a longer symbol it is the
// start of, nor one in a module's list under the same name with a suffix.
func TestKallsym(t *testing.T) {
	netnstest.RequireRoot(t) // addresses read as 0 without root
	data, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch f[2] {
		case "tw_timer_handler", "tcp_v4_connect", "tcp_time_wait":
			if _, seen := want[f[2]]; !seen {
				a, _ := strconv.ParseUint(f[0], 16, 64)
				want[f[2]] = a
			}
		}
	}
	if len(want) == 0 {
		t.Fatal("none of the symbols in /proc/kallsyms")
	}
	for name, addr := range want {
		got, err := kallsym(name)
		if err != nil || got != addr {
			t.Errorf("kallsym(%s) = %#x, %v; want %#x", name, got, err, addr)
		}
		l := lookupSymbol(name)
		if got, err := l.wait(); err != nil || got != addr {
			t.Errorf("lookupSymbol(%s) = %#x, %v; want %#x", name, got, err, addr)
		}
	}
	if _, err := kallsym("tcp_v4_conn"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("kallsym of a prefix of a symbol: %v, want not found", err)
	}
}

func TestDefaultRingSize(t *testing.T) {
	for _, c := range []struct {
		ncpu, timewait int
		want           uint32
	}{
		{0, 0, 16 << 20}, {1, 0, 16 << 20}, {2, 0, 16 << 20}, {3, 0, 32 << 20}, {4, 0, 32 << 20},
		{5, 0, 64 << 20}, {8, 0, 64 << 20}, {16, 0, 128 << 20}, {32, 0, 256 << 20}, {256, 0, 256 << 20},
		// 128 bytes per TIME_WAIT socket where that is more
		{2, 131072, 16 << 20}, {2, 131073, 32 << 20}, {2, 262144, 32 << 20}, {2, 262145, 64 << 20},
		{8, 262144, 64 << 20}, {8, 1 << 20, 128 << 20}, {2, 1 << 30, 256 << 20}, {2, -1, 16 << 20},
	} {
		if got := DefaultRingSize(c.ncpu, c.timewait); got != c.want {
			t.Errorf("DefaultRingSize(%d, %d) = %d MiB, want %d MiB", c.ncpu, c.timewait, got>>20, c.want>>20)
		}
	}
}

// The default ring size reads the traced namespaces' tcp_max_tw_buckets:
// the largest of them counts, and one that cannot be read counts 0.
func TestMaxTimewait(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	if err := errors.Join(a.SetSysctl("net.ipv4.tcp_max_tw_buckets", "300000"),
		b.SetSysctl("net.ipv4.tcp_max_tw_buckets", "70000")); err != nil {
		t.Fatal(err)
	}
	if got := maxTimewait([]string{b.Path(), a.Path()}); got != 300000 {
		t.Errorf("maxTimewait(both) = %d, want 300000", got)
	}
	if got := maxTimewait([]string{b.Path(), "/nonexistent/ns"}); got != 70000 {
		t.Errorf("maxTimewait(b, missing) = %d, want 70000", got)
	}
	if got := maxTimewait([]string{"/nonexistent/ns"}); got != 0 {
		t.Errorf("maxTimewait(missing) = %d, want 0", got)
	}
	own, err := os.ReadFile("/proc/sys/net/ipv4/tcp_max_tw_buckets")
	if err != nil {
		t.Fatal(err)
	}
	if got := strconv.Itoa(maxTimewait(nil)); got != strings.TrimSpace(string(own)) {
		t.Errorf("maxTimewait(none) = %s, want our own namespace's %s", got, strings.TrimSpace(string(own)))
	}
}
