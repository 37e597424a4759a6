package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/twtop/twtop/internal/ingest"
	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/model/modeltest"
)

// replay runs a recording through the decoder into a model, as
// `twtop --replay` does, and returns the model and the report's meta.
func replay(t *testing.T, path string) (*model.Model, model.Meta) {
	t.Helper()
	m, rd, err := ingest.File(path)
	if err != nil {
		t.Fatal(err)
	}
	ts := rd.TracerStats()
	return m, model.Meta{Tier: rd.Header().Tier, Lost: ts.Lost, RecursionMisses: ts.RecursionMisses}
}

// serve serves a collector of read on a test server and returns its URL.
func serve(t *testing.T, read func() *Reading, opts Options) string {
	t.Helper()
	h, err := NewHandler(NewCollector(read, opts), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

// scrape fetches and parses an exposition, and lints it as promtool
// check metrics does.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	var list []*dto.MetricFamily
	for _, f := range fams {
		list = append(list, f)
	}
	problems, err := promlint.NewWithMetricFamilies(list).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	return fams
}

// series is a scrape as name{label="v",...} → value, labels sorted by name.
type series map[string]float64

func flatten(fams map[string]*dto.MetricFamily) series {
	out := series{}
	for name, f := range fams {
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			key := name + "{" + strings.Join(ls, ",") + "}"
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Untyped != nil:
				out[key] = m.Untyped.GetValue()
			}
		}
	}
	return out
}

// sum adds the values of the series of a family whose labels include all
// of match ("name=\"v\"").
func (s series) sum(name string, match ...string) (float64, int) {
	var v float64
	n := 0
next:
	for k, x := range s {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		for _, m := range match {
			if !strings.Contains(k, m) {
				continue next
			}
		}
		v += x
		n++
	}
	return v, n
}

func (s series) want(t *testing.T, key string, want float64) {
	t.Helper()
	got, ok := s[key]
	if !ok {
		t.Errorf("%s: missing", key)
		return
	}
	if got != want {
		t.Errorf("%s = %v, want %v", key, got, want)
	}
}

func (s series) wantSum(t *testing.T, want float64, name string, match ...string) {
	t.Helper()
	got, n := s.sum(name, match...)
	if n == 0 || got != want {
		t.Errorf("sum of %s%v = %v over %d series, want %v", name, match, got, n, want)
	}
}

func lbl(name, v string) string { return fmt.Sprintf("%s=%q", name, v) }

