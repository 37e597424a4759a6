package tracer

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/twtop/twtop/tracer/event"
)

// pieces reads its data back n bytes at a time at most.
type pieces struct {
	data []byte
	n    int
}

func (p *pieces) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	k := copy(b[:min(len(b), p.n)], p.data)
	p.data = p.data[k:]
	return k, nil
}

func (p *pieces) Close() error { return nil }

// A scan read in pieces that split records gives back every record whole,
// in order, the end record stamped with its namespace and start; one that
// stops inside a record is an error.
func TestScanStreamPieces(t *testing.T) {
	const recs = 2000 // several chunks
	var data []byte
	for i := range recs {
		r := make([]byte, event.RecordSize)
		e := event.Event{Kind: event.KindTWCreate, Ptr: uint64(i + 1)}
		if i == recs-1 {
			e = event.Event{Kind: event.KindScanEnd, Ptr: 77, Time: 5123}
		}
		event.Encode(&e, r)
		data = append(data, r...)
	}
	for _, n := range []int{1 << 20, 4096, 1000, 7} {
		st := &scanStream{rd: &pieces{data: data, n: n}, inode: 4026531840, start: 1123, chunk: make([]byte, scanChunk)}
		if err := st.read(); err != nil {
			t.Fatal(err)
		}
		var got []byte
		for {
			r, err := st.next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("pieces of %d: %v", n, err)
			}
			got = append(got, r...)
		}
		if st.n != recs || len(got) != len(data) {
			t.Fatalf("pieces of %d: %d records, %d bytes; want %d, %d", n, st.n, len(got), recs, len(data))
		}
		last := got[len(got)-event.RecordSize:]
		var end event.Event
		if err := event.Decode(last, &end); err != nil {
			t.Fatal(err)
		}
		if end.Kind != event.KindScanEnd || end.Netns != 4026531840 || end.ScanStart() != 1123 {
			t.Fatalf("pieces of %d: end record %+v, scan start %d", n, end, end.ScanStart())
		}
		if !bytes.Equal(got[:len(got)-event.RecordSize], data[:len(data)-event.RecordSize]) {
			t.Fatalf("pieces of %d: records changed", n)
		}
	}
	st := &scanStream{rd: &pieces{data: data[:event.RecordSize+5], n: 64}, chunk: make([]byte, scanChunk)}
	if _, err := st.next(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.next(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("a scan that stops inside a record: %v", err)
	}
}

// A scan's end records wait for the first record stamped after the scans
// finished, or, when the reader has nothing, until the records of the
// scans' time are past the merge's hold-back.
func TestReleaseScanEnds(t *testing.T) {
	rec := func(kind event.Kind, ts uint64) []byte {
		b := make([]byte, event.RecordSize)
		event.Encode(&event.Event{Kind: kind, Time: ts}, b)
		return b
	}
	now := int64(monotonicNow())
	end := rec(event.KindScanEnd, uint64(now))
	tr := &Tracer{holdBack: holdBack, endsAfter: now, scanEnds: [][]byte{end}}
	if tr.releaseScanEnds(rec(event.KindState, uint64(now-1))) || tr.releaseScanEnds(nil) || len(tr.pending) != 0 {
		t.Fatalf("released on a record of the scans' time or within the hold-back: pending %d", len(tr.pending))
	}
	later := rec(event.KindState, uint64(now+1))
	if !tr.releaseScanEnds(later) || len(tr.pending) != 2 || !bytes.Equal(tr.pending[0], end) || !bytes.Equal(tr.pending[1], later) || len(tr.scanEnds) != 0 {
		t.Fatalf("a later record: pending %d, ends held %d", len(tr.pending), len(tr.scanEnds))
	}
	if tr.releaseScanEnds(later) {
		t.Fatal("released with no end record held")
	}
	tr.pending, tr.scanEnds = nil, [][]byte{end}
	tr.endsAfter = now - int64(holdBack) - int64(time.Second)
	if !tr.releaseScanEnds(nil) || len(tr.pending) != 1 {
		t.Fatalf("nothing to read past the hold-back: pending %d", len(tr.pending))
	}
}
