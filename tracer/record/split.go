package record

import (
	"fmt"

	"github.com/klauspost/compress/s2"

	"github.com/twtop/twtop/tracer/event"
)

// Split blocks (encSplitS2). A whole record is event.RecordSize bytes, but
// the kernel writes only its head when it has no owner (event.WireSize:
// 56 bytes for IPv4, 80 for IPv6), and the readers widen the rest with
// zeros. A split block leaves those zeros out: its records' bytes are
// three planes, each transposed, then compressed together with S2:
//
//	plane 1  bytes  0-56 of every record
//	plane 2  bytes 56-80 of the records of 80 bytes and more, in order
//	plane 3  bytes 80-112 of the records of 112 bytes, in order
//
// The payload after the block head is the number of records in plane 2
// and in plane 3 (uint32 each), then the S2 data. A record's wire size is
// read from its own head (plane 1), so the reader knows which planes
// continue it. The writer splits a block only when every byte it leaves
// out is zero, so that splitting never changes a record; otherwise it
// writes the block whole (encDeltaTransposedS2).
const (
	splitPlane1 = event.MinRecordSize                         // 56
	splitPlane2 = event.RecordSizeInet6 - event.MinRecordSize // 24
	splitPlane3 = event.RecordSize - event.RecordSizeInet6    // 32
	splitCounts = 8                                           // the records in planes 2 and 3
	splitMinTo2 = event.RecordSizeInet6                       // the wire size from which a record continues in plane 2
)

// gather replaces the times of the n whole records in recs by their
// differences (deltaTimes), and in the same pass copies the bytes of their
// planes 2 and 3 into b.plane2 and b.plane3. It reports false when a record
// has a byte other than zero beyond its wire size; the times are then
// differences all the same, and the planes are not to be used.
func (b *batchEncoder) gather(recs []byte, n int) bool {
	p2, p3 := grow(b.plane2, n*splitPlane2), grow(b.plane3, n*splitPlane3)
	j2, j3 := 0, 0
	split := true
	var prev uint64
	for i := range n {
		r := (*[event.RecordSize]byte)(recs[i*event.RecordSize:])
		t := le.Uint64(r[:])
		le.PutUint64(r[:], t-prev)
		prev = t
		if !split {
			continue
		}
		w := event.WireSize(r[:])
		if !zeroFrom(r, w) {
			split = false
			continue
		}
		if w >= splitMinTo2 {
			*(*[splitPlane2]byte)(p2[j2:]) = [splitPlane2]byte(r[splitPlane1:event.RecordSizeInet6])
			j2 += splitPlane2
		}
		if w == event.RecordSize {
			*(*[splitPlane3]byte)(p3[j3:]) = [splitPlane3]byte(r[event.RecordSizeInet6:])
			j3 += splitPlane3
		}
	}
	b.plane2, b.plane3 = p2[:j2], p3[:j3]
	return split
}

// zeroFrom reports whether the bytes of r from w (a multiple of 8) on are
// all zero.
func zeroFrom(r *[event.RecordSize]byte, w int) bool {
	var x uint64
	for o := w; o < event.RecordSize; o += 8 {
		x |= le.Uint64(r[o:])
	}
	return x == 0
}

// encodeSplit appends the payload of a split block of the n whole records
// in recs (times already as differences), whose planes 2 and 3 gather
// has put in b.plane2 and b.plane3, to dst.
func (b *batchEncoder) encodeSplit(dst, recs []byte, n int) []byte {
	k2, k3 := len(b.plane2)/splitPlane2, len(b.plane3)/splitPlane3
	var head [batchHeadSize + splitCounts]byte
	le.PutUint32(head[0:], uint32(n))
	le.PutUint16(head[4:], event.RecordSize)
	head[6] = encSplitS2
	le.PutUint32(head[8:], uint32(k2))
	le.PutUint32(head[12:], uint32(k3))
	dst = append(dst, head[:]...)
	size := n*splitPlane1 + len(b.plane2) + len(b.plane3)
	if cap(b.scratch) < size {
		b.scratch = make([]byte, size)
	}
	t := b.scratch[:size]
	transposeStrided(t, n, recs, event.RecordSize, n, splitPlane1)
	o := n * splitPlane1
	transpose(t[o:o+len(b.plane2)], b.plane2, k2, splitPlane2)
	o += len(b.plane2)
	transpose(t[o:], b.plane3, k3, splitPlane3)
	return b.compress(dst, t)
}

