// Package ingest hands what a recording holds to the model, the way
// `twtop --replay` does: the settings and counters of its state blocks, and
// its records through the decoder.
package ingest

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/lifecycle"
	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
)

// Tier is the attach tier named name (a recording's header, or the live
// tracer's tier), with whether it sees TIME_WAIT ends exactly: the one
// place that tells, from the tracer's own tier table.
func Tier(name string) model.Tier {
	t, err := tracer.ParseTier(name)
	return model.Tier{Name: name, Exact: err == nil && t.Exact()}
}

// State hands a reading of settings and counters to the model.
func State(m *model.Model, s record.State) {
	m.SetSettings(s.Settings)
	m.SetCounters(s.Settings.Netns, s.Counters)
}

// Model is a new model for the recording rd: its tier, and, as rd is
// read, its settings and counters and the workloads it names, of cgroups
// and of network namespaces (a recording made before workloads, or
// namespaces' workloads, were recorded has none).
func Model(rd *record.Reader) *model.Model {
	var names workload.Table
	m := model.New(model.Config{Tier: Tier(rd.Header().Tier), Workloads: &names})
	rd.OnState = func(s record.State) { State(m, s) }
	rd.OnWorkloads = func(ws record.Workloads) {
		names.Add(ws.Cgroups)
		names.AddNetns(ws.Netns)
	}
	return m
}

// Recording replays rd to its end into a new model.
func Recording(rd *record.Reader) (*model.Model, error) {
	m := Model(rd)
	st := lifecycle.NewStream(rd, rd.Header().HZ)
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

// File replays the recording at path into a new model. The reader it
// returns has been read to the end: its header and tracer stats stay
// readable.
func File(path string) (*model.Model, *record.Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open recording: %w", err)
	}
	defer f.Close()
	rd, err := record.NewReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read recording %s: %w", path, err)
	}
	m, err := Recording(rd)
	if err != nil {
		return nil, nil, fmt.Errorf("replay recording %s: %w", path, err)
	}
	return m, rd, nil
}