// The metrics of each real recording equal its report, figure by figure.
func TestMetricsEqualReport(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/*.twrec")
	if len(paths) == 0 {
		t.Fatal("no recordings in testdata")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			m, meta := replay(t, path)
			snap := m.Snapshot()
			url := serve(t, func() *Reading { return &Reading{Snapshot: snap, Meta: meta, Kernel: "6.1.0"} }, Options{Version: "v-test"})
			fams := scrape(t, url)
			s := flatten(fams)
			r := snap.Report(meta)

			s.want(t, fmt.Sprintf("twtop_info{%s,%s,%s,%s}", lbl("exact", fmt.Sprint(r.Tier != "tracepoint")), lbl("kernel", "6.1.0"), lbl("tier", r.Tier), lbl("version", "v-test")), 1)
			s.want(t, "twtop_events_total{}", float64(r.Events))
			s.want(t, "twtop_lost_events_total{}", float64(r.Lost))
			s.want(t, "twtop_recursion_misses_total{}", float64(r.RecursionMisses))
			s.want(t, "twtop_trace_duration_seconds{}", snap.DurationSeconds())
			s.want(t, "twtop_connections_reset_received_total{}", float64(r.Closes.ResetReceived))
			for side, v := range map[string]uint64{"active": r.Closes.Active, "passive": r.Closes.Passive,
				"simultaneous": r.Closes.Simultaneous, "reset": r.Closes.Reset} {
				s.wantSum(t, float64(v), "twtop_connections_closed_total", lbl("side", side))
			}
			tw := r.Timewait
			s.wantSum(t, float64(tw.Created), "twtop_timewait_created_total")
			s.wantSum(t, float64(tw.OpenAtEnd), "twtop_timewait_open")
			s.wantSum(t, float64(tw.Overflow), "twtop_timewait_overflow_total")
			s.want(t, "twtop_timewait_created_fin_wait2_total{}", float64(tw.FinWait2Substate))
			s.want(t, "twtop_timewait_existing_at_start{}", float64(tw.ExistingAtStart))
			for cause, v := range map[string]uint64{"expired": tw.Ended.Expired, "reused": tw.Ended.Reused,
				"syn_recycled": tw.Ended.SynRecycled, "rst": tw.Ended.RST, "purged": tw.Ended.Purged, "unknown": tw.Ended.Unknown} {
				s.want(t, "twtop_timewait_ended_total{"+lbl("cause", cause)+"}", float64(v))
			}
			s.want(t, `twtop_reuse_total{by="connect"}`, float64(r.Reuse.ConnectReuse))
			s.want(t, `twtop_reuse_total{by="syn"}`, float64(r.Reuse.SynRecycle))
			s.want(t, "twtop_connect_eaddrnotavail_total{}", float64(r.Errors.ConnectEAddrNotAvail))
			s.want(t, "twtop_bind_eaddrinuse_total{}", float64(r.Errors.BindEAddrInUse))
			s.want(t, `twtop_tracking_evicted_total{table="sockets"}`, float64(r.Tracking.EvictedSockets))
			s.want(t, `twtop_tracking_evicted_total{table="timewait"}`, float64(r.Tracking.EvictedTimewait))
			for _, n := range r.Netns {
				ns := lbl("netns", fmt.Sprint(n.Netns))
				s.want(t, "twtop_timewait_created_total{"+ns+"}", float64(n.Created))
				s.want(t, "twtop_timewait_open{"+ns+"}", float64(n.Open))
			}
			for _, st := range r.Settings {
				ns := lbl("netns", fmt.Sprint(st.Netns))
				s.want(t, "twtop_settings_tcp_max_tw_buckets{"+ns+"}", float64(st.MaxTwBuckets))
				s.want(t, "twtop_settings_tcp_tw_reuse{"+ns+"}", float64(st.TwReuse))
				s.want(t, "twtop_settings_ip_local_port_range_size{"+ns+"}", float64(st.PortRange[1]-st.PortRange[0]+1))
			}
			if len(r.Ports) == 0 {
				t.Fatal("the recording has no port pressure rows")
			}
			for _, p := range r.Ports {
				id := strings.Join([]string{lbl("dst", p.Dst), lbl("netns", fmt.Sprint(p.Netns)), lbl("src", p.Src)}, ",")
				for state, v := range map[string]int64{"connecting": p.Connecting, "established": p.Established, "closing": p.Closing, "time_wait": p.TimeWait} {
					s.want(t, "twtop_ports_held{"+id+","+lbl("state", state)+"}", float64(v))
				}
				s.wantSum(t, float64(p.Held), "twtop_ports_held", id)
				s.want(t, "twtop_ports_connections_total{"+id+"}", float64(p.Connections))
				if p.RangeSize > 0 {
					s.want(t, "twtop_ports_usage_ratio{"+id+"}", p.Usage)
				}
				if p.ExhaustionS != nil {
					s.want(t, "twtop_ports_exhaustion_seconds{"+id+"}", *p.ExhaustionS)
				}
			}
			checkLifetime(t, fams["twtop_timewait_lifetime_seconds"], r.LifetimeMS, &snap.Lifetime)
		})
	}
}

// checkLifetime: the histogram's count is the report's, its buckets the
// model's cumulative counts, and the quantile its buckets give brackets the
// report's p50.
func checkLifetime(t *testing.T, f *dto.MetricFamily, l model.LifetimeReport, h *model.Histogram) {
	t.Helper()
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || len(f.Metric) != 1 {
		t.Fatalf("lifetime histogram: %v", f)
	}
	hist := f.Metric[0].Histogram
	if hist.GetSampleCount() != l.Count {
		t.Errorf("lifetime count %d, report %d", hist.GetSampleCount(), l.Count)
	}
	if want := float64(h.Sum()) / 1e9; hist.GetSampleSum() != want {
		t.Errorf("lifetime sum %v, want %v", hist.GetSampleSum(), want)
	}
	if len(hist.Bucket) != len(LifetimeBuckets)+1 { // and +Inf
		t.Fatalf("%d buckets, want %d", len(hist.Bucket), len(LifetimeBuckets)+1)
	}
	if inf := hist.Bucket[len(LifetimeBuckets)]; !math.IsInf(inf.GetUpperBound(), 1) || inf.GetCumulativeCount() != l.Count {
		t.Errorf("last bucket le %v count %d, want +Inf and %d", inf.GetUpperBound(), inf.GetCumulativeCount(), l.Count)
	}
	bounds := make([]uint64, len(LifetimeBuckets))
	for i, b := range LifetimeBuckets {
		bounds[i] = uint64(b * 1e9)
	}
	counts := h.CumulativeCounts(bounds)
	prev := uint64(0)
	for i, b := range hist.Bucket[:len(LifetimeBuckets)] {
		if b.GetCumulativeCount() != counts[i] {
			t.Errorf("bucket le %v: %d, model %d", b.GetUpperBound(), b.GetCumulativeCount(), counts[i])
		}
		if b.GetUpperBound() != LifetimeBuckets[i] || b.GetCumulativeCount() < prev {
			t.Errorf("bucket %d: le %v count %d", i, b.GetUpperBound(), b.GetCumulativeCount())
		}
		prev = b.GetCumulativeCount()
		if le := b.GetUpperBound() * 1000; l.Count > 0 && le < l.P50*0.99 && float64(prev) > float64(l.Count)/2 {
			t.Errorf("half the lifetimes are below %v ms, but the report's p50 is %v ms", le, l.P50)
		}
	}
}

// 10,000 destinations and 300 namespaces give at most TopN series each and
// one "other" that carries the rest.
func TestMetricsCardinalityCapped(t *testing.T) {
	const dests, spaces, topN = 10_000, 300, 50
	m := model.New(model.Config{MaxKeys: 1 << 14})
	var tm uint64 = 1e9
	for i := range dests {
		ns := uint32(1000 + (i/2)%spaces) // every namespace has closes
		dst := fmt.Sprintf("10.%d.%d.%d:80", i>>16&255, i>>8&255, i&255)
		ev := event.Event{Kind: event.KindState, Ptr: uint64(i + 1), Netns: ns, Family: event.AFInet,
			Src: netip.MustParseAddrPort("192.168.0.1:40000"), Dst: netip.MustParseAddrPort(dst), OldState: event.Close, NewState: event.SynSent, Lifetime: -1}
		for _, st := range []event.State{event.SynSent, event.Established} {
			tm += 1000
			ev.Time, ev.NewState = tm, st
			m.Apply(&ev)
			ev.OldState = st
		}
		if i%2 == 0 { // half of them close, leaving a TIME_WAIT socket each
			for _, st := range []event.State{event.FinWait1, event.FinWait2} {
				tm += 1000
				ev.Time, ev.NewState = tm, st
				m.Apply(&ev)
				ev.OldState = st
			}
			tw := ev
			tw.Kind, tw.Ptr, tw.Time, tw.NewState = event.KindTWCreate, uint64(1<<40+i), tm+500, event.TimeWait
			m.Apply(&tw)
			tm += 1000
			ev.Time, ev.NewState = tm, event.Close
			m.Apply(&ev)
		}
	}
	snap := m.Snapshot()
	if len(snap.AllPorts) != dests {
		t.Fatalf("the model has %d destinations, want %d", len(snap.AllPorts), dests)
	}
	url := serve(t, func() *Reading { return &Reading{Snapshot: snap} }, Options{TopN: topN})
	s := flatten(scrape(t, url))

	for _, name := range []string{"twtop_ports_connections_total", "twtop_timewait_created_total", "twtop_timewait_open"} {
		if _, n := s.sum(name); n > topN+1 {
			t.Errorf("%s: %d series, want at most %d", name, n, topN+1)
		}
	}
	if _, n := s.sum("twtop_ports_held"); n != 4*(topN+1) {
		t.Errorf("twtop_ports_held: %d series, want %d", n, 4*(topN+1))
	}
	// the sums are the model's totals; the other series holds the rest
	other := strings.Join([]string{lbl("dst", Other), lbl("netns", Other), lbl("src", Other)}, ",")
	s.wantSum(t, dests, "twtop_ports_connections_total")
	s.want(t, "twtop_ports_connections_total{"+other+"}", dests-topN)
	var top float64
	for _, p := range snap.AllPorts[:topN] {
		top += float64(p.TimeWait)
	}
	s.want(t, "twtop_ports_held{"+other+`,state="time_wait"}`, float64(dests/2)-top)
	s.wantSum(t, dests/2, "twtop_timewait_created_total")
	s.wantSum(t, dests/2, "twtop_timewait_open")
	s.wantSum(t, dests/2, "twtop_connections_closed_total", lbl("side", "active"))
	s.want(t, `twtop_metrics_folded{kind="destinations"}`, dests-topN)
	s.want(t, `twtop_metrics_folded{kind="netns"}`, spaces-topN)
	if _, ok := s["twtop_timewait_open{"+lbl("netns", Other)+"}"]; !ok {
		t.Error("no netns=\"other\" series")
	}
}

// podWorkloads resolves cgroup id 1+i to pod i (its name in namespace
// i%7), as the workload resolver would with a runtime.
type podWorkloads struct{}

func (podWorkloads) Lookup(id uint64) (workload.Workload, bool) {
	i := id - 1
	return workload.Workload{Kind: workload.KindPod, CgroupID: id, PodUID: fmt.Sprintf("uid-%d", i),
		ContainerID: fmt.Sprintf("%064x", id), Namespace: fmt.Sprintf("ns-%d", i%7), Pod: fmt.Sprintf("pod-%d", i)}, true
}

// LookupNetns: the connections are in the host's namespace, no pod's.
func (podWorkloads) LookupNetns(uint64) (workload.Workload, bool) {
	return workload.Workload{Kind: workload.KindOther}, true
}

// 1,000 pods, each closing its own connections first with a TIME_WAIT
// socket each (pod i makes i%3+1), give at most TopN series per pod family
// and one "other" that carries the rest; the sums are the model's totals.
func TestMetricsPodsCapped(t *testing.T) {
	const pods, topN = 1000, 50
	m := model.New(model.Config{MaxKeys: 1 << 14, Workloads: podWorkloads{}})
	var tm uint64 = 1e9
	var ptr uint64
	total := 0
	for i := range pods {
		for range i%3 + 1 {
			ptr++
			total++
			modeltest.ClientCloses(m, &tm, modeltest.Conn{Ptr: ptr, Netns: 4026531840,
				Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), uint16(30000+ptr%30000)),
				Dst: netip.MustParseAddrPort("10.0.0.1:80"), Pid: uint32(100 + i), Cgroup: uint64(i + 1)})
		}
	}
	snap := m.Snapshot()
	if n := len(snap.AllClosers[model.ByPod]); n != pods {
		t.Fatalf("the model ranks %d pods, want %d", n, pods)
	}
	s := flatten(scrape(t, serve(t, func() *Reading { return &Reading{Snapshot: snap} }, Options{TopN: topN})))
	for _, name := range []string{"twtop_pod_timewait_created_total", "twtop_pod_timewait_open"} {
		if _, n := s.sum(name); n != topN+1 {
			t.Errorf("%s: %d series, want %d", name, n, topN+1)
		}
	}
	if _, n := s.sum("twtop_pod_connections_closed_total"); n != 4*(topN+1) {
		t.Errorf("twtop_pod_connections_closed_total: %d series, want %d", n, 4*(topN+1))
	}
	s.wantSum(t, float64(total), "twtop_pod_timewait_created_total")
	s.wantSum(t, float64(total), "twtop_pod_timewait_open")
	s.wantSum(t, float64(total), "twtop_pod_connections_closed_total", lbl("side", "active"))
	// the top pods are those with 3 connections (i%3 == 2), by key
	s.want(t, "twtop_pod_timewait_created_total{"+lbl("namespace", "ns-1")+","+lbl("pod", "pod-134")+"}", 3)
	s.want(t, "twtop_pod_timewait_created_total{"+lbl("namespace", Other)+","+lbl("pod", Other)+"}", float64(total-3*topN))
	s.want(t, `twtop_metrics_folded{kind="pods"}`, pods-topN)
}

func TestMetricsBeforeFirstSnapshot(t *testing.T) {
	s := flatten(scrape(t, serve(t, func() *Reading { return nil }, Options{Version: "v"})))
	s.want(t, `twtop_info{exact="false",kernel="",tier="",version="v"}`, 1)
	if _, n := s.sum("twtop_events_total"); n != 0 {
		t.Error("twtop_events_total before any snapshot")
	}
}

func TestNamesAreExported(t *testing.T) {
	m, meta := replay(t, "../testdata/port-pressure.twrec")
	snap := m.Snapshot()
	fams := scrape(t, serve(t, func() *Reading { return &Reading{Snapshot: snap, Meta: meta} }, Options{}))
	for _, n := range Names() {
		// the recording has no pods (TestMetricsPodsCapped has)
		if fams[n] == nil && n != "twtop_ports_exhaustion_seconds" && !strings.HasPrefix(n, "twtop_pod_") {
			t.Errorf("%s is not in the exposition of port-pressure", n)
		}
	}
	for n := range fams {
		if strings.HasPrefix(n, "twtop_") && !contains(Names(), n) {
			t.Errorf("%s is exported but not in Names", n)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLifetimeBucketsSpan(t *testing.T) {
	if LifetimeBuckets[0] != 0.001 || LifetimeBuckets[len(LifetimeBuckets)-1] != 120 {
		t.Errorf("buckets %v do not span 1 ms to 120 s", LifetimeBuckets)
	}
	for i := 1; i < len(LifetimeBuckets); i++ {
		if !(LifetimeBuckets[i] > LifetimeBuckets[i-1]) || math.IsInf(LifetimeBuckets[i], 0) {
			t.Errorf("buckets %v not ascending", LifetimeBuckets)
		}
	}
}
