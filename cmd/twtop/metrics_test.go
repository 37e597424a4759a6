package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/netns/netnstest"
	"github.com/twtop/twtop/internal/scenario"
	"github.com/twtop/twtop/metrics"
)

func metricsAddr(cfg *config) (string, error) { return metrics.ListenAddr(cfg.metrics) }

func TestMetricsFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		addr string // what --metrics binds to
		ui   bool
	}{
		{[]string{"--metrics", ":9273", "--no-ui"}, "127.0.0.1:9273", false},
		{[]string{"--metrics", "9273", "--no-ui", "--duration", "5s"}, "127.0.0.1:9273", false},
		{[]string{"--metrics", "0.0.0.0:9273", "--no-ui"}, "0.0.0.0:9273", false},
		{[]string{"--metrics", "[::]:9273", "--no-ui", "--metrics-top", "10"}, "[::]:9273", false},
		{[]string{"--metrics", "127.0.0.1:0"}, "127.0.0.1:0", true},
		{[]string{"--metrics", ":0", "--report", "json", "--record", "f"}, "127.0.0.1:0", false},
		{[]string{"--replay", "f", "--metrics", ":0"}, "127.0.0.1:0", true},
		{[]string{"--replay", "f", "--metrics", ":0", "--no-ui"}, "127.0.0.1:0", false},
		{[]string{"--replay", "f", "--metrics", ":0", "--report", "json"}, "127.0.0.1:0", false},
	} {
		cfg, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Errorf("twtop %q: %v", tc.args, err)
			continue
		}
		addr, _ := metricsAddr(cfg)
		if addr != tc.addr || cfg.ui != tc.ui {
			t.Errorf("twtop %q: binds %q, ui %v; want %q, %v", tc.args, addr, cfg.ui, tc.addr, tc.ui)
		}
	}
	for _, args := range [][]string{
		{"--no-ui"},
		{"--no-ui", "--report", "json"},
		{"--metrics", ""},
		{"--metrics", ":http"},
		{"--metrics", "host"},
		{"--metrics", ":70000"},
		{"--metrics", ":0", "--events", "json"},
		{"--metrics-top", "5", "--report", "json"},
		{"--metrics", ":0", "--metrics-top", "0"},
		{"--metrics", ":0", "--duration", "5s"}, // with the UI
		{"--replay", "f", "--metrics", ":0", "--duration", "5s"},
	} {
		_, err := parseFlags(args, io.Discard)
		if _, ok := err.(*usageError); !ok {
			t.Errorf("twtop %q: err = %v, want a usage error", args, err)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("twtop %q: error is not one line: %q", args, err)
		}
	}
	for _, want := range []string{"--metrics ADDR", "--no-ui", "--metrics-top", "0.0.0.0:9273", "127.0.0.1", "--metrics :9273 --no-ui"} {
		if !strings.Contains(usageText, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}

// metricsURL matches twtop's line naming the metrics endpoint.
var metricsURL = regexp.MustCompile(`twtop: metrics on (http://\S+/metrics)`)

// startMetricsTwtop starts the binary with args and returns, once a line
// of stderr contains ready, the metrics URL it printed, its stdout, and a
// function that stops it with SIGTERM and returns its exit error.
func startMetricsTwtop(t *testing.T, ready string, args ...string) (url string, stdout io.Reader, stop func() error) {
	t.Helper()
	cmd, stdout, wait, url := startTwtopUntil(t, ready, args...)
	stop = func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		return wait()
	}
	if url == "" {
		stop()
		t.Fatal("twtop printed no metrics address")
	}
	return url, stdout, stop
}

// scrapeValues fetches url and returns name → the sum of its samples
// (counters, gauges and histogram counts).
func scrapeValues(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			key := name
			for _, l := range m.Label {
				if l.GetName() == "side" || l.GetName() == "cause" || l.GetName() == "by" {
					key += "/" + l.GetValue()
				}
			}
			switch {
			case m.Counter != nil:
				out[key] += m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] += m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key+"_count"] += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

