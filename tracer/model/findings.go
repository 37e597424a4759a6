package model

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/twtop/twtop/tracer/settings"
)

// Finding is one piece of advice, with the figures it rests on. The advisor
// makes no finding without evidence in the event stream.
type Finding struct {
	ID       string   `json:"id"`
	Severity string   `json:"severity"` // info, warning, critical
	Title    string   `json:"title"`
	Advice   string   `json:"advice"`
	Evidence []string `json:"evidence"`
}

// timewaitSeconds is TCP_TIMEWAIT_LEN: fixed at 60 s in Linux, no sysctl.
const timewaitSeconds = 60

// Thresholds of the advisor.
const (
	minTimewaitForAdvice = 100  // TIME_WAIT sockets a service must create before it is worth a word
	activeShareThreshold = 0.5  // a server closing first on more than this share
	portUsageWarning     = 0.5  // share of the port range held towards one destination
	portUsageCritical    = 0.85 // likewise, close to EADDRNOTAVAIL
)

// SetSettings gives the model a namespace's TIME_WAIT settings (read at
// start and periodically; a recording carries them).
func (m *Model) SetSettings(s settings.Settings) {
	m.settings[s.Netns] = s
	if n := s.PortRangeSize(); n > 0 {
		m.portRange[s.Netns] = n
	}
}

// findings turns the snapshot's figures into advice.
func (m *Model) findings(s *Snapshot) []Finding {
	var out []Finding
	out = append(out, m.serverClosesFirst(s)...)
	out = append(out, m.portFindings(s)...)
	if f, ok := m.overflowFinding(s); ok {
		out = append(out, f)
	}
	if f, ok := m.finTimeoutFinding(s); ok {
		out = append(out, f)
	}
	return out
}

// A service that closes its connections first keeps their TIME_WAIT sockets
// (HTTP/1.0 or keep-alive disabled on the server).
func (m *Model) serverClosesFirst(s *Snapshot) []Finding {
	var out []Finding
	for _, row := range s.Closers[aggPort] {
		if row.Key == otherKey || row.TimewaitCreated < minTimewaitForAdvice || row.ActiveShare() <= activeShareThreshold {
			continue
		}
		out = append(out, Finding{
			ID:       "server_closes_first",
			Severity: "warning",
			Title:    fmt.Sprintf("Service %s closes first and keeps the TIME_WAIT sockets", row.Key),
			Advice: "The server sends the first FIN, so every connection leaves a TIME_WAIT socket on the server for 60 s. " +
				"Let clients close first: enable HTTP keep-alive, stop forcing Connection: close, or have the protocol's client end the session. " +
				"Server-side TIME_WAIT costs memory but not ports; it becomes a problem near tcp_max_tw_buckets.",
			Evidence: []string{
				fmt.Sprintf("%.0f%% of %d closes on this port were active (the server's)", 100*row.ActiveShare(), row.Total()),
				fmt.Sprintf("%d TIME_WAIT sockets created, %d open", row.TimewaitCreated, row.TimewaitOpen),
			},
		})
	}
	return out
}

