package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/metrics"
	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/check"
	"github.com/twtop/twtop/tracer/event"
)

const usageText = `twtop shows TCP TIME_WAIT live, from the kernel: who closes first, how long
TIME_WAIT sockets live and how they end, whether tcp_tw_reuse reuses them, and
how close the host is to running out of ephemeral ports.

Usage:
  sudo twtop [flags]                      the terminal UI, live (q quits, ? lists keys)
  sudo twtop --report text|json [flags]   trace until Ctrl-C or --duration, then
                                          report who closed, TIME_WAIT counts,
                                          ends by cause, lifetimes, reuse, errors,
                                          port pressure and advice
  sudo twtop --events json [flags]        print every event as a JSON line
  sudo twtop --record FILE [flags]        record every event to FILE (headless)
  twtop --replay FILE                     the UI on a recording (+/- speed, p pause)
  twtop --replay FILE [--report F | --events json] [--check EXPR ...]
                                          read a recording headless; no root needed
  sudo twtop --metrics ADDR --no-ui       serve Prometheus metrics, headless, until
                                          Ctrl-C, SIGTERM or --duration

Examples:
  sudo twtop --netns blue
  sudo twtop --report text --duration 60s --port 443
  sudo twtop --events json --duration 10s | jq -c 'select(.kind=="tw_create")'
  sudo twtop --record /var/tmp/tw.twrec --duration 10m --netns blue
  twtop --replay tw.twrec --report text
  twtop --replay tw.twrec --check 'timewait.overflow == 0' \
        --check 'max(ports.usage) < 0.8' --check 'lost == 0'
  sudo twtop --metrics :9273 --no-ui      then: curl -s localhost:9273/metrics

Flags:
  --report FORMAT    at the end print a report; FORMAT is text or json (stable
                     keys: tier, duration_s, events, lost, closes.*, timewait.*,
                     lifetime_ms.*, reuse.*, errors.*, top_closers, ports,
                     findings, settings, kernel)
  --events FORMAT    print events; FORMAT is json (one object per line, a "kind"
                     field plus that kind's fields; live, also the workload:
                     "workload", "pod_uid", "container_id", "namespace", "pod",
                     "container" or "service" as far as they are known yet)
  --record FILE      write the raw events, settings and counters to FILE (mode
                     0600; "-" for stdout) until Ctrl-C or --duration. A file cut
                     short by kill -9 or a full disk still replays up to its last
                     second. May be combined with --report.
  --replay FILE      read a recording instead of tracing ("-" for stdin)
  --check EXPR       with --replay: evaluate EXPR on the report, print PASS or
                     FAIL with the actual value, exit 1 if any check fails.
                     Repeatable. EXPR is KEY OP NUMBER or FN(KEY) OP NUMBER:
                       OP   ==, !=, <, <=, >, >=
                       FN   max, min, sum, count (of no values: 0)
                       KEY  dotted report keys; through a list a key reaches
                            every element, {k=v,k!=v} keeps matching elements
                     A key the report cannot have is bad usage (exit 2).
                     e.g. timewait.overflow == 0, lost == 0,
                          max(ports.usage) < 0.8,
                          top_closers{by=port,port=80}.active_share < 0.5,
                          count(findings{severity=critical}) == 0
  --metrics ADDR     also serve Prometheus metrics at http://ADDR/metrics (and
                     /healthz) from the same figures as the report. A port
                     alone (:9273) binds to 127.0.0.1; every interface only
                     when asked: 0.0.0.0:9273 or [::]:9273. Port 0 picks a free
                     one; the address is printed. Works with the UI, --report
                     and --record; with --replay it serves what the UI shows,
                     or without the UI the recording's final figures until
                     Ctrl-C or SIGTERM
  --metrics-top N    at most N series per network namespace and per
                     destination (default 50); the rest are summed under
                     netns/dst="other"
  --no-ui            no terminal UI: with --metrics, run headless (a daemon)
  --duration D       stop after D (e.g. 30s, 5m); default: until Ctrl-C
  --attach TIER      auto (default), fentry, kprobe or tracepoint; auto picks the
                     best the kernel allows. The tracepoint tier infers how
                     TIME_WAIT sockets end; such events carry "inferred":true
  --netns NS         only this network namespace: a name under /run/netns, a
                     path (/proc/PID/ns/net) or an inode number; the TIME_WAIT
                     scan and the settings are read inside it
  --pid N            only sockets owned by process N (their TIME_WAIT too)
  --pod POD          only sockets owned by the processes of a Kubernetes pod
                     (their TIME_WAIT too): NAMESPACE/NAME (named through the
                     runtime's CRI socket) or the pod's UID
  --container ID     only those of a container: its id or a unique prefix
  --cgroup PATH      only those of a cgroup v2 subtree: a path as
                     /proc/PID/cgroup shows it (/system.slice/nginx.service)
                     or its directory under /sys/fs/cgroup. The kernel applies
                     --pid and these three filters itself
  --cri-socket PATH  the container runtime's CRI socket, for pod and container
                     names (default: containerd's or CRI-O's usual socket);
                     without one, pods and containers keep their ids
  --port P           only connections with local or remote port P
  -4, -6             only IPv4 or only IPv6
  --ring-size SIZE   the kernel's event buffers, all CPUs' together, a power
                     of two such as 64M or 1G (default: 8M per CPU, or 128
                     bytes per TIME_WAIT socket the traced namespaces allow
                     (tcp_max_tw_buckets) where that is more, for a burst of
                     expiries; 16M to 256M; a CPU's own ring is at least
                     1M); raise it when the stderr summary reports lost
                     events
  --probe            print what the running kernel offers (BTF, ring buffer,
                     fentry, kprobes, iter/tcp, the timewait functions) and
                     the tier and fallbacks twtop would use, then exit; as
                     root it loads and unloads the programs to be sure
  --btf FILE         the kernel's BTF, for kernels without
                     /sys/kernel/btf/vmlinux (a BTFHub file for this release,
                     or a vmlinux with a .BTF section); only the kprobe and
                     tracepoint tiers work then
  --fallback LIST    force older kernels' ways even where the kernel has the
                     newer ones (testing, or a vendor kernel with holes):
                     perf-buffer, classic-tracepoints, sock-diag,
                     no-kernel-btf, old-helpers, shared-ring,
                     comma-separated (default: $TWTOP_FALLBACK)
  --verbose          say why better tiers were not used, and print the
                     verifier's log when the kernel refuses a program
  --version          print the version
  --help             this text

Event kinds: state, tw_create, tw_arm, tw_cancel, tw_expire, tw_kill, tw_reuse,
tw_rx, tw_overflow, connect_error, bind_error, scan_tw, scan_end.

Exit status: 0 ok, 1 failure or a failed --check, 2 bad usage or an unreadable
recording.

Tracing needs root (or CAP_BPF and CAP_PERFMON; CAP_SYS_ADMIN for --netns). It
runs on Linux 5.10 and later as is; older kernels (5.4, RHEL 8's 4.18) or ones
without BTF through older ways to the same events and --btf FILE. twtop --probe
says what a host offers and what twtop would use. Replaying needs neither.
`

