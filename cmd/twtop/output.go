package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"time"

	"github.com/twtop/twtop/internal/workload"
	"github.com/twtop/twtop/pipeline"
	"github.com/twtop/twtop/tracer/check"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
)

// printEvents writes every event as a JSON line until the source ends.
// workloadOf, when set, names the workload an event belongs to (live runs).
func printEvents(src event.RawSource, hz uint32, w *bufio.Writer, workloadOf func(*event.Event) (workload.Workload, bool)) error {
	defer w.Flush()
	var line []byte
	lastFlush := time.Now()
	return pipeline.Each(src, hz, func(e *event.Event) error {
		line = event.AppendJSON(line[:0], e, hz)
		if workloadOf != nil {
			if wl, ok := workloadOf(e); ok {
				line = appendWorkload(line, wl)
			}
		}
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

// appendWorkload adds the fields that name a workload to the JSON object
// that ends line: "workload" (its display name) and whichever of
// "namespace", "pod", "pod_uid", "container", "container_id" and
// "service" are known. Other kinds
// (the host, an unresolved id) add nothing.
func appendWorkload(line []byte, w workload.Workload) []byte {
	if w.Kind == workload.KindOther || len(line) == 0 || line[len(line)-1] != '}' {
		return line
	}
	line = line[:len(line)-1]
	for _, f := range [...]struct{ key, val string }{
		{"workload", w.String()}, {"namespace", w.Namespace}, {"pod", w.Pod}, {"pod_uid", w.PodUID},
		{"container", w.Container}, {"container_id", w.ContainerID}, {"service", w.Service},
	} {
		if f.val == "" {
			continue
		}
		line = append(line, `,"`...)
		line = append(line, f.key...)
		line = append(line, `":`...)
		line = strconv.AppendQuote(line, f.val)
	}
	return append(line, '}')
}
