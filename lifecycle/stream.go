package lifecycle

import "github.com/twtop/twtop/tracer/event"

// Stream decodes a RawSource and runs a Tracker over it, yielding the
// events twtop reports one at a time.
type Stream struct {
	src   event.RawSource
	tk    *Tracker
	queue []event.Event
	head  int
	raw   event.Event
	err   error // the source's error, returned once the queue is empty
}

// NewStream reads src; hz is the traced kernel's timer frequency.
func NewStream(src event.RawSource, hz uint32) *Stream {
	return &Stream{src: src, tk: NewTracker(hz)}
}

// Tracker is the stream's tracker (open timewait sockets and the like).
func (s *Stream) Tracker() *Tracker { return s.tk }

// Next returns the next event, valid until the next call. When the source
// fails or ends, the tracker's pending inferences are flushed first and the
// source's error is returned after them.
func (s *Stream) Next() (*event.Event, error) {
	for s.head == len(s.queue) {
		if s.err != nil {
			return nil, s.err
		}
		s.queue, s.head = s.queue[:0], 0
		raw, err := s.src.Next()
		if err == nil {
			err = event.Decode(raw, &s.raw)
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

func (s *Stream) push(e *event.Event) { s.queue = append(s.queue, *e) }
