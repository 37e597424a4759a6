package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/pipeline"
	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/record"
)

// flushEvery bounds what a recording killed mid-run can lose.
const flushEvery = time.Second

// recording is an open --record destination. The pipeline adds records
// and readings on its goroutine; the writer encodes and writes them on its
// own. Every flushEvery a ticker marks the buffered records due, and the
// pipeline hands them to the writer at its next record or, when the host
// is quiet, when the tracer has waited a while for one (Idle).
type recording struct {
	path  string
	f     *os.File
	w     *record.AsyncWriter
	due   atomic.Bool // set by the ticker: flush at the next Add or Idle
	start time.Time
	stop  chan struct{}
	done  chan struct{}

	// the owners' workloads: the resolver (nil: none), the cgroup ids
	// seen, and those not yet written (resolved or not); the same for the
	// records' network namespaces, with the last one seen (most records
	// are in the namespace of the one before)
	wl           *workload.Resolver
	seen         map[uint64]bool
	unnamed      []uint64
	seenNetns    map[uint32]bool
	unnamedNetns []uint32
	lastNetns    uint32

	progress  bool // stderr is a terminal: keep a status line
	lastShown time.Time
	lastCount uint64
	shown     bool
}

// createRecording opens path (mode 0600; "-" is stdout) and writes the
// header.
func createRecording(path string, tr *tracer.Tracer, opts tracer.Options, wl *workload.Resolver) (*recording, error) {
	var f *os.File
	if path == "-" {
		if isTerminal(os.Stdout) {
			return nil, &usageError{"--record -: stdout is a terminal; redirect it to a file or a pipe"}
		}
		f = os.Stdout
	} else {
		var err error
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create recording: %w", err)
		}
		// an existing file keeps its mode on open: recordings name hosts,
		// addresses and processes
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("create recording: %w", err)
		}
	}
	host, _ := os.Hostname()
	now := time.Now()
	h := record.Header{
		Twtop: versionString(), Host: host, Kernel: tr.KernelRelease(), Tier: tr.Tier().String(),
		HZ: tr.HZ(), ByteOrder: "little", RecordSize: event.RecordSize,
		WallOffsetNs: now.UnixNano() - int64(pipeline.MonotonicNow()), Started: now.UTC().Truncate(time.Second),
		Filters: record.Filters{Netns: opts.Netns, Pid: opts.Pid, Cgroup: opts.Cgroup, Port: opts.Port, Family: opts.Family},
	}
	h.Notes = append(h.Notes, tr.Rejected()...)
	if f := tr.Fallbacks().String(); f != "" {
		h.Notes = append(h.Notes, "fallbacks: "+f)
	}
	for _, fn := range tr.SkippedHooks() {
		h.Notes = append(h.Notes, fn+" cannot be hooked on this kernel: "+tracer.HookLoss(fn))
	}
	w, err := record.NewAsyncWriter(f, h)
	if err != nil {
		if f != os.Stdout {
			f.Close()
		}
		return nil, err
	}
	return &recording{path: path, f: f, w: w, start: now, progress: isTerminal(os.Stderr),
		stop: make(chan struct{}), done: make(chan struct{}), wl: wl, seen: map[uint64]bool{}, seenNetns: map[uint32]bool{}}, nil
}

// Add writes a record (pipeline.Recorder). The first time an owner's
// cgroup or a network namespace shows up, its workload is asked for (the
// answer comes later).
func (r *recording) Add(b []byte) error {
	if err := r.w.Add(b); err != nil {
		return err
	}
	if r.wl != nil {
		if id, ok := event.RawOwnerCgroup(b); ok && !r.seen[id] {
			r.seen[id] = true
			r.unnamed = append(r.unnamed, id)
			r.wl.Lookup(id)
		}
		if ns := event.RawNetns(b); ns != r.lastNetns && ns != 0 && event.RawKind(b) != event.KindScanEnd {
			// a scan's end marker is no socket's: looking its namespace
			// up before the namespace's pod has a process would keep
			// "no workload"
			r.lastNetns = ns
			if !r.seenNetns[ns] {
				r.seenNetns[ns] = true
				r.unnamedNetns = append(r.unnamedNetns, ns)
				r.wl.LookupNetns(uint64(ns))
			}
		}
	}
	if r.due.Load() {
		return r.flush()
	}
	return nil
}

// Idle writes the buffered records if they are due (pipeline.Recorder).
func (r *recording) Idle() error {
	if r.due.Load() {
		return r.flush()
	}
	return nil
}

func (r *recording) flush() error {
	r.due.Store(false)
	return r.w.Flush()
}

// State writes a reading (pipeline.Recorder), after the workloads
// resolved since the last one.
func (r *recording) State(s record.State) error {
	if err := r.workloads(); err != nil {
		return err
	}
	return r.w.State(s)
}

