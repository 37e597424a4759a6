package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
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
	return live(cfg)
}

// live traces the kernel until Ctrl-C, SIGTERM or --duration.
func live(cfg *config) error {
	opts := tracer.Options{Tier: cfg.tier, Pid: cfg.pid, Port: cfg.port, Family: cfg.family}
	if cfg.netns != "" {
		inode, path, err := resolveNetns(cfg.netns)
		if err != nil {
			return err
		}
		opts.Netns = inode
		opts.ScanNetns = []string{path}
	}
	if cfg.ui && !isTerminal(os.Stdout) {
		return &usageError{"the UI needs a terminal: give --report text|json, --events json or --record FILE"}
	}
	tr, err := tracer.Open(opts)
	if err != nil {
		return err
	}
	defer tr.Close()
	for _, why := range tr.Fallbacks() {
		fmt.Fprintf(os.Stderr, "twtop: not using tier %s\n", why)
	}
	for _, fn := range tr.SkippedHooks() {
		fmt.Fprintf(os.Stderr, "twtop: note: %s cannot be hooked on this kernel: %s\n", fn, tracer.HookLoss(fn))
	}

	src := &liveSource{tr: tr, netns: opts.ScanNetns}
	if len(src.netns) == 0 {
		src.netns = []string{""} // twtop's own namespace
	}
	var rec *recording
	if cfg.record != "" {
		if rec, err = createRecording(cfg.record, tr, opts); err != nil {
			return err
		}
		src.rec = rec
		go rec.flushing(tr)
	}
	var m *model.Model
	if cfg.report != "" || cfg.ui {
		m = model.New(model.Config{})
		src.onState = func(s record.State) { applyState(m, s) }
	}
	// The first reading comes before "tracing on", so that the counters
	// cover everything traced from then on.
	if err := src.readStates(); err != nil {
		if rec != nil {
			return rec.finish(tr, err)
		}
		return err
	}
	fmt.Fprintf(os.Stderr, "twtop: tracing on kernel %s, tier %s%s\n", tr.KernelRelease(), tr.Tier(), inferredNote(tr.Tier()))
	if cfg.ui {
		return liveUI(tr, src, m)
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
		tr.Close() // unblocks Next
	}()

	switch {
	case m != nil:
		err = feedModel(src, tr.HZ(), m)
	case cfg.events != "":
		err = printEvents(src, tr.HZ(), bufio.NewWriterSize(os.Stdout, 64<<10))
	default:
		err = recordOnly(src)
	}
	tr.Close() // Stats are final from here on
	if err == nil && cfg.events == "" {
		// a last reading, so the kernel's counters cover the whole run
		err = src.readStates()
	}
	if rec != nil {
		err = rec.finish(tr, err)
	}
	ts, _ := printTracerStats(tr)
	if err != nil || m == nil {
		return err
	}
	meta := model.Meta{Tier: tr.Tier().String(), Lost: ts.Lost, RecursionMisses: ts.RecursionMisses}
	return writeReport(m.Snapshot().Report(meta), cfg.report, os.Stdout)
}

func inferredNote(t tracer.Tier) string {
	if t.Exact() {
		return ""
	}
	return " (TIME_WAIT ends and causes inferred)"
}
