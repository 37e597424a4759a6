package pipeline

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/record"
	"github.com/twtop/twtop/tracer/settings"
)

// stateEvery is how often the namespaces' settings and counters are read
// again while tracing.
const stateEvery = 10 * time.Second

// Recorder is a --record destination: records and readings go to it in
// the order the pipeline meets them, on the pipeline's goroutine.
type Recorder interface {
	Add(rec []byte) error
	State(s record.State) error
	// Idle is called when the tracer has waited a while for a record (up
	// to 100 ms), so that a recorder can write out what it buffers.
	Idle() error
}

// NewLiveSource reads tr and the settings and counters of the namespaces
// at netns (paths; none: twtop's own).
func NewLiveSource(tr *tracer.Tracer, netns []string) *LiveSource {
	if len(netns) == 0 {
		netns = []string{""} // twtop's own namespace
	}
	l := &LiveSource{tr: tr, netns: netns}
	tr.OnIdle(l.idle)
	return l
}

// idle passes the tracer's waits on to the recorder.
func (l *LiveSource) idle() error {
	if l.Rec != nil {
		return l.Rec.Idle()
	}
	return nil
}

// LiveSource is the tracer as a raw record source, with the readings of
// settings and counters slotted into the stream: at start and every
// stateEvery, before the record that Next returns next. When recording, it
// writes every record and reading to the recording in that same order, so
// a replay hands the model the same inputs at the same points.
type LiveSource struct {
	tr    *tracer.Tracer
	netns []string // namespace paths to read ("" is twtop's own)
	// OnState, when set, gets every reading (the model's ingest.State).
	OnState func(record.State)
	// Rec, when set, gets every record and reading (--record).
	Rec Recorder

	n         uint64 // records returned
	matched   bool   // a record came from a kernel hook, not the scan
	lastState time.Time
	warned    map[string]bool
}

// Next returns the tracer's next record. The clock is looked at only at
// the end of each scan and every 4096 records; the recording is flushed
// by its own ticker.
func (l *LiveSource) Next() ([]byte, error) {
	b, err := l.tr.Next()
	if err != nil {
		return nil, err
	}
	l.n++
	k := event.RawKind(b)
	l.matched = l.matched || k != event.KindScanTW && k != event.KindScanEnd
	if (l.n%4096 == 0 || k == event.KindScanEnd) && time.Since(l.lastState) >= stateEvery {
		if err := l.ReadStates(); err != nil {
			return nil, err
		}
	}
	if l.Rec != nil {
		if err := l.Rec.Add(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// ReadStates reads every namespace's settings and counters: at start,
// every stateEvery, and once after the tracer is closed. A failure at
// start is an error; later (the namespace went away) it is reported once.
func (l *LiveSource) ReadStates() error {
	first := l.lastState.IsZero()
	l.lastState = time.Now()
	ts, _ := TracerStats(l.tr)
	for _, ns := range l.netns {
		s, c, err := settings.Read(ns)
		if err != nil {
			if first {
				return err
			}
			if !l.warned[ns] {
				fmt.Fprintf(os.Stderr, "\ntwtop: warning: %v (no longer reading it)\n", err)
				if l.warned == nil {
					l.warned = map[string]bool{}
				}
				l.warned[ns] = true
			}
			continue
		}
		st := record.State{TimeNs: MonotonicNow(), Settings: s, Counters: tcpCounters(c), Tracer: ts}
		if l.Rec != nil {
			if err := l.Rec.State(st); err != nil {
				return err
			}
		}
		if l.OnState != nil {
			l.OnState(st)
		}
	}
	return nil
}

// Matched reports whether a record came from a kernel hook: the scan's
// own records (its end markers come whatever the filters) do not count.
func (l *LiveSource) Matched() bool { return l.matched }

// TracerStats are the tracer's own counters in the form recordings carry
// them (false when they cannot be read).
func TracerStats(tr *tracer.Tracer) (record.TracerStats, bool) {
	st, err := tr.Stats()
	if err != nil {
		return record.TracerStats{}, false
	}
	return RecordStats(st), true
}

// RecordStats are st in the form recordings carry them.
func RecordStats(st tracer.Stats) record.TracerStats {
	return record.TracerStats{Records: st.TotalEvents(), Lost: st.TotalLost(), RecursionMisses: st.TotalRecursionMisses()}
}

// tcpCounters keeps the TCP sections of a namespace's counters: the ones
// about TIME_WAIT and connections, not the hundreds about IP and UDP.
func tcpCounters(c settings.Counters) settings.Counters {
	out := make(settings.Counters)
	for k, v := range c {
		if strings.HasPrefix(k, "Tcp.") || strings.HasPrefix(k, "TcpExt.") {
			out[k] = v
		}
	}
	return out
}

// MonotonicNow is CLOCK_MONOTONIC, the clock of the records' timestamps.
func MonotonicNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}
