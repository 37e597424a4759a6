// Package settings reads, for one network namespace, the kernel settings
// and SNMP counters that decide how TCP TIME_WAIT sockets behave: whether
// connect() may reuse them, how many may exist, how many local ports there
// are, and the kernel's own TIME_WAIT counters. twtop reads them at start and
// periodically, so that a recording carries the conditions it was made in.
//
// Everything is read with plain system calls from /proc, so the package
// works with CGO_ENABLED=0 and without any sysctl or ip binary.
package settings

import (
	"fmt"
	"net/netip"
)

// Settings are a namespace's TIME_WAIT-related sysctls (net.ipv4.*, which
// also govern IPv6 TCP). Sysctls that the running kernel lacks are nil.
type Settings struct {
	// Netns is the inode number of the network namespace ("net:[INODE]").
	Netns uint32 `json:"netns"`
	// TwReuse is net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only
	// (the default since Linux 4.18).
	TwReuse int `json:"tcp_tw_reuse"`
	// TwReuseDelayMs is net.ipv4.tcp_tw_reuse_delay (Linux 6.14 and
	// later): how long, in milliseconds, a TIME_WAIT socket must have
	// existed before connect() may reuse its tuple. Older kernels use a
	// fixed second and have no such sysctl; then it is nil.
	TwReuseDelayMs *int `json:"tcp_tw_reuse_delay_ms,omitempty"`
	// MaxTwBuckets is net.ipv4.tcp_max_tw_buckets. Beyond it the kernel
	// closes connections without TIME_WAIT and counts
	// TcpExt.TCPTimeWaitOverflow.
	MaxTwBuckets int `json:"tcp_max_tw_buckets"`
	// PortLow and PortHigh are net.ipv4.ip_local_port_range, inclusive.
	PortLow  int `json:"port_low"`
	PortHigh int `json:"port_high"`
	// FinTimeoutS is net.ipv4.tcp_fin_timeout in seconds.
	FinTimeoutS int `json:"tcp_fin_timeout_s"`
	// Timestamps is net.ipv4.tcp_timestamps: 0 off, 1 on with per-
	// connection offsets, 2 on without offsets.
	Timestamps int `json:"tcp_timestamps"`
	// Recycle is net.ipv4.tcp_tw_recycle, which only kernels before 4.12
	// have; nil otherwise.
	Recycle *int `json:"tcp_tw_recycle,omitempty"`
}

// PortRangeSize returns the number of local ports in PortLow..PortHigh, or
// 0 when the range is invalid.
func (s Settings) PortRangeSize() int {
	if s.PortLow < 0 || s.PortHigh > 65535 || s.PortHigh < s.PortLow {
		return 0
	}
	return s.PortHigh - s.PortLow + 1
}

// ReuseApplies reports whether, under these settings, connect() towards dst
// can take over the tuple of a TIME_WAIT socket left by an earlier
// connection (tcp_twsk_unique), and gives the reason as a short phrase.
//
// It mirrors the kernel: tcp_tw_reuse must be 1, or 2 with a loopback
// destination (127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104), and the old
// connection must have carried timestamps, which it cannot when
// tcp_timestamps is 0. A true result still needs, per socket, that the peer
// agreed to timestamps, that tcp_tw_reuse_delay has passed since the socket
// entered TIME_WAIT (before Linux 6.14: about a second since the peer's last
// timestamp) and that it is a real TIME_WAIT socket, not an orphaned
// FIN_WAIT2 one. With tcp_tw_reuse 2 the kernel also accepts a loopback
// source address or a socket bound to "lo", which dst alone cannot tell.
// A connect() from a port fixed beforehand with bind() takes over a
// TIME_WAIT tuple whenever timestamps were used, whatever tcp_tw_reuse says;
// this function is about the usual ephemeral-port connect().
func (s Settings) ReuseApplies(dst netip.Addr) (bool, string) {
	if !dst.IsValid() {
		return false, "invalid destination address"
	}
	switch s.TwReuse {
	case 0:
		return false, "tcp_tw_reuse is off"
	case 1:
	case 2:
		if !dst.Unmap().IsLoopback() {
			return false, "tcp_tw_reuse is loopback only and the destination is not loopback"
		}
	default:
		return false, fmt.Sprintf("tcp_tw_reuse has unknown value %d", s.TwReuse)
	}
	if s.Timestamps == 0 {
		return false, "tcp_timestamps is off, so TIME_WAIT sockets carry no timestamps"
	}
	if s.TwReuse == 2 {
		return true, "tcp_tw_reuse is loopback only and the destination is loopback"
	}
	return true, "tcp_tw_reuse is on and timestamps are enabled"
}
