package model

import (
	"fmt"
	"math"
	"slices"
	"strconv"

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
	exhaustionWarningS   = 600  // forecast seconds until the ports towards one destination run out
	exhaustionCriticalS  = 60   // likewise, within a TIME_WAIT period
	neededShareWarning   = 0.5  // share of the port range the connection rate keeps in TIME_WAIT
)

// SetSettings gives the model a namespace's TIME_WAIT settings (read at
// start and periodically; a recording carries them). A later reading of the
// same namespace replaces the earlier one, port range included.
func (m *Model) SetSettings(s settings.Settings) {
	// the model's copy shares nothing with the caller's
	s.TwReuseDelayMs = cloneInt(s.TwReuseDelayMs)
	s.Recycle = cloneInt(s.Recycle)
	m.settings[s.Netns] = s
	if n := s.PortRangeSize(); n > 0 {
		m.portRange[s.Netns] = n
	} else {
		delete(m.portRange, s.Netns)
	}
}

func cloneInt(p *int) *int {
	if p == nil {
		return nil
	}
	v := *p
	return &v
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
	out = append(out, m.recycleFindings(s)...)
	out = append(out, lingerZeroFindings(s)...)
	return out
}

// Thresholds of the SO_LINGER 0 finding.
const (
	minAbortsForAdvice = 20   // resets a process must send before it is worth a word
	abortShareWarning  = 0.25 // of its closed connections
)

// A process whose connections mostly end with a reset it sent: often
// SO_LINGER {on, 0} set to avoid TIME_WAIT, which throws away unsent data
// and makes the peer see ECONNRESET.
func lingerZeroFindings(s *Snapshot) []Finding {
	var out []Finding
	for _, row := range s.Closers[ByProcess] {
		sent := row.Closes[SideReset] - row.ResetReceived
		total := row.Total()
		if row.Key == otherKey || sent < minAbortsForAdvice || float64(sent) < abortShareWarning*float64(total) {
			continue
		}
		out = append(out, Finding{
			ID:       "linger_zero",
			Severity: "warning",
			Title:    fmt.Sprintf("%s ends connections with a reset instead of a close", row.Key),
			Advice: "Closing with SO_LINGER {on, 0} (or tcp_abort) skips TIME_WAIT by sending an RST: data still in the send buffer is lost and the peer's read fails with ECONNRESET. " +
				"If this is done to avoid TIME_WAIT, let the peer close first or reuse connections instead; TIME_WAIT on the closing side is the protocol working as intended.",
			Evidence: []string{
				fmt.Sprintf("%d of its %d closed connections ended with an RST this host sent (no FIN exchange, no TIME_WAIT)", sent, total),
				fmt.Sprintf("%d resets received from peers", row.ResetReceived),
			},
		})
	}
	return out
}

