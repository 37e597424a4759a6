package record

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkEncode encodes full batches of each stream (times as
// differences, transposed, S2): MB/s of raw records in.
func BenchmarkEncode(b *testing.B) {
	for name, recs := range benchStreams(b) {
		b.Run(name, func(b *testing.B) {
			n := min(len(recs), batchRecords)
			flat := bytes.Join(recs[:n], nil)
			work := make([]byte, len(flat))
			var enc batchEncoder
			var dst []byte
			b.SetBytes(int64(len(flat)))
			b.ReportAllocs()
			for b.Loop() {
				copy(work, flat) // encode overwrites the times
				dst = enc.encode(dst[:0], work, n, len(recs[0]))
			}
			b.ReportMetric(float64(len(dst))/float64(n), "B/event")
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N*n), "ns/event")
		})
	}
}

// BenchmarkAsyncWriter adds every record of each stream to an
// AsyncWriter, flushing every 4096 as the live loop does about that often
// under churn, and closes it: records in per second, with the encoding on
// the writer's goroutine.
func BenchmarkAsyncWriter(b *testing.B) {
	for name, recs := range benchStreams(b) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(recs) * len(recs[0])))
			b.ReportAllocs()
			for b.Loop() {
				w, err := NewAsyncWriter(io.Discard, testHeader())
				if err != nil {
					b.Fatal(err)
				}
				writeAll(b, w, recs)
			}
			b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
