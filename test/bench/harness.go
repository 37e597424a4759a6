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
)

// variant is what traces the churn.
type variant int

const (
	noTracer variant = iota
	emptyHooksOnly
	recordFloorOnly
	twtopRecord
	twtopUI
	bpftracePeer
)

func (v variant) String() string {
	switch v {
	case noTracer:
		return "no tracer"
	case emptyHooksOnly:
		return "empty hooks"
	case recordFloorOnly:
		return "record floor"
	case twtopRecord:
		return "twtop --record"
	case twtopUI:
		return "twtop UI"
	case bpftracePeer:
		return "bpftrace"
	}
	return fmt.Sprintf("variant(%d)", int(v))
}

// traces reports whether v is a tracer process with figures of its own.
func (v variant) traces() bool { return v != noTracer && v != emptyHooksOnly && v != recordFloorOnly }

// stateName names the program whose cost r.state is.
func (r runResult) stateName() string {
	switch r.variant {
	case emptyHooksOnly:
		return countProg
	case recordFloorOnly:
		return floorProg
	}
	return stateProgs[0]
}

// shape is how hard the churn pushes: saturated (as many streams as make
// the most connections/s) or one connection at a time.
type shape struct {
	name    string
	streams int
}

type options struct {
	twtop    string
	bpftrace string // empty: no peer
	rounds   int
	duration time.Duration
	short    bool
	soak     time.Duration
	soakUI   bool
	churn    churnConfig // mode, streams (saturated), dests, port pressure
	tail     time.Duration
	gap      time.Duration
	keep     bool
	dir      string
}

// tailWait is how long a tracer keeps running after the churn, so that it
// reads what is left in its buffers before SIGINT.
const tailWait = 500 * time.Millisecond

