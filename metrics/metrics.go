// Package metrics exports the model as Prometheus metrics: one twtop per
// host, scraped by the monitoring system a fleet already runs.
//
// A scrape reads the latest published snapshot and turns it into constant
// metrics, so it never waits for the pipeline, and every value equals the
// figure of that snapshot's report. Series per network namespace and per
// destination or per pod are capped: the TopN of each, the rest summed
// under "other".
// The package imports the model only, neither the tracer nor the UI.
package metrics

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twtop/twtop/tracer/model"
)

// DefaultTopN is the default cap of the per-namespace, per-destination and
// per-pod series.
const DefaultTopN = 50

// Other is the label value that series past the cap are summed under.
const Other = "other"

// LifetimeBuckets are the upper bounds, in seconds, of the TIME_WAIT
// lifetime histogram: from 1 ms (sockets taken over at once) to 120 s, with
// bounds around the 60 s that Linux keeps a TIME_WAIT socket.
var LifetimeBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 4, 10, 30, 59, 60, 60.5, 61, 65, 120}

// Reading is one scrape's input: the snapshot and what its report takes
// from outside the model.
type Reading struct {
	Snapshot *model.Snapshot
	Meta     model.Meta
	Kernel   string // the traced kernel's release
}

// Options are a collector's fixed settings.
type Options struct {
	// TopN caps the series per network namespace and per destination
	// (DefaultTopN when 0 or less).
	TopN int
	// Version labels twtop_info.
	Version string
}

// Collector is a prometheus.Collector of the model's figures.
type Collector struct {
	read func() *Reading
	opts Options
}

// NewCollector returns a collector that calls read on every scrape; read
// must not block, and may return nil before the first snapshot (then only
// twtop_info is exported).
func NewCollector(read func() *Reading, opts Options) *Collector {
	if opts.TopN <= 0 {
		opts.TopN = DefaultTopN
	}
	return &Collector{read: read, opts: opts}
}

type family struct {
	name, help string
	typ        prometheus.ValueType // CounterValue, GaugeValue or UntypedValue for the histogram
	labels     []string
	desc       *prometheus.Desc
}

