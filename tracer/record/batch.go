package record

import (
	"fmt"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/twtop/twtop/tracer/event"
)

const batchHeadSize = 8 // count uint32, size uint16, encoding uint8, reserved

// transpose writes the transpose of src, a matrix of rows×cols bytes
// stored row by row, into dst (cols×rows, row by row). Records in, bytes
// grouped by offset out, is transpose(dst, recs, n, size); the way back is
// transpose(recs, t, size, n).
func transpose(dst, src []byte, rows, cols int) {
	transposeStrided(dst, rows, src, cols, rows, cols)
}

// transposeStrided is transpose for matrices whose rows lie further apart
// than their length: src's rows start ss bytes apart, dst's ds.
func transposeStrided(dst []byte, ds int, src []byte, ss int, rows, cols int) {
	// 8x8 blocks in registers, written as whole words, in an order that
	// keeps the side whose rows lie far apart (a power of two apart, for
	// a full batch: they share cache sets) on 8 rows at a time, each
	// written or read a cache line at a time, while the other side's
	// tile of 64 rows or columns stays in cache ...
	const tile = 64
	r8, c8 := rows&^7, cols&^7
	if rows >= cols {
		for i0 := 0; i0 < r8; i0 += tile {
			i1 := min(i0+tile, r8)
			for j := 0; j < c8; j += 8 {
				for i := i0; i < i1; i += 8 {
					transpose8(dst[j*ds+i:], ds, src[i*ss+j:], ss)
				}
			}
		}
	} else {
		for j0 := 0; j0 < c8; j0 += tile {
			j1 := min(j0+tile, c8)
			for i := 0; i < r8; i += 8 {
				for j := j0; j < j1; j += 8 {
					transpose8(dst[j*ds+i:], ds, src[i*ss+j:], ss)
				}
			}
		}
	}
	// ... then, byte by byte, the right edge of the first r8 rows and
	// every byte of the rows below them.
	for i := range rows {
		j0 := c8
		if i >= r8 {
			j0 = 0
		}
		for j := j0; j < cols; j++ {
			dst[j*ds+i] = src[i*ss+j]
		}
	}
}

// transpose8 transposes the 8x8 bytes whose rows start sstride apart in
// src into the rows dstride apart in dst. Row k is read as a little-endian
// word (byte j of row k is a_k>>(8*j)); 4x4, then 2x2, then 1x1 blocks
// are swapped across the diagonal, in registers. On little-endian hosts
// the words are loaded and stored directly, after one bounds check per
// side.
func transpose8(dst []byte, dstride int, src []byte, sstride int) {
	if !littleEndianHost {
		transpose8Bytes(dst, dstride, src, sstride)
		return
	}
	_ = src[7*sstride+7]
	_ = dst[7*dstride+7]
	s, ss := unsafe.Pointer(unsafe.SliceData(src)), uintptr(sstride)
	a0 := *(*uint64)(s)
	a1 := *(*uint64)(unsafe.Add(s, ss))
	a2 := *(*uint64)(unsafe.Add(s, 2*ss))
	a3 := *(*uint64)(unsafe.Add(s, 3*ss))
	a4 := *(*uint64)(unsafe.Add(s, 4*ss))
	a5 := *(*uint64)(unsafe.Add(s, 5*ss))
	a6 := *(*uint64)(unsafe.Add(s, 6*ss))
	a7 := *(*uint64)(unsafe.Add(s, 7*ss))
	const m32, m16, m8 = 0x00000000ffffffff, 0x0000ffff0000ffff, 0x00ff00ff00ff00ff
	t := (a0>>32 ^ a4) & m32
	a0, a4 = a0^t<<32, a4^t
	t = (a1>>32 ^ a5) & m32
	a1, a5 = a1^t<<32, a5^t
	t = (a2>>32 ^ a6) & m32
	a2, a6 = a2^t<<32, a6^t
	t = (a3>>32 ^ a7) & m32
	a3, a7 = a3^t<<32, a7^t
	t = (a0>>16 ^ a2) & m16
	a0, a2 = a0^t<<16, a2^t
	t = (a1>>16 ^ a3) & m16
	a1, a3 = a1^t<<16, a3^t
	t = (a4>>16 ^ a6) & m16
	a4, a6 = a4^t<<16, a6^t
	t = (a5>>16 ^ a7) & m16
	a5, a7 = a5^t<<16, a7^t
	t = (a0>>8 ^ a1) & m8
	a0, a1 = a0^t<<8, a1^t
	t = (a2>>8 ^ a3) & m8
	a2, a3 = a2^t<<8, a3^t
	t = (a4>>8 ^ a5) & m8
	a4, a5 = a4^t<<8, a5^t
	t = (a6>>8 ^ a7) & m8
	a6, a7 = a6^t<<8, a7^t
	d, ds := unsafe.Pointer(unsafe.SliceData(dst)), uintptr(dstride)
	*(*uint64)(d) = a0
	*(*uint64)(unsafe.Add(d, ds)) = a1
	*(*uint64)(unsafe.Add(d, 2*ds)) = a2
	*(*uint64)(unsafe.Add(d, 3*ds)) = a3
	*(*uint64)(unsafe.Add(d, 4*ds)) = a4
	*(*uint64)(unsafe.Add(d, 5*ds)) = a5
	*(*uint64)(unsafe.Add(d, 6*ds)) = a6
	*(*uint64)(unsafe.Add(d, 7*ds)) = a7
}

