package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/twtop/twtop/tracer/event"
)

// Reader reads a recording. Next returns the raw records in order, so a
// Reader is an event.RawSource; the state blocks met on the way are handed
// to OnState before the records that follow them.
type Reader struct {
	// OnState, when set, receives every state block in file order.
	OnState func(State)
	// OnWorkloads, when set, receives every workloads block in file order.
	OnWorkloads func(Workloads)

	r       io.Reader // unbuffered: a block takes two reads, its head and its payload (into payload)
	off     int64     // offset of the next unread byte
	hdr     Header
	dec     *batchDecoder
	payload bytes.Buffer
	recs    []byte
	size    int
	left    int // records of recs not yet returned
	state   *State
	trailer *Trailer
	trunc   *Truncation
	records uint64
	err     error  // sticky: io.EOF or a *FormatError
	version uint32 // the file's format version
}

// NewReader reads the preamble and the header. It fails with a
// *FormatError when r is not a twtop recording this version can read.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: r, dec: &batchDecoder{}}
	var pre [preambleSize]byte
	n, err := io.ReadFull(rd.r, pre[:])
	rd.off += int64(n)
	if n == 0 {
		return nil, &FormatError{0, "empty file, not a twtop recording"}
	}
	if !bytes.HasPrefix(magic[:], pre[:min(n, len(magic))]) {
		return nil, &FormatError{0, "not a twtop recording (wrong magic)"}
	}
	if err != nil {
		return nil, &FormatError{int64(n), "file ends inside the preamble"}
	}
	rd.version = le.Uint32(pre[len(magic):])
	if v := rd.version; v != Version && v != 1 {
		if v > Version {
			return nil, &FormatError{int64(len(magic)), fmt.Sprintf("format version %d is newer than this twtop reads (%d): upgrade twtop", v, Version)}
		}
		return nil, &FormatError{int64(len(magic)), fmt.Sprintf("unknown format version %d", v)}
	}
	start := rd.off
	typ, p, err := rd.block()
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, &FormatError{start, "file ends before the header is complete"}
	}
	if typ != blockHeader {
		return nil, &FormatError{start, fmt.Sprintf("first block is %s, want header", blockName(typ))}
	}
	if err := json.Unmarshal(p, &rd.hdr); err != nil {
		return nil, &FormatError{start, fmt.Sprintf("header: %v", err)}
	}
	switch {
	case rd.hdr.ByteOrder != "little":
		return nil, &FormatError{start, fmt.Sprintf("records are %q-endian; this twtop reads little-endian recordings only", rd.hdr.ByteOrder)}
	case rd.hdr.RecordSize <= 0 || rd.hdr.RecordSize > maxRecordSize:
		return nil, &FormatError{start, fmt.Sprintf("header gives record size %d", rd.hdr.RecordSize)}
	}
	return rd, nil
}

// Header is the recording's header.
func (r *Reader) Header() Header { return r.hdr }

// Next returns the next raw record, valid until the next call. At the end
// of the recording it returns io.EOF, also when the file was cut short
// (then Truncated says so). A damaged file gives a *FormatError.
func (r *Reader) Next() ([]byte, error) {
	for r.left == 0 {
		if r.err != nil {
			return nil, r.err
		}
		if err := r.advance(); err != nil {
			r.err = err
			return nil, err
		}
	}
	i := len(r.recs)/r.size - r.left
	r.left--
	return r.recs[i*r.size : (i+1)*r.size], nil
}