// workloads writes the workloads of the cgroups and network namespaces
// seen that have been resolved since the last call; the others wait for
// the next. An id resolved to no workload (the host's namespace) is not
// written.
func (r *recording) workloads() error {
	if len(r.unnamed) == 0 && len(r.unnamedNetns) == 0 {
		return nil
	}
	ws := record.Workloads{Cgroups: map[string]workload.Workload{}, Netns: map[string]workload.Workload{}}
	left := r.unnamed[:0]
	for _, id := range r.unnamed {
		w, ok := r.wl.Lookup(id)
		switch {
		case !ok:
			left = append(left, id)
		case w.Kind != workload.KindOther:
			ws.Cgroups[strconv.FormatUint(id, 10)] = w
		}
	}
	r.unnamed = left
	leftNetns := r.unnamedNetns[:0]
	for _, ns := range r.unnamedNetns {
		w, ok := r.wl.LookupNetns(uint64(ns))
		switch {
		case !ok:
			leftNetns = append(leftNetns, ns)
		case w.Kind != workload.KindOther:
			ws.Netns[strconv.FormatUint(uint64(ns), 10)] = w
		}
	}
	r.unnamedNetns = leftNetns
	if len(ws.Cgroups) == 0 && len(ws.Netns) == 0 {
		return nil
	}
	return r.w.Workloads(ws)
}

// flushing marks the buffered records due every flushEvery and updates
// the status line until finish. A write error ends the pipeline at its
// next flush.
func (r *recording) flushing(tr *tracer.Tracer) {
	defer close(r.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
			r.due.Store(true)
			r.show(tr)
		}
	}
}

// show updates the status line (at most once a second).
func (r *recording) show(tr *tracer.Tracer) {
	if !r.progress || time.Since(r.lastShown) < time.Second {
		return
	}
	n, written := r.w.Records(), r.w.Written()
	rate := float64(n-r.lastCount) / time.Since(r.lastShown).Seconds()
	if r.lastShown.IsZero() {
		rate = 0
	}
	var lost uint64
	if st, err := tr.Stats(); err == nil {
		lost = st.TotalLost()
	}
	fmt.Fprintf(os.Stderr, "\r\033[Ktwtop: recording %s: %s events, %s/s, %d lost, %s written, %s",
		r.name(), grouped(n), grouped(uint64(rate)), lost, sizeString(written), time.Since(r.start).Round(time.Second))
	r.lastShown, r.lastCount, r.shown = time.Now(), n, true
}

// finish writes the trailer with the tracer's final counters and closes
// the file. It ends the status line first.
func (r *recording) finish(tr *tracer.Tracer, werr error) error {
	close(r.stop)
	<-r.done
	if r.shown {
		fmt.Fprintln(os.Stderr)
	}
	var err error
	if werr == nil {
		err = r.lastWorkloads()
	}
	if err == nil && werr == nil {
		ts, _ := pipeline.TracerStats(tr)
		err = r.w.Close(record.Trailer{TimeNs: pipeline.MonotonicNow(), Tracer: ts})
	} else {
		_ = r.w.Stop() // what was handed over is written; werr is the error
	}
	if r.f != os.Stdout {
		if serr := r.f.Sync(); serr != nil && err == nil && !errors.Is(serr, os.ErrInvalid) {
			err = fmt.Errorf("sync recording: %w", serr)
		}
		if cerr := r.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close recording: %w", cerr)
		}
	}
	if err == nil && werr == nil {
		fmt.Fprintf(os.Stderr, "twtop: recorded %s events in %s to %s\n", grouped(r.w.Records()), sizeString(r.w.Written()), r.name())
	}
	if werr != nil {
		return fmt.Errorf("%w; %s stays readable up to its last whole block", werr, r.name())
	}
	return err
}

// lastWorkloads writes the workloads still unwritten, giving the resolver
// up to lastResolve to answer for the cgroups and namespaces seen last.
func (r *recording) lastWorkloads() error {
	deadline := time.Now().Add(lastResolve)
	for {
		if err := r.workloads(); err != nil || len(r.unnamed) == 0 && len(r.unnamedNetns) == 0 || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lastResolve bounds how long the end of a recording waits for names.
const lastResolve = time.Second

func (r *recording) name() string {
	if r.path == "-" {
		return "stdout"
	}
	return r.path
}

// recordOnly reads the tracer into the recording until it is closed.
func recordOnly(src *pipeline.LiveSource) error {
	for {
		if _, err := src.Next(); err != nil {
			if pipeline.SourceEnded(err) {
				return nil
			}
			return err
		}
	}
}

func grouped(n uint64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