// transpose8Bytes is transpose8 byte by byte, for big-endian hosts.
func transpose8Bytes(dst []byte, dstride int, src []byte, sstride int) {
	for k := range 8 {
		for j := range 8 {
			dst[j*dstride+k] = src[k*sstride+j]
		}
	}
}

// littleEndianHost is set when the host stores words little-endian, as
// the records and the transposed planes are.
var littleEndianHost = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// batchEncoder encodes event block payloads: split blocks (encSplitS2)
// of whole records, else encDeltaTransposedS2 ones.
type batchEncoder struct {
	scratch        []byte
	plane2, plane3 []byte // a split block's second and third planes, record-major
}

// encode appends the payload of an event block holding n records of size
// sz (at least 8: the time; recs, record-major) to dst. It overwrites the
// times in recs with their differences (deltaTimes; for whole records,
// gather takes them in its pass over the records).
func (b *batchEncoder) encode(dst, recs []byte, n, sz int) []byte {
	if sz == event.RecordSize {
		if b.gather(recs, n) {
			return b.encodeSplit(dst, recs, n)
		}
	} else {
		deltaTimes(recs, n, sz)
	}
	return b.encodeWhole(dst, recs, n, sz)
}

// encodeWhole appends the payload of an encDeltaTransposedS2 block of the
// n records of size sz in recs (times already as differences) to dst.
func (b *batchEncoder) encodeWhole(dst, recs []byte, n, sz int) []byte {
	var head [batchHeadSize]byte
	le.PutUint32(head[0:], uint32(n))
	le.PutUint16(head[4:], uint16(sz))
	head[6] = encDeltaTransposedS2
	dst = append(dst, head[:]...)
	if cap(b.scratch) < len(recs) {
		b.scratch = make([]byte, len(recs))
	}
	t := b.scratch[:len(recs)]
	transpose(t, recs, n, sz)
	return b.compress(dst, t)
}

// deltaTimes replaces the time (first 8 bytes, little-endian) of every
// record but the first of recs by its difference from the previous
// record's, modulo 2^64, in place.
func deltaTimes(recs []byte, n, sz int) {
	for i := n - 1; i > 0; i-- {
		cur, prev := recs[i*sz:], recs[(i-1)*sz:]
		le.PutUint64(cur, le.Uint64(cur)-le.Uint64(prev))
	}
}

