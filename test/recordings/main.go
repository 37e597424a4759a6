// Command recordings produces the project's example recordings: for each
// workload it makes a fresh network namespace, starts
// `twtop --record DIR/NAME.twrec --netns PATH --duration BOUND` on it, runs
// the workload, checks in the kernel's own counters and socket tables that
// the TIME_WAIT phenomenon the recording is about really happened, and
// stops twtop with SIGINT.
//
//	go run ./test/recordings -twtop ./twtop -out testdata [-only NAME]
//
// It needs root. See README.md in this directory for what each recording
// shows.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/twtop/twtop/internal/proc"
)

// maxSize is the largest recording the harness accepts.
const maxSize = 3 << 20

// settle is how long twtop keeps tracing after a workload ends, so that the
// last closes and the next TIME_WAIT scan make it into the recording.
const settle = 2 * time.Second

// workload is one scenario's traffic, set up in its namespace before twtop
// starts.
type workload interface {
	// Run drives the traffic while twtop traces, checks the kernel's view
	// of what happened and returns a one-line summary of it.
	Run(ctx context.Context) (string, error)
	// Close stops the servers and closes the sockets of the workload.
	Close() error
}

// scenario is one recording.
type scenario struct {
	name string
	// bound is passed to twtop as --duration: a safety limit well above
	// the time the workload needs, since twtop is stopped with SIGINT.
	bound time.Duration
	setup func(ctx context.Context, l *lab) (workload, error)
}

var scenarios = []scenario{
	{name: "nginx-proxy", bound: 2 * time.Minute, setup: setupNginxProxy},
	{name: "port-pressure", bound: 2 * time.Minute, setup: setupPortPressure},
	{name: "server-closes", bound: 2 * time.Minute, setup: setupServerCloses},
}

type options struct {
	twtop     string
	out       string
	only      string
	dry       bool
	twtopArgs []string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "recordings: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		opts      options
		twtopArgs string
	)
	fs := flag.NewFlagSet("recordings", flag.ContinueOnError)
	fs.StringVar(&opts.twtop, "twtop", "", "path of the twtop binary")
	fs.StringVar(&opts.out, "out", "", "directory for the recordings (NAME.twrec)")
	fs.StringVar(&opts.only, "only", "", "run only the scenario NAME")
	fs.BoolVar(&opts.dry, "dry", false, "run and check the workloads without twtop")
	fs.StringVar(&twtopArgs, "twtop-args", "", "twtop arguments to use instead of --record FILE (space separated); twtop's standard output then goes to DIR/NAME.out")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./test/recordings -twtop PATH -out DIR [-only NAME] [-dry] [-twtop-args ARGS]\n\nscenarios: %s\n\n", strings.Join(names(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	opts.twtopArgs = strings.Fields(twtopArgs)
	if !opts.dry && (opts.twtop == "" || opts.out == "") {
		return errors.New("-twtop and -out are required (or -dry)")
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it creates network namespaces, starts nginx in one and runs twtop")
	}
	todo := scenarios
	if opts.only != "" {
		todo = nil
		for _, s := range scenarios {
			if s.name == opts.only {
				todo = append(todo, s)
			}
		}
		if todo == nil {
			return fmt.Errorf("-only %s: no such scenario (have %s)", opts.only, strings.Join(names(), ", "))
		}
	}
	if !opts.dry {
		abs, err := filepath.Abs(opts.twtop)
		if err != nil {
			return fmt.Errorf("twtop path: %w", err)
		}
		opts.twtop = abs
		if _, err := os.Stat(opts.twtop); err != nil {
			return fmt.Errorf("twtop binary: %w", err)
		}
		if err := os.MkdirAll(opts.out, 0o755); err != nil {
			return fmt.Errorf("output directory: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, s := range todo {
		if err := runScenario(ctx, opts, s); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func names() []string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.name)
	}
	return n
}

// runScenario records one scenario and prints its progress line.
func runScenario(ctx context.Context, opts options, s scenario) (err error) {
	start := time.Now()
	l, err := newLab()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	w, err := s.setup(ctx, l)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, w.Close()) }()

	var (
		tw   *proc.Process
		file string
	)
	if !opts.dry {
		file = filepath.Join(opts.out, s.name+".twrec")
		args := []string{"--record", file}
		if len(opts.twtopArgs) > 0 {
			file = filepath.Join(opts.out, s.name+".out")
			args = opts.twtopArgs
		}
		args = append(args, "--netns", l.ns.Path(), "--duration", s.bound.String())
		tw, err = startTwtop(ctx, opts.twtop, args, len(opts.twtopArgs) > 0, file)
		if err != nil {
			return err
		}
		defer tw.Kill()
	}
	summary, err := w.Run(ctx)
	if err != nil {
		return err
	}
	size := "dry run"
	if tw != nil {
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return fmt.Errorf("interrupted: %w", ctx.Err())
		}
		if err := stopTwtop(tw); err != nil {
			return err
		}
		st, err := os.Stat(file)
		if err != nil {
			return fmt.Errorf("recording: %w", err)
		}
		if st.Size() > maxSize {
			return fmt.Errorf("%s is %s, over the %s limit: make the workload smaller", file, mb(st.Size()), mb(maxSize))
		}
		size = fmt.Sprintf("%s %s", file, mb(st.Size()))
	}
	fmt.Printf("%-14s %5.1fs  %s  %s\n", s.name, time.Since(start).Seconds(), size, summary)
	return nil
}

func mb(n int64) string {
	return fmt.Sprintf("%.2f MB", float64(n)/(1<<20))
}
