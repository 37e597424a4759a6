package record

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the reader: it must end with io.EOF
// or a *FormatError, never panic, and never hand out a record of a size
// other than the header's. The seed corpus (testdata/fuzz/FuzzReader)
// holds small valid, cut and damaged recordings.
func FuzzReader(f *testing.F) {
	good := sample(f, churn(40), 15, false)
	f.Add(good)
	f.Add(good[:len(good)-9])
	f.Add(sample(f, churn(5), 5, true))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("NewReader: %v (%T), want FormatError", err, err)
			}
			return
		}
		for {
			b, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("Next: %v (%T), want FormatError", err, err)
				}
				return
			}
			if len(b) != r.Header().RecordSize {
				t.Fatalf("record of %d bytes, header says %d", len(b), r.Header().RecordSize)
			}
		}
	})
}