func newFamily(name, help string, typ prometheus.ValueType, labels ...string) *family {
	return &family{name: name, help: help, typ: typ, labels: labels,
		desc: prometheus.NewDesc(name, help, labels, nil)}
}

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// The metric families. Names and labels are an interface: add, never
// rename (the alerts in deploy/kubernetes use them).
var (
	famInfo          = newFamily("twtop_info", "twtop's version, the kernel and the attach tier (exact: whether TIME_WAIT ends are observed rather than inferred); always 1.", gauge, "version", "kernel", "tier", "exact")
	famEvents        = newFamily("twtop_events_total", "Events folded into the model.", counter)
	famLost          = newFamily("twtop_lost_events_total", "Events the kernel could not hand over (ring buffer full).", counter)
	famRecursion     = newFamily("twtop_recursion_misses_total", "Kernel events missed by the kernel's recursion guard.", counter)
	famDuration      = newFamily("twtop_trace_duration_seconds", "Span of event time the model covers.", gauge)
	famCloses        = newFamily("twtop_connections_closed_total", "Connections closed, by the side the socket was on (active: sent the first FIN).", counter, "netns", "side")
	famResetRx       = newFamily("twtop_connections_reset_received_total", "Reset closes where the peer sent the RST.", counter)
	famConnects      = newFamily("twtop_connects_total", "connect() calls that sent a SYN.", counter)
	famCreated       = newFamily("twtop_timewait_created_total", "TIME_WAIT sockets created while tracing.", counter, "netns")
	famCreatedFW2    = newFamily("twtop_timewait_created_fin_wait2_total", "TIME_WAIT sockets created in the FIN_WAIT2 substate.", counter)
	famExisting      = newFamily("twtop_timewait_existing_at_start", "TIME_WAIT sockets found by the first scan.", gauge)
	famOpen          = newFamily("twtop_timewait_open", "TIME_WAIT sockets open now.", gauge, "netns")
	famEnded         = newFamily("twtop_timewait_ended_total", "TIME_WAIT sockets ended, by cause (expired, reused, syn_recycled, rst, purged, unknown).", counter, "cause")
	famLifetime      = newFamily("twtop_timewait_lifetime_seconds", "Lifetime of the TIME_WAIT sockets that ended and whose creation was seen.", prometheus.UntypedValue)
	famOverflow      = newFamily("twtop_timewait_overflow_total", "Closes that got no TIME_WAIT socket: tcp_max_tw_buckets was reached.", counter, "netns")
	famReuse         = newFamily("twtop_reuse_total", "TIME_WAIT tuples taken over, by connect() (tcp_tw_reuse) or by a SYN.", counter, "by")
	famAddrNotAvail  = newFamily("twtop_connect_eaddrnotavail_total", "connect() calls that failed with EADDRNOTAVAIL (no local port left).", counter)
	famAddrInUse     = newFamily("twtop_bind_eaddrinuse_total", "bind() calls that failed with EADDRINUSE.", counter)
	famEvicted       = newFamily("twtop_tracking_evicted_total", "Sockets the model did not track because its table was full, by table (sockets, timewait).", counter, "table")
	famPortsHeld     = newFamily("twtop_ports_held", "Local ports a client holds towards a destination, by the state of their socket (connecting, established, closing, time_wait).", gauge, "netns", "src", "dst", "state")
	famPortsConns    = newFamily("twtop_ports_connections_total", "Connections established towards a destination.", counter, "netns", "src", "dst")
	famPortsUsage    = newFamily("twtop_ports_usage_ratio", "Ports held towards a destination over the size of ip_local_port_range (where the namespace's range is known; the other series holds the largest).", gauge, "netns", "src", "dst")
	famPortsExhaust  = newFamily("twtop_ports_exhaustion_seconds", "Time until the ports held towards a destination fill ip_local_port_range, where the current rate's steady state exceeds it; 0 while connect() fails with EADDRNOTAVAIL (the other series holds the smallest).", gauge, "netns", "src", "dst")
	famMaxBuckets    = newFamily("twtop_settings_tcp_max_tw_buckets", "The namespace's net.ipv4.tcp_max_tw_buckets.", gauge, "netns")
	famTwReuse       = newFamily("twtop_settings_tcp_tw_reuse", "The namespace's net.ipv4.tcp_tw_reuse (0, 1 or 2).", gauge, "netns")
	famPortRange     = newFamily("twtop_settings_ip_local_port_range_size", "The number of ports in the namespace's net.ipv4.ip_local_port_range.", gauge, "netns")
	famPodCloses     = newFamily("twtop_pod_connections_closed_total", "Connections closed by the sockets of a Kubernetes pod's processes, by side (pod: its name, or its UID while the runtime gives none).", counter, "namespace", "pod", "side")
	famPodCreated    = newFamily("twtop_pod_timewait_created_total", "TIME_WAIT sockets created by the closes of a pod's processes.", counter, "namespace", "pod")
	famPodOpen       = newFamily("twtop_pod_timewait_open", "TIME_WAIT sockets a pod's closes created that are open now.", gauge, "namespace", "pod")
	famFolded        = newFamily("twtop_metrics_folded", "Namespaces, destinations or pods (kind) summed under \"other\" by the series cap.", gauge, "kind")
	allFamilies      = []*family{famInfo, famEvents, famLost, famRecursion, famDuration, famCloses, famResetRx, famConnects, famCreated, famCreatedFW2, famExisting, famOpen, famEnded, famLifetime, famOverflow, famReuse, famAddrNotAvail, famAddrInUse, famEvicted, famPortsHeld, famPortsConns, famPortsUsage, famPortsExhaust, famMaxBuckets, famTwReuse, famPortRange, famPodCloses, famPodCreated, famPodOpen, famFolded}
	closeSides       = [...]string{"active", "passive", "simultaneous", "reset"}
	heldStateLabels  = [...]string{"connecting", "established", "closing", "time_wait"}
	endedCauseLabels = [...]string{"expired", "reused", "syn_recycled", "rst", "purged", "unknown"}
)

// Names lists the metric family names the collector can export (the
// histogram without its _bucket, _sum and _count suffixes).
func Names() []string {
	out := make([]string, len(allFamilies))
	for i, f := range allFamilies {
		out[i] = f.name
	}
	return out
}

// Describe sends every family's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range allFamilies {
		ch <- f.desc
	}
}

