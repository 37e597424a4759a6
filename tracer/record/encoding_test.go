package record

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/twtop/twtop/tracer/event"
)

// zstdBlock builds an events block payload as twtop wrote it before S2:
// encoding 1 (transposed, zstd) or 2 (times as differences, transposed,
// zstd).
func zstdBlock(t *testing.T, recs [][]byte, enc byte) []byte {
	n, sz := len(recs), len(recs[0])
	flat := bytes.Join(recs, nil)
	if enc == encDeltaTransposedZstd {
		deltaTimes(flat, n, sz)
	}
	tr := make([]byte, len(flat))
	transpose(tr, flat, n, sz)
	z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	head := make([]byte, batchHeadSize)
	le.PutUint32(head[0:], uint32(n))
	le.PutUint16(head[4:], uint16(sz))
	head[6] = enc
	return z.EncodeAll(tr, head)
}

// Blocks of every encoding decode to the records they were made of, with
// one decoder in turn, as a reader meets them in recordings of different
// ages.
func TestDecodeEveryEncoding(t *testing.T) {
	recs := churn(3000)
	var dec batchDecoder
	for _, enc := range []byte{encTransposedZstd, encDeltaTransposedZstd, encDeltaTransposedS2, encSplitS2, encTransposedZstd} {
		t.Run(fmt.Sprint("encoding ", enc), func(t *testing.T) {
			var p []byte
			switch enc {
			case encDeltaTransposedS2:
				var be batchEncoder
				flat := bytes.Join(recs, nil)
				deltaTimes(flat, len(recs), len(recs[0]))
				p = be.encodeWhole(nil, flat, len(recs), len(recs[0]))
			case encSplitS2:
				var be batchEncoder
				p = be.encode(nil, bytes.Join(recs, nil), len(recs), len(recs[0]))
				if p[6] != encSplitS2 {
					t.Fatalf("the writer's encoding is %d, want %d", p[6], encSplitS2)
				}
			default:
				p = zstdBlock(t, recs, enc)
			}
			got, n, sz, err := dec.decode(p)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(recs) || sz != len(recs[0]) {
				t.Fatalf("decoded %d records of %d bytes, want %d of %d", n, sz, len(recs), len(recs[0]))
			}
			if !bytes.Equal(got, bytes.Join(recs, nil)) {
				t.Fatal("decoded records differ from the ones encoded")
			}
		})
	}
}

// An S2 block whose own length disagrees with the block head is refused
// before it is decompressed.
func TestS2LengthMismatch(t *testing.T) {
	recs := churn(100)
	var be batchEncoder
	p := be.encode(nil, bytes.Join(recs, nil), len(recs), len(recs[0]))
	le.PutUint32(p[0:], uint32(len(recs)+1)) // one record more than the S2 data holds
	var dec batchDecoder
	if _, _, _, err := dec.decode(p); err == nil {
		t.Fatal("decoded a block whose S2 data is shorter than its head says")
	}
}

// mixed is one record of each wire size, IPv4 and IPv6, with and without
// an owner, in an order that makes every plane of a split block hold
// records that are not neighbours, repeated to n records.
func mixed(n int) [][]byte {
	v4 := [2]netip.AddrPort{netip.MustParseAddrPort("10.1.0.1:40000"), netip.MustParseAddrPort("10.1.0.2:443")}
	v6 := [2]netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::2]:443")}
	out := make([][]byte, 0, n)
	for i := 0; len(out) < n; i++ {
		e := event.Event{Kind: event.KindState, Time: uint64(1e12 + i*2500), CPU: uint16(i % 2), Seq: uint32(i),
			Ptr: 0xffff888100000000 + uint64(i%64)*0x940, Netns: 4026531840, Family: event.AFInet,
			Src: v4[0], Dst: v4[1], OldState: event.Established, NewState: event.FinWait1}
		if i%3 == 1 {
			e.Family, e.Src, e.Dst = event.AFInet6, v6[0], v6[1]
		}
		if i%5 == 2 {
			e.Flags, e.Pid, e.Tid, e.Cgroup = event.FlagOwner, uint32(1000+i), uint32(1000+i), 7
			copy(e.Comm[:], "curl")
		}
		b := make([]byte, event.RecordSize)
		event.Encode(&e, b)
		out = append(out, b)
	}
	return out
}

