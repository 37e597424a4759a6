package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/twtop/twtop/internal/golden"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/settings"
)

// churn returns n raw records shaped like the kernel's under connection
// churn: a client and a server socket walking through their states, then
// a TIME_WAIT socket, with timestamps a few microseconds apart.
func churn(n int) [][]byte {
	out := make([][]byte, 0, n)
	t := uint64(5_000_000_000_000)
	seq := [2]uint32{}
	for c := 0; len(out) < n; c++ {
		cport := uint16(32768 + c%28000)
		cli := netip.AddrPortFrom(netip.MustParseAddr("10.77.0.1"), cport)
		srv := netip.AddrPortFrom(netip.MustParseAddr("10.77.0.2"), 8080)
		cptr := 0xffff888100000000 + uint64(c%512)*0x940
		sptr := 0xffff888200000000 + uint64(c%512)*0x940
		steps := []struct {
			ptr      uint64
			src, dst netip.AddrPort
			old, new event.State
			kind     event.Kind
		}{
			{cptr, cli, srv, event.Close, event.SynSent, event.KindState},
			{sptr, srv, cli, event.Listen, event.SynRecv, event.KindState},
			{cptr, cli, srv, event.SynSent, event.Established, event.KindState},
			{sptr, srv, cli, event.SynRecv, event.Established, event.KindState},
			{sptr, srv, cli, event.Established, event.FinWait1, event.KindState},
			{cptr, cli, srv, event.Established, event.CloseWait, event.KindState},
			{sptr, srv, cli, event.FinWait1, event.FinWait2, event.KindState},
			{cptr, cli, srv, event.CloseWait, event.LastAck, event.KindState},
			{sptr + 0x40, srv, cli, 0, event.TimeWait, event.KindTWCreate},
			{sptr, srv, cli, event.FinWait2, event.Close, event.KindState},
			{cptr, cli, srv, event.LastAck, event.Close, event.KindState},
		}
		for _, s := range steps {
			if len(out) == n {
				break
			}
			t += 3000 + uint64(len(out)%7)*150
			cpu := uint16(len(out) % 2)
			seq[cpu]++
			e := event.Event{Kind: s.kind, Time: t, CPU: cpu, Seq: seq[cpu], Ptr: s.ptr, Netns: 4026532000,
				Family: event.AFInet, Src: s.src, Dst: s.dst, OldState: s.old, NewState: s.new}
			if s.new == event.FinWait1 || s.new == event.SynSent {
				e.Pid, e.Tid, e.Flags = 4242, 4242, event.FlagOwner
				copy(e.Comm[:], "backend")
			}
			b := make([]byte, event.RecordSize)
			event.Encode(&e, b)
			out = append(out, b)
		}
	}
	return out
}

func testHeader() Header {
	return Header{Twtop: "test", Host: "h", Kernel: "6.18.0", Tier: "tracepoint", HZ: 250,
		RecordSize: event.RecordSize, WallOffsetNs: 1_700_000_000_000_000_000,
		Started: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
}

func testState(t uint64) State {
	delay := 1000
	return State{TimeNs: t, Settings: settings.Settings{Netns: 4026532000, TwReuse: 2, TwReuseDelayMs: &delay,
		MaxTwBuckets: 262144, PortLow: 32768, PortHigh: 60999, FinTimeoutS: 60, Timestamps: 1},
		Counters: settings.Counters{"TcpExt.TW": 7, "TcpExt.TWRecycled": 1}, Tracer: TracerStats{Records: 10}}
}

// sample writes a recording: a state block, recs in batches of per
// (flushing between them), another state, and the trailer unless open.
func sample(t testing.TB, recs [][]byte, per int, open bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.State(testState(1)); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		if err := w.Add(r); err != nil {
			t.Fatal(err)
		}
		if (i+1)%per == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.State(testState(2)); err != nil {
		t.Fatal(err)
	}
	if !open {
		if err := w.Close(Trailer{TimeNs: 3, Tracer: TracerStats{Records: uint64(len(recs)), Lost: 2}}); err != nil {
			t.Fatal(err)
		}
	} else if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != int64(buf.Len()) {
		t.Fatalf("Written() = %d, buffer holds %d", w.Written(), buf.Len())
	}
	return buf.Bytes()
}

// readAll replays data and returns the records, the states and the error
// that ended it (nil for io.EOF).
func readAll(data []byte) (*Reader, [][]byte, []State, error) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, nil, nil, err
	}
	var states []State
	r.OnState = func(s State) { states = append(states, s) }
	var recs [][]byte
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r, recs, states, nil
		}
		if err != nil {
			return r, recs, states, err
		}
		recs = append(recs, bytes.Clone(b))
	}
}

