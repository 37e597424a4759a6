package tracer

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"

	"github.com/twtop/twtop/tracer/event"
)

// perfPollEvery bounds how long a record waits in its per-CPU buffer when
// the buffer stayed below the wakeup watermark.
const perfPollEvery = 50 * time.Millisecond

// perfClockEvery is how many records the reader takes between looks at the
// clock while the buffers keep it busy.
const perfClockEvery = 32

// perfReader reads the per-CPU buffers of a BPF_MAP_TYPE_PERF_EVENT_ARRAY
// and returns the records merged across CPUs in time order.
//
// The kernel wakes the reader only each time a CPU has written a quarter
// of its buffer; the rest is read by a drain: Flush makes the cilium reader
// read every buffer to its current head and then return perf.ErrFlushed.
// After a drain that began at monotonic time T, every record committed
// before T has been read, so records stamped before T-holdBack are
// released. Read drains every perfPollEvery, and when the oldest held
// record leaves the slack.
type perfReader struct {
	rd       *perf.Reader
	rec      perf.Record // reused by every read
	merge    merger
	cutoff   int64 // records stamped before this (CLOCK_MONOTONIC ns) are released
	flushing bool  // a Flush was requested and its perf.ErrFlushed is still to come
	flushAt  int64 // CLOCK_MONOTONIC just before that Flush
	final    bool  // no record comes anymore: a drain releases every record
	deadline time.Time
	lost     atomic.Uint64
	closed   atomic.Bool
}

// newPerfReader opens perCPUBuffer bytes (rounded up to a power of two
// pages) of buffer for every online CPU of m, a perf event array.
func newPerfReader(m *ebpf.Map, perCPUBuffer int) (*perfReader, error) {
	rd, err := perf.NewReaderWithOptions(m, perCPUBuffer, perf.ReaderOptions{Watermark: perCPUBuffer / 4})
	if err != nil {
		return nil, fmt.Errorf("open perf buffers: %w", err)
	}
	return &perfReader{rd: rd, rec: perf.Record{RawSample: make([]byte, 0, 2*event.RecordSize)}}, nil
}

// Read returns the next record in time order (event.RecordSize bytes,
// valid until the next Read).
func (r *perfReader) Read() ([]byte, error) {
	drained := false // a drain that began at or after the deadline is done
	for {
		if r.closed.Load() {
			return nil, ErrClosed
		}
		if rec, ok := r.merge.pop(r.cutoff); ok {
			return rec, nil
		}
		mono := int64(monotonicNow())
		now := time.Now()
		if !r.deadline.IsZero() {
			left := r.deadline.Sub(now)
			if left < time.Millisecond {
				if drained {
					return nil, fmt.Errorf("read perf buffers: %w", os.ErrDeadlineExceeded)
				}
				// the poller counts whole milliseconds: sleep out the rest
				time.Sleep(left)
				drained = true
				if err := r.fill(0); err != nil {
					return nil, err
				}
				continue
			}
		}
		wait := perfPollEvery
		if due, ok := r.merge.due(); ok {
			wait = min(wait, time.Duration(due-mono))
		}
		if !r.deadline.IsZero() {
			wait = min(wait, r.deadline.Sub(now))
		}
		if err := r.fill(wait); err != nil {
			return nil, err
		}
	}
}

// fill reads records into the merge until a drain ends that began no
// sooner than wait from now, or sooner than the held records need; it then
// advances the cutoff. wait <= 0 drains at once.
func (r *perfReader) fill(wait time.Duration) error {
	start := int64(monotonicNow())
	startWall := time.Now() // no earlier than start: deadlines err late
	due := start + int64(wait)
	if wait <= 0 {
		if err := r.flush(); err != nil {
			return err
		}
	} else {
		r.rd.SetDeadline(startWall.Add(wait))
	}
	n := 0
	for {
		err := r.rd.ReadInto(&r.rec)
		switch {
		case err == nil:
		case errors.Is(err, perf.ErrFlushed):
			r.flushing = false
			r.cutoff = r.flushAt - int64(holdBack)
			if r.final {
				r.cutoff = math.MaxInt64
			}
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			// the poller reached the deadline and the buffers were
			// read; the fill ends with a drain whose start is known
			if err := r.flush(); err != nil {
				return err
			}
			continue
		case errors.Is(err, os.ErrClosed):
			return ErrClosed
		default:
			return fmt.Errorf("read perf buffers: %w", err)
		}
		if r.rec.LostSamples > 0 {
			r.lost.Add(r.rec.LostSamples)
			continue
		}
		if len(r.rec.RawSample) < event.MinRecordSize {
			return fmt.Errorf("short perf buffer record: %d bytes", len(r.rec.RawSample))
		}
		if d := r.merge.push(r.rec.RawSample) + dueAfter; d < due {
			due = d
			r.rd.SetDeadline(startWall.Add(time.Duration(due - start)))
		}
		// Wakeups can keep the poller from ever reaching its deadline:
		// drain on time regardless.
		if n++; n%perfClockEvery == 0 && !r.flushing && time.Since(startWall) >= time.Duration(due-start) {
			if err := r.flush(); err != nil {
				return err
			}
		}
	}
}

// flush starts a drain of every buffer unless one is under way.
func (r *perfReader) flush() error {
	if r.flushing {
		return nil
	}
	r.flushAt = int64(monotonicNow())
	if err := r.rd.Flush(); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("flush perf buffers: %w", err)
	}
	r.flushing = true
	return nil
}

// SetDeadline bounds how long Read blocks; the zero time means no bound.
func (r *perfReader) SetDeadline(t time.Time) { r.deadline = t }

// Final: every record is due once a drain has read it.
func (r *perfReader) Final() { r.final = true }

// Close makes a blocked Read return ErrClosed and frees the buffers.
func (r *perfReader) Close() error {
	r.closed.Store(true)
	if err := r.rd.Close(); err != nil {
		return fmt.Errorf("close perf buffers: %w", err)
	}
	return nil
}

// Lost is the number of records the kernel reported it could not write
// into the buffers (perf lost-samples records).
func (r *perfReader) Lost() uint64 { return r.lost.Load() }

func (r *perfReader) Owners() (restored, unknown uint64) { return r.merge.owners.Counts() }