// A block of records of every wire size is split and comes back whole; a
// block with a byte other than zero beyond a record's wire size is
// written whole, and comes back as it was too.
func TestSplitBlocks(t *testing.T) {
	recs := mixed(1001)
	for _, r := range recs {
		if w := event.WireSize(r); !bytes.Equal(r[w:], make([]byte, event.RecordSize-w)) {
			t.Fatalf("the test's record of wire size %d has bytes beyond it", w)
		}
	}
	junk := mixed(1001)
	junk[500][event.RecordSize-1] = 1 // the last byte of comm, in a record without an owner
	if event.WireSize(junk[500]) == event.RecordSize {
		t.Fatal("the test's junk record has an owner")
	}
	for _, c := range []struct {
		name string
		recs [][]byte
		enc  byte
	}{{"of every wire size", recs, encSplitS2}, {"with a byte beyond a wire size", junk, encDeltaTransposedS2}} {
		t.Run(c.name, func(t *testing.T) {
			var be batchEncoder
			var dec batchDecoder
			want := bytes.Join(c.recs, nil)
			p := be.encode(nil, bytes.Join(c.recs, nil), len(c.recs), event.RecordSize)
			if p[6] != c.enc {
				t.Fatalf("encoding %d, want %d", p[6], c.enc)
			}
			got, n, sz, err := dec.decode(p)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(c.recs) || sz != event.RecordSize || !bytes.Equal(got, want) {
				t.Fatalf("decoded %d records of %d bytes, not the %d encoded", n, sz, len(c.recs))
			}
		})
	}
	t.Run("smaller than whole", func(t *testing.T) {
		// gather takes the times' differences as deltaTimes does; a split
		// block holds, for mixed's records, 56 bytes of each, 24 more of
		// the IPv6 ones and the owners' 32
		var be batchEncoder
		flat := bytes.Join(recs, nil)
		deltas := bytes.Join(recs, nil)
		deltaTimes(deltas, len(recs), event.RecordSize)
		if !be.gather(flat, len(recs)) {
			t.Fatal("gather refused records with nothing beyond their wire size")
		}
		if !bytes.Equal(flat, deltas) {
			t.Fatal("gather left the records other than deltaTimes does")
		}
		var v6, owners int
		for _, r := range recs {
			if w := event.WireSize(r); w == event.RecordSize {
				owners++
				v6++
			} else if w == event.RecordSizeInet6 {
				v6++
			}
		}
		if len(be.plane2) != v6*splitPlane2 || len(be.plane3) != owners*splitPlane3 {
			t.Fatalf("planes of %d and %d bytes, want %d and %d", len(be.plane2), len(be.plane3), v6*splitPlane2, owners*splitPlane3)
		}
	})
}

// Split blocks whose plane counts disagree with their records are refused,
// never read past.
func TestSplitBlockDamaged(t *testing.T) {
	recs := mixed(200)
	var be batchEncoder
	good := be.encode(nil, bytes.Join(recs, nil), len(recs), event.RecordSize)
	k2, k3 := le.Uint32(good[8:]), le.Uint32(good[12:])
	for name, damage := range map[string]func(p []byte) []byte{
		"third plane larger than the second": func(p []byte) []byte { le.PutUint32(p[12:], k2+1); return p },
		"second plane larger than the block": func(p []byte) []byte { le.PutUint32(p[8:], uint32(len(recs)+1)); return p },
		"counts cut off":                     func(p []byte) []byte { return p[:batchHeadSize+3] },
		"another record size":                func(p []byte) []byte { le.PutUint16(p[4:], 56); return p },
		// the S2 data still holds the bytes of the true counts, so these
		// fail on its length
		"one record fewer in plane 3": func(p []byte) []byte { le.PutUint32(p[12:], k3-1); return p },
		"one record more in plane 2":  func(p []byte) []byte { le.PutUint32(p[8:], k2+1); return p },
	} {
		t.Run(name, func(t *testing.T) {
			var dec batchDecoder
			if _, _, _, err := dec.decode(damage(bytes.Clone(good))); err == nil {
				t.Fatal("decoded a damaged split block")
			}
		})
	}
	t.Run("planes that disagree with the records", func(t *testing.T) {
		// a block whose S2 data has the length its counts say, but one
		// record's head says it has an owner that plane 3 does not hold
		flat := bytes.Join(recs, nil)
		deltaTimes(flat, len(recs), event.RecordSize)
		var b batchEncoder
		if !b.gather(flat, len(recs)) {
			t.Fatal("gather refused the records")
		}
		for i := range recs {
			r := flat[i*event.RecordSize:]
			if event.WireSize(r) == event.MinRecordSize {
				r[43] |= event.FlagOwner // now 112 bytes: plane 3 is one record short
				break
			}
		}
		p := b.encodeSplit(nil, flat, len(recs))
		var dec batchDecoder
		if _, _, _, err := dec.decode(p); err == nil {
			t.Fatal("decoded a split block whose records continue in more plane rows than it holds")
		}
	})
}
