package scenario

import (
	"testing"
	"time"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"golang.org/x/sys/unix"
)

// TestSimultaneousCloseRetry makes the first two attempts straddle a tick
// and checks that they are reset without a timewait socket and that the
// third one closes simultaneously. It sets a package variable and so must
// not run in parallel with the other tests.
func TestSimultaneousCloseRetry(t *testing.T) {
	ns := netnstest.New(t)
	before := netnstest.Counters(t, ns)
	calls := 0
	betweenShutdowns = func() {
		if calls++; calls <= 2 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	defer func() { betweenShutdowns = nil }()
	r, err := SimultaneousClose(ns)
	if err != nil {
		t.Fatal(err)
	}
	after := netnstest.Counters(t, ns)
	if r.Attempts != 3 || len(r.Conns) != 3 || r.Closing != 2 {
		t.Errorf("attempts %d, conns %d, closing %d; want 3, 3, 2", r.Attempts, len(r.Conns), r.Closing)
	}
	for key, want := range map[string]int64{"TcpExt.TW": 2, "TcpExt.TWKilled": 0, "TcpExt.TCPAbortOnData": 4} {
		if got := netnstest.Delta(t, before, after, key); got != want {
			t.Errorf("%s delta = %d, want %d", key, got, want)
		}
	}
	socks, err := ns.Sockets(unix.AF_INET, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := r.Conns[2]
	if len(socks) != 2 {
		t.Fatalf("sockets %v, want the two TIME_WAIT of %v", socks, last)
	}
	for _, s := range socks {
		if s.State != 6 || (s.Src != last.Client && s.Src != last.Server) {
			t.Errorf("socket %v", s)
		}
	}
}
