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
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/settings"
)

func run(args []string) error {
	cfg, err := parseFlags(args, os.Stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	opts := tracer.Options{Tier: cfg.tier, Pid: cfg.pid, Port: cfg.port, Family: cfg.family}
	if cfg.netns != "" {
		inode, path, err := resolveNetns(cfg.netns)
		if err != nil {
			return err
		}
		opts.Netns = inode
		opts.ScanNetns = []string{path}
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
		fmt.Fprintf(os.Stderr, "twtop: note: %s cannot be hooked on this kernel; TIME_WAIT ends only it would see show up later as vanished from the scan\n", fn)
	}
	fmt.Fprintf(os.Stderr, "twtop: tracing on kernel %s, tier %s%s\n", tr.KernelRelease(), tr.Tier(), inferredNote(tr.Tier()))

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
	if cfg.report != "" {
		err = report(tr, cfg.report, opts.ScanNetns)
	} else {
		err = printEvents(tr, bufio.NewWriterSize(os.Stdout, 64<<10))
	}
	tr.Close()
	if st, serr := tr.Stats(); serr == nil {
		fmt.Fprintf(os.Stderr, "twtop: %d records, %d lost, %d missed by the kernel's recursion guard\n",
			st.TotalEvents(), st.TotalLost(), st.TotalRecursionMisses())
	}
	return err
}

func inferredNote(t tracer.Tier) string {
	if t.Exact() {
		return ""
	}
	return " (TIME_WAIT ends and causes inferred)"
}

// printEvents writes every event as a JSON line until the tracer is
// closed.
func printEvents(tr *tracer.Tracer, w *bufio.Writer) error {
	defer w.Flush()
	st := event.NewStream(tr, tr.HZ())
	var line []byte
	lastFlush := time.Now()
	for {
		e, err := st.Next()
		if errors.Is(err, tracer.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		line = event.AppendJSON(line[:0], e, tr.HZ())
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("write events: %w", err)
		}
		if e.Kind == event.KindScanEnd || time.Since(lastFlush) > 200*time.Millisecond {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("write events: %w", err)
			}
			lastFlush = time.Now()
		}
	}
}

// report feeds every event to the model until the tracer is closed, then
// prints the model's report.
func report(tr *tracer.Tracer, format string, netns []string) error {
	st := event.NewStream(tr, tr.HZ())
	m := model.New(model.Config{})
	if len(netns) == 0 {
		netns = []string{""} // twtop's own namespace
	}
	for _, ns := range netns {
		s, _, err := settings.Read(ns)
		if err != nil {
			return err
		}
		m.SetSettings(s)
	}
	for {
		e, err := st.Next()
		if errors.Is(err, tracer.ErrClosed) {
			break
		}
		if err != nil {
			return err
		}
		m.Apply(e)
	}
	// Next returned ErrClosed: the tracer is closed and Stats are final
	meta := model.Meta{Tier: tr.Tier().String()}
	if s, err := tr.Stats(); err == nil {
		meta.Lost, meta.RecursionMisses = s.TotalLost(), s.TotalRecursionMisses()
	}
	r := m.Snapshot().Report(meta)
	if format == "json" {
		return r.WriteJSON(os.Stdout)
	}
	return r.WriteText(os.Stdout)
}
