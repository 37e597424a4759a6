package record

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/twtop/twtop/lifecycle"
	"github.com/twtop/twtop/tracer/model"
)

// benchStreams are the record streams the benchmarks run on: synthetic
// churn, and every recording checked in under testdata/ at the top of the
// repository (real kernels' records).
func benchStreams(b *testing.B) map[string][][]byte {
	out := map[string][][]byte{"churn": churn(200_000)}
	files, _ := filepath.Glob("../../testdata/*.twrec")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		_, recs, _, err := readAll(data)
		if err != nil {
			b.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = recs
	}
	return out
}

// encode writes recs as a recording, flushing every 4096 records as the
// live loop does about that often under churn.
func encode(b *testing.B, recs [][]byte) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader())
	if err != nil {
		b.Fatal(err)
	}
	writeAll(b, w, recs)
	return buf.Bytes()
}

// writeAll adds recs to w, flushing every 4096 records, and closes it.
func writeAll(tb testing.TB, w recordWriter, recs [][]byte) {
	for i, r := range recs {
		if err := w.Add(r); err != nil {
			tb.Fatal(err)
		}
		if i%4096 == 4095 {
			if err := w.Flush(); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := w.Close(Trailer{}); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkWrite prints the bytes on disk per event (about 7 to 13 for the
// recordings of testdata, with S2 at its default level).
func BenchmarkWrite(b *testing.B) {
	for name, recs := range benchStreams(b) {
		b.Run(name, func(b *testing.B) {
			var size int
			for b.Loop() {
				size = len(encode(b, recs))
			}
			b.ReportMetric(float64(size)/float64(len(recs)), "B/event")
			b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkReplay decodes a recording and applies every event to the model
// on one goroutine (goal: at least 5M events/s). allocs/event counts every
// allocation of the replay, the reader's and a new model's included.
func BenchmarkReplay(b *testing.B) {
	for name, recs := range benchStreams(b) {
		data := encode(b, recs)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				rd, err := NewReader(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				m := model.New(model.Config{})
				st := lifecycle.NewStream(rd, 250)
				for {
					e, err := st.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					m.Apply(e)
				}
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(len(recs)*b.N), "allocs/event")
		})
	}
}

// BenchmarkRead reads a recording's raw records without decoding them: the
// cost of the file format alone.
func BenchmarkRead(b *testing.B) {
	for name, recs := range benchStreams(b) {
		data := encode(b, recs)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rd, err := NewReader(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				for {
					if _, err := rd.Next(); err != nil {
						break
					}
				}
			}
			b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