// Ports towards one destination: a client making short connections to one
// backend can sustain at most range/60 s new connections per second
// without tcp_tw_reuse.
func (m *Model) portFindings(s *Snapshot) []Finding {
	var out []Finding
	errs := s.Counters.ConnectAddrNotAvail
	for _, p := range s.Ports {
		if p.Dst == otherKey {
			continue
		}
		rangeSize := p.RangeSize
		usage := p.Usage
		if rangeSize == 0 || (usage < portUsageWarning && errs == 0) {
			continue
		}
		limit := float64(rangeSize) / timewaitSeconds
		ev := []string{
			fmt.Sprintf("%d of %d local ports held towards %s from %s (%d in TIME_WAIT)", p.Held, rangeSize, p.Dst, p.Src, p.TimeWait),
			fmt.Sprintf("%.1f new connections/s; without reuse one destination sustains %d ports / %d s = %.3g/s", p.NewPerSec, rangeSize, timewaitSeconds, limit),
		}
		if errs > 0 {
			ev = append(ev, fmt.Sprintf("%d connect() calls failed with EADDRNOTAVAIL", errs))
		}
		advice := "Reuse connections to the backend (keep-alive / a connection pool); widen net.ipv4.ip_local_port_range; add source addresses or backend ports (each destination tuple has its own port space)."
		if st, ok := m.settings[p.Netns]; ok {
			dst, _ := netip.ParseAddrPort(p.Dst)
			if applies, why := st.ReuseApplies(dst.Addr()); applies {
				ev = append(ev, "tcp_tw_reuse can apply: "+why)
			} else {
				ev = append(ev, "tcp_tw_reuse cannot apply: "+why)
				advice += " net.ipv4.tcp_tw_reuse=1 lets connect() take over TIME_WAIT tuples older than the reuse delay when both ends use TCP timestamps."
			}
		}
		sev := "warning"
		if usage >= portUsageCritical || errs > 0 {
			sev = "critical"
		}
		out = append(out, Finding{
			ID: "ephemeral_ports", Severity: sev,
			Title:    fmt.Sprintf("Ephemeral ports towards %s are %.0f%% used", p.Dst, 100*usage),
			Advice:   advice,
			Evidence: ev,
		})
	}
	return out
}

// tcp_max_tw_buckets reached: connections closed without TIME_WAIT.
func (m *Model) overflowFinding(s *Snapshot) (Finding, bool) {
	if s.Counters.Overflow == 0 {
		return Finding{}, false
	}
	var limit uint32
	for _, n := range s.Netns {
		limit = max(limit, n.MaxBuckets)
	}
	ev := []string{fmt.Sprintf("%d connections closed without a TIME_WAIT socket (TcpExt.TCPTimeWaitOverflow)", s.Counters.Overflow)}
	if limit > 0 {
		ev = append(ev, fmt.Sprintf("tcp_max_tw_buckets is %d; a TIME_WAIT socket is a few hundred bytes of kernel memory (about %d KiB for all of them)",
			limit, uint64(limit)*timewaitSockBytes/1024))
	}
	return Finding{
		ID: "timewait_overflow", Severity: "warning",
		Title: "TIME_WAIT bucket limit reached",
		Advice: "Past net.ipv4.tcp_max_tw_buckets the kernel skips TIME_WAIT, so a delayed segment of an old connection can corrupt a new one on the same tuple. " +
			"Raising the limit is cheap; fewer short connections (keep-alive) is better.",
		Evidence: ev,
	}, true
}

// timewaitSockBytes is the size of a tcp_timewait_sock object (tw_sock_TCP
// slab, Linux 6.x x86-64).
const timewaitSockBytes = 272

// Lowering tcp_fin_timeout does not shorten TIME_WAIT (fixed at 60 s); it
// only bounds the FIN_WAIT2 state of orphaned sockets.
func (m *Model) finTimeoutFinding(s *Snapshot) (Finding, bool) {
	if s.Lifetime.Count() == 0 {
		return Finding{}, false
	}
	var lowered []uint32
	for ns, st := range m.settings {
		if st.FinTimeoutS > 0 && st.FinTimeoutS < timewaitSeconds {
			lowered = append(lowered, ns)
		}
	}
	p50 := float64(s.Lifetime.Quantile(0.5)) / 1e9
	if len(lowered) == 0 || p50 < timewaitSeconds*0.9 {
		return Finding{}, false
	}
	slices.Sort(lowered)
	st := m.settings[lowered[0]]
	return Finding{
		ID: "fin_timeout_myth", Severity: "info",
		Title: "tcp_fin_timeout was lowered, but TIME_WAIT still lasts 60 s",
		Advice: "TIME_WAIT lasts TCP_TIMEWAIT_LEN (60 s) on Linux whatever tcp_fin_timeout says; that sysctl only times out orphaned FIN_WAIT2 sockets. " +
			"To have fewer TIME_WAIT sockets, have the peer close first or reuse connections.",
		Evidence: []string{
			fmt.Sprintf("net.ipv4.tcp_fin_timeout = %d s in netns %d", st.FinTimeoutS, lowered[0]),
			fmt.Sprintf("median TIME_WAIT lifetime %.1f s over %d sockets", p50, s.Lifetime.Count()),
		},
	}, true
}
