package event

import (
	"bytes"
	"encoding/binary"
	"flag"
	"net/netip"
	"strings"
	"testing"

	"github.com/twtop/twtop/internal/golden"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testdata/records.hex holds raw records written by the kernel programs on
// Linux 6.18 (tracepoint tier) in a network namespace that already held two
// server-side TIME_WAIT sockets, during one client-closes-first connection,
// an SO_LINGER 0 abort and a bind() that failed with EADDRINUSE, one record
// per line, widened to whole records. Their decoding is pinned in
// testdata/records.json. testdata/records-layout1.hex holds the same
// records in the first layout of struct event, as the kernel programs
// wrote them then and recordings of format version 1 hold them.
func TestDecodeGolden(t *testing.T) {
	recs := golden.HexRecords(t, "testdata/records.hex")
	var out bytes.Buffer
	var e Event
	for i, r := range recs {
		if err := Decode(r, &e); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out.Write(AppendJSON(nil, &e, 250))
		out.WriteByte('\n')
	}
	golden.Compare(t, "testdata/records.json", out.Bytes(), *update)
}

func TestDecodeRejectsBadInput(t *testing.T) {
	var e Event
	good := golden.HexRecords(t, "testdata/records.hex")[0]
	if err := Decode(good[:RecordSize-1], &e); err == nil {
		t.Fatal("short record decoded")
	}
	bad := append([]byte(nil), good...)
	bad[offKind], bad[offKind+1] = 0xff, 0x7f
	if err := Decode(bad, &e); err == nil || !strings.Contains(err.Error(), "unknown kind") {
		t.Fatalf("unknown kind: err = %v", err)
	}
	bad = append([]byte(nil), good...)
	bad[offFamily] = 7
	if err := Decode(bad, &e); err == nil || !strings.Contains(err.Error(), "family") {
		t.Fatalf("bad family: err = %v", err)
	}
}

func TestAppendQuotedEscapes(t *testing.T) {
	got := string(appendQuoted(nil, "a\"b\\c\x01\xffé"))
	want := `"a\"b\\c\u0001\ufffdé"`
	if got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

// The first layout's records read as they did: the same fields, the
// same bytes.
func TestFromLayout1(t *testing.T) {
	old := golden.HexRecords(t, "testdata/records-layout1.hex")
	cur := golden.HexRecords(t, "testdata/records.hex")
	if len(old) != len(cur) {
		t.Fatalf("%d records in the first layout, %d in this one", len(old), len(cur))
	}
	for i, r := range old {
		FromLayout1(r)
		if !bytes.Equal(r, cur[i]) {
			t.Fatalf("record %d:\n%x\nwant\n%x", i, r, cur[i])
		}
	}
	// an AF_INET6 record with an owner, built in the first layout
	src, dst := netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::2]:443")
	b := make([]byte, RecordSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], 7)
	le.PutUint64(b[8:], 0xffff888100000040)
	le.PutUint64(b[v1Cgroup:], 99)
	le.PutUint32(b[v1Pid:], 10)
	le.PutUint32(b[v1Tid:], 11)
	le.PutUint32(b[v1Netns:], 4026531840)
	le.PutUint32(b[v1Seq:], 5)
	le.PutUint32(b[v1Aux:], 6)
	le.PutUint32(b[v1Aux2:], 8)
	le.PutUint16(b[v1Kind:], uint16(KindState))
	le.PutUint16(b[v1Kind+2:], 1)
	le.PutUint16(b[v1Kind+4:], src.Port())
	le.PutUint16(b[v1Kind+6:], dst.Port())
	copy(b[v1Family:], []byte{AFInet6, byte(Established), byte(FinWait1), FlagOwner | FlagInConnect, 0})
	s16, d16 := src.Addr().As16(), dst.Addr().As16()
	copy(b[v1Saddr:], s16[:])
	copy(b[v1Daddr:], d16[:])
	copy(b[v1Comm:], "curl")
	FromLayout1(b)
	var e Event
	if err := Decode(b, &e); err != nil {
		t.Fatal(err)
	}
	want := Event{Kind: KindState, Time: 7, CPU: 1, Seq: 5, Ptr: 0xffff888100000040, Netns: 4026531840,
		Family: AFInet6, Src: src, Dst: dst, OldState: Established, NewState: FinWait1,
		Flags: FlagOwner | FlagInConnect, Aux: 6, Aux2: 8, Pid: 10, Tid: 11, Cgroup: 99, Lifetime: -1}
	copy(want.Comm[:], "curl")
	if e != want {
		t.Fatalf("AF_INET6 record:\n%+v\nwant\n%+v", e, want)
	}
}

// Widen keeps the bytes the kernel wrote for the record's family and
// owner, and nothing of what follows them in its buffer.
func TestWiden(t *testing.T) {
	for i, r := range golden.HexRecords(t, "testdata/records.hex") {
		n := WireSize(r)
		var e Event
		if err := Decode(r, &e); err != nil {
			t.Fatal(err)
		}
		want := MinRecordSize
		if e.Owned() {
			want = RecordSize
		} else if e.Family == AFInet6 {
			want = RecordSizeInet6
		}
		if n != want {
			t.Fatalf("record %d (%v, family %d, flags %#x): WireSize %d, want %d", i, e.Kind, e.Family, e.Flags, n, want)
		}
		if !bytes.Equal(r[n:], zeros[:RecordSize-n]) {
			t.Fatalf("record %d: bytes after its head are not zero", i)
		}
		// a perf buffer sample is padded with whatever its buffer held
		head := append(append([]byte(nil), r[:n]...), 0xde, 0xad, 0xbe, 0xef)
		if got := Widen(nil, head); !bytes.Equal(got, r) {
			t.Fatalf("record %d: Widen(head + padding)\n%x\nwant\n%x", i, got, r)
		}
		if got := Widen(nil, r[:n]); !bytes.Equal(got, r) {
			t.Fatalf("record %d: Widen(head)\n%x\nwant\n%x", i, got, r)
		}
		// into a batch with room for it, over what an earlier batch left
		stale := bytes.Repeat([]byte{0xa5}, 3+RecordSize)[:3]
		for _, src := range [][]byte{head, r[:n]} {
			got := Widen(stale, src)
			if !bytes.Equal(got[:3], stale) || !bytes.Equal(got[3:], r) {
				t.Fatalf("record %d: Widen into a batch\n%x\nwant a5a5a5 then\n%x", i, got, r)
			}
		}
	}
}
