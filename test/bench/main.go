// Command bench measures what tracing costs a host that churns TCP
// connections: it runs a loopback connection churn in a fresh network
// namespace with no tracer, with empty programs on twtop's hooks, with
// `twtop --record`, with the twtop UI and with a bpftrace one-liner on
// sock:inet_sock_set_state, alternating them over several rounds, and prints connections/s, the ratio to the untraced rate, and
// twtop's events/s, losses, CPU per event, memory and start latency.
//
//	go run ./test/bench -twtop /tmp/twtop-bench [-rounds 5] [-duration 5s] [-short]
//	go run ./test/bench -twtop /tmp/twtop-bench -soak 10m
//	go run ./test/bench churn -mode client-closes -duration 5s -conns 2
//
// It needs root. See README.md in this directory.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// childCommand is the hidden command that runs the churn inside a
// namespace; its one argument is the churn configuration as JSON.
const childCommand = "churn-child"

// Defaults shared by the churn command and the harness.
const (
	defaultDests      = 16
	defaultPortRange  = 1024
	defaultReuseDelay = 1
)

// defaultStreams saturates the host: one stream per CPU. On two cores, 2
// to 6 streams give about the same rate; more only add context switches.
var defaultStreams = runtime.NumCPU()

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case childCommand:
			if len(args) != 2 {
				return fmt.Errorf("%s takes one JSON argument", childCommand)
			}
			var c churnConfig
			if err := json.Unmarshal([]byte(args[1]), &c); err != nil {
				return fmt.Errorf("churn config: %w", err)
			}
			return churnChild(c)
		case "churn":
			return runChurnCommand(args[1:])
		}
	}
	return runHarness(args)
}

// errUsage marks a flag error already reported by the flag package.
var errUsage = errors.New("bad usage")

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it creates network namespaces and loads BPF programs")
	}
	return nil
}

// runChurnCommand is `bench churn`: one churn in a fresh namespace,
// without any tracer started by the harness.
func runChurnCommand(args []string) error {
	c := churnConfig{}
	fs := flag.NewFlagSet("churn", flag.ContinueOnError)
	fs.StringVar(&c.Mode, "mode", modeClientCloses, "who closes first: "+strings.Join(modes, ", "))
	fs.DurationVar(&c.Duration, "duration", 5*time.Second, "how long to churn")
	fs.IntVar(&c.Streams, "conns", defaultStreams, "parallel connection streams (1: one connection at a time)")
	fs.IntVar(&c.Dests, "dests", defaultDests, "loopback addresses each stream connects to in turn (not in port-pressure mode)")
	fs.IntVar(&c.PortRange, "port-range", defaultPortRange, "port-pressure: number of ports in ip_local_port_range")
	fs.IntVar(&c.ReuseDelayMs, "reuse-delay-ms", defaultReuseDelay, "port-pressure: tcp_tw_reuse_delay in ms where the kernel has it (0: kernel default)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./test/bench churn [-mode M] [-duration D] [-conns N]\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	if err := requireRoot(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := newLab(c)
	if err != nil {
		return err
	}
	res, err := l.runChurnIn(ctx, c)
	err = errors.Join(err, l.Close())
	if err != nil {
		return err
	}
	set := "defaults"
	if len(l.sysctls) > 0 {
		set = strings.Join(l.sysctls, " ")
	}
	fmt.Printf("mode %s, %d streams, %d destinations, %.1fs, sysctls: %s\n", c.Mode, c.Streams, c.dests(), res.ElapsedS, set)
	fmt.Printf("connections: %d (%s/s)\n", res.Conns, grouped(res.ConnPerS))
	fmt.Printf("errors: %d (%s)\n", res.errorCount(), res.errorSummary())
	fmt.Printf("generator CPU: %.2fs user, %.2fs sys (%.0f%% of one core over the run)\n",
		res.UserS, res.SysS, 100*(res.UserS+res.SysS)/res.ElapsedS)
	return nil
}

// grouped formats n rounded to an integer with thousands separators.
func grouped(n float64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprintf("%.0f", n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}
