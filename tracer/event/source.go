package event

// RawSource yields raw records of RecordSize bytes, each valid until the
// next call: the live tracer, or a recording being replayed.
type RawSource interface {
	Next() ([]byte, error)
}
