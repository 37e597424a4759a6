package model

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Meta is what the report needs from outside the model: the tier that
// produced the events and the tracer's own loss counters.
type Meta struct {
	Tier            string
	Lost            uint64
	RecursionMisses uint64
}

// Report is the stable JSON document of `--report json` (see the report
// contract in the README). Keys are an interface: add, never rename.
type Report struct {
	Tier            string         `json:"tier"`
	DurationS       float64        `json:"duration_s"`
	Events          uint64         `json:"events"`
	Lost            uint64         `json:"lost"`
	RecursionMisses uint64         `json:"recursion_misses"`
	Closes          CloseCounts    `json:"closes"`
	Timewait        TimewaitReport `json:"timewait"`
	LifetimeMS      LifetimeReport `json:"lifetime_ms"`
	Reuse           ReuseReport    `json:"reuse"`
	Errors          ErrorReport    `json:"errors"`
	TopClosers      []CloserRow    `json:"top_closers"`
	Ports           []PortPressure `json:"ports"`
	Findings        []Finding      `json:"findings"`
	Settings        []SettingsRow  `json:"settings"`
	Netns           []NetnsStats   `json:"netns"`
	// Kernel is the kernel's own view, per namespace: how much its
	// TIME_WAIT counters moved while tracing, to cross-check twtop's.
	Kernel []KernelCounters `json:"kernel"`
	// Inferred names the figures the tier could only infer.
	Inferred []string       `json:"inferred"`
	Tracking TrackingReport `json:"tracking"`
}

// CloseCounts counts closed sockets by the side they were on.
type CloseCounts struct {
	Active       uint64 `json:"active"`
	Passive      uint64 `json:"passive"`
	Simultaneous uint64 `json:"simultaneous"`
	Reset        uint64 `json:"reset"`
	// ResetReceived is the part of Reset where the peer sent the RST; the
	// rest this host sent (SO_LINGER 0, tcp_abort, a timeout).
	ResetReceived uint64 `json:"reset_received"`
	// ActiveShare is active / (active + passive + simultaneous + reset).
	ActiveShare float64 `json:"active_share"`
}

// TimewaitReport is the TIME_WAIT section.
type TimewaitReport struct {
	Created          uint64      `json:"created"`
	FinWait2Substate uint64      `json:"fin_wait2_substate"`
	ExistingAtStart  uint64      `json:"existing_at_start"`
	Ended            EndedCounts `json:"ended"`
	OpenAtEnd        int         `json:"open_at_end"`
	Overflow         uint64      `json:"overflow"`
}

// EndedCounts counts TIME_WAIT ends by cause.
type EndedCounts struct {
	Expired     uint64 `json:"expired"`
	Reused      uint64 `json:"reused"`
	SynRecycled uint64 `json:"syn_recycled"`
	RST         uint64 `json:"rst"`
	Purged      uint64 `json:"purged"`
	Unknown     uint64 `json:"unknown"`
}

// LifetimeReport is the lifetime distribution of ended TIME_WAIT sockets
// whose creation was seen, in milliseconds (within 1%).
type LifetimeReport struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// ReuseReport counts TIME_WAIT tuples taken over.
type ReuseReport struct {
	ConnectReuse uint64 `json:"connect_reuse"`
	SynRecycle   uint64 `json:"syn_recycle"`
	// ConnectShare is the share of connect() calls that took over a
	// TIME_WAIT tuple.
	ConnectShare float64 `json:"connect_share"`
	// AgeMS is the age of the TIME_WAIT sockets taken over (by connect()
	// or a SYN) when they were, in milliseconds.
	AgeMS AgeReport `json:"age_ms"`
}

// AgeReport is a short distribution.
type AgeReport struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	Max   float64 `json:"max"`
}

// ErrorReport counts the syscall errors TIME_WAIT causes.
type ErrorReport struct {
	ConnectEAddrNotAvail uint64 `json:"connect_eaddrnotavail"`
	BindEAddrInUse       uint64 `json:"bind_eaddrinuse"`
}