// undeltaTimes undoes deltaTimes.
func undeltaTimes(recs []byte, n, sz int) {
	for i := 1; i < n; i++ {
		cur, prev := recs[i*sz:], recs[(i-1)*sz:]
		le.PutUint64(cur, le.Uint64(cur)+le.Uint64(prev))
	}
}

// batchDecoder decodes event block payloads: zstd ones (encodings 1 and 2,
// written by earlier versions) and S2 ones.
type batchDecoder struct {
	zdec           *zstd.Decoder // created on the first zstd block
	scratch        []byte
	recs           []byte
	plane2, plane3 []byte // a split block's second and third planes, record-major
}

// decode returns the records of an event block payload (valid until the
// next call) and their size.
func (b *batchDecoder) decode(p []byte) (recs []byte, n, sz int, err error) {
	if len(p) < batchHeadSize {
		return nil, 0, 0, fmt.Errorf("events block of %d bytes is shorter than its %d-byte head", len(p), batchHeadSize)
	}
	n, sz = int(le.Uint32(p[0:])), int(le.Uint16(p[4:]))
	enc := p[6]
	if enc != encTransposedZstd && enc != encDeltaTransposedZstd && enc != encDeltaTransposedS2 && enc != encSplitS2 {
		return nil, 0, 0, fmt.Errorf("events block has unknown encoding %d (written by a newer twtop?)", enc)
	}
	if sz == 0 || sz > maxRecordSize || (enc != encTransposedZstd && sz < 8) {
		return nil, 0, 0, fmt.Errorf("events block has record size %d (limit %d)", sz, maxRecordSize)
	}
	if n == 0 || n > maxBatchBytes/sz {
		return nil, 0, 0, fmt.Errorf("events block claims %d records of %d bytes (limit %d bytes)", n, sz, maxBatchBytes)
	}
	if enc == encSplitS2 {
		if sz != event.RecordSize {
			return nil, 0, 0, fmt.Errorf("split events block has record size %d, want %d", sz, event.RecordSize)
		}
		if recs, err = b.decodeSplit(p[batchHeadSize:], n); err != nil {
			return nil, 0, 0, err
		}
		undeltaTimes(recs, n, sz)
		return recs, n, sz, nil
	}
	want := n * sz
	if cap(b.scratch) < want {
		b.scratch = make([]byte, 0, want)
	}
	var t []byte
	if enc == encDeltaTransposedS2 {
		t, err = b.s2(p[batchHeadSize:], want)
	} else {
		t, err = b.zstd(p[batchHeadSize:])
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("events block does not decompress: %w", err)
	}
	if len(t) != want {
		return nil, 0, 0, fmt.Errorf("events block decompresses to %d bytes, want %d records of %d", len(t), n, sz)
	}
	b.scratch = t
	if cap(b.recs) < want {
		b.recs = make([]byte, want)
	}
	recs = b.recs[:want]
	transpose(recs, t, sz, n)
	if enc != encTransposedZstd {
		undeltaTimes(recs, n, sz)
	}
	return recs, n, sz, nil
}

// s2 decompresses an S2 block that must hold want bytes; a block claiming
// another length is refused before anything is allocated.
func (b *batchDecoder) s2(p []byte, want int) ([]byte, error) {
	got, err := s2.DecodedLen(p)
	if err != nil {
		return nil, err
	}
	if got != want {
		return nil, fmt.Errorf("S2 block holds %d bytes, want %d", got, want)
	}
	return s2.Decode(b.scratch[:want], p)
}

func (b *batchDecoder) zstd(p []byte) ([]byte, error) {
	if b.zdec == nil {
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxBatchBytes),
			zstd.WithDecoderMaxWindow(maxBatchBytes))
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		b.zdec = dec
	}
	return b.zdec.DecodeAll(p, b.scratch[:0])
}