// decodeSplit returns the n whole records of a split block payload p
// (after the block head).
func (b *batchDecoder) decodeSplit(p []byte, n int) ([]byte, error) {
	if len(p) < splitCounts {
		return nil, fmt.Errorf("split events block of %d bytes has no plane counts", len(p))
	}
	k2, k3 := int(le.Uint32(p[0:])), int(le.Uint32(p[4:]))
	if k2 > n || k3 > k2 {
		return nil, fmt.Errorf("split events block of %d records claims %d and %d of them in its second and third planes", n, k2, k3)
	}
	want := n*splitPlane1 + k2*splitPlane2 + k3*splitPlane3
	if cap(b.scratch) < want {
		b.scratch = make([]byte, 0, want)
	}
	t, err := b.s2(p[splitCounts:], want)
	if err != nil {
		return nil, fmt.Errorf("events block does not decompress: %w", err)
	}
	b.scratch = t
	if cap(b.recs) < n*event.RecordSize {
		b.recs = make([]byte, n*event.RecordSize)
	}
	recs := b.recs[:n*event.RecordSize]
	transposeStrided(recs, event.RecordSize, t, n, splitPlane1, n)
	o := n * splitPlane1
	b.plane2 = grow(b.plane2, k2*splitPlane2)
	transpose(b.plane2, t[o:o+len(b.plane2)], splitPlane2, k2)
	o += len(b.plane2)
	b.plane3 = grow(b.plane3, k3*splitPlane3)
	transpose(b.plane3, t[o:], splitPlane3, k3)
	p2, p3 := b.plane2, b.plane3
	j2, j3 := 0, 0
	for i := range n {
		r := (*[event.RecordSize]byte)(recs[i*event.RecordSize:])
		w := event.WireSize(r[:])
		if w >= splitMinTo2 {
			if j2 == len(p2) {
				return nil, fmt.Errorf("split events block has more records of %d bytes or more than the %d its second plane holds", splitMinTo2, k2)
			}
			*(*[splitPlane2]byte)(r[splitPlane1:]) = [splitPlane2]byte(p2[j2:])
			j2 += splitPlane2
		} else {
			*(*[splitPlane2]byte)(r[splitPlane1:]) = [splitPlane2]byte{}
		}
		if w == event.RecordSize {
			if j3 == len(p3) {
				return nil, fmt.Errorf("split events block has more records of %d bytes than the %d its third plane holds", event.RecordSize, k3)
			}
			*(*[splitPlane3]byte)(r[event.RecordSizeInet6:]) = [splitPlane3]byte(p3[j3:])
			j3 += splitPlane3
		} else {
			*(*[splitPlane3]byte)(r[event.RecordSizeInet6:]) = [splitPlane3]byte{}
		}
	}
	if j2 != len(p2) || j3 != len(p3) {
		return nil, fmt.Errorf("split events block's planes hold %d and %d records more than its records continue in them", (len(p2)-j2)/splitPlane2, (len(p3)-j3)/splitPlane3)
	}
	return recs, nil
}

// grow returns b resliced to n bytes, reallocated when too small.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// compress appends the S2 encoding of t to dst, in dst's spare capacity
// when it is large enough, so that the block buffer is reused from batch
// to batch (with room for the block's checksum after the payload).
func (b *batchEncoder) compress(dst, t []byte) []byte {
	need := s2.MaxEncodedLen(len(t))
	if cap(dst)-len(dst) < need {
		dst = append(make([]byte, 0, len(dst)+need+blockTailSize), dst...)
	}
	out := s2.Encode(dst[len(dst):len(dst)+need], t)
	return dst[:len(dst)+len(out)]
}
