package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/event"
)

const usageText = `twtop shows TCP TIME_WAIT live, from the kernel: who closes first, how long
TIME_WAIT sockets live and how they end, whether tcp_tw_reuse reuses them, and
how close the host is to running out of ephemeral ports.

Usage:
  sudo twtop --events json [flags]     print every event as one JSON object per line
  sudo twtop --report text|json [flags]
                                       trace until Ctrl-C or --duration, then print
                                       who closed, TIME_WAIT counts, ends by cause,
                                       lifetimes (p50/p90/p99/max), reuse and errors

Examples:
  sudo twtop --events json --duration 10s | jq -c 'select(.kind=="tw_create")'
  sudo twtop --events json --netns blue --port 8080
  sudo twtop --events json --attach tracepoint -6
  sudo twtop --report text --duration 60s --port 443

Flags:
  --events FORMAT    print events; FORMAT is json (one object per line, a "kind"
                     field plus that kind's fields)
  --report FORMAT    at the end print a report; FORMAT is text or json (stable
                     keys: tier, duration_s, events, lost, closes.*, timewait.*,
                     lifetime_ms.*, reuse.*, errors.*, top_closers)
  --duration D       stop after D (e.g. 30s, 5m); default: until Ctrl-C
  --attach TIER      auto (default), fentry, kprobe or tracepoint; auto picks the
                     best the kernel allows. The tracepoint tier infers how
                     TIME_WAIT sockets end; such events carry "inferred":true
  --netns NS         only this network namespace: a name under /run/netns, a
                     path (/proc/PID/ns/net) or an inode number; the TIME_WAIT
                     scan then runs inside it
  --pid N            only sockets owned by process N (their TIME_WAIT too)
  --port P           only connections with local or remote port P
  -4, -6             only IPv4 or only IPv6
  --help             this text

Event kinds: state, tw_create, tw_arm, tw_cancel, tw_expire, tw_kill, tw_reuse,
tw_rx, tw_overflow, connect_error, bind_error, scan_tw, scan_end.

Needs root (or CAP_BPF and CAP_PERFMON) and a kernel with BTF (5.8+).
`

type config struct {
	events   string
	report   string
	duration time.Duration
	tier     tracer.Tier
	netns    string
	pid      uint32
	port     uint16
	family   uint8
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("twtop", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		cfg    config
		attach string
		pid    uint
		port   uint
		v4, v6 bool
	)
	fs.StringVar(&cfg.events, "events", "", "")
	fs.StringVar(&cfg.report, "report", "", "")
	fs.DurationVar(&cfg.duration, "duration", 0, "")
	fs.StringVar(&attach, "attach", "auto", "")
	fs.StringVar(&cfg.netns, "netns", "", "")
	fs.UintVar(&pid, "pid", 0, "")
	fs.UintVar(&port, "port", 0, "")
	fs.BoolVar(&v4, "4", false, "")
	fs.BoolVar(&v6, "6", false, "")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprint(stderr, usageText)
			return nil, err
		}
		return nil, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	var err error
	if cfg.tier, err = tracer.ParseTier(attach); err != nil {
		return nil, &usageError{err.Error()}
	}
	switch {
	case cfg.events != "" && cfg.report != "":
		return nil, &usageError{"--events and --report exclude each other: stream events or report at the end"}
	case cfg.events == "" && cfg.report == "":
		return nil, &usageError{"nothing to do: give --events json or --report text|json (the terminal UI is not available yet)"}
	case cfg.events != "" && cfg.events != "json":
		return nil, &usageError{fmt.Sprintf("--events %s: the only format is json", cfg.events)}
	case cfg.report != "" && cfg.report != "text" && cfg.report != "json":
		return nil, &usageError{fmt.Sprintf("--report %s: the formats are text and json", cfg.report)}
	}
	if pid > 1<<22 {
		return nil, &usageError{"--pid " + strconv.FormatUint(uint64(pid), 10) + ": not a process id"}
	}
	if port > 65535 {
		return nil, &usageError{"--port " + strconv.FormatUint(uint64(port), 10) + ": ports go up to 65535"}
	}
	if v4 && v6 {
		return nil, &usageError{"-4 and -6 exclude each other; give neither for both"}
	}
	if cfg.duration < 0 {
		return nil, &usageError{"--duration must be positive"}
	}
	cfg.pid, cfg.port = uint32(pid), uint16(port)
	switch {
	case v4:
		cfg.family = event.AFInet
	case v6:
		cfg.family = event.AFInet6
	}
	return &cfg, nil
}