func runHarness(args []string) error {
	var (
		opts   options
		noPeer bool
	)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&opts.twtop, "twtop", "", "path of the twtop binary to measure (required)")
	fs.IntVar(&opts.rounds, "rounds", 5, "A/B rounds; each round runs every variant once per shape")
	fs.DurationVar(&opts.duration, "duration", 5*time.Second, "churn time of each run")
	fs.BoolVar(&opts.short, "short", false, "1 round of 2 s; exit 1 if twtop lost events, recorded none or missed more than 1 in 10,000 to the recursion guard")
	fs.DurationVar(&opts.soak, "soak", 0, "instead of the A/B runs: churn this long at full rate under twtop --record and sample twtop's RSS every 10 s")
	fs.BoolVar(&opts.soakUI, "soak-ui", false, "with -soak: run the twtop UI (on a pseudo-terminal) instead of twtop --record")
	fs.StringVar(&opts.churn.Mode, "mode", modeClientCloses, "churn mode: "+strings.Join(modes, ", "))
	fs.IntVar(&opts.churn.Streams, "conns", defaultStreams, "parallel connection streams of the saturated churn")
	fs.IntVar(&opts.churn.Dests, "dests", defaultDests, "loopback addresses each stream connects to in turn")
	fs.IntVar(&opts.churn.PortRange, "port-range", defaultPortRange, "port-pressure: number of ports in ip_local_port_range")
	fs.IntVar(&opts.churn.ReuseDelayMs, "reuse-delay-ms", defaultReuseDelay, "port-pressure: tcp_tw_reuse_delay in ms where the kernel has it (0: kernel default)")
	fs.IntVar(&opts.churn.Timewait, "timewait", 0, "keep up to N TIME_WAIT sockets in the churn's namespace (tcp_max_tw_buckets N, tcp_tw_reuse 0, local ports 1024-65535)); the soak prints how many are open at each sample")
	fs.BoolVar(&noPeer, "no-peer", false, "do not run the bpftrace peer (and do not install bpftrace)")
	fs.DurationVar(&opts.gap, "gap", time.Second, "pause between runs, while the kernel tears the last namespace down")
	fs.BoolVar(&opts.keep, "keep", false, "keep the recordings and bpftrace outputs (the directory is printed)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./test/bench -twtop PATH [-rounds N] [-duration D] [-short] [-soak D]\n"+
			"       go run ./test/bench churn [-mode M] [-duration D] [-conns N]\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if opts.twtop == "" {
		return errors.New("-twtop PATH is required (build one with: go build -o /tmp/twtop-bench ./cmd/twtop)")
	}
	if opts.short {
		opts.rounds, opts.duration = 1, 2*time.Second
	}
	switch {
	case opts.rounds < 1 || opts.rounds > 1000:
		return fmt.Errorf("-rounds %d out of range [1, 1000]", opts.rounds)
	case opts.soak < 0:
		return fmt.Errorf("-soak %v is negative", opts.soak)
	case opts.gap < 0 || opts.gap > time.Minute:
		return fmt.Errorf("-gap %v out of range [0, 1m]", opts.gap)
	}
	opts.churn.Duration = opts.duration
	if opts.soak > 0 {
		opts.churn.Duration = opts.soak
	}
	if err := opts.churn.validate(); err != nil {
		return err
	}
	opts.tail = tailWait
	if err := requireRoot(); err != nil {
		return err
	}
	abs, err := filepath.Abs(opts.twtop)
	if err != nil {
		return fmt.Errorf("twtop path: %w", err)
	}
	if st, err := os.Stat(abs); err != nil {
		return fmt.Errorf("twtop binary: %w", err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("twtop binary %s is not an executable file", abs)
	}
	opts.twtop = abs
	if !noPeer && opts.soak == 0 {
		if opts.bpftrace, err = apt.Need("bpftrace", "bpftrace"); err != nil {
			return err
		}
	}
	opts.dir, err = os.MkdirTemp("", "twtop-bench-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer func() {
		if opts.keep {
			fmt.Printf("recordings kept in %s\n", opts.dir)
			return
		}
		os.RemoveAll(opts.dir)
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.soak > 0 {
		return runSoak(ctx, opts)
	}
	if c := enableKernelStats(); c != nil {
		defer c.Close()
	}
	return runAB(ctx, opts)
}

// runResult is one churn under one variant.
type runResult struct {
	shape   string
	variant variant
	round   int
	churn   churnResult
	// ratio is the connections/s over those of the round's untraced run.
	ratio float64

	// tracer figures (not for noTracer)
	usage    tracerUsage
	events   uint64
	lost     uint64
	misses   uint64
	attach   time.Duration // exec until the tracer said it traces
	startCPU time.Duration // CPU used until then
	report   replayReport
	recBytes int64
	// state is the mean cost of twtop's program on the state change
	// tracepoint, or of the count-only program for the empty hooks
	state progCost

	// failed says why the run failed (a tracer that would not start, or
	// did not exit within exitTimeout of SIGINT and was killed); such a
	// run is left out of the table's figures and counted beside them
	failed string
}

// eventsPerS is what the tracer handled per second of churn.
func (r runResult) eventsPerS() float64 {
	if r.churn.ElapsedS <= 0 {
		return 0
	}
	return float64(r.events) / r.churn.ElapsedS
}

// cpuPerEvent is the tracer's CPU (after it started tracing) per event, in
// microseconds: user only, and user plus system.
func (r runResult) cpuPerEvent() (user, total float64) {
	if r.events == 0 {
		return 0, 0
	}
	n := float64(r.events)
	return r.usage.SteadyUser.Seconds() * 1e6 / n, (r.usage.SteadyUser + r.usage.SteadySys).Seconds() * 1e6 / n
}

// latencyResult is one start of twtop on a churn that already runs.
type latencyResult struct {
	attach      time.Duration // exec until "tracing on kernel"
	first       time.Duration // exec until the earliest record
	firstHooked time.Duration // exec until the earliest record of a kernel hook
	ok          bool
}

func runAB(ctx context.Context, opts options) error {
	shapes := []shape{
		{name: "saturated", streams: opts.churn.Streams},
		{name: "single-stream", streams: 1},
	}
	variants := []variant{noTracer, emptyHooksOnly, recordFloorOnly, twtopRecord, twtopUI}
	if opts.bpftrace != "" {
		variants = append(variants, bpftracePeer)
	}
	fmt.Printf("bench: %s churn on loopback in a fresh network namespace per run; %d round(s) of %v; saturated = %d streams, single-stream = 1; twtop %s\n",
		opts.churn.Mode, opts.rounds, opts.duration, opts.churn.Streams, opts.twtop)
	var (
		results   []runResult
		latencies []latencyResult
	)
	for round := 1; round <= opts.rounds; round++ {
		for _, sh := range shapes {
			var base float64
			var roundRes []runResult
			// rotate the order every round, so no variant always runs first
			for i := range variants {
				v := variants[(i+round-1)%len(variants)]
				r, err := runOne(ctx, opts, sh, v, round)
				if err != nil && ctx.Err() != nil {
					return fmt.Errorf("round %d, %s, %s: %w", round, sh.name, v, err)
				}
				if err != nil {
					// the round goes on: the table is still printed,
					// with this run marked, and the bench fails at the end
					r = runResult{shape: sh.name, variant: v, round: round, failed: err.Error()}
					fmt.Printf("round %d, %s, %s: FAILED: %v\n", round, sh.name, v, err)
					results = append(results, r)
					if err := pause(ctx, opts.gap); err != nil {
						return err
					}
					continue
				}
				if v == noTracer {
					base = r.churn.ConnPerS
				}
				roundRes = append(roundRes, r)
				printRun(r)
				if err := pause(ctx, opts.gap); err != nil {
					return err
				}
			}
			for i := range roundRes {
				if base > 0 {
					roundRes[i].ratio = roundRes[i].churn.ConnPerS / base
				}
			}
			results = append(results, roundRes...)
		}
		lat, err := runLatency(ctx, opts, round)
		if err != nil {
			return fmt.Errorf("round %d, start latency: %w", round, err)
		}
		latencies = append(latencies, lat)
		if err := pause(ctx, opts.gap); err != nil {
			return err
		}
	}
	fmt.Println()
	for _, sh := range shapes {
		printTable(opts, sh, variants, results)
		fmt.Println()
	}
	printLatency(results, latencies)
	var failed []string
	for _, r := range results {
		if r.failed != "" {
			failed = append(failed, fmt.Sprintf("round %d, %s, %s", r.round, r.shape, r.variant))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d run(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	if opts.short {
		return shortVerdict(results)
	}
	return nil
}

// maxMissShare is the share of its events a twtop run may miss to the
// kernel's recursion guard in -short. A softirq that interrupts a program
// on its CPU skips that program for the transitions it makes (on this
// host a pair every few million events under the saturated churn), which
// twtop cannot prevent; a program that runs into its own hook, or runs
// far too long, misses thousands.
const maxMissShare = 1e-4

// shortVerdict fails when a twtop run lost events, recorded none, or
// missed more than maxMissShare of them to the recursion guard. It never
// looks at timings.
func shortVerdict(results []runResult) error {
	var bad []string
	var misses uint64
	for _, r := range results {
		if r.variant != twtopRecord && r.variant != twtopUI {
			continue
		}
		if r.lost > 0 {
			bad = append(bad, fmt.Sprintf("%s round %d: %s lost %d events", r.shape, r.round, r.variant, r.lost))
		}
		if r.events == 0 {
			bad = append(bad, fmt.Sprintf("%s round %d: %s handled no events", r.shape, r.round, r.variant))
		}
		if float64(r.misses) > maxMissShare*float64(r.events) {
			bad = append(bad, fmt.Sprintf("%s round %d: %s missed %d of %d events to the recursion guard (more than 1 in %s)",
				r.shape, r.round, r.variant, r.misses, r.events, grouped(1/maxMissShare)))
		}
		misses += r.misses
	}
	if len(bad) > 0 {
		return fmt.Errorf("short run failed: %s", strings.Join(bad, "; "))
	}
	fmt.Printf("short run: PASS (twtop lost no events, handled some in every run, and missed %d to the recursion guard, at most 1 in %s)\n",
		misses, grouped(1/maxMissShare))
	return nil
}

func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	}
}

// runOne runs one churn of shape sh under variant v in a fresh namespace.
func runOne(ctx context.Context, opts options, sh shape, v variant, round int) (res runResult, err error) {
	res = runResult{shape: sh.name, variant: v, round: round}
	c := opts.churn
	c.Streams = sh.streams
	l, err := newLab(c)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()

	var (
		tp    *tracerProc
		file  string
		term  *pty
		floor *recordFloor
	)
	switch v {
	case twtopRecord:
		file = filepath.Join(opts.dir, fmt.Sprintf("%s-%d.twrec", sh.name, round))
		tp, err = startTwtop(ctx, opts.twtop, file, l.ns.Path(), c.Duration+2*time.Minute)
	case twtopUI:
		if term, err = openPTY(uiCols, uiRows); err != nil {
			return res, err
		}
		defer func() {
			if n := term.Close(); n == 0 && err == nil {
				err = errors.New("the twtop UI drew nothing on its terminal")
			}
		}()
		tp, err = startTwtopUI(ctx, opts.twtop, term.term, l.ns.Path())
	case bpftracePeer:
		file = filepath.Join(opts.dir, fmt.Sprintf("%s-%d.bpftrace", sh.name, round))
		tp, err = startBpftrace(ctx, opts.bpftrace, file)
	case emptyHooksOnly:
		var h *emptyHooks
		if h, err = attachEmptyHooks(); err == nil {
			defer func() { err = errors.Join(err, h.Close()) }()
		}
	case recordFloorOnly:
		if floor, err = attachRecordFloor(); err == nil {
			defer func() {
				if floor != nil {
					err = errors.Join(err, floor.Close())
				}
			}()
		}
	}
	if err != nil {
		return res, err
	}
	if tp != nil {
		defer tp.p.Kill()
	}
	if res.churn, err = l.runChurnIn(ctx, c); err != nil {
		return res, err
	}
	switch v {
	case emptyHooksOnly:
		res.state, err = programCost(countProg)
	case recordFloorOnly:
		res.state, err = programCost(floorProg)
		err = errors.Join(err, floor.Close()) // the last records are read
		res.events, floor = floor.read.Load(), nil
	case twtopRecord, twtopUI:
		res.state, err = programCost(stateProgs...)
	}
	if err != nil {
		return res, err
	}
	if tp == nil {
		return res, nil
	}
	if err := pause(ctx, opts.tail); err != nil {
		return res, err
	}
	if res.usage, err = tp.stop(); err != nil {
		return res, err
	}
	res.attach = tp.attach()
	res.startCPU = tp.readyUser + tp.readySys
	if !opts.keep {
		defer os.Remove(file)
	}
	if st, err := os.Stat(file); err == nil {
		res.recBytes = st.Size()
	}
	switch v {
	case twtopUI:
		var ok bool
		if res.events, res.lost, res.misses, ok = twtopCounters(tp.p.Stderr()); !ok {
			return res, fmt.Errorf("twtop UI printed no counters when it exited:\n%s", tp.p.Stderr())
		}
	case twtopRecord:
		rep, err := replay(opts.twtop, file)
		if err != nil {
			return res, err
		}
		res.report = rep
		res.events, res.lost, res.misses = rep.Events, rep.Lost, rep.RecursionMisses
	case bpftracePeer:
		res.events, res.lost, err = bpftraceCounts(file, tp.p.Stderr())
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// latencyLead is how long the churn runs before twtop is started in the
// start latency runs.
const latencyLead = 500 * time.Millisecond

// runLatency starts twtop on a single-stream churn that already runs and
// measures how long after exec its first records are.
func runLatency(ctx context.Context, opts options, round int) (res latencyResult, err error) {
	c := opts.churn
	c.Streams = 1
	c.Duration = max(opts.duration, 2*time.Second)
	l, err := newLab(c)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	p, err := l.startChurn(c)
	if err != nil {
		return res, err
	}
	churnDone := false
	defer func() {
		if !churnDone {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	}()
	if err := pause(ctx, latencyLead); err != nil {
		return res, err
	}
	file := filepath.Join(opts.dir, fmt.Sprintf("latency-%d.twrec", round))
	tp, err := startTwtop(ctx, opts.twtop, file, l.ns.Path(), c.Duration+2*time.Minute)
	if err != nil {
		return res, err
	}
	defer tp.p.Kill()
	churnDone = true
	if _, err := p.wait(ctx); err != nil {
		return res, err
	}
	if err := pause(ctx, opts.tail); err != nil {
		return res, err
	}
	if _, err := tp.stop(); err != nil {
		return res, err
	}
	if !opts.keep {
		defer os.Remove(file)
	}
	first, hooked, err := firstEvents(file)
	if err != nil {
		return res, err
	}
	res.attach = tp.attach()
	if !first.IsZero() && !hooked.IsZero() {
		res.first = first.Sub(tp.p.ExecAt())
		res.firstHooked = hooked.Sub(tp.p.ExecAt())
		res.ok = true
	}
	fmt.Printf("round %d  start latency  exec->tracing line %s  exec->first record %s  exec->first hooked record %s\n",
		round, ms(res.attach), msIf(res.first, res.ok), msIf(res.firstHooked, res.ok))
	return res, nil
}

// printRun prints one run's line as the harness goes.
func printRun(r runResult) {
	line := fmt.Sprintf("round %d  %-13s  %-14s  %9s conn/s  errors %d", r.round, r.shape, r.variant, grouped(r.churn.ConnPerS), r.churn.errorCount())
	if r.state.runs > 0 {
		line += fmt.Sprintf("  %s %.0f ns/run", r.stateName(), r.state.ns)
	}
	if r.variant == recordFloorOnly {
		line += fmt.Sprintf("  records read %s of %s runs", grouped(float64(r.events)), grouped(float64(r.state.runs)))
	}
	if r.variant.traces() {
		user, total := r.cpuPerEvent()
		line += fmt.Sprintf("  events %s (%s/s)  lost %d", grouped(float64(r.events)), grouped(r.eventsPerS()), r.lost)
		if r.variant != bpftracePeer {
			line += fmt.Sprintf("  recursion misses %d", r.misses)
		}
		line += fmt.Sprintf("  CPU/event %.2f µs user, %.2f µs total  max RSS %s  start %s (%s CPU)",
			user, total, mib(r.usage.MaxRSSKB), ms(r.attach), ms(r.startCPU))
		if r.variant == twtopRecord {
			rep := r.report
			line += fmt.Sprintf("  file %s  tier %s  TIME_WAIT created %d, reused %d, overflow %d",
				mib(r.recBytes/1024), rep.Tier, rep.Timewait.Created, rep.Reuse.ConnectReuse, rep.Timewait.Overflow)
		}
	}
	fmt.Println(line)
	if r.churn.errorCount() > 0 {
		fmt.Printf("         errors: %s\n", r.churn.errorSummary())
	}
}

// printTable prints the summary of one shape.
func printTable(opts options, sh shape, variants []variant, results []runResult) {
	tier := "?"
	for _, r := range results {
		if r.variant == twtopRecord && r.report.Tier != "" {
			tier = r.report.Tier
			break
		}
	}
	fmt.Printf("%s: %s, %d stream(s), %d round(s) of %v, twtop tier %s; medians over rounds (lost, misses, errors: sums; max RSS: max)\n",
		sh.name, opts.churn.Mode, sh.streams, opts.rounds, opts.duration, tier)
	head := []string{"variant", "conn/s", "ratio", "state ns/run", "events/s", "ev/conn", "lost", "rec.misses", "µs user/ev", "µs CPU/ev", "max RSS", "errors"}
	rows := [][]string{head}
	for _, v := range variants {
		var (
			rate, ratio, evps, evconn, user, total, state []float64
			lost, misses, errs                            uint64
			rss                                           int64
			failed                                        int
		)
		for _, r := range results {
			if r.shape != sh.name || r.variant != v {
				continue
			}
			if r.failed != "" {
				failed++
				continue
			}
			rate = append(rate, r.churn.ConnPerS)
			ratio = append(ratio, r.ratio)
			errs += r.churn.errorCount()
			if r.state.runs > 0 {
				state = append(state, r.state.ns)
			}
			if !v.traces() {
				continue
			}
			evps = append(evps, r.eventsPerS())
			if r.churn.Conns > 0 {
				evconn = append(evconn, float64(r.events)/float64(r.churn.Conns))
			}
			u, t := r.cpuPerEvent()
			user, total = append(user, u), append(total, t)
			lost += r.lost
			misses += r.misses
			rss = max(rss, r.usage.MaxRSSKB)
		}
		name := v.String()
		if failed > 0 {
			name += fmt.Sprintf(" (%d failed)", failed)
		}
		row := []string{name, grouped(median(rate)), fmt.Sprintf("%.3f", median(ratio)), "-"}
		if len(state) > 0 {
			row[3] = fmt.Sprintf("%.0f", median(state))
		}
		switch {
		case !v.traces():
			row = append(row, "-", "-", "-", "-", "-", "-", "-")
		default:
			missCol := fmt.Sprint(misses)
			if v == bpftracePeer {
				missCol = "n/a"
			}
			row = append(row, grouped(median(evps)), fmt.Sprintf("%.1f", median(evconn)), fmt.Sprint(lost), missCol,
				fmt.Sprintf("%.2f", median(user)), fmt.Sprintf("%.2f", median(total)), mib(rss))
		}
		row = append(row, fmt.Sprint(errs))
		rows = append(rows, row)
	}
	printColumns(rows)
}

// printLatency prints twtop's start figures.
func printLatency(results []runResult, lat []latencyResult) {
	var attach, cpu, hotAttach, first, hooked []float64
	for _, r := range results {
		if r.variant == twtopRecord {
			attach = append(attach, r.attach.Seconds()*1e3)
			cpu = append(cpu, r.startCPU.Seconds()*1e3)
		}
	}
	for _, l := range lat {
		hotAttach = append(hotAttach, l.attach.Seconds()*1e3)
		if l.ok {
			first = append(first, l.first.Seconds()*1e3)
			hooked = append(hooked, l.firstHooked.Seconds()*1e3)
		}
	}
	fmt.Printf("twtop start (medians): exec -> \"tracing on kernel\" line %.0f ms over %d idle starts, %.0f ms over %d starts under churn; CPU used before that line %.0f ms\n",
		median(attach), len(attach), median(hotAttach), len(hotAttach), median(cpu))
	if len(hooked) > 0 {
		fmt.Printf("twtop start under a running single-stream churn (medians of %d): exec -> first record %.0f ms, exec -> first record of a kernel hook %.0f ms\n",
			len(hooked), median(first), median(hooked))
	} else {
		fmt.Println("twtop start under a running churn: no record in the recordings")
	}
}

// printColumns prints rows with the first column left-aligned and the
// others right-aligned.
func printColumns(rows [][]string) {
	width := make([]int, 0)
	for _, r := range rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Println(b.String())
	}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", d.Seconds()*1e3)
}

func msIf(d time.Duration, ok bool) string {
	if !ok {
		return "-"
	}
	return ms(d)
}

func mib(kb int64) string {
	return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
}
