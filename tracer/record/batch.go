package record

import (
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

const batchHeadSize = 8 // count uint32, size uint16, encoding uint8, reserved

// transpose writes the transpose of src, a matrix of rows×cols bytes
// stored row by row, into dst (cols×rows, row by row). Records in, bytes
// grouped by offset out, is transpose(dst, recs, n, size); the way back is
// transpose(recs, t, size, n).
func transpose(dst, src []byte, rows, cols int) {
	// 8x8 blocks in registers, written as whole words ...
	r8, c8 := rows&^7, cols&^7
	for i := 0; i < r8; i += 8 {
		for j := 0; j < c8; j += 8 {
			var w [8]uint64
			for k := range w {
				w[k] = le.Uint64(src[(i+k)*cols+j:])
			}
			transpose8(&w)
			for k := range w {
				le.PutUint64(dst[(j+k)*rows+i:], w[k])
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
			dst[j*rows+i] = src[i*cols+j]
		}
	}
}

// transpose8 transposes the 8x8 matrix of bytes whose row k is w[k]
// (little-endian: byte j of row k is w[k]>>(8*j)), by swapping 4x4, then
// 2x2, then 1x1 blocks across the diagonal.
func transpose8(w *[8]uint64) {
	for k := range 4 {
		t := (w[k]>>32 ^ w[k+4]) & 0x00000000ffffffff
		w[k] ^= t << 32
		w[k+4] ^= t
	}
	for _, k := range [4]int{0, 1, 4, 5} {
		t := (w[k]>>16 ^ w[k+2]) & 0x0000ffff0000ffff
		w[k] ^= t << 16
		w[k+2] ^= t
	}
	for _, k := range [4]int{0, 2, 4, 6} {
		t := (w[k]>>8 ^ w[k+1]) & 0x00ff00ff00ff00ff
		w[k] ^= t << 8
		w[k+1] ^= t
	}
}

// batchEncoder encodes event block payloads (encDeltaTransposedS2).
type batchEncoder struct {
	scratch []byte
}

// encode appends the payload of an event block holding n records of size
// sz (at least 8: the time; recs, record-major) to dst. It overwrites the
// times in recs with their differences (deltaTimes).
func (b *batchEncoder) encode(dst, recs []byte, n, sz int) []byte {
	var head [batchHeadSize]byte
	le.PutUint32(head[0:], uint32(n))
	le.PutUint16(head[4:], uint16(sz))
	head[6] = encDeltaTransposedS2
	deltaTimes(recs, n, sz)
	dst = append(dst, head[:]...)
	if cap(b.scratch) < len(recs) {
		b.scratch = make([]byte, len(recs))
	}
	t := b.scratch[:len(recs)]
	transpose(t, recs, n, sz)
	// S2 writes into the spare capacity of its destination when it is
	// large enough, so the block buffer is reused from batch to batch
	need := s2.MaxEncodedLen(len(t))
	if cap(dst)-len(dst) < need {
		dst = append(make([]byte, 0, len(dst)+need), dst...)
	}
	out := s2.EncodeBetter(dst[len(dst):len(dst)+need], t)
	return dst[:len(dst)+len(out)]
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
	zdec    *zstd.Decoder // created on the first zstd block
	scratch []byte
	recs    []byte
}

// decode returns the records of an event block payload (valid until the
// next call) and their size.
func (b *batchDecoder) decode(p []byte) (recs []byte, n, sz int, err error) {
	if len(p) < batchHeadSize {
		return nil, 0, 0, fmt.Errorf("events block of %d bytes is shorter than its %d-byte head", len(p), batchHeadSize)
	}
	n, sz = int(le.Uint32(p[0:])), int(le.Uint16(p[4:]))
	enc := p[6]
	if enc != encTransposedZstd && enc != encDeltaTransposedZstd && enc != encDeltaTransposedS2 {
		return nil, 0, 0, fmt.Errorf("events block has unknown encoding %d (written by a newer twtop?)", enc)
	}
	if sz == 0 || sz > maxRecordSize || (enc != encTransposedZstd && sz < 8) {
		return nil, 0, 0, fmt.Errorf("events block has record size %d (limit %d)", sz, maxRecordSize)
	}
	if n == 0 || n > maxBatchBytes/sz {
		return nil, 0, 0, fmt.Errorf("events block claims %d records of %d bytes (limit %d bytes)", n, sz, maxBatchBytes)
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