// CloserRow is one row of top_closers.
type CloserRow struct {
	By              string  `json:"by"`
	Key             string  `json:"key"`
	Active          uint64  `json:"active"`
	Passive         uint64  `json:"passive"`
	Simultaneous    uint64  `json:"simultaneous"`
	Reset           uint64  `json:"reset"`
	ResetReceived   uint64  `json:"reset_received"`
	ActiveShare     float64 `json:"active_share"`
	TimewaitCreated uint64  `json:"timewait_created"`
	TimewaitOpen    int64   `json:"timewait_open"`
	// What the key names (omitted where it does not apply), for filters
	// such as --check 'top_closers{by=port,port=80}.active_share < 0.5'.
	Netns uint32 `json:"netns,omitempty"`
	Port  uint16 `json:"port,omitempty"`
	Peer  string `json:"peer,omitempty"`
	Pid   uint32 `json:"pid,omitempty"`
	Comm  string `json:"comm,omitempty"`
	// pod, container and service rows: the runtime's names, and the ids
	// (pod_uid, container_id) they belong to
	Namespace   string `json:"namespace,omitempty"`
	Pod         string `json:"pod,omitempty"`
	PodUID      string `json:"pod_uid,omitempty"`
	Container   string `json:"container,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	Service     string `json:"service,omitempty"`
}

// SettingsRow is a namespace's TIME_WAIT sysctls as the report shows them.
type SettingsRow struct {
	Netns          uint32 `json:"netns"`
	TwReuse        int    `json:"tcp_tw_reuse"`
	TwReuseDelayMs *int   `json:"tcp_tw_reuse_delay_ms,omitempty"`
	MaxTwBuckets   int    `json:"tcp_max_tw_buckets"`
	PortRange      [2]int `json:"ip_local_port_range"`
	FinTimeoutS    int    `json:"tcp_fin_timeout_s"`
	Timestamps     int    `json:"tcp_timestamps"`
}

// TrackingReport says what the model's bounds left out.
type TrackingReport struct {
	EvictedSockets  uint64 `json:"evicted_sockets"`
	EvictedTimewait uint64 `json:"evicted_timewait"`
}

// EndedCounts are the ends of TIME_WAIT sockets by cause, as the report
// gives them.
func (s *Snapshot) EndedCounts() EndedCounts {
	c := &s.Counters
	return EndedCounts{
		Expired: c.Ended[endExpired], Reused: c.Ended[endReused], SynRecycled: c.Ended[endSyn],
		RST: c.Ended[endRST], Purged: c.Ended[endPurged], Unknown: c.Ended[endUnknown],
	}
}

// LifetimeMS are the TIME_WAIT lifetimes' quantiles, as the report gives
// them.
func (s *Snapshot) LifetimeMS() LifetimeReport {
	return LifetimeReport{
		Count: s.Lifetime.Count(),
		P50:   ms(s.Lifetime.Quantile(0.50)),
		P90:   ms(s.Lifetime.Quantile(0.90)),
		P99:   ms(s.Lifetime.Quantile(0.99)),
		Max:   ms(s.Lifetime.Max()),
	}
}

// ReuseFigures are the takeovers of TIME_WAIT sockets, as the report gives
// them.
func (s *Snapshot) ReuseFigures() ReuseReport {
	c := &s.Counters
	return ReuseReport{ConnectReuse: c.ReuseConnect, SynRecycle: c.ReuseSyn,
		ConnectShare: round3(share(c.ReuseConnect, c.Connects)),
		AgeMS:        AgeReport{Count: s.ReuseAge.Count(), P50: ms(s.ReuseAge.Quantile(0.5)), Max: ms(s.ReuseAge.Max())}}
}

// Report builds the report of a snapshot.
func (s *Snapshot) Report(meta Meta) *Report {
	c := &s.Counters
	r := &Report{
		Tier:            meta.Tier,
		DurationS:       round3(s.DurationSeconds()),
		Events:          c.Events,
		Lost:            meta.Lost,
		RecursionMisses: meta.RecursionMisses,
		Closes: CloseCounts{
			Active: c.Closes[SideActive], Passive: c.Closes[SidePassive],
			Simultaneous: c.Closes[SideSimultaneous], Reset: c.Closes[SideReset],
			ResetReceived: c.ResetReceived, ActiveShare: round3(share(c.Closes[SideActive], s.ClosedSockets())),
		},
		Timewait: TimewaitReport{
			Created: c.Created, FinWait2Substate: c.CreatedFinWait2, ExistingAtStart: c.Existing,
			Ended:     s.EndedCounts(),
			OpenAtEnd: s.OpenNow,
			Overflow:  c.Overflow,
		},
		LifetimeMS: s.LifetimeMS(),
		Reuse:      s.ReuseFigures(),
		Errors:     ErrorReport{ConnectEAddrNotAvail: c.ConnectAddrNotAvail, BindEAddrInUse: c.BindAddrInUse},
		Ports:      s.Ports,
		Findings:   s.Findings,
		Netns:      s.Netns,
		Kernel:     s.Kernel,
		Inferred:   []string{},
		Tracking:   TrackingReport{EvictedSockets: c.EvictedSockets, EvictedTimewait: c.EvictedTimewait},
	}
	if r.Netns == nil {
		r.Netns = []NetnsStats{}
	}
	if r.Kernel == nil {
		r.Kernel = []KernelCounters{}
	}
	if r.Ports == nil {
		r.Ports = []PortPressure{}
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	r.Settings = []SettingsRow{}
	for _, st := range s.Settings {
		r.Settings = append(r.Settings, SettingsRow{
			Netns: st.Netns, TwReuse: st.TwReuse, TwReuseDelayMs: st.TwReuseDelayMs,
			MaxTwBuckets: st.MaxTwBuckets, PortRange: [2]int{st.PortLow, st.PortHigh},
			FinTimeoutS: st.FinTimeoutS, Timestamps: st.Timestamps,
		})
	}
	if c.Inferred.Ended {
		r.Inferred = append(r.Inferred, "timewait.ended", "lifetime_ms")
	}
	if c.Inferred.Overflow {
		r.Inferred = append(r.Inferred, "timewait.overflow")
	}
	if c.Inferred.Reuse {
		r.Inferred = append(r.Inferred, "reuse.connect_reuse")
	}
	r.TopClosers = []CloserRow{}
	for _, rows := range s.Closers {
		for _, cl := range rows {
			r.TopClosers = append(r.TopClosers, CloserRow{
				By: cl.By, Key: cl.Key,
				Active: cl.Closes[SideActive], Passive: cl.Closes[SidePassive],
				Simultaneous: cl.Closes[SideSimultaneous], Reset: cl.Closes[SideReset], ResetReceived: cl.ResetReceived,
				Netns: cl.Netns, Port: cl.Port, Peer: cl.Peer, Pid: cl.Pid, Comm: cl.Comm,
				Namespace: cl.Namespace, Pod: cl.Pod, PodUID: cl.PodUID,
				Container: cl.Container, ContainerID: cl.ContainerID, Service: cl.Service,
				ActiveShare:     round3(cl.ActiveShare()),
				TimewaitCreated: cl.TimewaitCreated, TimewaitOpen: cl.TimewaitOpen,
			})
		}
	}
	return r
}

func share(part, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return float64(part) / float64(total)
}

func ms(ns uint64) float64 { return round3(float64(ns) / 1e6) }

// round3 rounds to 3 decimals, half away from zero, and never gives -0.
func round3(f float64) float64 {
	r := math.Round(f*1000) / 1000
	if r == 0 {
		return 0
	}
	return r
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteText writes the report for a person.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	inf := func(key string) string {
		for _, k := range r.Inferred {
			if k == key {
				return " (inferred)"
			}
		}
		return ""
	}
	fmt.Fprintf(&b, "twtop report: tier %s, %.1f s, %d events, %d lost, %d missed by recursion guard\n\n",
		r.Tier, r.DurationS, r.Events, r.Lost, r.RecursionMisses)
	c := r.Closes
	fmt.Fprintf(&b, "Closes:    %d active, %d passive, %d simultaneous, %d reset (%d received, %d sent)\n",
		c.Active, c.Passive, c.Simultaneous, c.Reset, c.ResetReceived, c.Reset-c.ResetReceived)
	t := r.Timewait
	fmt.Fprintf(&b, "TIME_WAIT: %d created (%d in FIN_WAIT2 substate), %d existed at start, %d open at end, %d overflows%s\n",
		t.Created, t.FinWait2Substate, t.ExistingAtStart, t.OpenAtEnd, t.Overflow, inf("timewait.overflow"))
	e := t.Ended
	fmt.Fprintf(&b, "Ended:     %d expired, %d reused by connect, %d taken over by SYN, %d by RST, %d purged, %d unknown%s\n",
		e.Expired, e.Reused, e.SynRecycled, e.RST, e.Purged, e.Unknown, inf("timewait.ended"))
	if l := r.LifetimeMS; l.Count > 0 {
		fmt.Fprintf(&b, "Lifetime:  p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms (%d ended)%s\n", l.P50, l.P90, l.P99, l.Max, l.Count, inf("lifetime_ms"))
	} else {
		fmt.Fprintf(&b, "Lifetime:  no TIME_WAIT socket seen from creation to end yet\n")
	}
	fmt.Fprintf(&b, "Reuse:     %d by connect (tcp_tw_reuse; %.1f%% of connects), %d by SYN takeover", r.Reuse.ConnectReuse, 100*r.Reuse.ConnectShare, r.Reuse.SynRecycle)
	if a := r.Reuse.AgeMS; a.Count > 0 {
		fmt.Fprintf(&b, "; age when taken over: p50 %.0f ms, max %.0f ms", a.P50, a.Max)
	}
	b.WriteByte('\n')
	fmt.Fprintf(&b, "Errors:    %d connect() EADDRNOTAVAIL, %d bind() EADDRINUSE\n", r.Errors.ConnectEAddrNotAvail, r.Errors.BindEAddrInUse)
	for _, k := range r.Kernel {
		fmt.Fprintf(&b, "Kernel:    netns %d: TcpExt TW +%d, TWKilled +%d, TWRecycled +%d, TCPTimeWaitOverflow +%d\n",
			k.Netns, k.TW, k.TWKilled, k.TWRecycled, k.TimewaitOverflow)
	}
	if len(r.Settings) == 0 {
		fmt.Fprintf(&b, "Settings:  not read for any namespace\n")
	}
	for _, st := range r.Settings {
		delay := ""
		if st.TwReuseDelayMs != nil {
			delay = fmt.Sprintf(" (delay %d ms)", *st.TwReuseDelayMs)
		}
		fmt.Fprintf(&b, "Settings:  netns %d: tcp_tw_reuse %d%s, tcp_timestamps %d, ip_local_port_range %d-%d, tcp_max_tw_buckets %d, tcp_fin_timeout %d s\n",
			st.Netns, st.TwReuse, delay, st.Timestamps, st.PortRange[0], st.PortRange[1], st.MaxTwBuckets, st.FinTimeoutS)
	}
	if len(r.TopClosers) > 0 {
		fmt.Fprintf(&b, "\n%-8s %-32s %8s %8s %6s %6s %7s %9s %8s\n", "BY", "KEY", "ACTIVE", "PASSIVE", "SIMUL", "RESET", "ACTIVE%", "TW-MADE", "TW-OPEN")
		for _, row := range r.TopClosers {
			fmt.Fprintf(&b, "%-8s %-32s %8d %8d %6d %6d %6.0f%% %9d %8d\n", row.By, row.Key, row.Active, row.Passive,
				row.Simultaneous, row.Reset, 100*row.ActiveShare, row.TimewaitCreated, row.TimewaitOpen)
		}
	}
	writePorts(&b, r.Ports)
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "\n[%s] %s\n  %s\n", f.Severity, f.Title, f.Advice)
		for _, e := range f.Evidence {
			fmt.Fprintf(&b, "  - %s\n", e)
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// writePorts writes the ports table: the local ports held per destination,
// the rates and the window they are over, the steady state and the
// forecast.
func writePorts(b *strings.Builder, ports []PortPressure) {
	if len(ports) == 0 {
		fmt.Fprintf(b, "\nPorts:     no client connection or client TIME_WAIT socket seen\n")
		return
	}
	fmt.Fprintf(b, "\nPorts:     local ports held per destination; NEW/S and TW/S over the last OVER s; STEADY = held once TIME_WAIT levels off: held outside TIME_WAIT + TW/S × 60 s (the first alone where tcp_tw_reuse applies)\n")
	// the pod holding the ports, in a last column when any is known
	pods := slices.ContainsFunc(ports, func(p PortPressure) bool { return p.PodName() != "" })
	head := fmt.Sprintf("%-24s %-15s %6s %6s %6s %8s %8s %5s %7s %7s %13s %7s %5s",
		"DESTINATION", "SOURCE", "HELD", "TW", "USAGE", "NEW/S", "TW/S", "OVER", "STEADY", "EXHAUST", "EADDRNOTAVAIL", "REUSED", "REUSE")
	if pods {
		head += " POD"
	}
	b.WriteString(head + "\n")
	for _, p := range ports {
		usage, exhaust, reuse := "?", "-", "?"
		if p.RangeSize > 0 {
			usage = fmt.Sprintf("%.0f%%", 100*p.Usage)
		}
		if p.ExhaustionS != nil {
			exhaust = shortNum(*p.ExhaustionS) + "s"
		}
		if p.ReuseApplies != nil {
			reuse = "no"
			if *p.ReuseApplies {
				reuse = "yes"
			}
		}
		fmt.Fprintf(b, "%-24s %-15s %6d %6d %6s %8.1f %8.1f %5s %7d %7s %13d %7d %5s",
			p.Dst, p.Src, p.Held, p.TimeWait, usage, p.NewPerSec, p.TimewaitPerS, shortNum(p.RateWindowS), p.SteadyHeld, exhaust,
			p.ConnectEAddrNotAvail, p.ConnectReuse, reuse)
		if pods {
			fmt.Fprintf(b, " %s", p.PodName())
		}
		b.WriteString("\n")
	}
}
