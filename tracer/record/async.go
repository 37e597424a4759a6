package record

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// asyncBuffers is how many batches an AsyncWriter has: one being filled,
// the others queued for or being encoded and written.
const asyncBuffers = 4

// AsyncWriter writes a recording as a Writer does, with the encoding and
// writing of its blocks on a goroutine of its own: Add only copies the
// record into the batch being filled, and a full batch (or one flushed)
// is handed to that goroutine, which gets the batches and state readings
// in the order they were given and writes them in that order. When every
// batch is queued, the next hand-over waits for one to be written.
//
// Add, State, Workloads, Flush, Close and Stop are called from one goroutine;
// Records, Written and Err from any. A write error is returned by the
// hand-over after it, and by Close.
type AsyncWriter struct {
	size  int
	limit int    // bytes of a full batch
	cur   []byte // the batch being filled
	added uint64 // records handed over
	ended bool   // Stop was called

	work chan asyncItem
	free chan []byte
	done chan struct{}

	records atomic.Uint64
	written atomic.Int64
	err     atomic.Pointer[error] // the first write error

	w *Writer // used by the goroutine only, until it ends
}

var errAsyncEnded = errors.New("record: recording already closed")

// asyncItem is a batch of records, a reading (state) or workloads.
type asyncItem struct {
	recs      []byte
	state     *State
	workloads *Workloads
}

// NewAsyncWriter writes the preamble and the header block to w and starts
// the writing goroutine.
func NewAsyncWriter(w io.Writer, h Header) (*AsyncWriter, error) {
	wr, err := NewWriter(w, h)
	if err != nil {
		return nil, err
	}
	limit := batchRecords * wr.size
	a := &AsyncWriter{
		size: wr.size, limit: limit, cur: make([]byte, 0, limit),
		work: make(chan asyncItem, 2*asyncBuffers), free: make(chan []byte, asyncBuffers),
		done: make(chan struct{}), w: wr,
	}
	for range asyncBuffers - 1 {
		a.free <- make([]byte, 0, limit)
	}
	a.written.Store(wr.Written())
	go a.run()
	return a, nil
}

// run writes what it is handed until the work channel is closed.
func (a *AsyncWriter) run() {
	defer close(a.done)
	for it := range a.work {
		var err error
		switch {
		case it.state != nil:
			err = a.w.State(*it.state)
		case it.workloads != nil:
			err = a.w.Workloads(*it.workloads)
		default:
			err = a.w.writeEvents(it.recs, len(it.recs)/a.size)
			a.free <- it.recs[:0]
		}
		a.written.Store(a.w.Written())
		if err != nil && a.err.Load() == nil {
			a.err.Store(&err)
		}
	}
}

// Add buffers one raw record (copied). A full batch is handed over.
func (a *AsyncWriter) Add(rec []byte) error {
	if len(rec) != a.size {
		return fmt.Errorf("record: record of %d bytes in a recording of %d-byte records", len(rec), a.size)
	}
	a.cur = append(a.cur, rec...)
	if len(a.cur) >= a.limit {
		return a.Flush()
	}
	return nil
}

// Flush hands the buffered records over to be written as one events block
// and returns without waiting for the write. It returns the first write
// error so far.
func (a *AsyncWriter) Flush() error {
	if err := a.Err(); err != nil {
		a.cur = a.cur[:0]
		return err
	}
	if a.ended {
		return errAsyncEnded
	}
	if len(a.cur) == 0 {
		return nil
	}
	a.added += uint64(len(a.cur) / a.size)
	a.records.Store(a.added)
	a.work <- asyncItem{recs: a.cur}
	a.cur = <-a.free
	return nil
}

// State hands the buffered records, then the reading over, so that the
// reading lands at its place in the stream.
func (a *AsyncWriter) State(s State) error {
	if err := a.Flush(); err != nil {
		return err
	}
	if a.ended {
		return errAsyncEnded
	}
	a.work <- asyncItem{state: &s}
	return nil
}

// Workloads hands the buffered records, then ws over.
func (a *AsyncWriter) Workloads(ws Workloads) error {
	if err := a.Flush(); err != nil {
		return err
	}
	if a.ended {
		return errAsyncEnded
	}
	a.work <- asyncItem{workloads: &ws}
	return nil
}

// Stop hands the buffered records over, waits until everything handed
// over is written, and ends the goroutine; it writes no trailer. It
// returns the first write error. Safe to call twice.
func (a *AsyncWriter) Stop() error {
	var ferr error
	if !a.ended {
		ferr = a.Flush()
		a.ended = true
		close(a.work)
	}
	<-a.done
	if err := a.Err(); err != nil {
		return err
	}
	return ferr
}

// Close writes everything handed over and the buffered records, then the
// trailer. It does not close the underlying writer.
func (a *AsyncWriter) Close(t Trailer) error {
	if err := a.Stop(); err != nil {
		return err
	}
	err := a.w.Close(t)
	a.written.Store(a.w.Written())
	return err
}

// Err is the first write error, or nil.
func (a *AsyncWriter) Err() error {
	if p := a.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Records is the number of records handed over to be written so far
// (after Stop or Close: every record added).
func (a *AsyncWriter) Records() uint64 { return a.records.Load() }

// Written is the number of bytes written so far.
func (a *AsyncWriter) Written() int64 { return a.written.Load() }
