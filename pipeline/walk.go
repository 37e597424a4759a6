package pipeline

import (
	"errors"
	"io"

	"github.com/twtop/twtop/lifecycle"
	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
)

// SourceEnded reports whether err is the normal end of a source: the
// tracer closed (Ctrl-C, --duration) or the recording's end.
func SourceEnded(err error) bool {
	return errors.Is(err, tracer.ErrClosed) || errors.Is(err, io.EOF)
}

// ErrStop ends Each early without an error.
var ErrStop = errors.New("stop")

// Each decodes src, runs the lifecycle Tracker over it and calls fn for
// every event until the source ends, src or fn fails, or fn returns
// ErrStop. hz is the traced kernel's timer frequency.
func Each(src event.RawSource, hz uint32, fn func(*event.Event) error) error {
	st := lifecycle.NewStream(src, hz)
	for {
		e, err := st.Next()
		if SourceEnded(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
}

// Feed applies every event to m until the source ends.
func Feed(src event.RawSource, hz uint32, m *model.Model) error {
	return Each(src, hz, func(e *event.Event) error {
		m.Apply(e)
		return nil
	})
}