func TestRoundTrip(t *testing.T) {
	recs := churn(20000)
	data := sample(t, recs, 3000, false)
	r, got, states, err := readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "round trip", got, recs)
	if h := r.Header(); h.Kernel != "6.18.0" || h.HZ != 250 || h.ByteOrder != "little" || !h.Started.Equal(testHeader().Started) {
		t.Errorf("header = %+v", h)
	}
	if len(states) != 2 || states[0].TimeNs != 1 || states[1].TimeNs != 2 ||
		*states[0].Settings.TwReuseDelayMs != 1000 || states[0].Counters["TcpExt.TW"] != 7 || states[0].Settings.PortHigh != 60999 {
		t.Errorf("states = %+v", states)
	}
	tr, ok := r.Trailer()
	if !ok || tr.Records != uint64(len(recs)) || tr.Tracer.Lost != 2 {
		t.Errorf("trailer = %+v, %v", tr, ok)
	}
	if r.Truncated() != nil {
		t.Errorf("clean recording reported as truncated: %v", r.Truncated())
	}
	t.Logf("%d records in %d bytes: %.2f bytes/record", len(recs), len(data), float64(len(data))/float64(len(recs)))
}

// blockStarts returns the offset of every block of a recording.
func blockStarts(t *testing.T, data []byte) []int {
	t.Helper()
	var out []int
	for off := preambleSize; off < len(data); {
		out = append(out, off)
		n := int(le.Uint32(data[off+4:]))
		off += blockHeadSize + n + blockTailSize
	}
	return out
}

