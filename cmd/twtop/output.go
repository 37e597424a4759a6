package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/check"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
)

// The pipeline is the same live and on replay: raw records from a source
// (the tracer or a recording), decoded and tracked by an event.Stream,
// then printed or folded into the model.

// sourceEnded reports whether err is the normal end of a source: the
// tracer closed (Ctrl-C, --duration) or the recording's end.
func sourceEnded(err error) bool {
	return errors.Is(err, tracer.ErrClosed) || errors.Is(err, io.EOF)
}

// errStop ends eachEvent early without an error.
var errStop = errors.New("stop")

// eachEvent decodes src and calls fn for every event until the source
// ends, src or fn fails, or fn returns errStop.
func eachEvent(src event.RawSource, hz uint32, fn func(*event.Event) error) error {
	st := event.NewStream(src, hz)
	for {
		e, err := st.Next()
		if sourceEnded(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
}

// printEvents writes every event as a JSON line until the source ends.
func printEvents(src event.RawSource, hz uint32, w *bufio.Writer) error {
	defer w.Flush()
	var line []byte
	lastFlush := time.Now()
	return eachEvent(src, hz, func(e *event.Event) error {
		line = event.AppendJSON(line[:0], e, hz)
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("write events: %w", err)
		}
		if e.Kind == event.KindScanEnd || time.Since(lastFlush) > 200*time.Millisecond {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("write events: %w", err)
			}
			lastFlush = time.Now()
		}
		return nil
	})
}

// feedModel applies every event to m until the source ends.
func feedModel(src event.RawSource, hz uint32, m *model.Model) error {
	return eachEvent(src, hz, func(e *event.Event) error {
		m.Apply(e)
		return nil
	})
}

// writeReport prints r as text or JSON.
func writeReport(r *model.Report, format string, w io.Writer) error {
	if format == "json" {
		return r.WriteJSON(w)
	}
	return r.WriteText(w)
}

// reportKeys are the keys of the JSON report, which --check expressions
// name.
var reportKeys = check.KeysOf(reflect.TypeFor[model.Report]())

// checksFailed is returned when a --check fails (exit status 1).
type checksFailed struct{ failed, total int }

func (e *checksFailed) Error() string {
	return fmt.Sprintf("%d of %d checks failed", e.failed, e.total)
}

// runChecks evaluates the checks on the report's JSON form, printing one
// line each.
func runChecks(r *model.Report, checks []*check.Check, w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("decode report: %w", err)
	}
	failed := 0
	for _, c := range checks {
		res := c.Eval(doc)
		if !res.Pass {
			failed++
		}
		if _, err := fmt.Fprintln(w, res); err != nil {
			return fmt.Errorf("write checks: %w", err)
		}
	}
	if failed > 0 {
		return &checksFailed{failed, len(checks)}
	}
	return nil
}
