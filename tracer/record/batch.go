package record

import (
	"fmt"

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

// batchEncoder encodes event block payloads.
type batchEncoder struct {
	enc     *zstd.Encoder
	scratch []byte
}

func newBatchEncoder() (*batchEncoder, error) {
	// One goroutine: the writer runs beside the tracer's reader and must
	// not compete with the traced host for cores.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &batchEncoder{enc: enc}, nil
}

// encode appends the payload of an event block holding n records of size
// sz (recs, record-major) to dst. It overwrites the times in recs with
// their differences (deltaTimes).
func (b *batchEncoder) encode(dst, recs []byte, n, sz int) []byte {
	var head [batchHeadSize]byte
	le.PutUint32(head[0:], uint32(n))
	le.PutUint16(head[4:], uint16(sz))
	head[6] = encTransposedZstd
	if sz >= 8 {
		head[6] = encDeltaTransposedZstd
		deltaTimes(recs, n, sz)
	}
	dst = append(dst, head[:]...)
	if cap(b.scratch) < len(recs) {
		b.scratch = make([]byte, len(recs))
	}
	t := b.scratch[:len(recs)]
	transpose(t, recs, n, sz)
	return b.enc.EncodeAll(t, dst)
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

// batchDecoder decodes event block payloads.
type batchDecoder struct {
	dec     *zstd.Decoder
	scratch []byte
	recs    []byte
}

func newBatchDecoder() (*batchDecoder, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxBatchBytes),
		zstd.WithDecoderMaxWindow(maxBatchBytes))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return &batchDecoder{dec: dec}, nil
}

// decode returns the records of an event block payload (valid until the
// next call) and their size.
func (b *batchDecoder) decode(p []byte) (recs []byte, n, sz int, err error) {
	if len(p) < batchHeadSize {
		return nil, 0, 0, fmt.Errorf("events block of %d bytes is shorter than its %d-byte head", len(p), batchHeadSize)
	}
	n, sz = int(le.Uint32(p[0:])), int(le.Uint16(p[4:]))
	enc := p[6]
	if enc != encTransposedZstd && enc != encDeltaTransposedZstd {
		return nil, 0, 0, fmt.Errorf("events block has unknown encoding %d (written by a newer twtop?)", enc)
	}
	if sz == 0 || sz > maxRecordSize || (enc == encDeltaTransposedZstd && sz < 8) {
		return nil, 0, 0, fmt.Errorf("events block has record size %d (limit %d)", sz, maxRecordSize)
	}
	if n == 0 || n > maxBatchBytes/sz {
		return nil, 0, 0, fmt.Errorf("events block claims %d records of %d bytes (limit %d bytes)", n, sz, maxBatchBytes)
	}
	want := n * sz
	if cap(b.scratch) < want {
		b.scratch = make([]byte, 0, want)
	}
	t, err := b.dec.DecodeAll(p[batchHeadSize:], b.scratch[:0])
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
	if enc == encDeltaTransposedZstd {
		undeltaTimes(recs, n, sz)
	}
	return recs, n, sz, nil
}
