package event

// RawSource yields raw records of RecordSize bytes, each valid until the
// next call: the live tracer, or a recording being replayed.
type RawSource interface {
	Next() ([]byte, error)
}

// Stream decodes a RawSource and runs a Tracker over it, yielding the
// events twtop reports one at a time.
type Stream struct {
	src   RawSource
	tk    *Tracker
	queue []Event
	head  int
	raw   Event
	err   error // the source's error, returned once the queue is empty
}

// NewStream reads src; hz is the traced kernel's timer frequency.
func NewStream(src RawSource, hz uint32) *Stream {
	return &Stream{src: src, tk: NewTracker(hz)}
}

// Tracker is the stream's tracker (open timewait sockets and the like).
func (s *Stream) Tracker() *Tracker { return s.tk }

// Next returns the next event, valid until the next call. When the source
// fails or ends, the tracker's pending inferences are flushed first and the
// source's error is returned after them.
func (s *Stream) Next() (*Event, error) {
	for s.head == len(s.queue) {
		if s.err != nil {
			return nil, s.err
		}
		s.queue, s.head = s.queue[:0], 0
		raw, err := s.src.Next()
		if err == nil {
			err = Decode(raw, &s.raw)
		}
		if err != nil {
			s.err = err
			s.tk.Flush(s.push)
			continue
		}
		s.tk.Add(&s.raw, s.push)
	}
	e := &s.queue[s.head]
	s.head++
	return e, nil
}

func (s *Stream) push(e *Event) { s.queue = append(s.queue, *e) }
