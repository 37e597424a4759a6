package tracer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
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

// sliceReader hands out its records in order, and never waits: with none
// left, its deadline has passed.
type sliceReader struct{ recs [][]byte }

func (s *sliceReader) Read() ([]byte, error) {
	if len(s.recs) == 0 {
		return nil, fmt.Errorf("slice: %w", os.ErrDeadlineExceeded)
	}
	r := s.recs[0]
	s.recs = s.recs[1:]
	return r, nil
}
func (s *sliceReader) SetDeadline(time.Time)              {}
func (s *sliceReader) Final()                             {}
func (s *sliceReader) Close() error                       { return nil }
func (s *sliceReader) Lost() uint64                       { return 0 }
func (s *sliceReader) Owners() (restored, unknown uint64) { return 0, 0 }

// While a scan is read, the ring's records go before the scan records they
// are at least scanOverlap older than and after the others: the ring is
// read as the walk goes (within ringEvery scan records), and a socket the
// walk shows is never ended before its scan record comes. Every record
// comes once, and the scan's end record is held.
func TestRingDuringScan(t *testing.T) {
	const ms = int64(time.Millisecond)
	rec := func(kind event.Kind, ptr uint64, ts int64) []byte {
		b := make([]byte, event.RecordSize)
		event.Encode(&event.Event{Kind: kind, Ptr: ptr, Time: uint64(ts)}, b)
		return b
	}
	// scan records 1..2000 stamped 1 ms apart from 100 ms on; ring records
	// 1001..1300 stamped 5 ms apart from 50 ms on
	const scans, rings = 2000, 300
	var scan []byte
	for i := range scans {
		scan = append(scan, rec(event.KindScanTW, uint64(1+i), 100*ms+int64(i)*ms)...)
	}
	scan = append(scan, rec(event.KindScanEnd, 0, 100*ms+scans*ms)...)
	ring := &sliceReader{}
	for i := range rings {
		ring.recs = append(ring.recs, rec(event.KindTWExpire, uint64(10001+i), 50*ms+int64(i)*5*ms))
	}
	tr := &Tracer{reader: ring}
	st := &scanStream{rd: &pieces{data: scan, n: 4096}, chunk: make([]byte, scanChunk)}
	if err := st.read(); err != nil {
		t.Fatal(err)
	}
	tr.scans = []*scanStream{st}

	type out struct {
		ptr  uint64
		ts   int64
		scan bool
	}
	var got []out
	add := func(r []byte) {
		var e event.Event
		if err := event.Decode(r, &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, out{e.Ptr, int64(e.Time), e.Kind == event.KindScanTW})
	}
	for {
		r, err := tr.nextDuringScan()
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			break
		}
		add(r)
	}
	during := len(got)
	tr.finishScans()
	for _, r := range tr.pending {
		add(r)
	}
	for _, r := range ring.recs {
		add(r)
	}
	if len(tr.scanEnds) != 1 {
		t.Fatalf("%d end records held, want 1", len(tr.scanEnds))
	}
	seen := map[uint64]bool{}
	for i, r := range got {
		if seen[r.ptr] {
			t.Fatalf("record %d came twice", r.ptr)
		}
		seen[r.ptr] = true
		if r.scan {
			continue
		}
		for j, s := range got {
			if !s.scan {
				continue
			}
			if j > i && r.ts >= s.ts-int64(scanOverlap) {
				t.Fatalf("ring record at %d ms came before the scan record at %d ms", r.ts/ms, s.ts/ms)
			}
			if j < i && s.ts >= r.ts+int64(scanOverlap)+(ringEvery+2)*ms {
				t.Fatalf("ring record at %d ms came after the scan record at %d ms", r.ts/ms, s.ts/ms)
			}
		}
	}
	if len(seen) != scans+rings {
		t.Fatalf("%d records, want %d", len(seen), scans+rings)
	}
	if during != scans+rings {
		t.Fatalf("%d records during the walk, want all %d (the last ring record is older than the last scan record)", during, scans+rings)
	}
}

// closedReader is a ring reader that was closed.
type closedReader struct{ sliceReader }

func (*closedReader) Read() ([]byte, error) { return nil, ErrClosed }

// countedPieces counts its Close calls.
type countedPieces struct {
	pieces
	closed int
}

func (p *countedPieces) Close() error { p.closed++; return nil }

// A ring reader closed while a scan is read ends the scan too: Next
// returns the error with the scan's iterator closed.
func TestRingClosedDuringScan(t *testing.T) {
	rec := func(kind event.Kind, ptr uint64, ts int64) []byte {
		b := make([]byte, event.RecordSize)
		event.Encode(&event.Event{Kind: kind, Ptr: ptr, Time: uint64(ts)}, b)
		return b
	}
	var scan []byte
	for i := range 3 * ringEvery {
		scan = append(scan, rec(event.KindScanTW, uint64(1+i), int64(time.Second)+int64(i))...)
	}
	rd := &countedPieces{pieces: pieces{data: scan, n: 4096}}
	st := &scanStream{rd: rd, chunk: make([]byte, scanChunk)}
	if err := st.read(); err != nil {
		t.Fatal(err)
	}
	tr := &Tracer{reader: &closedReader{}, scans: []*scanStream{st}}
	var err error
	for range 4 * ringEvery {
		if _, err = tr.nextDuringScan(); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
	if rd.closed != 1 || len(tr.scans) != 0 {
		t.Fatalf("scan iterator closed %d times, %d scans left; want 1 and 0", rd.closed, len(tr.scans))
	}
}
