package record

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Writer writes a recording. Add buffers raw records; Flush writes them as
// one block. The caller flushes at least once a second, so that a
// recording killed mid-run loses at most its last second. A Writer is not
// safe for concurrent use; AsyncWriter encodes and writes on a goroutine
// of its own.
type Writer struct {
	w       io.Writer
	size    int // record size
	recs    []byte
	n       int
	enc     *batchEncoder
	block   []byte // the last events block written, head to tail
	written int64
	records uint64
	err     error // sticky: the first write error
}

// NewWriter writes the preamble and the header block to w.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	// every record starts with its 8-byte time (encDeltaTransposedS2)
	if h.RecordSize < 8 || h.RecordSize > maxRecordSize {
		return nil, fmt.Errorf("record: record size %d out of range [8, %d]", h.RecordSize, maxRecordSize)
	}
	if h.ByteOrder == "" {
		h.ByteOrder = "little"
	}
	wr := &Writer{w: w, size: h.RecordSize, enc: &batchEncoder{}, recs: make([]byte, 0, batchRecords*h.RecordSize)}
	var pre [preambleSize]byte
	copy(pre[:], magic[:])
	le.PutUint32(pre[len(magic):], Version)
	if err := wr.write(pre[:]); err != nil {
		return nil, err
	}
	if err := wr.writeJSON(blockHeader, h); err != nil {
		return nil, err
	}
	return wr, nil
}

// Add buffers one raw record (copied). It writes a block when the batch
// is full.
func (w *Writer) Add(rec []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(rec) != w.size {
		return fmt.Errorf("record: record of %d bytes in a recording of %d-byte records", len(rec), w.size)
	}
	w.recs = append(w.recs, rec...)
	w.n++
	if w.n >= batchRecords {
		return w.Flush()
	}
	return nil
}

// Flush writes the buffered records as one events block.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.n == 0 {
		return nil
	}
	err := w.writeEvents(w.recs, w.n)
	w.recs, w.n = w.recs[:0], 0
	return err
}

// writeEvents encodes n records (recs, whose times it overwrites) and
// writes them as one events block, encoded in place after the block's
// head in a buffer kept from block to block.
func (w *Writer) writeEvents(recs []byte, n int) error {
	if w.err != nil {
		return w.err
	}
	buf := w.enc.encode(append(w.block[:0], make([]byte, blockHeadSize)...), recs, n, w.size)
	payload := buf[blockHeadSize:]
	if len(payload) > maxBlock {
		return fmt.Errorf("record: events block of %d bytes exceeds %d", len(payload), maxBlock)
	}
	le.PutUint32(buf[0:], blockEvents)
	le.PutUint32(buf[4:], uint32(len(payload)))
	le.PutUint32(buf[8:], checksum(buf[:8]))
	buf = le.AppendUint32(buf, checksum(payload))
	w.block = buf
	w.records += uint64(n)
	return w.write(buf)
}

// State writes the buffered records, then a state block, so the state
// lands at its place in the stream.
func (w *Writer) State(s State) error {
	if err := w.Flush(); err != nil {
		return err
	}
	return w.writeJSON(blockState, s)
}

// Workloads writes the buffered records, then a workloads block.
func (w *Writer) Workloads(ws Workloads) error {
	if err := w.Flush(); err != nil {
		return err
	}
	return w.writeJSON(blockWorkloads, ws)
}

// Close writes the buffered records and the trailer. It does not close
// the underlying writer.
func (w *Writer) Close(t Trailer) error {
	if err := w.Flush(); err != nil {
		return err
	}
	t.Records = w.records
	return w.writeJSON(blockTrailer, t)
}

// Written is the number of bytes written so far.
func (w *Writer) Written() int64 { return w.written }

// Records is the number of records written or buffered so far.
func (w *Writer) Records() uint64 { return w.records + uint64(w.n) }

func (w *Writer) writeJSON(typ uint32, v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("record: encode %s: %w", blockName(typ), err)
	}
	if len(p) > maxMetaBlock {
		return fmt.Errorf("record: %s block of %d bytes exceeds %d", blockName(typ), len(p), maxMetaBlock)
	}
	return w.writeBlock(typ, p)
}

// writeBlock writes one block with a single Write, so that a reader of a
// file killed mid-run sees whole blocks and at most one partial one.
func (w *Writer) writeBlock(typ uint32, payload []byte) error {
	if len(payload) > maxBlock {
		return fmt.Errorf("record: %s block of %d bytes exceeds %d", blockName(typ), len(payload), maxBlock)
	}
	buf := make([]byte, 0, blockHeadSize+len(payload)+blockTailSize)
	buf = le.AppendUint32(buf, typ)
	buf = le.AppendUint32(buf, uint32(len(payload)))
	buf = le.AppendUint32(buf, checksum(buf))
	buf = append(buf, payload...)
	buf = le.AppendUint32(buf, checksum(payload))
	return w.write(buf)
}

func (w *Writer) write(b []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.w.Write(b)
	w.written += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("record: write: %w", err)
		if errors.Is(err, io.ErrShortWrite) {
			w.err = fmt.Errorf("record: write: %w (disk full?)", err)
		}
	}
	return w.err
}
