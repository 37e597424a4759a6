// Package ingest hands what a recording holds to the model, the way
// `twtop --replay` does: the settings and counters of its state blocks, and
// its records through the decoder.
package ingest

import (
	"errors"
	"io"

	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
)

// State hands a reading of settings and counters to the model.
func State(m *model.Model, s record.State) {
	m.SetSettings(s.Settings)
	m.SetCounters(s.Settings.Netns, s.Counters)
}

// Recording replays rd to its end into a new model.
func Recording(rd *record.Reader) (*model.Model, error) {
	m := model.New(model.Config{})
	rd.OnState = func(s record.State) { State(m, s) }
	st := event.NewStream(rd, rd.Header().HZ)
	for {
		e, err := st.Next()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		m.Apply(e)
	}
}