// A service that closes its connections first keeps their TIME_WAIT sockets
// (HTTP/1.0 or keep-alive disabled on the server).
func (m *Model) serverClosesFirst(s *Snapshot) []Finding {
	var out []Finding
	for _, row := range s.Closers[ByPort] {
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
// without tcp_tw_reuse. The advisor speaks when the ports held are a large
// share of the range, when connect() already failed, when the ports held
// grow fast enough to fill the range within minutes, or when the
// connection rate alone keeps half the range in TIME_WAIT.
func (m *Model) portFindings(s *Snapshot) []Finding {
	var out []Finding
	errs := s.Counters.ConnectAddrNotAvail
	for _, p := range s.Ports {
		if p.Dst == otherKey || p.RangeSize == 0 {
			continue
		}
		rangeSize := p.RangeSize
		usage := p.Usage
		forecast := p.ExhaustionS != nil && *p.ExhaustionS < exhaustionWarningS
		needed := float64(p.NeededAtRate) >= neededShareWarning*float64(rangeSize)
		if usage < portUsageWarning && errs == 0 && !forecast && !needed {
			continue
		}
		reuse := p.ReuseApplies != nil && *p.ReuseApplies
		limit := float64(rangeSize) / timewaitSeconds
		ev := []string{
			fmt.Sprintf("%d of %d local ports held towards %s from %s (%d in TIME_WAIT)", p.Held, rangeSize, p.Dst, p.Src, p.TimeWait),
			fmt.Sprintf("%.1f new connections/s; without reuse one destination sustains %d ports / %d s = %.3g/s", p.NewPerSec, rangeSize, timewaitSeconds, limit),
		}
		if p.NeededAtRate > 0 && (needed || forecast) {
			// how far TIME_WAIT alone takes the ports held at this rate
			ev = append(ev, fmt.Sprintf("at %.1f new connections/s, %d s of TIME_WAIT holds %d of %d ports",
				p.NewPerSec, timewaitSeconds, p.NeededAtRate, rangeSize))
		}
		if forecast {
			what := "held"
			if reuse {
				what = "held outside TIME_WAIT (tcp_tw_reuse can take TIME_WAIT tuples over)"
			}
			if *p.ExhaustionS == 0 {
				ev = append(ev, fmt.Sprintf("%s: %d, the whole range of %d", what, p.forecastHeld, rangeSize))
			} else {
				ev = append(ev, fmt.Sprintf("%s grows %s/s: %d reached in ~%s s", what, shortNum(p.forecastGrowth), rangeSize, shortNum(*p.ExhaustionS)))
			}
		}
		if errs > 0 {
			ev = append(ev, fmt.Sprintf("%d connect() calls failed with EADDRNOTAVAIL", errs))
		}
		advice := "Reuse connections to the backend (keep-alive / a connection pool); widen net.ipv4.ip_local_port_range; add source addresses or backend ports (each destination tuple has its own port space)."
		if p.ReuseApplies != nil {
			if reuse {
				ev = append(ev, "tcp_tw_reuse can apply: "+p.ReuseNote)
			} else {
				ev = append(ev, "tcp_tw_reuse cannot apply: "+p.ReuseNote)
				advice += " net.ipv4.tcp_tw_reuse=1 lets connect() take over TIME_WAIT tuples older than the reuse delay when both ends use TCP timestamps."
			}
		}
		sev := "warning"
		if usage >= portUsageCritical || errs > 0 || (forecast && *p.ExhaustionS < exhaustionCriticalS) {
			sev = "critical"
		}
		title := fmt.Sprintf("Ephemeral ports towards %s are %.0f%% used", p.Dst, 100*usage)
		switch {
		case usage >= portUsageWarning || errs > 0:
		case forecast:
			title = fmt.Sprintf("Ephemeral ports towards %s run out in ~%s s at the current growth", p.Dst, shortNum(*p.ExhaustionS))
		default:
			title = fmt.Sprintf("The connection rate towards %s keeps %.0f%% of the ephemeral ports in TIME_WAIT",
				p.Dst, 100*float64(p.NeededAtRate)/float64(rangeSize))
		}
		out = append(out, Finding{
			ID: "ephemeral_ports", Severity: sev,
			Title:    title,
			Advice:   advice,
			Evidence: ev,
		})
	}
	return out
}

// shortNum formats a rate or a duration for evidence: whole numbers from
// 10 up, tenths below.
func shortNum(f float64) string {
	if math.Abs(f) >= 10 {
		return strconv.FormatFloat(math.Round(f), 'f', -1, 64)
	}
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64)
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

// tcp_tw_recycle: on, it drops SYNs from clients behind NAT (their
// timestamps are not monotonic per host); it was removed in Linux 4.12, yet
// advice to enable it is still found online. One finding per namespace, in
// netns order.
func (m *Model) recycleFindings(s *Snapshot) []Finding {
	created := make(map[uint32]uint64, len(s.Netns))
	for _, n := range s.Netns {
		created[n.Netns] = n.Created
	}
	var out []Finding
	for _, st := range s.Settings { // sorted by netns
		switch {
		case st.Recycle != nil && *st.Recycle == 1:
			ev := []string{fmt.Sprintf("net.ipv4.tcp_tw_recycle = 1 in netns %d", st.Netns)}
			if n := created[st.Netns]; n > 0 {
				ev = append(ev, fmt.Sprintf("%d TIME_WAIT sockets created in netns %d while tracing", n, st.Netns))
			}
			out = append(out, Finding{
				ID: "tw_recycle", Severity: "warning",
				Title: "tcp_tw_recycle is on",
				Advice: "tcp_tw_recycle=1 drops SYNs from clients behind NAT; it was removed in Linux 4.12; turn it off " +
					"(net.ipv4.tcp_tw_recycle=0). To have fewer TIME_WAIT sockets, have the peer close first or reuse connections.",
				Evidence: ev,
			})
		case st.Recycle == nil && created[st.Netns] >= minTimewaitForAdvice:
			out = append(out, Finding{
				ID: "tw_recycle", Severity: "info",
				Title: "Advice to enable tcp_tw_recycle does not apply to this kernel",
				Advice: "Advice found online to enable tcp_tw_recycle does not apply: it was removed in Linux 4.12, and this kernel has no net.ipv4.tcp_tw_recycle. " +
					"tcp_tw_reuse (for connect()) and fewer short connections are what is left.",
				Evidence: []string{
					fmt.Sprintf("%d TIME_WAIT sockets created in netns %d while tracing", created[st.Netns], st.Netns),
					fmt.Sprintf("net.ipv4.tcp_tw_recycle is absent in netns %d", st.Netns),
				},
			})
		}
	}
	return out
}
