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
	neededShareWarning   = 0.5  // share of the port range the current rate holds at its steady state
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
		m.ephemeral[s.Netns] = portBounds{uint16(s.PortLow), uint16(s.PortHigh)}
	} else {
		delete(m.portRange, s.Netns)
		delete(m.ephemeral, s.Netns)
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

// longConnection is the duration (ns) from which a connection a service
// closed first more likely carried many requests than one.
const longConnection = 1e9

// A service that closes its connections first keeps their TIME_WAIT
// sockets. With HTTP that is keep-alive off, a client asking for
// Connection: close, or keep-alive on with a low request limit or idle
// timeout: twtop cannot count requests per connection, so the advice
// names both and says how long the connections lasted, the evidence it
// has.
func (m *Model) serverClosesFirst(s *Snapshot) []Finding {
	var out []Finding
	for _, row := range s.Closers[ByPort] {
		if row.Key == otherKey || row.TimewaitCreated < minTimewaitForAdvice || row.ActiveShare() <= activeShareThreshold {
			continue
		}
		ev := []string{
			fmt.Sprintf("%.0f%% of %d closes on this port were active (the server's)", 100*row.ActiveShare(), row.Total()),
			fmt.Sprintf("%d TIME_WAIT sockets created, %d open", row.TimewaitCreated, row.TimewaitOpen),
		}
		advice := "The server sends the first FIN, so every connection leaves a TIME_WAIT socket on the server for 60 s. " +
			"Either keep-alive is off (or clients ask for Connection: close), or it is on and its request limit or idle timeout is low (nginx keepalive_requests, keepalive_timeout); " +
			"twtop cannot count requests per connection, "
		d := m.served[portKey{row.Netns, row.Port}]
		switch {
		case d == nil || d.total == 0:
			advice += "nor did it see how long they lasted. Let clients close first (keep-alive, no forced Connection: close), or raise the keep-alive request limit. "
			ev = append(ev, "how long its connections lasted is not known (none was seen from its handshake to its FIN)")
		default:
			p50, p90 := d.quantile(0.5), d.quantile(0.9)
			ev = append(ev, fmt.Sprintf("the connections it closed lasted p50 about %s, p90 about %s from the handshake to its FIN (%d measured)",
				durationText(p50), durationText(p90), d.total))
			if p50 >= longConnection {
				advice += "but its connections last long, which fits keep-alive on and ending them: raise its request limit or idle timeout, or let clients close first. "
			} else {
				advice += "but its connections are short, which fits one request each: enable keep-alive or stop forcing Connection: close (if keep-alive is on, raise its request limit). "
			}
		}
		advice += "Server-side TIME_WAIT costs memory but not ports; it becomes a problem near tcp_max_tw_buckets."
		out = append(out, Finding{
			ID:       "server_closes_first",
			Severity: "warning",
			Title:    fmt.Sprintf("Service %s closes first and keeps the TIME_WAIT sockets", row.Key),
			Advice:   advice,
			Evidence: ev,
		})
	}
	return out
}

// durationText formats a duration (ns) for evidence, to two significant
// digits: ms below a second, s from there.
func durationText(ns uint64) string {
	v, unit := float64(ns)/1e6, "ms"
	if v >= 1000 {
		v, unit = v/1000, "s"
	}
	if v <= 0 {
		return "0 " + unit
	}
	mag := int(math.Floor(math.Log10(v)))
	scale := math.Pow(10, float64(1-mag))
	return strconv.FormatFloat(math.Round(v*scale)/scale, 'f', max(0, 1-mag), 64) + " " + unit
}

// Ports towards one destination: a client making short connections to one
// backend can sustain at most range/60 s new connections per second
// without tcp_tw_reuse. The advisor speaks when the ports held are a large
// share of the range, when connect() towards it already failed, or when
// the current rate holds half the range once its TIME_WAIT sockets have
// saturated (and runs it out, when that is more than the range). Titles
// say what is held; needed_at_rate appears only as a projection, and not
// when tcp_tw_reuse is taking TIME_WAIT tuples over towards it.
func (m *Model) portFindings(s *Snapshot) []Finding {
	var out []Finding
	for _, p := range s.Ports {
		if p.Dst == otherKey || p.RangeSize == 0 {
			continue
		}
		rangeSize := int64(p.RangeSize)
		usage := p.Usage
		errs := p.ConnectEAddrNotAvail
		forecast := p.ExhaustionS != nil && *p.ExhaustionS > 0
		full := p.ExhaustionS != nil && *p.ExhaustionS == 0
		steady := float64(p.SteadyHeld) >= neededShareWarning*float64(rangeSize)
		if usage < portUsageWarning && errs == 0 && !full && !steady {
			continue
		}
		reuse := p.ReuseApplies != nil && *p.ReuseApplies
		limit := float64(rangeSize) / timewaitSeconds
		// what is held and what the kernel said first, then the rates
		// and what they lead to
		ev := []string{
			fmt.Sprintf("%d of %d local ports held towards %s from %s (%d in TIME_WAIT)", p.Held, rangeSize, p.Dst, p.Src, p.TimeWait),
		}
		if errs > 0 {
			ev = append(ev, fmt.Sprintf("%d connect() calls towards %s failed with EADDRNOTAVAIL", errs, p.Dst))
		}
		switch {
		case full && p.forecastHeld >= rangeSize:
			what := "held"
			if reuse {
				what = "held outside TIME_WAIT (tcp_tw_reuse can take TIME_WAIT tuples over)"
			}
			ev = append(ev, fmt.Sprintf("%s: %d, the whole range of %d", what, p.forecastHeld, rangeSize))
		case full:
			ev = append(ev, "the last connect() towards it failed with EADDRNOTAVAIL: the kernel found no free local port, whatever the count above says")
		}
		ev = append(ev, fmt.Sprintf("%.1f new connections/s and %.1f new TIME_WAIT sockets/s towards it over the last %s s; without reuse one destination sustains %d ports / %d s = %.3g/s",
			p.NewPerSec, p.TimewaitPerS, shortNum(p.RateWindowS), rangeSize, timewaitSeconds, limit))
		if reuse {
			ev = append(ev, fmt.Sprintf("tcp_tw_reuse can take over the %d in TIME_WAIT; %d held outside TIME_WAIT", p.TimeWait, p.forecastHeld))
		} else if p.TimewaitPerS > 0 {
			ev = append(ev, fmt.Sprintf("at %.1f TIME_WAIT sockets/s the ports held level off at about %d of %d (%d outside TIME_WAIT + %d s of TIME_WAIT at that rate)",
				p.TimewaitPerS, p.SteadyHeld, rangeSize, p.Held-p.TimeWait, timewaitSeconds))
		}
		if forecast {
			ev = append(ev, fmt.Sprintf("held grows towards %d as the TIME_WAIT sockets held now expire and new ones replace them: %d reached in ~%s s",
				p.SteadyHeld, rangeSize, shortNum(*p.ExhaustionS)))
		}
		if p.NeededAtRate > 0 && !(reuse && p.ConnectReuse > 0) {
			ev = append(ev, fmt.Sprintf("projection (needed_at_rate): if each of the %.1f new connections/s left a TIME_WAIT socket here and none was reused, %d s of TIME_WAIT would hold %d ports",
				p.NewPerSec, timewaitSeconds, p.NeededAtRate))
		}
		if p.ConnectReuse > 0 {
			ev = append(ev, fmt.Sprintf("%d TIME_WAIT tuples towards it taken over by connect() (tcp_tw_reuse)", p.ConnectReuse))
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
		if usage >= portUsageCritical || errs > 0 || full || forecast {
			sev = "critical"
		}
		title := fmt.Sprintf("Ephemeral ports towards %s are %.0f%% used", p.Dst, 100*usage)
		switch {
		case full:
		case forecast:
			title += fmt.Sprintf(" and run out in ~%s s at the current rate", shortNum(*p.ExhaustionS))
		case steady && usage < portUsageWarning:
			title += fmt.Sprintf(", heading for %.0f%% at the current rate", 100*float64(p.SteadyHeld)/float64(rangeSize))
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
