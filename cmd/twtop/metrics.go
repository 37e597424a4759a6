package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/twtop/twtop/metrics"
	"github.com/twtop/twtop/pipeline"
	"github.com/twtop/twtop/tracer/model"
)

// metricsFeed is the --metrics endpoint. A scrape reads the pipeline's
// Board, without waiting.
type metricsFeed struct {
	srv    *metrics.Server
	kernel string
}

// startMetrics serves --metrics from b (nil when it was not given). It
// binds before tracing starts, so a busy port fails fast.
func startMetrics(cfg *config, b *pipeline.Board) (*metricsFeed, error) {
	if cfg.metrics == "" {
		return nil, nil
	}
	f := &metricsFeed{}
	read := func() *metrics.Reading {
		p := b.Load()
		if p == nil || p.Snapshot == nil {
			return nil
		}
		return &metrics.Reading{Snapshot: p.Snapshot, Kernel: f.kernel,
			Meta: model.Meta{Tier: p.Snapshot.Tier.Name, Lost: p.Stats.Lost, RecursionMisses: p.Stats.RecursionMisses}}
	}
	c := metrics.NewCollector(read, metrics.Options{TopN: cfg.metricsTop, Version: versionString()})
	h, err := metrics.NewHandler(c, func() bool { return b.Load() != nil })
	if err != nil {
		return nil, err
	}
	if f.srv, err = metrics.Listen(cfg.metrics, h); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "twtop: metrics on %s\n", f.srv.URL())
	return f, nil
}

// source names the kernel the readings come from (before the first
// publication).
func (f *metricsFeed) source(kernel string) {
	if f != nil {
		f.kernel = kernel
	}
}

// close stops the endpoint, letting scrapes under way finish.
func (f *metricsFeed) close() {
	if f == nil {
		return
	}
	if err := f.srv.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "twtop: %v\n", err)
	}
}

// notifyStop returns a channel that receives Ctrl-C and SIGTERM, and the
// function that stops listening.
func notifyStop() (<-chan os.Signal, func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	return sigs, func() { signal.Stop(sigs) }
}
