package record

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/klauspost/compress/zstd"
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
	for _, enc := range []byte{encTransposedZstd, encDeltaTransposedZstd, encDeltaTransposedS2, encTransposedZstd} {
		t.Run(fmt.Sprint("encoding ", enc), func(t *testing.T) {
			var p []byte
			if enc == encDeltaTransposedS2 {
				var be batchEncoder
				p = be.encode(nil, bytes.Join(recs, nil), len(recs), len(recs[0]))
				if p[6] != encDeltaTransposedS2 {
					t.Fatalf("the writer's encoding is %d, want %d", p[6], encDeltaTransposedS2)
				}
			} else {
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