type config struct {
	events    string
	report    string
	record    string
	replay    string
	checks    []*check.Check
	version   bool
	ui        bool // the terminal UI: no other output was asked for
	duration  time.Duration
	tier      tracer.Tier
	netns     string
	criSocket string
	ringSize  uint32
	pid       uint32
	owner     workload.Selector // --pod, --container, --cgroup
	port      uint16
	family    uint8

	metrics    string // --metrics ADDR, as given
	metricsTop int
	noUI       bool

	probe     bool
	btf       string
	fallbacks tracer.Fallbacks
	verbose   bool
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("twtop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		cfg      config
		attach   string
		pid      uint
		port     uint
		v4, v6   bool
		fallback string
	)
	fs.StringVar(&cfg.events, "events", "", "")
	fs.StringVar(&cfg.report, "report", "", "")
	fs.StringVar(&cfg.record, "record", "", "")
	fs.StringVar(&cfg.replay, "replay", "", "")
	// flag words its own errors ("invalid value … for flag -x: …"); the
	// values parsed here keep theirs whole, as usage errors.
	var valueErr error
	fs.Func("check", "", func(s string) error {
		c, err := check.Parse(s)
		if err == nil {
			err = c.Validate(reportKeys)
		}
		if err != nil {
			valueErr = err
			return err
		}
		cfg.checks = append(cfg.checks, c)
		return nil
	})
	fs.BoolVar(&cfg.version, "version", false, "")
	fs.Func("duration", "", func(s string) error {
		d, err := parseDuration(s)
		if err != nil {
			valueErr = err
			return err
		}
		cfg.duration = d
		return nil
	})
	fs.StringVar(&attach, "attach", "auto", "")
	fs.StringVar(&cfg.netns, "netns", "", "")
	fs.StringVar(&cfg.criSocket, "cri-socket", "", "")
	fs.Func("ring-size", "", func(v string) error {
		n, err := parseSize(v)
		if err != nil {
			valueErr = fmt.Errorf("--ring-size %s: %w", v, err)
			return err
		}
		cfg.ringSize = n
		return nil
	})
	fs.UintVar(&pid, "pid", 0, "")
	fs.StringVar(&cfg.owner.Pod, "pod", "", "")
	fs.StringVar(&cfg.owner.Container, "container", "", "")
	fs.StringVar(&cfg.owner.Path, "cgroup", "", "")
	fs.UintVar(&port, "port", 0, "")
	fs.BoolVar(&v4, "4", false, "")
	fs.BoolVar(&v6, "6", false, "")
	fs.StringVar(&cfg.metrics, "metrics", "", "")
	fs.IntVar(&cfg.metricsTop, "metrics-top", metrics.DefaultTopN, "")
	fs.BoolVar(&cfg.noUI, "no-ui", false, "")
	fs.BoolVar(&cfg.probe, "probe", false, "")
	fs.StringVar(&cfg.btf, "btf", "", "")
	fs.StringVar(&fallback, "fallback", os.Getenv("TWTOP_FALLBACK"), "")
	fs.BoolVar(&cfg.verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprint(stderr, usageText)
			return nil, err
		}
		if valueErr != nil {
			return nil, &usageError{valueErr.Error()}
		}
		return nil, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if cfg.version {
		return &cfg, nil
	}
	var err error
	if cfg.tier, err = tracer.ParseTier(attach); err != nil {
		return nil, &usageError{err.Error()}
	}
	if cfg.fallbacks, err = tracer.ParseFallbacks(fallback); err != nil {
		return nil, &usageError{"--fallback: " + err.Error()}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.replay != "" {
		for _, name := range []string{"record", "duration", "attach", "netns", "cri-socket", "ring-size", "pid", "pod", "container", "cgroup", "port", "4", "6", "probe", "btf", "fallback"} {
			if set[name] {
				return nil, &usageError{fmt.Sprintf("--%s applies to tracing, not to --replay", name)}
			}
		}
		cfg.ui = cfg.events == "" && cfg.report == "" && len(cfg.checks) == 0 && !cfg.noUI
	}
	if err := metricsFlags(&cfg, set); err != nil {
		return nil, err
	}
	switch {
	case len(cfg.checks) > 0 && cfg.replay == "":
		return nil, &usageError{"--check works on a recording: record with --record FILE, then run --replay FILE --check EXPR"}
	case cfg.events != "" && (cfg.report != "" || len(cfg.checks) > 0):
		return nil, &usageError{"--events excludes --report and --check: stream events or report at the end"}
	case cfg.events != "" && cfg.record != "":
		return nil, &usageError{"--events and --record exclude each other: record now, then --replay FILE --events json"}
	case cfg.events != "" && cfg.events != "json":
		return nil, &usageError{fmt.Sprintf("--events %s: the only format is json", cfg.events)}
	case cfg.report != "" && cfg.report != "text" && cfg.report != "json":
		return nil, &usageError{fmt.Sprintf("--report %s: the formats are text and json", cfg.report)}
	}
	if pid > 1<<22 {
		return nil, &usageError{"--pid " + strconv.FormatUint(uint64(pid), 10) + ": not a process id"}
	}
	if n := btoi(cfg.owner.Pod != "") + btoi(cfg.owner.Container != "") + btoi(cfg.owner.Path != ""); n > 1 {
		return nil, &usageError{"--pod, --container and --cgroup exclude each other: give the one that names the workload"}
	}
	if port > 65535 {
		return nil, &usageError{"--port " + strconv.FormatUint(uint64(port), 10) + ": ports go up to 65535"}
	}
	if v4 && v6 {
		return nil, &usageError{"-4 and -6 exclude each other; give neither for both"}
	}
	if cfg.probe {
		return &cfg, nil
	}
	if cfg.replay == "" && cfg.events == "" && cfg.report == "" && cfg.record == "" && !cfg.noUI {
		cfg.ui = true
	}
	if cfg.ui && set["duration"] {
		return nil, &usageError{"--duration applies to --report, --events, --record and --no-ui; the UI runs until you press q"}
	}
	if cfg.record == "-" && cfg.report != "" {
		return nil, &usageError{"--record - writes the recording to stdout, where the report would go: record to a file"}
	}
	if cfg.duration < 0 {
		return nil, &usageError{"--duration must be positive"}
	}
	cfg.pid, cfg.port = uint32(pid), uint16(port)
	cfg.owner.CRISocket = cfg.criSocket
	switch {
	case v4:
		cfg.family = event.AFInet
	case v6:
		cfg.family = event.AFInet6
	}
	return &cfg, nil
}

// parseDuration parses --duration, naming the units when they are missing.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
		ex := s + "s"
		if strings.HasPrefix(s, "-") {
			ex = "30s"
		}
		return 0, fmt.Errorf("--duration %s: give a unit, e.g. %s, 2m, 1h", s, ex)
	}
	return 0, fmt.Errorf("--duration %s: not a duration; give a number and a unit, e.g. 30s, 5m, 1h30m", s)
}