// Collect exports the latest reading.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	r := c.read()
	var tier, kernel string
	var exact bool
	if r != nil {
		tier, kernel = r.Meta.Tier, r.Kernel
		if r.Snapshot != nil {
			exact = r.Snapshot.Tier.Exact
		}
	}
	emit(ch, famInfo, 1, c.opts.Version, kernel, tier, strconv.FormatBool(exact))
	if r == nil || r.Snapshot == nil {
		return
	}
	s := r.Snapshot
	rep := s.Report(r.Meta)
	emit(ch, famEvents, float64(rep.Events))
	emit(ch, famLost, float64(rep.Lost))
	emit(ch, famRecursion, float64(rep.RecursionMisses))
	emit(ch, famDuration, s.DurationSeconds())
	emit(ch, famResetRx, float64(rep.Closes.ResetReceived))
	emit(ch, famConnects, float64(s.Counters.Connects))
	emit(ch, famCreatedFW2, float64(rep.Timewait.FinWait2Substate))
	emit(ch, famExisting, float64(rep.Timewait.ExistingAtStart))
	e := rep.Timewait.Ended
	for i, v := range [...]uint64{e.Expired, e.Reused, e.SynRecycled, e.RST, e.Purged, e.Unknown} {
		emit(ch, famEnded, float64(v), endedCauseLabels[i])
	}
	emit(ch, famReuse, float64(rep.Reuse.ConnectReuse), "connect")
	emit(ch, famReuse, float64(rep.Reuse.SynRecycle), "syn")
	emit(ch, famAddrNotAvail, float64(rep.Errors.ConnectEAddrNotAvail))
	emit(ch, famAddrInUse, float64(rep.Errors.BindEAddrInUse))
	emit(ch, famEvicted, float64(rep.Tracking.EvictedSockets), "sockets")
	emit(ch, famEvicted, float64(rep.Tracking.EvictedTimewait), "timewait")
	ch <- lifetime(&s.Lifetime)
	folded := c.netns(ch, rep.Netns)
	emit(ch, famFolded, float64(folded), "netns")
	folded = c.ports(ch, s.AllPorts)
	emit(ch, famFolded, float64(folded), "destinations")
	folded = c.pods(ch, s.AllClosers[model.ByPod])
	emit(ch, famFolded, float64(folded), "pods")
	for _, st := range rep.Settings {
		ns := netnsLabel(st.Netns)
		emit(ch, famMaxBuckets, float64(st.MaxTwBuckets), ns)
		emit(ch, famTwReuse, float64(st.TwReuse), ns)
		if st.PortRange[1] >= st.PortRange[0] && st.PortRange[0] > 0 {
			emit(ch, famPortRange, float64(st.PortRange[1]-st.PortRange[0]+1), ns)
		}
	}
}

func emit(ch chan<- prometheus.Metric, f *family, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(f.desc, f.typ, v, labels...)
}

// lifetime is the lifetime histogram in seconds.
func lifetime(h *model.Histogram) prometheus.Metric {
	bounds := make([]uint64, len(LifetimeBuckets))
	for i, b := range LifetimeBuckets {
		bounds[i] = uint64(b * 1e9)
	}
	counts := h.CumulativeCounts(bounds)
	buckets := make(map[float64]uint64, len(bounds))
	for i, b := range LifetimeBuckets {
		buckets[b] = counts[i]
	}
	return prometheus.MustNewConstHistogram(famLifetime.desc, h.Count(), float64(h.Sum())/1e9, buckets)
}

func netnsLabel(inode uint32) string { return strconv.FormatUint(uint64(inode), 10) }

// netns exports the per-namespace series: the TopN namespaces with the most
// TIME_WAIT sockets created, then closes, then open; the rest summed under
// netns="other". It returns how many namespaces were folded.
func (c *Collector) netns(ch chan<- prometheus.Metric, rows []model.NetnsStats) int {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b model.NetnsStats) int {
		if d := cmp.Compare(b.Created, a.Created); d != 0 {
			return d
		}
		if d := cmp.Compare(model.Closed(&b.Closes), model.Closed(&a.Closes)); d != 0 {
			return d
		}
		if d := cmp.Compare(b.Open, a.Open); d != 0 {
			return d
		}
		return cmp.Compare(a.Netns, b.Netns)
	})
	put := func(n *model.NetnsStats, label string) {
		for i, side := range closeSides {
			emit(ch, famCloses, float64(n.Closes[model.SideActive+model.Side(i)]), label, side)
		}
		emit(ch, famCreated, float64(n.Created), label)
		emit(ch, famOpen, float64(n.Open), label)
		emit(ch, famOverflow, float64(n.Overflow), label)
	}
	n := min(len(rows), c.opts.TopN)
	for i := range rows[:n] {
		put(&rows[i], netnsLabel(rows[i].Netns))
	}
	if rest := rows[n:]; len(rest) > 0 {
		var o model.NetnsStats
		for _, r := range rest {
			for i := range o.Closes {
				o.Closes[i] += r.Closes[i]
			}
			o.Created += r.Created
			o.Open += r.Open
			o.Overflow += r.Overflow
		}
		put(&o, Other)
	}
	return len(rows) - n
}

