package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// soakSample is how often the soak reads twtop's RSS.
const soakSample = 10 * time.Second

// runSoak churns at full rate for opts.soak under `twtop --record` (or
// the UI, with opts.soakUI) and prints twtop's RSS every 10 s, to show
// that it stays bounded.
func runSoak(ctx context.Context, opts options) (err error) {
	c := opts.churn
	c.Duration = opts.soak
	what := "twtop --record"
	if opts.soakUI {
		what = "the twtop UI"
	}
	fmt.Printf("bench: soak: %s churn, %d streams, %v, under %s; twtop's VmRSS every %v\n", c.Mode, c.Streams, c.Duration, what, soakSample)
	l, err := newLab(c)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	file := filepath.Join(opts.dir, "soak.twrec")
	var tp *tracerProc
	if opts.soakUI {
		term, err := openPTY(uiCols, uiRows)
		if err != nil {
			return err
		}
		defer func() {
			if n := term.Close(); n == 0 && err == nil {
				err = errors.New("the twtop UI drew nothing on its terminal")
			}
		}()
		tp, err = startTwtopUI(ctx, opts.twtop, term.term, l.ns.Path())
	} else {
		tp, err = startTwtop(ctx, opts.twtop, file, l.ns.Path(), c.Duration+2*time.Minute)
	}
	if err != nil {
		return err
	}
	defer tp.p.Kill()
	if !opts.keep {
		defer os.Remove(file)
	}
	startRSS, err := vmRSS(tp.p.Pid())
	if err != nil {
		return err
	}
	fmt.Printf("t=%5.0fs  twtop VmRSS %s (tracing, before the churn)\n", 0.0, mib(startRSS))
	p, err := l.startChurn(c)
	if err != nil {
		return err
	}
	type waited struct {
		res churnResult
		err error
	}
	done := make(chan waited, 1)
	go func() {
		res, err := p.wait(ctx)
		done <- waited{res, err}
	}()
	begin := time.Now()
	tick := time.NewTicker(soakSample)
	defer tick.Stop()
	var (
		samples []int64
		w       waited
	)
wait:
	for {
		select {
		case <-tick.C:
			kb, err := vmRSS(tp.p.Pid())
			if err != nil {
				return err
			}
			samples = append(samples, kb)
			size := int64(0)
			if st, err := os.Stat(file); err == nil {
				size = st.Size()
			}
			tw := ""
			if n, err := l.timewaitOpen(); err == nil {
				tw = fmt.Sprintf("  TIME_WAIT open %s", grouped(float64(n)))
			}
			rec := ""
			if !opts.soakUI {
				rec = "  recording " + mib(size/1024)
			}
			fmt.Printf("t=%5.0fs  twtop VmRSS %s%s%s\n", time.Since(begin).Seconds(), mib(kb), rec, tw)
		case w = <-done:
			break wait
		}
	}
	if w.err != nil {
		return w.err
	}
	endRSS, err := vmRSS(tp.p.Pid())
	if err != nil {
		return err
	}
	if err := pause(ctx, opts.tail); err != nil {
		return err
	}
	usage, err := tp.stop()
	if err != nil {
		return err
	}
	records, lost, misses, ok := twtopCounters(tp.p.Stderr())
	if !ok {
		return fmt.Errorf("twtop printed no final counters:\n%s", tp.p.Stderr())
	}
	var maxRSS int64
	for _, s := range samples {
		maxRSS = max(maxRSS, s)
	}
	var size int64
	if st, err := os.Stat(file); err == nil {
		size = st.Size()
	}
	fmt.Println()
	fmt.Printf("churn: %s connections in %.0fs (%s/s), errors %d (%s)\n",
		grouped(float64(w.res.Conns)), w.res.ElapsedS, grouped(w.res.ConnPerS), w.res.errorCount(), w.res.errorSummary())
	fmt.Printf("twtop VmRSS: %s at start, %s at the end, %s the most sampled; peak (VmHWM) %s\n",
		mib(startRSS), mib(endRSS), mib(maxRSS), mib(usage.MaxRSSKB))
	perEvent := func(d time.Duration) float64 {
		if records == 0 {
			return 0
		}
		return d.Seconds() * 1e6 / float64(records)
	}
	rec := ""
	if !opts.soakUI {
		rec = ", recording " + mib(size/1024)
	}
	fmt.Printf("twtop: %s records (%s/s), %d lost, %d recursion misses, %.2f µs user and %.2f µs total CPU per record%s\n",
		grouped(float64(records)), grouped(float64(records)/w.res.ElapsedS), lost, misses,
		perEvent(usage.SteadyUser), perEvent(usage.SteadyUser+usage.SteadySys), rec)
	return nil
}
