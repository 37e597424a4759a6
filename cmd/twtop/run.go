package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/internal/ingest"
	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/pipeline"
	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
	"github.com/twtop/twtop/ui"
)

func run(args []string) error {
	cfg, err := parseFlags(args, os.Stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.version {
		fmt.Println("twtop", versionString())
		return nil
	}
	if cfg.replay != "" {
		return replay(cfg)
	}
	if cfg.probe {
		return probe(cfg, os.Stdout)
	}
	return live(cfg)
}

// live traces the kernel until Ctrl-C, SIGTERM or --duration.
func live(cfg *config) error {
	opts := traceOptions(cfg)
	if cfg.pid != 0 && unix.Kill(int(cfg.pid), 0) == unix.ESRCH {
		return &usageError{fmt.Sprintf("--pid %d: no such process", cfg.pid)}
	}
	if cfg.owner.Given() {
		dir, err := workload.Select("/proc", cfg.owner)
		if err != nil {
			return &usageError{err.Error()}
		}
		opts.Cgroup = dir
	}
	if cfg.netns != "" {
		inode, path, err := resolveNetns(cfg.netns)
		if err != nil {
			return err
		}
		opts.Netns = inode
		opts.ScanNetns = []string{path}
	}
	if cfg.ui && !isTerminal(os.Stdout) {
		return &usageError{"the UI needs a terminal: give --report text|json, --events json, --record FILE or --metrics ADDR --no-ui"}
	}
	board := new(pipeline.Board)
	feed, err := startMetrics(cfg, board)
	if err != nil {
		return err
	}
	defer feed.close()
	tr, err := tracer.Open(opts)
	if err != nil {
		return err
	}
	defer tr.Close()
	// loading parsed the kernel's BTF (tens of MiB, garbage now): give
	// that memory back rather than keep it for the life of the process
	debug.FreeOSMemory()
	if cfg.verbose {
		for _, why := range tr.Rejected() {
			fmt.Fprintf(os.Stderr, "twtop: not using tier %s\n", why)
		}
	}
	for _, fn := range tr.SkippedHooks() {
		fmt.Fprintf(os.Stderr, "twtop: note: %s cannot be hooked on this kernel: %s\n", fn, tracer.HookLoss(fn))
	}

	src := pipeline.NewLiveSource(tr, opts.ScanNetns)
	wl := startWorkloads(cfg)
	defer wl.close()
	var rec *recording
	if cfg.record != "" {
		if rec, err = createRecording(cfg.record, tr, opts, wl.r); err != nil {
			return err
		}
		src.Rec = rec
		go rec.flushing(tr)
	}
	var m *model.Model
	if cfg.report != "" || cfg.ui || feed != nil {
		mc := model.Config{Tier: ingest.Tier(tr.Tier().String())}
		if wl.r != nil {
			mc.Workloads = wl.r
		}
		m = model.New(mc)
		src.OnState = func(s record.State) { ingest.State(m, s) }
	}
	// The first reading comes before "tracing on", so that the counters
	// cover everything traced from then on.
	if err := src.ReadStates(); err != nil {
		if rec != nil {
			return rec.finish(tr, err)
		}
		return err
	}
	feed.source(tr.KernelRelease())
	if feed != nil {
		board.PublishHeld(m.Snapshot(), liveStats(tr)()) // the settings, before the first event
	}
	fmt.Fprintf(os.Stderr, "twtop: tracing on kernel %s, tier %s%s%s%s\n", tr.KernelRelease(), tr.Tier(), inferredNote(tr.Tier()), fallbackNote(tr.Fallbacks()),
		ringNote(cfg.ringSize, tr.RingSize(), runtime.NumCPU()))
	if cfg.ui {
		err := liveUI(tr, src, m, board, feed != nil)
		noteUnmatched(src, cfg.pid)
		return err
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		var timeout <-chan time.Time
		if cfg.duration > 0 {
			timeout = time.After(cfg.duration)
		}
		select {
		case <-sigs:
		case <-timeout:
		case <-stop:
			return
		}
		tr.Stop() // Next hands out what the buffers hold, then ends
	}()

	switch {
	case feed != nil:
		err = serveModel(tr, src, m, board)
	case m != nil:
		err = pipeline.Feed(src, tr.HZ(), m)
	case cfg.events != "":
		err = printEvents(src, tr.HZ(), bufio.NewWriterSize(os.Stdout, 64<<10), wl.of)
	default:
		err = recordOnly(src)
	}
	tr.Close() // Stats are final from here on
	if err == nil && cfg.events == "" {
		// a last reading, so the kernel's counters cover the whole run
		err = src.ReadStates()
	}
	if rec != nil {
		err = rec.finish(tr, err)
	}
	ts, _ := printTracerStats(tr)
	noteUnmatched(src, cfg.pid)
	if err != nil || m == nil {
		return err
	}
	board.Publish(m.Snapshot(), ts) // the last scrapes see the report's figures
	if cfg.report == "" {
		return nil
	}
	p := board.Load()
	meta := model.Meta{Tier: p.Snapshot.Tier.Name, Lost: p.Stats.Lost, RecursionMisses: p.Stats.RecursionMisses}
	return writeReport(p.Snapshot.Report(meta), cfg.report, os.Stdout)
}

// serveModel feeds the model until the tracer is closed, publishing a
// snapshot for the metrics on b every publish period.
func serveModel(tr *tracer.Tracer, src *pipeline.LiveSource, m *model.Model, b *pipeline.Board) error {
	v := pipeline.NewView(b, m, ui.Status{Live: true}, liveStats(tr), true)
	return v.Run(context.Background(), src, tr.HZ())
}

func inferredNote(t tracer.Tier) string {
	if t.Exact() {
		return ""
	}
	return " (TIME_WAIT ends and causes inferred)"
}

// ringNote names the event buffers' size on the tracing line when the
// namespaces' TIME_WAIT capacity raised it above the default for the CPUs
// (asked is --ring-size, 0 if not given), so that the memory is not a
// surprise.
func ringNote(asked, size uint32, ncpu int) string {
	if asked != 0 || size <= tracer.DefaultRingSize(ncpu, 0) {
		return ""
	}
	return ", event buffers " + ringSizeString(uint64(size)) + " for the TIME_WAIT sockets tcp_max_tw_buckets allows"
}

func fallbackNote(f tracer.Fallbacks) string {
	if s := f.String(); s != "" {
		return ", fallbacks " + s
	}
	return ""
}

// traceOptions are the tracer options the flags ask for.
func traceOptions(cfg *config) tracer.Options {
	return tracer.Options{Tier: cfg.tier, Pid: cfg.pid, Port: cfg.port, Family: cfg.family,
		BTF: cfg.btf, Force: cfg.fallbacks, Verbose: cfg.verbose, RingSize: cfg.ringSize}
}