// TestTruncation cuts a recording at every offset: block boundaries replay
// every block before them with a truncation note (no error); a cut inside
// the preamble or the header is a FormatError; a cut inside a block keeps
// every earlier whole block.
func TestTruncation(t *testing.T) {
	recs := churn(600)
	data := sample(t, recs, 100, false)
	starts := blockStarts(t, data)
	// records available before each block start
	before := map[int]int{}
	n := 0
	for i, s := range starts {
		before[s] = n
		if i > 0 && le.Uint32(data[s:]) == blockEvents {
			n += int(le.Uint32(data[s+blockHeadSize:]))
		}
	}
	headerEnd := starts[1]
	for cut := 0; cut < len(data); cut++ {
		r, got, _, err := readAll(data[:cut])
		if cut < headerEnd {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("cut at %d (inside preamble/header): err = %v, want FormatError", cut, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		// the last block starting at or before cut
		last := 0
		for _, s := range starts {
			if s <= cut {
				last = s
			}
		}
		want := before[last]
		if len(got) != want {
			t.Fatalf("cut at %d: replayed %d records, want %d", cut, len(got), want)
		}
		tr := r.Truncated()
		if tr == nil || !tr.NoTrailer || tr.Offset != int64(last) || tr.Partial != int64(cut-last) {
			t.Fatalf("cut at %d: truncation = %+v, want offset %d partial %d", cut, tr, last, cut-last)
		}
		if !strings.Contains(tr.String(), "offset") && !strings.Contains(tr.String(), "trailer") {
			t.Fatalf("truncation text %q says nothing", tr.String())
		}
	}
}

// TestCorruption flips each bit of the first 100 bytes past the preamble
// and every 7th bit elsewhere: the reader must fail with a FormatError (or
// read everything when the bit is in a block that is skipped), never
// panic, never return different records without an error.
func TestCorruption(t *testing.T) {
	recs := churn(300)
	data := sample(t, recs, 100, false)
	for bit := 0; bit < len(data)*8; bit++ {
		if bit/8 > preambleSize+100 && bit%7 != 0 {
			continue
		}
		bad := bytes.Clone(data)
		bad[bit/8] ^= 1 << (bit % 8)
		_, got, _, err := readAll(bad)
		if err == nil {
			// only a change the format cannot see is allowed: none
			t.Fatalf("bit %d (offset %d) flipped: no error, %d records", bit, bit/8, len(got))
		}
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("bit %d: err = %v (%T), want FormatError", bit, err, err)
		}
		if fe.Offset < 0 || fe.Offset > int64(len(data)) {
			t.Fatalf("bit %d: offset %d out of the file", bit, fe.Offset)
		}
	}
}

func TestForeignInput(t *testing.T) {
	good := sample(t, churn(50), 50, false)
	future := bytes.Clone(good)
	le.PutUint32(future[len(magic):], Version+1)
	huge := bytes.Clone(good)
	le.PutUint32(huge[preambleSize+4:], 0xfffffff0)
	le.PutUint32(huge[preambleSize+8:], checksum(huge[preambleSize:preambleSize+8]))
	hugeEvents := bytes.Clone(good)
	s := blockStarts(t, good)[2] // header, state, events
	le.PutUint32(hugeEvents[s+4:], maxBlock+1)
	le.PutUint32(hugeEvents[s+8:], checksum(hugeEvents[s:s+8]))
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "not a twtop recording"},
		{"text", "hello, world\n", "wrong magic"},
		{"pcap", "\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00", "wrong magic"},
		{"short magic", string(magic[:5]), "ends inside the preamble"},
		{"future version", string(future), "newer than this twtop"},
		{"huge header length", string(huge), "exceeds"},
		{"huge events length", string(hugeEvents), "exceeds"},
		{"no header", string(good[:preambleSize]), "before the header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := readAll([]byte(tc.data))
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a FormatError containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestUnknownBlockSkipped(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	recs := churn(10)
	for _, r := range recs[:5] {
		_ = w.Add(r)
	}
	_ = w.Flush()
	if err := w.writeBlock(77, []byte(`{"from":"the future"}`)); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[5:] {
		_ = w.Add(r)
	}
	if err := w.Close(Trailer{}); err != nil {
		t.Fatal(err)
	}
	r, got, _, err := readAll(buf.Bytes())
	if err != nil || len(got) != 10 || r.Truncated() != nil {
		t.Fatalf("got %d records, err %v, truncated %v", len(got), err, r.Truncated())
	}
}

func TestWriterRejectsWrongSize(t *testing.T) {
	w, err := NewWriter(io.Discard, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(make([]byte, 10)); err == nil {
		t.Fatal("a 10-byte record was accepted in a recording of 112-byte records")
	}
}

type fullDisk struct{ left int }

func (f *fullDisk) Write(b []byte) (int, error) {
	if len(b) > f.left {
		n := f.left
		f.left = 0
		return n, errors.New("no space left on device")
	}
	f.left -= len(b)
	return len(b), nil
}

func TestWriterFullDisk(t *testing.T) {
	w, err := NewWriter(&fullDisk{left: 2000}, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range churn(5000) {
		if err = w.Add(r); err != nil {
			break
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("err = %v, want the disk-full error", err)
	}
	if err2 := w.Close(Trailer{}); err2 == nil {
		t.Fatal("Close after a failed write succeeded")
	}
}

// The word-wise transpose equals the byte-wise definition, for record
// counts and sizes that are and are not multiples of 8, and undoes itself.
func TestTranspose(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 64, 130, 1000, batchRecords} {
		for _, sz := range []int{8, 112, 13, 200} {
			src := make([]byte, n*sz)
			for i := range src {
				src[i] = byte(i*7 + i/sz)
			}
			got := make([]byte, n*sz)
			transpose(got, src, n, sz)
			for i := range n {
				for j := range sz {
					if got[j*n+i] != src[i*sz+j] {
						t.Fatalf("n=%d sz=%d: byte %d of record %d misplaced", n, sz, j, i)
					}
				}
			}
			back := make([]byte, n*sz)
			transpose(back, got, sz, n)
			if !bytes.Equal(back, src) {
				t.Fatalf("n=%d sz=%d: transposing back does not restore the records", n, sz)
			}
		}
	}
}

// A recording of format version 1 holds records of the first layout of
// struct event; they are read in this one, and the same file read as
// version 2 keeps its bytes.
func TestVersion1Layout(t *testing.T) {
	old := golden.HexRecords(t, "../event/testdata/records-layout1.hex")
	cur := golden.HexRecords(t, "../event/testdata/records.hex")
	data := sample(t, old, 4, false)
	if v := le.Uint32(data[len(magic):]); v != Version {
		t.Fatalf("the writer wrote format version %d, want %d", v, Version)
	}
	_, got, _, err := readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, fmt.Sprintf("version %d", Version), got, old)
	le.PutUint32(data[len(magic):], 1)
	_, got, _, err = readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "version 1", got, cur)
}

// sameRecords fails t unless got holds exactly the records of want.
func sameRecords(t *testing.T, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: read %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: record %d differs:\n got %x\nwant %x", what, i, got[i], want[i])
		}
	}
}
