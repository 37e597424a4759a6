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

// calibrateHZ takes one step on clean samples, and a longer span where a
// delay in the first sample makes 100 ms of 250 HZ read as 300.
func TestCalibrateHZ(t *testing.T) {
	t.Parallel()
	type smp struct{ j, ns uint64 }
	ms := uint64(time.Millisecond)
	tests := []struct {
		name    string
		samples []smp
		want    uint32
		taken   int
	}{{
		name:    "250 HZ, clean",
		samples: []smp{{1000, 0}, {1025, 100 * ms}},
		want:    250, taken: 2,
	}, {
		name:    "1000 HZ, one jiffy short",
		samples: []smp{{1000, 0}, {1099, 100 * ms}},
		want:    1000, taken: 2,
	}, {
		// the time of the first jiffies read was taken 14 ms late:
		// 290/s, then 269, 262, 259, 257/s
		name:    "250 HZ, first sample's time late",
		samples: []smp{{0, 14 * ms}, {25, 100 * ms}, {50, 200 * ms}, {75, 300 * ms}, {100, 400 * ms}, {125, 500 * ms}},
		want:    250, taken: 6,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := 0
			hz, err := calibrateHZ(func() (uint64, uint64, error) {
				if n == len(tc.samples) {
					return 0, 0, errors.New("sampled once too often")
				}
				s := tc.samples[n]
				n++
				return s.j, s.ns, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if hz != tc.want || n != tc.taken {
				t.Fatalf("HZ %d after %d samples, want %d after %d", hz, n, tc.want, tc.taken)
			}
		})
	}
	// a rate near no known HZ: the nearest once hzSettle passed
	n := 0
	hz, err := calibrateHZ(func() (uint64, uint64, error) {
		n++
		return uint64(n-1) * 27, uint64(n-1) * 100 * ms, nil // 270/s
	})
	if err != nil || hz != 250 || n != 1+int(hzSettle/hzStep) {
		t.Fatalf("HZ %d after %d samples (%v), want 250 after %d", hz, n, err, 1+int(hzSettle/hzStep))
	}
}
