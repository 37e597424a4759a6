// Package netnstest provides test helpers around package netns.
package netnstest

import (
	"errors"
	"os"
	"testing"

	"github.com/twtop/twtop/internal/netns"
	"golang.org/x/sys/unix"
)

// Unprivileged skips tb with reason, or fails it when the environment
// variable CI is "true", where privileged tests must run.
func Unprivileged(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true but %s", reason)
	}
	tb.Skip(reason)
}

// RequireRoot calls Unprivileged unless the effective user is root.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Unprivileged(tb, "test needs root (CAP_SYS_ADMIN to create a network namespace)")
	}
}

// New returns a fresh network namespace that is closed when tb ends. Tests
// must close the sockets they made in it before then.
func New(tb testing.TB) *netns.NS {
	tb.Helper()
	RequireRoot(tb)
	ns, err := netns.New()
	if errors.Is(err, unix.EPERM) {
		Unprivileged(tb, "cannot create a network namespace: "+err.Error())
	}
	if err != nil {
		tb.Fatalf("netns.New: %v", err)
	}
	tb.Cleanup(func() {
		if err := ns.Close(); err != nil {
			tb.Errorf("close namespace: %v", err)
		}
	})
	return ns
}

// Counters returns the namespace's SNMP counters or fails tb.
func Counters(tb testing.TB, ns *netns.NS) map[string]int64 {
	tb.Helper()
	c, err := ns.Netstat()
	if err != nil {
		tb.Fatalf("netstat: %v", err)
	}
	return c
}

// Delta returns after[key]-before[key] and fails tb when the kernel does
// not have the counter key.
func Delta(tb testing.TB, before, after map[string]int64, key string) int64 {
	tb.Helper()
	a, ok := after[key]
	if !ok {
		tb.Fatalf("counter %s not found", key)
	}
	return a - before[key]
}
