package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/twtop/twtop/internal/ingest"
	"github.com/twtop/twtop/pipeline"
	"github.com/twtop/twtop/tracer"
	"github.com/twtop/twtop/tracer/event"
	"github.com/twtop/twtop/tracer/model"
	"github.com/twtop/twtop/tracer/record"
	"github.com/twtop/twtop/ui"
)

// liveUI shows the UI on the live tracer until the user quits or a signal
// arrives.
func liveUI(tr *tracer.Tracer, src *pipeline.LiveSource, m *model.Model, b *pipeline.Board, metrics bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	host, _ := os.Hostname()
	v := pipeline.NewView(b, m, ui.Status{Host: host, Kernel: tr.KernelRelease(), Live: true, Speed: 1}, liveStats(tr), metrics)
	err := show(ctx, v, src, tr.HZ(), func() { tr.Close() })
	printTracerStats(tr)
	return err
}

// replayUI shows the UI on a recording, as fast as it was recorded.
func replayUI(name string, rd *record.Reader, b *pipeline.Board, metrics bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	h := rd.Header()
	m := ingest.Model(rd)
	v := pipeline.NewView(b, m, ui.Status{Host: h.Host, Kernel: h.Kernel, File: filepath.Base(name), Speed: 1}, rd.TracerStats, metrics)
	ctx, cancel := context.WithCancel(ctx)
	return show(ctx, v, rd, h.HZ, cancel)
}

// show runs the pipeline from src beside the UI until the UI ends (the
// user quits, or ctx is done); end then stops the pipeline. The UI's error
// comes first, then the pipeline's.
func show(ctx context.Context, v *pipeline.View, src event.RawSource, hz uint32, end func()) error {
	errc := make(chan error, 1)
	go func() { errc <- v.Run(ctx, src, hz) }()
	uerr := ui.Run(ctx, v, nil, uiOptions())
	end()
	if err := <-errc; err != nil && uerr == nil {
		uerr = err
	}
	return uerr
}

// liveStats reads the tracer's counters (zero when they cannot be read).
func liveStats(tr *tracer.Tracer) func() record.TracerStats {
	return func() record.TracerStats {
		ts, _ := pipeline.TracerStats(tr)
		return ts
	}
}

func uiOptions() ui.Options {
	_, noColor := os.LookupEnv("NO_COLOR")
	return ui.Options{NoColor: noColor}
}