// metricsFlags checks --metrics, --metrics-top and --no-ui.
func metricsFlags(cfg *config, set map[string]bool) error {
	switch {
	case cfg.noUI && cfg.metrics == "":
		return &usageError{"--no-ui needs --metrics ADDR (e.g. --metrics :9273 --no-ui); --report, --events and --record run without the UI already"}
	case set["metrics-top"] && cfg.metrics == "":
		return &usageError{"--metrics-top applies to --metrics ADDR"}
	case cfg.metrics != "" && cfg.events != "":
		return &usageError{"--metrics and --events exclude each other: serve metrics or stream events"}
	case cfg.metricsTop < 1:
		return &usageError{"--metrics-top must be 1 or more"}
	}
	if set["metrics"] {
		if _, err := metrics.ListenAddr(cfg.metrics); err != nil {
			return &usageError{"--metrics " + err.Error()}
		}
	}
	return nil
}

// maxRingSize is the largest --ring-size.
const maxRingSize = 1 << 31

// parseSize reads a buffer size: bytes, or a number with K, M or G (powers
// of 1024); it must be a power of two of at least a page.
func parseSize(v string) (uint32, error) {
	mult := uint64(1)
	num := strings.TrimSpace(v)
	if n := len(num); n > 0 {
		switch unicode.ToUpper(rune(num[n-1])) {
		case 'K':
			mult, num = 1<<10, num[:n-1]
		case 'M':
			mult, num = 1<<20, num[:n-1]
		case 'G':
			mult, num = 1<<30, num[:n-1]
		}
	}
	n, err := strconv.ParseUint(num, 10, 32)
	size := n * mult
	if err != nil || size == 0 || size > maxRingSize || size&(size-1) != 0 || size < uint64(os.Getpagesize()) {
		return 0, fmt.Errorf("give a power of two from %dK to 2G, e.g. 64M", os.Getpagesize()>>10)
	}
	return uint32(size), nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