// `twtop --replay FILE --report json --metrics ADDR` prints the report,
// then serves the same figures until SIGTERM.
func TestMetricsReplayServesReport(t *testing.T) {
	url, stdout, stop := startMetricsTwtop(t, "serving its figures", "--replay", "../../testdata/nginx-proxy.twrec", "--report", "json", "--metrics", "127.0.0.1:0")
	var rep struct {
		Events uint64
		Closes struct{ Active, Passive, Reset uint64 }
		// the rest by key
		Timewait struct {
			Created   uint64
			OpenAtEnd int `json:"open_at_end"`
			Ended     struct{ Expired, Unknown uint64 }
		}
		LifetimeMS struct{ Count uint64 } `json:"lifetime_ms"`
		Reuse      struct {
			ConnectReuse uint64 `json:"connect_reuse"`
		}
	}
	if err := json.NewDecoder(stdout).Decode(&rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	v := scrapeValues(t, url)
	for name, want := range map[string]uint64{
		"twtop_events_total":                     rep.Events,
		"twtop_connections_closed_total/active":  rep.Closes.Active,
		"twtop_connections_closed_total/passive": rep.Closes.Passive,
		"twtop_connections_closed_total/reset":   rep.Closes.Reset,
		"twtop_timewait_created_total":           rep.Timewait.Created,
		"twtop_timewait_open":                    uint64(rep.Timewait.OpenAtEnd),
		"twtop_timewait_ended_total/expired":     rep.Timewait.Ended.Expired,
		"twtop_timewait_ended_total/unknown":     rep.Timewait.Ended.Unknown,
		"twtop_timewait_lifetime_seconds_count":  rep.LifetimeMS.Count,
		"twtop_reuse_total/connect":              rep.Reuse.ConnectReuse,
		"twtop_info":                             1,
	} {
		if got, ok := v[name]; !ok || got != float64(want) {
			t.Errorf("%s = %v (exported: %v), report %d", name, got, ok, want)
		}
	}
	for _, name := range metrics.Names() {
		// (a recording without pods has no per-pod series)
		if _, ok := v[name]; !ok && !strings.HasPrefix(name, "twtop_ports_") && !strings.HasPrefix(name, "twtop_pod_") && name != "twtop_timewait_lifetime_seconds" {
			found := false
			for k := range v {
				found = found || strings.HasPrefix(k, name+"/")
			}
			if !found {
				t.Errorf("%s: not exported", name)
			}
		}
	}
	if v["twtop_timewait_created_total"] == 0 {
		t.Error("the recording created no TIME_WAIT socket")
	}
	if err := stop(); err != nil {
		t.Fatalf("twtop after SIGTERM: %v", err)
	}
}

// A busy port is a one-line error (exit 1) before anything else happens.
func TestMetricsBusyPort(t *testing.T) {
	url, _, stop := startMetricsTwtop(t, "serving its figures", "--replay", "../../testdata/server-closes.twrec", "--no-ui", "--metrics", "127.0.0.1:0")
	defer stop()
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/metrics")
	out, err := exec.Command(twtopBinary(t), "--replay", "../../testdata/server-closes.twrec", "--no-ui", "--metrics", addr).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	msg := strings.TrimSuffix(string(out), "\n")
	if !ok || ee.ExitCode() != 1 || strings.Contains(msg, "\n") || !strings.Contains(msg, "--metrics") || !strings.Contains(msg, "address already in use") {
		t.Fatalf("second twtop on %s: %v, %q; want exit 1 and one line saying the port is taken", addr, err, out)
	}
}

// Headless live tracing with --metrics: the scraped figures reach the
// namespace's own TcpExt counters.
func TestMetricsLiveMatchCounters(t *testing.T) {
	ns := netnstest.New(t)
	before := netnstest.Counters(t, ns)
	url, _, stop := startMetricsTwtop(t, "tracing on", "--metrics", "127.0.0.1:0", "--no-ui", "--netns", ns.Path())
	const n = 7
	r, err := scenario.ClientCloses(ns, n, unix.AF_INET)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	defer r.Close()
	tw := netnstest.Delta(t, before, netnstest.Counters(t, ns), "TcpExt.TW")
	if tw != n {
		t.Fatalf("scenario made TcpExt.TW %d, want %d", tw, n)
	}
	var v map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		v = scrapeValues(t, url)
		if v["twtop_timewait_created_total"] == float64(tw) && v["twtop_connections_closed_total/active"] == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Errorf("twtop after SIGTERM: %v", err)
	}
	for name, want := range map[string]float64{
		"twtop_timewait_created_total":           float64(tw),
		"twtop_timewait_open":                    n,
		"twtop_connections_closed_total/active":  n,
		"twtop_connections_closed_total/passive": n,
		"twtop_lost_events_total":                0,
		"twtop_info":                             1,
	} {
		if v[name] != want {
			t.Errorf("%s = %v, want %v", name, v[name], want)
		}
	}
	if t.Failed() {
		t.Logf("scraped: %v", v)
	}
}