// advance reads the next block and acts on it.
func (r *Reader) advance() error {
	start := r.off
	typ, p, err := r.block()
	if err != nil {
		return err
	}
	if r.trailer != nil {
		return &FormatError{start, fmt.Sprintf("%s block after the trailer", blockName(typ))}
	}
	switch typ {
	case blockEvents:
		recs, n, sz, err := r.dec.decode(p)
		if err != nil {
			return &FormatError{start, err.Error()}
		}
		if sz != r.hdr.RecordSize {
			return &FormatError{start, fmt.Sprintf("events block has %d-byte records, header says %d", sz, r.hdr.RecordSize)}
		}
		if r.version == 1 && sz == event.RecordSize {
			// the records of version 1 have the first layout
			for off := 0; off < len(recs); off += sz {
				event.FromLayout1(recs[off : off+sz])
			}
		}
		r.recs, r.size, r.left = recs, sz, n
		r.records += uint64(n)
	case blockState:
		var s State
		if err := json.Unmarshal(p, &s); err != nil {
			return &FormatError{start, fmt.Sprintf("state block: %v", err)}
		}
		r.state = &s
		if r.OnState != nil {
			r.OnState(s)
		}
	case blockTrailer:
		var t Trailer
		if err := json.Unmarshal(p, &t); err != nil {
			return &FormatError{start, fmt.Sprintf("trailer: %v", err)}
		}
		if t.Records != r.records {
			return &FormatError{start, fmt.Sprintf("trailer counts %d records, the events blocks hold %d", t.Records, r.records)}
		}
		r.trailer = &t
	case blockWorkloads:
		var ws Workloads
		if err := json.Unmarshal(p, &ws); err != nil {
			return &FormatError{start, fmt.Sprintf("workloads block: %v", err)}
		}
		if r.OnWorkloads != nil {
			r.OnWorkloads(ws)
		}
	case blockHeader:
		return &FormatError{start, "second header block"}
	}
	// other types: written by a newer twtop, skipped
	return nil
}

// block reads one block and checks it. At the end of the data it returns
// io.EOF and records a truncation when the file did not end cleanly.
func (r *Reader) block() (uint32, []byte, error) {
	start := r.off
	var head [blockHeadSize]byte
	n, err := io.ReadFull(r.r, head[:])
	r.off += int64(n)
	if err != nil {
		return 0, nil, r.end(start, int64(n), err)
	}
	typ, length := le.Uint32(head[0:]), le.Uint32(head[4:])
	if checksum(head[:8]) != le.Uint32(head[8:]) {
		return 0, nil, &FormatError{start, "block head checksum mismatch (damaged file)"}
	}
	if typ == 0 || typ > 1<<16 {
		return 0, nil, &FormatError{start, fmt.Sprintf("block type %d is not valid", typ)}
	}
	limit := uint32(maxBlock)
	if typ != blockEvents {
		limit = maxMetaBlock
	}
	if length > limit {
		return 0, nil, &FormatError{start, fmt.Sprintf("%s block length %d exceeds the %d-byte limit", blockName(typ), length, limit)}
	}
	// Grow with the data actually present, not with the length field.
	r.payload.Reset()
	got, err := r.payload.ReadFrom(io.LimitReader(r.r, int64(length)+blockTailSize))
	r.off += got
	if err != nil {
		return 0, nil, &FormatError{r.off, fmt.Sprintf("read: %v", err)}
	}
	if got < int64(length)+blockTailSize {
		return 0, nil, r.end(start, blockHeadSize+got, io.ErrUnexpectedEOF)
	}
	b := r.payload.Bytes()
	p, sum := b[:length], le.Uint32(b[length:])
	if checksum(p) != sum {
		return 0, nil, &FormatError{start, fmt.Sprintf("%s block checksum mismatch (damaged file)", blockName(typ))}
	}
	return typ, p, nil
}

// end turns the end of the data at offset start, partial bytes into a
// block, into io.EOF (noting a truncation) or a read error.
func (r *Reader) end(start, partial int64, err error) error {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return &FormatError{start + partial, fmt.Sprintf("read: %v", err)}
	}
	if partial > 0 || r.trailer == nil {
		r.trunc = &Truncation{Offset: start, Partial: partial, NoTrailer: r.trailer == nil}
	}
	return io.EOF
}

// Trailer returns the trailer once Next has reached it.
func (r *Reader) Trailer() (Trailer, bool) {
	if r.trailer == nil {
		return Trailer{}, false
	}
	return *r.trailer, true
}

// TracerStats are the tracer's counters as the recording last gives them:
// the trailer's, or, in a recording cut short, those of the last state
// block read so far (zero before it).
func (r *Reader) TracerStats() TracerStats {
	if r.trailer != nil {
		return r.trailer.Tracer
	}
	if r.state != nil {
		return r.state.Tracer
	}
	return TracerStats{}
}

// Truncated says, once Next returned io.EOF, whether the recording was cut
// short and where (nil when it ended cleanly with its trailer).
func (r *Reader) Truncated() *Truncation { return r.trunc }

// Offset is the number of bytes read so far.
func (r *Reader) Offset() int64 { return r.off }