// ports exports the per-destination series: the TopN destinations in the
// report's order (most ports held first), the rest (and the model's own
// "other" row) summed under netns, src and dst "other". It returns how
// many rows were folded.
func (c *Collector) ports(ch chan<- prometheus.Metric, rows []model.PortPressure) int {
	var (
		other  model.PortPressure
		folded int
	)
	shown := 0
	for i := range rows {
		p := &rows[i]
		if shown < c.opts.TopN && p.Dst != Other {
			c.port(ch, p, netnsLabel(p.Netns), p.Src, p.Dst)
			shown++
			continue
		}
		folded++
		other.Connecting += p.Connecting
		other.Established += p.Established
		other.Closing += p.Closing
		other.TimeWait += p.TimeWait
		other.Connections += p.Connections
		if p.RangeSize > 0 {
			other.RangeSize = max(other.RangeSize, p.RangeSize)
			other.Usage = max(other.Usage, p.Usage)
		}
		if p.ExhaustionS != nil && (other.ExhaustionS == nil || *p.ExhaustionS < *other.ExhaustionS) {
			v := *p.ExhaustionS
			other.ExhaustionS = &v
		}
	}
	if folded > 0 {
		c.port(ch, &other, Other, Other, Other)
	}
	return folded
}

func (c *Collector) port(ch chan<- prometheus.Metric, p *model.PortPressure, netns, src, dst string) {
	for i, v := range [...]int64{p.Connecting, p.Established, p.Closing, p.TimeWait} {
		emit(ch, famPortsHeld, float64(v), netns, src, dst, heldStateLabels[i])
	}
	emit(ch, famPortsConns, float64(p.Connections), netns, src, dst)
	if p.RangeSize > 0 {
		emit(ch, famPortsUsage, p.Usage, netns, src, dst)
	}
	if p.ExhaustionS != nil {
		emit(ch, famPortsExhaust, *p.ExhaustionS, netns, src, dst)
	}
}

// pods exports the per-pod series: the TopN pods with the most TIME_WAIT
// sockets created, then closes; the rest (and the model's own "other"
// row) summed under namespace and pod "other". It returns how many rows
// were folded.
func (c *Collector) pods(ch chan<- prometheus.Metric, rows []model.Closer) int {
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b model.Closer) int {
		if d := cmp.Compare(b.TimewaitCreated, a.TimewaitCreated); d != 0 {
			return d
		}
		if d := cmp.Compare(b.Total(), a.Total()); d != 0 {
			return d
		}
		return cmp.Compare(a.Key, b.Key)
	})
	put := func(r *model.Closer, ns, pod string) {
		for i, side := range closeSides {
			emit(ch, famPodCloses, float64(r.Closes[model.SideActive+model.Side(i)]), ns, pod, side)
		}
		emit(ch, famPodCreated, float64(r.TimewaitCreated), ns, pod)
		emit(ch, famPodOpen, float64(r.TimewaitOpen), ns, pod)
	}
	var other model.Closer
	shown, folded := 0, 0
	for i := range rows {
		r := &rows[i]
		if shown < c.opts.TopN && r.Key != Other {
			pod := r.Pod
			if pod == "" {
				pod = r.PodUID
			}
			put(r, r.Namespace, pod)
			shown++
			continue
		}
		folded++
		for j := range other.Closes {
			other.Closes[j] += r.Closes[j]
		}
		other.TimewaitCreated += r.TimewaitCreated
		other.TimewaitOpen += r.TimewaitOpen
	}
	if folded > 0 {
		put(&other, Other, Other)
	}
	return folded
}
